/**
 * The leases of a task's attempt: the resources it declares (taken all at once before it may
 * start), those its executor takes while it runs (`ctx.leases`), and their return when the
 * attempt ends, as recorded in `task.leases`. Internal to `TaskQueue`.
 * @module
 */
import { ConfigError } from '../errors/index.js';
import type { Lease, LeaseProvider, LeaseRecord, LeaseRequest, TaskLeases } from './types.js';

/**
 * Leases every request now, or none (what was taken is returned): `[]` for no request,
 * `undefined` when one is busy or there is no provider. @internal
 */
export function tryLeaseAll(lp: LeaseProvider | undefined, holder: string, requests: readonly LeaseRequest[]): Lease[] | undefined {
  if (!requests.length) return [];
  if (!lp) return undefined;
  const got: Lease[] = [];
  for (const r of requests) {
    const l = lp.tryAcquire(holder, r);
    if (!l) {
      for (const g of got) lp.release(g.id);
      return undefined;
    }
    got.push(l);
  }
  return got;
}

/** A lease as recorded in `task.leases` (not yet returned). @internal */
export const leaseRecord = (l: Lease): LeaseRecord => ({ id: l.id, resource: l.resource, ids: [...l.ids], amount: l.amount });

/**
 * `ctx.leases` of an attempt: what it takes is added to `held` (returned when the attempt
 * ends); `acquire` is aborted with the attempt's `signal`. @internal
 */
export function attemptLeases(lp: LeaseProvider | undefined, holder: string, held: Lease[], signal: AbortSignal): TaskLeases {
  return {
    get held() {
      return held;
    },
    tryAcquire: (req: LeaseRequest) => {
      if (!lp) throw new ConfigError('The queue has no lease provider');
      const l = lp.tryAcquire(holder, req);
      if (l) held.push(l);
      return l;
    },
    acquire: async (req: LeaseRequest, o: { timeoutMs?: number } = {}) => {
      if (!lp) throw new ConfigError('The queue has no lease provider');
      const l = await lp.acquire(holder, req, { signal, ...o });
      held.push(l);
      return l;
    },
    release: (l: Lease) => {
      lp?.release(l.id);
    },
  };
}

/**
 * Returns every lease the attempt held and gives the task's lease records with their
 * `releasedAt` set (a lease taken during the attempt is added). @internal
 */
export function releaseLeases(lp: LeaseProvider | undefined, held: readonly Lease[], recorded: readonly LeaseRecord[]): LeaseRecord[] {
  if (lp) for (const l of held) lp.release(l.id);
  const releasedAt = Date.now();
  const heldIds = new Set(held.map((l) => l.id));
  const leases = recorded.map((l) => (heldIds.has(l.id) && l.releasedAt === undefined ? { ...l, releasedAt } : l));
  for (const l of held) {
    if (!leases.some((r) => r.id === l.id)) leases.push({ ...leaseRecord(l), releasedAt });
  }
  return leases;
}
