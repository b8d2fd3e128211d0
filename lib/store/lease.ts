/**
 * The store's inter-process lock: one lease per store directory, held by the process for as
 * long as it has writes in flight (and across back-to-back writes), instead of one lock per
 * write. A held lease costs a write one `stat` (the ownership check before the rename).
 *
 * - Taking it: proper-lockfile's `<dir>/.store.lock` directory (mkdir is atomic; the mtime
 *   is refreshed every `updateMs` while held; a lock not refreshed for `staleMs` is stale),
 *   then an ownership token `<dir>/.store.lock-owner` (`pid start-ticks pid-namespace boot-id
 *   random`). A waiter whose host and PID namespace are the owner's, and who finds the owner
 *   process gone (pid and start time no longer match), takes the lease over at once instead
 *   of waiting `staleMs`.
 * - Keeping it: released on the next turn of the event loop once no write is in flight, so
 *   a loop of `await write()` holds it throughout. A waiting process announces itself with
 *   `<dir>/.store.lock-waiting`; a holder that has held the lease for `HAND_OVER_AFTER_MS`
 *   and sees the announcement lets its writes drain, releases, and steps back for
 *   `STEP_BACK_MS` so the waiter gets its turn.
 * - Losing it: if the event loop stalls past `staleMs`, another process may take the lease
 *   over. Each write checks, right before its rename, that the ownership token is still the
 *   one this lease wrote (same inode, size and mtime), and proper-lockfile's `onCompromised`
 *   is recorded rather than thrown from a timer: either way the write is abandoned.
 * @module
 */
import { channel } from 'node:diagnostics_channel';
import { randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { readFile, rmdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import lockfile from 'proper-lockfile';
import { processStartTicks } from '../util/proc-start.js';
import { storeIoError } from './atomic.js';
import { StoreLockError } from './errors.js';

/** Lock timing of a store (see `JsonStoreOptionsSchema`). */
interface LeaseTiming {
  staleMs: number;
  updateMs: number;
  waitMs: number;
}

/** A lease held this long is handed to a process that announced it is waiting. */
const HAND_OVER_AFTER_MS = 200;
/** How long a holder that handed the lease over waits before it asks again. */
const STEP_BACK_MS = 100;

/** Name of the lock directory, the ownership token and the waiting announcement in a store directory. */
const LEASE_FILES = { lock: '.store.lock', owner: '.store.lock-owner', waiting: '.store.lock-waiting' } as const;

const compromisedCh = channel('smoothtask:store:lock-compromised');

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return fallback;
  }
}
function linkOr(path: string, fallback: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return fallback;
  }
}
/** This host's boot and this process's PID namespace: a pid means the same process only within both. */
const WHERE = `${linkOr('/proc/self/ns/pid', 'pid:?')} ${readOr('/proc/sys/kernel/random/boot_id', '?')}`;

/** True when `token` names a process of this host and PID namespace that no longer runs. */
function ownerIsGone(token: string): boolean {
  const [pid, start, ns, boot] = token.split(' ');
  if (!pid || !start || `${ns} ${boot}` !== WHERE || !/^\d+$/.test(pid)) return false;
  if (Number(pid) === process.pid) return false;
  return processStartTicks(Number(pid)) !== start;
}

interface Held {
  release: () => Promise<void>;
  since: number;
  /** Identity of the ownership token this lease wrote. */
  owner: { ino: number; size: number; mtimeMs: number };
  compromised?: Error;
}

/** The lease of one store directory in this process (shared by every store opened on it). */
class Lease {
  readonly #dir: string;
  readonly #lockTarget: string;
  readonly #ownerPath: string;
  readonly #waitingPath: string;
  #users = 0;
  #held: Held | undefined;
  #acquiring: Promise<void> | undefined;
  #releasing: Promise<void> | undefined;
  /** Set while the lease is handed to a waiting process: new writes wait for it. */
  #gate: Promise<void> | undefined;
  #drained: (() => void) | undefined;
  #idle: NodeJS.Immediate | undefined;
  #token: string;

  constructor(dir: string) {
    this.#dir = dir;
    // proper-lockfile locks `<file>` with a `<file>.lock` directory
    this.#lockTarget = join(dir, LEASE_FILES.lock.slice(0, -'.lock'.length));
    this.#ownerPath = join(dir, LEASE_FILES.owner);
    this.#waitingPath = join(dir, LEASE_FILES.waiting);
    this.#token = '';
  }

