import KeyOutlined from '@mui/icons-material/KeyOutlined';
import { Alert, Box, Button, CircularProgress, Paper, Stack, TextField, Typography } from '@mui/material';
import { type FormEvent, useEffect, useState, useSyncExternalStore } from 'react';
import { ApiError, errorMessage } from '../api/client';
import { useApi, useSessionStore } from '../api/context';
import { ColorModeToggle } from '../theme/ColorModeToggle';

/** "14 min 05 s", "42 s". */
export function formatWait(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  const m = Math.floor(s / 60);
  const rest = s % 60;
  if (m === 0) return `${rest} s`;
  return `${m} min ${String(rest).padStart(2, '0')} s`;
}

/** Ticks once a second until `until` (epoch ms); returns the seconds left. */
function useCountdown(until: number | null): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (until === null) return;
    setNow(Date.now());
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [until]);
  return until === null ? 0 : Math.max(0, Math.ceil((until - now) / 1000));
}

export function LoginPage() {
  const api = useApi();
  const sessions = useSessionStore();
  const notice = useSyncExternalStore(sessions.subscribe, sessions.getNotice, sessions.getNotice);

  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [lockedUntil, setLockedUntil] = useState<number | null>(null);
  const left = useCountdown(lockedUntil);
  const locked = lockedUntil !== null && left > 0;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    setLockedUntil(null);
    try {
      const r = await api.login({ username: username.trim(), password });
      sessions.start({
        token: r.access_token,
        username: username.trim(),
        role: r.role,
        expiresAt: Date.now() + r.expires_in * 1000,
      });
      // The login route now sends the person on to where they were going.
    } catch (err) {
      if (err instanceof ApiError && err.code === 'too_many_attempts') {
        setLockedUntil(Date.now() + (err.retryAfter ?? 900) * 1000);
        setError(null);
      } else if (err instanceof ApiError && err.code === 'validation_failed') {
        setError(`${err.message}`);
      } else {
        setError(errorMessage(err));
      }
      setPassword('');
    } finally {
      setBusy(false);
    }
  };

  return (
    <Box
      component="main"
      sx={{
        minHeight: '100vh',
        display: 'flex',
        alignItems: 'center',
        justifyContent: 'center',
        bgcolor: 'background.default',
        p: 2,
        position: 'relative',
      }}
    >
      <Box sx={{ position: 'absolute', top: 8, right: 8 }}>
        <ColorModeToggle />
      </Box>
      <Paper sx={{ width: '100%', maxWidth: 400, p: 4 }}>
        <Stack
          spacing={3}
          component="form"
          onSubmit={(e) => void submit(e)}
          noValidate
          aria-busy={busy}
          aria-label="Log in"
        >
          <Stack direction="row" spacing={1.5} sx={{ alignItems: 'center' }}>
            <KeyOutlined color="primary" fontSize="large" />
            <Box>
              <Typography variant="h1" component="h1">
                KeyPin
              </Typography>
              <Typography variant="body2" color="text.secondary">
                Admin console — log in to continue
              </Typography>
            </Box>
          </Stack>
          {notice && !error && !locked && (
            <Alert severity="info" data-testid="login-notice" onClose={() => sessions.clearNotice()}>
              {notice}
            </Alert>
          )}
          {error && (
            <Alert severity="error" role="alert" data-testid="login-error">
              {error}
            </Alert>
          )}
          {locked && (
            <Alert severity="warning" role="alert" data-testid="login-locked">
              Too many failed logins for this username from your address. Try again in{' '}
              <Box component="strong" sx={{ whiteSpace: 'nowrap' }}>
                {formatWait(left)}
              </Box>
              .
            </Alert>
          )}
          <TextField
            label="Username"
            name="username"
            autoComplete="username"
            autoFocus
            required
            value={username}
            onChange={(e) => setUsername(e.target.value)}
            size="medium"
          />
          <TextField
            label="Password"
            name="password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            size="medium"
          />
          <Button
            type="submit"
            variant="contained"
            size="large"
            disabled={busy || locked || username.trim() === '' || password === ''}
            startIcon={busy ? <CircularProgress size={18} color="inherit" /> : undefined}
          >
            Log in
          </Button>
        </Stack>
      </Paper>
    </Box>
  );
}
