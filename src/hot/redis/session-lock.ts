import { LeaseSessionLock } from '../lease-lock.js';
import type { LeaseLockOptions } from '../lease-lock.js';
import type { RedisHotStore } from './redis-store.js';

/**
 * The SessionLock every instance sharing one Redis uses to write a session's archive: the
 * compaction lease of `RedisHotStore` (SET NX PX with a random token, renewed while the work
 * runs, compare-and-delete release). Throws STRATA_ERR_LEASE_BUSY when the lease stays taken
 * for `waitMs`, and STRATA_ERR_LEASE_LOST when it was lost before the work finished.
 */
export class RedisSessionLock extends LeaseSessionLock {
  constructor(store: RedisHotStore, options: LeaseLockOptions = {}) {
    super(store, options);
  }
}
