import { createContext, type ReactNode, useContext, useSyncExternalStore } from 'react';
import type { ApiClient } from './client';
import type { Session, SessionStore } from './session';

interface ApiContextValue {
  client: ApiClient;
  sessions: SessionStore;
}

const ApiContext = createContext<ApiContextValue | null>(null);

export function ApiProvider({ client, sessions, children }: ApiContextValue & { children: ReactNode }) {
  return <ApiContext.Provider value={{ client, sessions }}>{children}</ApiContext.Provider>;
}

function useApiContext(): ApiContextValue {
  const v = useContext(ApiContext);
  if (!v) throw new Error('useApi outside <ApiProvider>');
  return v;
}

export function useApi(): ApiClient {
  return useApiContext().client;
}

export function useSessionStore(): SessionStore {
  return useApiContext().sessions;
}

export function useSession(): Session | null {
  const s = useSessionStore();
  return useSyncExternalStore(s.subscribe, s.get, s.get);
}

/** True for the admin role: only then are controls that change anything shown. */
export function useCanChange(): boolean {
  return useSession()?.role === 'admin';
}
