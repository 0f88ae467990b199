import {
  keepPreviousData,
  type QueryClient,
  useMutation,
  useQuery,
  useQueryClient,
} from '@tanstack/react-query';
import type {
  AlertAction,
  AlertListQuery,
  BindingListQuery,
  ChangePasswordRequest,
  CreateBindingRequest,
  CreateUserRequest,
  InterceptListQuery,
  PageQuery,
  RouteInput,
  SetBindingPolicyRequest,
  SettingsUpdate,
  UpdateBindingIpRequest,
} from '@keypin/shared';
import { useApi, useSession } from './context';

/** Query keys, one place: a prefix invalidates every page and filter of a list. */
export const keys = {
  me: ['me'] as const,
  dashboard: ['dashboard'] as const,
  integrity: ['integrity'] as const,
  bindings: ['bindings'] as const,
  bindingList: (q: BindingListQuery) => ['bindings', 'list', q] as const,
  binding: (id: number) => ['bindings', 'one', id] as const,
  /** Every binding's quota use: its effective policy moves with the default policy too. */
  usages: ['bindings', 'usage'] as const,
  bindingUsage: (id: number) => ['bindings', 'usage', id] as const,
  logs: ['logs'] as const,
  logList: (q: InterceptListQuery) => ['logs', 'list', q] as const,
  alerts: (q: AlertListQuery) => ['alerts', q] as const,
  /** Every alert list and alert (an action moves both). */
  allAlerts: ['alerts'] as const,
  alert: (id: string) => ['alerts', 'one', id] as const,
  settings: ['settings'] as const,
  routes: ['routes'] as const,
  routeList: (q: PageQuery) => ['routes', 'list', q] as const,
  users: ['users'] as const,
  userList: (q: PageQuery) => ['users', q] as const,
  audit: ['audit'] as const,
  auditList: (q: PageQuery) => ['audit', q] as const,
};

export function useMe() {
  const api = useApi();
  const session = useSession();
  return useQuery({ queryKey: keys.me, queryFn: () => api.me(), enabled: session !== null });
}

export function useDashboard() {
  const api = useApi();
  return useQuery({ queryKey: keys.dashboard, queryFn: () => api.dashboard(), refetchInterval: 30_000 });
}

/**
 * The hash chains' state. Verifying reads every record, so it runs when the
 * dashboard opens and then every 10 minutes (or on demand), not with the
 * dashboard's 30-second refresh.
 */
export function useIntegrity() {
  const api = useApi();
  return useQuery({
    queryKey: keys.integrity,
    queryFn: () => api.integrity(),
    staleTime: 60_000,
    refetchInterval: 600_000,
    retry: false,
  });
}

export function useBindings(q: BindingListQuery) {
  const api = useApi();
  return useQuery({
    queryKey: keys.bindingList(q),
    queryFn: () => api.bindings(q),
    placeholderData: keepPreviousData,
  });
}

export function useBinding(id: number) {
  const api = useApi();
  return useQuery({ queryKey: keys.binding(id), queryFn: () => api.binding(id), enabled: id > 0 });
}

/** A key's requests today and this month against its effective policy's quotas. */
export function useBindingUsage(id: number) {
  const api = useApi();
  return useQuery({
    queryKey: keys.bindingUsage(id),
    queryFn: () => api.bindingUsage(id),
    enabled: id > 0,
    refetchInterval: 30_000,
  });
}

export function useLogs(q: InterceptListQuery, opts: { enabled?: boolean } = {}) {
  const api = useApi();
  return useQuery({
    queryKey: keys.logList(q),
    queryFn: () => api.logs(q),
    placeholderData: keepPreviousData,
    enabled: opts.enabled ?? true,
  });
}

export function useAlerts(q: AlertListQuery, opts: { enabled?: boolean } = {}) {
  const api = useApi();
  return useQuery({
    queryKey: keys.alerts(q),
    queryFn: () => api.alerts(q),
    placeholderData: keepPreviousData,
    enabled: opts.enabled ?? true,
  });
}

export function useAlert(id: string) {
  const api = useApi();
  return useQuery({ queryKey: keys.alert(id), queryFn: () => api.alert(id), enabled: id !== '' });
}

export function useSettings() {
  const api = useApi();
  return useQuery({ queryKey: keys.settings, queryFn: () => api.settings() });
}

export function useRoutes(q: PageQuery) {
  const api = useApi();
  return useQuery({
    queryKey: keys.routeList(q),
    queryFn: () => api.routes(q),
    placeholderData: keepPreviousData,
  });
}

export function useUsers(q: PageQuery, enabled = true) {
  const api = useApi();
  return useQuery({
    queryKey: keys.userList(q),
    queryFn: () => api.users(q),
    placeholderData: keepPreviousData,
    enabled,
  });
}

export function useAudit(q: PageQuery) {
  const api = useApi();
  return useQuery({
    queryKey: keys.auditList(q),
    queryFn: () => api.audit(q),
    placeholderData: keepPreviousData,
  });
}

