import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { PortCollisionError } from './errors.js';

/** A TCP socket in LISTEN state on this host (current network namespace). */
export interface ListeningSocket {
  /** Local port. */
  port: number;
  /** Local address as printed by the kernel (hex), e.g. `0100007F`. */
  addressHex: string;
  /** `tcp` or `tcp6`. */
  family: 'tcp' | 'tcp6';
  /** Socket inode (links the socket to the process holding it). */
  inode: number;
}

/** Parses /proc/net/tcp and /proc/net/tcp6 for sockets in LISTEN state (st = 0A). */
export function listeningSockets(): ListeningSocket[] {
  const out: ListeningSocket[] = [];
  for (const family of ['tcp', 'tcp6'] as const) {
    let text: string;
    try {
      text = readFileSync(`/proc/net/${family}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A') continue;
      const [addr, portHex] = (f[1] ?? '').split(':');
      out.push({ port: parseInt(portHex ?? '0', 16), addressHex: addr ?? '', family, inode: Number(f[9]) });
    }
  }
  return out;
}

/** A process holding a socket. */
export interface SocketOwner {
  /** Process id. */
  pid: number;
  /** Its command name (/proc/<pid>/comm). */
  comm: string;
}

/** Finds the process holding a socket inode by scanning /proc/<pid>/fd; `undefined` if not visible. */
export function socketOwner(inode: number): SocketOwner | undefined {
  const needle = `socket:[${inode}]`;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${name}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${name}/fd/${fd}`) === needle) {
          let comm = '?';
          try {
            comm = readFileSync(`/proc/${name}/comm`, 'utf8').trim();
          } catch {
            // Process exited while we looked.
          }
          return { pid: Number(name), comm };
        }
      } catch {
        // fd closed while we looked.
      }
    }
  }
  return undefined;
}

/** Describes who listens on a TCP host port, or `undefined` when nobody does. */
export function hostPortHolder(port: number): string | undefined {
  const s = listeningSockets().find((x) => x.port === port);
  if (!s) return undefined;
  const p = socketOwner(s.inode);
  return p ? `process ${p.pid} (${p.comm}) listening on ${s.family} port ${port}` : `a ${s.family} socket (inode ${s.inode}) listening on port ${port}`;
}

/**
 * Host-port leases shared by the tasks of one process. Plug in the task core's resource lease
 * manager by implementing this interface over it.
 */
export interface PortLeaseBook {
  /** The task id holding `port`, or `undefined`. */
  holder(port: number): string | undefined;
  /** Leases `port` to `taskId`; throws {@link PortCollisionError} if another task holds it. */
  lease(port: number, taskId: string): void;
  /** Returns every port held by `taskId`. */
  release(taskId: string): void;
  /** Optional: leases any port of a managed pool to `taskId` (used first when a free port is needed). */
  leaseAny?(taskId: string): number | undefined;
}

/** The part of `ResourceLeaseManager` (smoothtask/process) the port book needs. */
export interface LeaseManagerLike {
  /** Grants now or returns `undefined`; throws when the request can never be granted. */
  tryAcquire(holder: string, request: { resource: string; ids?: string[]; count?: number }): { id: string; ids: readonly string[] } | undefined;
  /** Returns a lease. */
  release(leaseId: string): void;
  /** Leases held now. */
  leases(): readonly { id: string; resource: string; holder: string; ids: readonly string[] }[];
}

/**
 * A {@link PortLeaseBook} over the task core's lease manager, so container tasks, process
 * tasks and anything else leasing the `resource` (default `port`) never hold the same port.
 * Ports outside the manager's pool are tracked in a local book. Only the port leases this
 * book made are returned by `release` (a task's other leases stay with the queue).
 *
 * @example
 * ```ts
 * const leases = new ResourceLeaseManager({ resources: { port: { range: [20000, 20099] } } });
 * const queue = new TaskQueue({ leases });
 * registerDockerExecutors(queue, { engine, portLeases: portLeasesFrom(leases) });
 * ```
 */