  /**
   * Enters the lease (taking it if this process does not hold it) and returns the ownership
   * check to run before each rename. Pair every successful enter with {@link Lease.leave}.
   */
  async enter(timing: LeaseTiming): Promise<() => void> {
    for (;;) {
      if (this.#gate) {
        await this.#gate;
        continue;
      }
      const held = this.#held;
      if (held && !held.compromised && performance.now() - held.since > HAND_OVER_AFTER_MS && this.#someoneWaits()) {
        this.#gate = this.#handOver().finally(() => {
          this.#gate = undefined;
        });
        continue;
      }
      break;
    }
    this.#users++;
    if (this.#idle) {
      clearImmediate(this.#idle);
      this.#idle = undefined;
    }
    try {
      if (this.#held?.compromised) this.#held = undefined; // lost: its writes fail their check, new ones take it again
      while (!this.#held) {
        if (this.#releasing) await this.#releasing;
        else {
          this.#acquiring ??= this.#acquire(timing).finally(() => {
            this.#acquiring = undefined;
          });
          await this.#acquiring;
        }
      }
    } catch (e) {
      this.leave();
      throw e;
    }
    const held = this.#held;
    return () => this.#check(held);
  }

  /** Leaves the lease; the last writer out releases it on the next turn of the event loop. */
  leave(): void {
    if (--this.#users > 0) return;
    if (this.#drained) {
      this.#drained();
      return;
    }
    this.#idle ??= setImmediate(() => {
      this.#idle = undefined;
      if (this.#users === 0 && this.#held && !this.#gate) void this.#release();
    });
  }

  #someoneWaits(): boolean {
    try {
      statSync(this.#waitingPath);
      return true;
    } catch {
      // nobody announced: look again after another period
      if (this.#held) this.#held.since = performance.now();
      return false;
    }
  }

  async #handOver(): Promise<void> {
    if (this.#users > 0) await new Promise<void>((r) => (this.#drained = r));
    this.#drained = undefined;
    await this.#release();
    await sleep(STEP_BACK_MS);
  }

  #release(): Promise<void> {
    const held = this.#held;
    if (!held) return Promise.resolve();
    this.#held = undefined;
    this.#releasing = held
      .release()
      .catch(() => {
        /* a compromised lock may already be gone */
      })
      .finally(() => {
        this.#releasing = undefined;
      });
    return this.#releasing;
  }

  #check(held: Held | undefined): void {
    if (!held) throw new StoreLockError(this.#dir, 'store lock not held, write abandoned');
    if (held.compromised) throw new StoreLockError(this.#dir, `lock compromised, write abandoned: ${held.compromised.message}`, { cause: held.compromised });
    let same = false;
    try {
      const st = statSync(this.#ownerPath);
      same = st.ino === held.owner.ino && st.size === held.owner.size && st.mtimeMs === held.owner.mtimeMs;
    } catch {
      same = false;
    }
    if (!same) {
      const owner = readOr(this.#ownerPath, '');
      throw new StoreLockError(this.#dir, `lock compromised (taken over by ${owner ? `pid ${owner.split(' ')[0]}` : 'another process'}), write abandoned`);
    }
  }

  async #acquire(timing: LeaseTiming): Promise<void> {
    const deadline = Date.now() + timing.waitMs;
    let announced = false;
    let release: () => Promise<void>;
    // Filled in below once the token is written; a compromise seen before that is kept too.
    const held: Partial<Held> = {};
    try {
      for (;;) {
        try {
          release = await lockfile.lock(this.#lockTarget, {
            realpath: false,
            stale: timing.staleMs,
            update: timing.updateMs,
            retries: { retries: 20, factor: 1.5, minTimeout: 2, maxTimeout: 50, randomize: true },
            // proper-lockfile's default throws from a timer (an uncaught exception) when the
            // lock is compromised, e.g. after an event-loop stall longer than staleMs (#71).
            // We record it and refuse to rename over documents instead.
            onCompromised: (err: Error) => {
              held.compromised = err;
              if (compromisedCh.hasSubscribers) compromisedCh.publish({ path: this.#dir, error: err });
            },
          });
          break;
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          // A failed system call (ENOSPC or EMFILE creating the lock directory, EACCES ...) is an I/O error, not contention.
          if (code !== 'ELOCKED' && typeof (e as NodeJS.ErrnoException).errno === 'number') throw storeIoError(e, `${this.#lockTarget}.lock`, 'lock');
          if (code !== 'ELOCKED' || Date.now() > deadline) throw new StoreLockError(this.#dir, (e as Error).message, { cause: e });
          // Ask the holder to hand over (it looks every HAND_OVER_AFTER_MS), and take over at
          // once from an owner that is gone rather than waiting for the lock to go stale. The
          // announcement is renewed at every round of retries: another waiter that got the
          // lease first removed it.
          announced = true;
          await writeFile(this.#waitingPath, `${process.pid}\n`).catch(() => {});
          await this.#takeOverFromTheDead();
        }
      }
    } finally {
      if (announced) await unlink(this.#waitingPath).catch(() => {});
    }
    // Everything after the lock is taken, the ownership token included (ENOSPC on a full disk),
    // runs inside the try so the lock is always released on failure.
    try {
      this.#token ||= `${process.pid} ${processStartTicks(process.pid) ?? '0'} ${WHERE} `;
      const token = `${this.#token}${randomBytes(8).toString('hex')}`;
      try {
        writeFileSync(this.#ownerPath, token);
      } catch (e) {
        throw storeIoError(e, this.#ownerPath, 'lock');
      }
      const st = statSync(this.#ownerPath);
      this.#held = Object.assign(held, { release, since: performance.now(), owner: { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs } });
    } catch (e) {
      await release().catch(() => {});
      throw e;
    }
  }

  /** Removes the lock of an owner that no longer runs (read twice: a new owner may just have taken it). */
  async #takeOverFromTheDead(): Promise<void> {
    const owner = await readFile(this.#ownerPath, 'utf8').catch(() => '');
    if (!owner || !ownerIsGone(owner)) return;
    const lockDir = `${this.#lockTarget}.lock`;
    const again = await readFile(this.#ownerPath, 'utf8').catch(() => '');
    if (again !== owner) return;
    await unlink(this.#ownerPath).catch(() => {});
    await rmdir(lockDir).catch(() => {});
  }
}

const leases = new Map<string, Lease>();

/** The lease of store directory `dir` in this process (one per directory, shared by its stores). */
export function leaseOf(dir: string): Lease {
  let l = leases.get(dir);
  if (!l) {
    l = new Lease(dir);
    leases.set(dir, l);
  }
  return l;
}

export type { Lease };
