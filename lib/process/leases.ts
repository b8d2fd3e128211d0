/**
 * ResourceLeaseManager: named resources with capacities, leased to holders (tasks), never
 * double-held, returned on every ending.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { SmoothtaskError } from '../errors/index.js';
import { validate } from '../errors/validate.js';
import type { Lease, LeaseProvider, LeaseRequest } from '../task/types.js';

/** A resource definition: discrete ids (GPU ids), a port range, or a quantity (memory bytes). */
export const ResourceDefinitionSchema = z.union([
  z
    .object({
      /** Discrete ids, e.g. GPU indexes. */
      ids: z.array(z.union([z.string(), z.number()])).min(1),
    })
    .strict(),
  z
    .object({
      /** Inclusive numeric range of ids, e.g. host ports `[20000, 20099]`. */
      range: z.tuple([z.number().int().min(0), z.number().int().min(0)]),
    })
    .strict(),
  z
    .object({
      /** A quantity, e.g. memory bytes. */
      capacity: z.number().positive(),
    })
    .strict(),
]);
/** A resource definition. */
export type ResourceDefinition = z.input<typeof ResourceDefinitionSchema>;

/** Options of {@link ResourceLeaseManager}. */
export const LeaseManagerOptionsSchema = z.strictObject({
  /** Resources by name, e.g. `{ gpu: { ids: [0, 1] }, port: { range: [20000, 20099] }, memory: { capacity: 8e9 } }`. */
  resources: z.record(z.string().min(1), ResourceDefinitionSchema).default({}),
});
/** Options of {@link ResourceLeaseManager}. */
export type LeaseManagerOptions = z.input<typeof LeaseManagerOptionsSchema>;

/** A lease request that can never be granted (unknown resource, more than the capacity, unknown ids). */
export class LeaseError extends SmoothtaskError {
  /** Creates the error. */
  constructor(message: string) {
    super('ERR_LEASE', message);
  }
}

/** What {@link ResourceLeaseManager.available} returns. */
export type Availability =
  | {
      /** Free ids (discrete resources). */
      ids: string[];
    }
  | {
      /** Free amount (quantity resources). */
      amount: number;
    };

type Res = { kind: 'ids'; ids: string[]; holder: Map<string, string> } | { kind: 'qty'; capacity: number; used: number };

interface Waiter {
  holder: string;
  req: LeaseRequest;
  resolve: (l: Lease) => void;
  reject: (e: unknown) => void;
}

/**
 * Grants leases on named resources. Implements the queue's `LeaseProvider`, so
 * `new TaskQueue({ leases })` leases a task's declared `resources` before it starts and
 * returns them when its attempt ends, whatever the ending.
 *
 * @example
 * ```ts
 * const leases = new ResourceLeaseManager({ resources: { port: { range: [20000, 20099] } } });
 * const l = leases.tryAcquire('task-1', { resource: 'port' }); // l.ids -> ['20000']
 * leases.release(l!.id);
 * ```
 */
export class ResourceLeaseManager implements LeaseProvider {
  readonly #res = new Map<string, Res>();
  readonly #leases = new Map<string, Lease>();
  readonly #waiters: Waiter[] = [];
  readonly #releaseListeners = new Set<() => void>();

  /** Creates a manager with the given resources. */
  constructor(options: LeaseManagerOptions = {}) {
    const o = validate(LeaseManagerOptionsSchema, options, 'lease manager options');
    for (const [name, def] of Object.entries(o.resources)) this.addResource(name, def);
  }

