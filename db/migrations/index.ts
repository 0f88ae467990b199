import { InitialSchema1764000000000 } from './1764000000000-initial-schema';
import { Alerts1764000100000 } from './1764000100000-alerts';
import { Admin1764000200000 } from './1764000200000-admin';
import { InterceptIndexes1764000300000 } from './1764000300000-intercept-indexes';
import { InterceptCount1765000100000 } from './1765000100000-intercept-count';
import { KeyPolicies1766000100000 } from './1766000100000-key-policies';
import { NetworksAndRoutes1767000100000 } from './1767000100000-networks-and-routes';
import { HashChains1768000100000 } from './1768000100000-hash-chains';
import { AlertActions1768000200000 } from './1768000200000-alert-actions';
import { InterceptPartitions1769000100000 } from './1769000100000-intercept-partitions';
import { InterceptCounts1769000200000 } from './1769000200000-intercept-counts';
import { AdminCounts1769000300000 } from './1769000300000-admin-counts';
import { InterceptIpCounts1769000400000 } from './1769000400000-intercept-ip-counts';
import { BindingSearchIndex1769000500000 } from './1769000500000-binding-search-index';
import { AdminListCounts1769000600000 } from './1769000600000-admin-list-counts';

/** Every migration, oldest first. A new migration is added here too. */
export const MIGRATIONS = [
  InitialSchema1764000000000,
  Alerts1764000100000,
  Admin1764000200000,
  InterceptIndexes1764000300000,
  InterceptCount1765000100000,
  KeyPolicies1766000100000,
  NetworksAndRoutes1767000100000,
  HashChains1768000100000,
  AlertActions1768000200000,
  InterceptPartitions1769000100000,
  InterceptCounts1769000200000,
  AdminCounts1769000300000,
  InterceptIpCounts1769000400000,
  BindingSearchIndex1769000500000,
  AdminListCounts1769000600000,
];