export function portLeasesFrom(manager: LeaseManagerLike, resource = 'port'): PortLeaseBook {
  const local = new InMemoryPortLeases();
  const mine = new Map<string, string[]>();
  const remember = (taskId: string, leaseId: string): void => void mine.set(taskId, [...(mine.get(taskId) ?? []), leaseId]);
  return {
    holder(port) {
      const l = manager.leases().find((x) => x.resource === resource && x.ids.includes(String(port)));
      return l?.holder ?? local.holder(port);
    },
    lease(port, taskId) {
      let got: { id: string } | undefined;
      try {
        got = manager.tryAcquire(taskId, { resource, ids: [String(port)] });
      } catch {
        // Not in the pool: only the local book can say who holds it.
        local.lease(port, taskId);
        return;
      }
      if (!got) throw new PortCollisionError(port, `task ${this.holder(port) ?? '(unknown)'}`);
      remember(taskId, got.id);
    },
    release(taskId) {
      for (const id of mine.get(taskId) ?? []) manager.release(id);
      mine.delete(taskId);
      local.release(taskId);
    },
    leaseAny(taskId) {
      // Skip pool ports a host process listens on (they stay leased to this task until release).
      for (let i = 0; i < 64; i++) {
        let l: { id: string; ids: readonly string[] } | undefined;
        try {
          l = manager.tryAcquire(taskId, { resource, count: 1 });
        } catch {
          return undefined;
        }
        if (!l) return undefined;
        remember(taskId, l.id);
        const port = Number(l.ids[0]);
        if (Number.isInteger(port) && hostPortHolder(port) === undefined) return port;
      }
      return undefined;
    },
  };
}

/** In-memory {@link PortLeaseBook}, the default. */
export class InMemoryPortLeases implements PortLeaseBook {
  #byPort = new Map<number, string>();
  /** {@inheritDoc PortLeaseBook.holder} */
  holder(port: number): string | undefined {
    return this.#byPort.get(port);
  }
  /** {@inheritDoc PortLeaseBook.lease} */
  lease(port: number, taskId: string): void {
    const h = this.#byPort.get(port);
    if (h !== undefined && h !== taskId) throw new PortCollisionError(port, `task ${h}`);
    this.#byPort.set(port, taskId);
  }
  /** {@inheritDoc PortLeaseBook.release} */
  release(taskId: string): void {
    for (const [p, t] of this.#byPort) if (t === taskId) this.#byPort.delete(p);
  }
  /** Ports currently leased, with their task. */
  entries(): [number, string][] {
    return [...this.#byPort];
  }
}

/** A free TCP port on `hostIp` as chosen by the kernel (bind to port 0). */
export async function freeTcpPort(hostIp = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, hostIp, () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** A requested port binding after collision checks. */
export interface ResolvedPort {
  /** Container port. */
  container: number;
  /** Host port actually used. */
  host: number;
  /** Protocol. */
  protocol: 'tcp' | 'udp';
  /** Host address. */
  hostIp: string;
  /** The host port originally asked for, when it was reassigned. */
  requested?: number;
  /** Set when the port was reassigned: who held the requested one. */
  reassignedFrom?: string;
}

/**
 * Checks each requested host port against other tasks' leases and the host's listening TCP
 * sockets, leases it to `taskId`, and applies the policy on a collision: `refuse` throws
 * {@link PortCollisionError} naming the holder (and releases what was leased so far),
 * `reassign` picks a free port instead. Ports with no `host` always get a free one.
 */
export async function resolvePorts(
  ports: readonly { container: number; host?: number | undefined; protocol: 'tcp' | 'udp'; hostIp: string }[],
  policy: 'refuse' | 'reassign',
  taskId: string,
  leases: PortLeaseBook,
): Promise<ResolvedPort[]> {
  const out: ResolvedPort[] = [];
  try {
    for (const p of ports) {
      if (p.host !== undefined) {
        const leasedBy = leases.holder(p.host);
        const holder =
          leasedBy !== undefined && leasedBy !== taskId
            ? `task ${leasedBy}`
            : p.protocol === 'tcp'
              ? hostPortHolder(p.host)
              : undefined;
        if (holder === undefined) {
          leases.lease(p.host, taskId);
          out.push({ ...p, host: p.host });
          continue;
        }
        if (policy === 'refuse') throw new PortCollisionError(p.host, holder);
        out.push({ ...p, host: await leaseFree(p.hostIp, taskId, leases), requested: p.host, reassignedFrom: holder });
        continue;
      }
      out.push({ ...p, host: await leaseFree(p.hostIp, taskId, leases) });
    }
  } catch (e) {
    leases.release(taskId);
    throw e;
  }
  return out;
}

async function leaseFree(hostIp: string, taskId: string, leases: PortLeaseBook): Promise<number> {
  const pooled = leases.leaseAny?.(taskId);
  if (pooled !== undefined) return pooled;
  for (let i = 0; i < 50; i++) {
    const port = await freeTcpPort(hostIp === '0.0.0.0' ? '127.0.0.1' : hostIp);
    if (leases.holder(port) === undefined) {
      leases.lease(port, taskId);
      return port;
    }
  }
  throw new PortCollisionError(0, 'every free port tried was leased to another task');
}