  /** Adds a resource (throws if the name exists). */
  addResource(name: string, definition: ResourceDefinition): void {
    const def = validate(ResourceDefinitionSchema, definition, `resource '${name}'`);
    if (this.#res.has(name)) throw new LeaseError(`Resource '${name}' already exists`);
    if ('capacity' in def) this.#res.set(name, { kind: 'qty', capacity: def.capacity, used: 0 });
    else {
      let ids: string[];
      if ('range' in def) {
        const [a, b] = def.range;
        if (b < a) throw new LeaseError(`Resource '${name}': range end before start`);
        ids = Array.from({ length: b - a + 1 }, (_, i) => String(a + i));
      } else ids = def.ids.map(String);
      if (new Set(ids).size !== ids.length) throw new LeaseError(`Resource '${name}': duplicate ids`);
      this.#res.set(name, { kind: 'ids', ids, holder: new Map() });
    }
  }

  /** Grants the whole request now, or returns `undefined` (never partially). Throws {@link LeaseError} if it can never be granted. */
  tryAcquire(holder: string, request: LeaseRequest): Lease | undefined {
    const r = this.#resource(request);
    // FIFO fairness: do not overtake waiters of the same resource.
    if (this.#waiters.some((w) => w.req.resource === request.resource)) return undefined;
    return this.#grant(holder, request, r);
  }

  /** Waits until the request can be granted (FIFO per resource). */
  acquire(holder: string, request: LeaseRequest, options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<Lease> {
    const r = this.#resource(request);
    const now = this.#waiters.some((w) => w.req.resource === request.resource) ? undefined : this.#grant(holder, request, r);
    if (now) return Promise.resolve(now);
    return new Promise<Lease>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const w: Waiter = {
        holder,
        req: request,
        resolve: (l) => {
          cleanup();
          resolve(l);
        },
        reject: (e) => {
          cleanup();
          reject(e);
        },
      };
      const onAbort = () => {
        this.#dropWaiter(w);
        w.reject(options.signal?.reason ?? new LeaseError('lease wait aborted'));
      };
      const cleanup = () => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
      };
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      if (options.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.#dropWaiter(w);
          w.reject(new LeaseError(`No '${request.resource}' lease within ${options.timeoutMs} ms`));
        }, options.timeoutMs);
        timer.unref();
      }
      this.#waiters.push(w);
    });
  }

  /** Returns a lease. Idempotent; unknown ids are ignored. */
  release(leaseId: string): void {
    const l = this.#leases.get(leaseId);
    if (!l) return;
    this.#leases.delete(leaseId);
    const r = this.#res.get(l.resource)!;
    if (r.kind === 'ids') for (const id of l.ids) r.holder.delete(id);
    else r.used = Math.max(0, r.used - l.amount);
    this.#serveWaiters();
    for (const fn of this.#releaseListeners) fn();
  }

  /** Returns every lease of a holder; returns how many. */
  releaseHolder(holder: string): number {
    let n = 0;
    for (const l of [...this.#leases.values()]) if (l.holder === holder) (this.release(l.id), n++);
    return n;
  }

  /** Subscribes to releases. Returns an unsubscribe function. */
  onRelease(fn: () => void): () => void {
    this.#releaseListeners.add(fn);
    return () => this.#releaseListeners.delete(fn);
  }

  /** Leases currently held. */
  leases(): Lease[] {
    return [...this.#leases.values()];
  }

  /** What is free now: ids for discrete resources, amount for quantities. */
  available(resource: string): Availability {
    const r = this.#res.get(resource);
    if (!r) throw new LeaseError(`Unknown resource '${resource}'`);
    return r.kind === 'ids' ? { ids: r.ids.filter((i) => !r.holder.has(i)) } : { amount: r.capacity - r.used };
  }

  #resource(req: LeaseRequest): Res {
    const r = this.#res.get(req.resource);
    if (!r) throw new LeaseError(`Unknown resource '${req.resource}'`);
    if (r.kind === 'ids') {
      if (req.amount !== undefined) throw new LeaseError(`Resource '${req.resource}' is discrete: ask for count or ids, not amount`);
      const count = req.ids?.length ?? req.count ?? 1;
      if (!Number.isInteger(count) || count < 1 || count > r.ids.length) throw new LeaseError(`Resource '${req.resource}' has ${r.ids.length} ids; cannot lease ${count}`);
      for (const id of req.ids ?? []) if (!r.ids.includes(String(id))) throw new LeaseError(`Resource '${req.resource}' has no id '${id}'`);
    } else {
      const amount = req.amount;
      if (amount === undefined || !(amount > 0) || amount > r.capacity) throw new LeaseError(`Resource '${req.resource}' has capacity ${r.capacity}; cannot lease ${amount}`);
    }
    return r;
  }

  #grant(holder: string, req: LeaseRequest, r: Res): Lease | undefined {
    let ids: string[] = [];
    let amount = 0;
    if (r.kind === 'ids') {
      if (req.ids) {
        ids = req.ids.map(String);
        if (ids.some((i) => r.holder.has(i))) return undefined;
      } else {
        const want = req.count ?? 1;
        for (const i of r.ids) {
          if (!r.holder.has(i)) ids.push(i);
          if (ids.length === want) break;
        }
        if (ids.length < want) return undefined;
      }
      for (const i of ids) r.holder.set(i, holder);
      amount = ids.length;
    } else {
      amount = req.amount!;
      if (r.used + amount > r.capacity) return undefined;
      r.used += amount;
    }
    const lease: Lease = Object.freeze({ id: `lease_${randomBytes(6).toString('hex')}`, resource: req.resource, holder, ids: Object.freeze(ids), amount });
    this.#leases.set(lease.id, lease);
    return lease;
  }

  #dropWaiter(w: Waiter): void {
    const i = this.#waiters.indexOf(w);
    if (i >= 0) this.#waiters.splice(i, 1);
  }

  #serveWaiters(): void {
    const blocked = new Set<string>();
    for (const w of [...this.#waiters]) {
      if (blocked.has(w.req.resource)) continue;
      const l = this.#grant(w.holder, w.req, this.#res.get(w.req.resource)!);
      if (l) {
        this.#dropWaiter(w);
        w.resolve(l);
      } else blocked.add(w.req.resource);
    }
  }
}