// ----------------------------------------------------------------- changes

/** Everything a binding change can move: lists, details, figures, the audit trail. */
function afterBindingChange(qc: QueryClient, gone?: number): Promise<unknown> {
  const goneKeys =
    gone === undefined ? [] : [JSON.stringify(keys.binding(gone)), JSON.stringify(keys.bindingUsage(gone))];
  return Promise.all([
    // An unbound binding's own page is left alone (it would only 404 while
    // the console moves away from it); it is refetched on the next visit.
    qc.invalidateQueries({
      queryKey: keys.bindings,
      predicate: (q) => !goneKeys.includes(JSON.stringify(q.queryKey)),
    }),
    qc.invalidateQueries({ queryKey: keys.dashboard }),
    qc.invalidateQueries({ queryKey: keys.audit }),
  ]);
}

export function useCreateBinding() {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateBindingRequest) => api.createBinding(body),
    onSuccess: () => afterBindingChange(qc),
  });
}

export function useUpdateBindingIp() {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: UpdateBindingIpRequest) => api.updateBindingIp(body),
    onSuccess: (b) => {
      qc.setQueryData(keys.binding(b.id), b);
      return afterBindingChange(qc);
    },
  });
}

/** Gives a key its own policy, or (null) returns it to the default (`PUT /bindings/policy`). */
export function useSetBindingPolicy() {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: SetBindingPolicyRequest) => api.setBindingPolicy(body),
    onSuccess: (b) => {
      qc.setQueryData(keys.binding(b.id), b);
      // The lists (and this key's usage, under the same prefix) refetch.
      return afterBindingChange(qc);
    },
  });
}

export type BindingAction = 'unbind' | 'ban' | 'unban';

export function useBindingAction() {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ action, id }: { action: BindingAction; id: number }) =>
      action === 'unbind' ? api.unbind(id) : action === 'ban' ? api.ban(id) : api.unban(id),
    onSuccess: (b, { action }) => {
      if (action === 'unbind') return afterBindingChange(qc, b.id);
      qc.setQueryData(keys.binding(b.id), b);
      return afterBindingChange(qc);
    },
  });
}

/**
 * An action on an open alert (allow one of its networks, ban the key,
 * dismiss): the alerts, the binding it changed and the audit trail refetch.
 */
export function useAlertAction() {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ id, action, network }: { id: string; action: AlertAction; network?: string }) =>
      api.alertAction(id, action, network),
    onSuccess: (r) => {
      qc.setQueryData(keys.alert(r.alert.id), r.alert);
      if (r.binding) qc.setQueryData(keys.binding(r.binding.id), r.binding);
      return Promise.all([qc.invalidateQueries({ queryKey: keys.allAlerts }), afterBindingChange(qc)]);
    },
  });
}

export function useUpdateSettings() {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: SettingsUpdate) => api.updateSettings(body),
    onSuccess: (s) => {
      qc.setQueryData(keys.settings, s);
      return Promise.all([
        qc.invalidateQueries({ queryKey: keys.audit }),
        // The default policy decides the quotas of keys without their own.
        qc.invalidateQueries({ queryKey: keys.usages }),
      ]);
    },
  });
}

/** Sends the test alert (audited: the audit trail refetches). */
export function useTestAlert() {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: () => api.testAlert(),
    // Audited whether it was sent or refused.
    onSettled: () => qc.invalidateQueries({ queryKey: keys.audit }),
  });
}

/** A route added, changed or removed: the route list and the audit trail. */
function afterRouteChange(qc: QueryClient): Promise<unknown> {
  return Promise.all([
    qc.invalidateQueries({ queryKey: keys.routes }),
    qc.invalidateQueries({ queryKey: keys.audit }),
  ]);
}

export function useCreateRoute() {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: RouteInput) => api.createRoute(body),
    onSuccess: () => afterRouteChange(qc),
  });
}

/** `PUT /routes/:id` with the changed fields only. */
export function useUpdateRoute() {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ id, body }: { id: number; body: Partial<RouteInput> }) => api.updateRoute(id, body),
    onSuccess: () => afterRouteChange(qc),
  });
}

export function useDeleteRoute() {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: number) => api.deleteRoute(id),
    onSuccess: () => afterRouteChange(qc),
  });
}

/** An account added or removed: the user list and the audit trail. */
function afterUserChange(qc: QueryClient): Promise<unknown> {
  return Promise.all([
    qc.invalidateQueries({ queryKey: keys.users }),
    qc.invalidateQueries({ queryKey: keys.audit }),
  ]);
}

export function useCreateUser() {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateUserRequest) => api.createUser(body),
    onSuccess: () => afterUserChange(qc),
  });
}

export function useDeleteUser() {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: number) => api.deleteUser(id),
    onSuccess: () => afterUserChange(qc),
  });
}

export function useSetPassword() {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ id, body }: { id: number; body: ChangePasswordRequest }) => api.setPassword(id, body),
    onSuccess: () => qc.invalidateQueries({ queryKey: keys.audit }),
  });
}
