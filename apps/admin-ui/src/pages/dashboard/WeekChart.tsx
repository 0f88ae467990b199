import { Box, Typography } from '@mui/material';
import { useTheme } from '@mui/material/styles';
import { BarChart } from '@mui/x-charts/BarChart';
import type { Dashboard } from '@keypin/shared';

/** "Mon 13" from "2025-01-13". */
function dayLabel(date: string): string {
  const d = new Date(`${date}T00:00:00Z`);
  if (Number.isNaN(d.getTime())) return date;
  return d.toLocaleDateString(undefined, { weekday: 'short', day: 'numeric', timeZone: 'UTC' });
}

export default function WeekChart({ d }: { d: Dashboard }) {
  const theme = useTheme();
  const empty = d.series.every((s) => s.allowed === 0 && s.intercepted === 0);
  return (
    <Box
      sx={{ px: 1, position: 'relative' }}
      role="img"
      aria-label="Allowed and intercepted requests per day, last 7 days"
    >
      <BarChart
        height={280}
        xAxis={[{ scaleType: 'band', data: d.series.map((s) => dayLabel(s.date)) }]}
        yAxis={[{ width: 56 }]}
        series={[
          { data: d.series.map((s) => s.allowed), label: 'Allowed', color: theme.palette.primary.main },
          { data: d.series.map((s) => s.intercepted), label: 'Intercepted', color: theme.palette.error.main },
        ]}
        margin={{ top: 16, right: 16, bottom: 8, left: 8 }}
      />
      {empty && (
        <Typography
          color="text.secondary"
          sx={{ position: 'absolute', top: '45%', width: '100%', textAlign: 'center', pointerEvents: 'none' }}
        >
          No traffic in the last 7 days.
        </Typography>
      )}
      <Box
        component="table"
        sx={{ position: 'absolute', width: 1, height: 1, overflow: 'hidden', clip: 'rect(0 0 0 0)' }}
      >
        <caption>Requests per day (UTC)</caption>
        <tbody>
          {d.series.map((s) => (
            <tr key={s.date}>
              <th scope="row">{s.date}</th>
              <td>{s.allowed} allowed</td>
              <td>{s.intercepted} intercepted</td>
            </tr>
          ))}
        </tbody>
      </Box>
    </Box>
  );
}
