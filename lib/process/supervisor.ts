/**
 * Supervisor for long-running processes: health checks, restart with backoff and a restart
 * budget, graceful stop, stop-all on the host service's shutdown.
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { channel } from 'node:diagnostics_channel';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors/index.js';
import { validate } from '../errors/validate.js';
import { backoffDelay } from '../util/backoff.js';
import { HealthCheckTimeoutError } from './errors.js';
import { childClosed, killGroup, stopGroup } from './group.js';

/** Channel of supervisor events (`node:diagnostics_channel`): every {@link SupervisorEvent}. */
export const SUPERVISOR_CHANNEL = 'smoothtask:process:supervisor';
const ch = channel(SUPERVISOR_CHANNEL);

const HealthBase = {
  /** Time between checks. */
  intervalMs: z.number().positive().default(5000),
  /** Time limit of one check. */
  timeoutMs: z.number().positive().default(2000),
  /** Consecutive failures that get the process replaced. */
  failureThreshold: z.number().int().positive().default(3),
  /** Failures during this time after a start do not count (boot time). */
  startPeriodMs: z.number().min(0).default(0),
};

/** Health check: a command (exit 0 = healthy), an HTTP GET (2xx = healthy) or a function (resolves truthy/void = healthy). */
export const HealthCheckSchema = z.discriminatedUnion('type', [
  z.object({
    /** Run a command; exit 0 = healthy. */
    type: z.literal('command'),
    /** Executable. */
    command: z.string().min(1),
    /** Arguments. */
    args: z.array(z.string()).default([]),
    ...HealthBase,
  }),
  z.object({
    /** HTTP GET; 2xx = healthy. */
    type: z.literal('http'),
    /** URL to GET. */
    url: z.url({ protocol: /^https?$/ }),
    ...HealthBase,
  }),
  z.object({
    /** A function; resolving to anything but `false` = healthy. */
    type: z.literal('fn'),
    /** The check (gets an AbortSignal that fires at the time limit). */
    check: z.custom<(signal: AbortSignal) => unknown>((v) => typeof v === 'function'),
    ...HealthBase,
  }),
]);
/** Health check (input form). */
export type HealthCheck = z.input<typeof HealthCheckSchema>;

/** A supervised program. */
export const SupervisedSpecSchema = z.strictObject({
  /** Unique name. */
  name: z.string().regex(/^[A-Za-z0-9._-]+$/),
  /** Executable, or a shell command line with `shell: true`. */
  command: z.string().min(1),
  /** Arguments. */
  args: z.array(z.string()).default([]),
  /** Run through `/bin/sh -c`. */
  shell: z.boolean().default(false),
  /** Extra environment. */
  env: z.record(z.string(), z.string()).default({}),
  /** Working directory. */
  cwd: z.string().optional(),
  /** Append stdout/stderr to `<logDir>/<name>.stdout.log` / `.stderr.log`; default: discarded. */
  logDir: z.string().optional(),
  /** Health check; default none (alive = healthy). */
  health: HealthCheckSchema.optional(),
  /** `always` restarts on any exit, `on-failure` only on non-zero/signal exits and health failures, `never` never. */
  restart: z.literal(['always', 'on-failure', 'never']).default('always'),
  /** Restart backoff. */
  backoff: z
    .object({
      /** First delay. */
      baseMs: z.number().min(0).default(500),
      /** Largest delay. */
      maxMs: z.number().min(0).default(30_000),
      /** Growth per restart. */
      factor: z.number().min(1).default(2),
      /** Jitter (see `backoffDelay`); `equal` keeps delays growing yet spread. */
      jitter: z.literal(['full', 'equal', 'none']).default('equal'),
    })
    .default({ baseMs: 500, maxMs: 30_000, factor: 2, jitter: 'equal' }),
  /** A run that lasted this long resets the backoff to its base. */
  resetAfterMs: z.number().min(0).default(30_000),
  /** At most `maxRestarts` restarts within `windowMs`; one more and the process is given up (`failed`). */
  budget: z
    .object({
      /** Restarts allowed within the window. */
      maxRestarts: z.number().int().min(0).default(10),
      /** Sliding window. */
      windowMs: z.number().positive().default(600_000),
    })
    .default({ maxRestarts: 10, windowMs: 600_000 }),
  /** Signal of the polite stop. */
  stopSignal: z.literal(['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2']).default('SIGTERM'),
  /** Grace before SIGKILL on stop or replacement. */
  graceMs: z.number().min(0).default(5000),
});
/** A supervised program (input form). */
export type SupervisedSpec = z.input<typeof SupervisedSpecSchema>;

/** States of a supervised process. */
export type SupervisedState = 'running' | 'backoff' | 'stopping' | 'stopped' | 'failed' | 'exited';

/** What the supervisor reports. */
export interface SupervisorEvent {
  /** Program name. */
  name: string;
  /** What happened. */
  type: 'start' | 'exit' | 'health-fail' | 'unhealthy' | 'restart-scheduled' | 'budget-exhausted' | 'stopped' | 'spawn-error';
  /** Epoch ms. */
  at: number;
  /** Pid concerned. */
  pid?: number;
  /** Exit code. */
  code?: number | null;
  /** Exit signal. */
  signal?: string | null;
  /** Restart delay chosen. */
  delayMs?: number;
  /** Details. */
  message?: string;
}

/** A process under supervision. */
export class SupervisedProcess {
  /** Program name. */
  readonly name: string;
  /** Its validated spec. */
  readonly spec: z.output<typeof SupervisedSpecSchema>;
  #state: SupervisedState = 'running';
  #pid: number | undefined;
  #restarts: number[] = [];
  #events: SupervisorEvent[] = [];
  #stopRequested = false;
  #wakeBackoff: (() => void) | undefined;
  #replace: (() => void) | undefined;
  #child: ChildProcess | undefined;
  #closed: Promise<unknown> | undefined;
  readonly #emit: (e: SupervisorEvent) => void;
  /** Settles when supervision of this program ended (stopped, failed or exited for good). */
  readonly finished: Promise<void>;

  /** @internal */
  constructor(spec: z.output<typeof SupervisedSpecSchema>, emit: (e: SupervisorEvent) => void) {
    this.name = spec.name;
    this.spec = spec;
    this.#emit = (e) => {
      this.#events.push(e);
      if (this.#events.length > 200) this.#events.shift();
      emit(e);
    };
    this.finished = this.#loop();
  }

  /** Current state. */
  get state(): SupervisedState {
    return this.#state;
  }
  /** Pid of the current process, if running. */
  get pid(): number | undefined {
    return this.#pid;
  }
  /** Number of restarts so far. */
  get restarts(): number {
    return this.#restarts.length;
  }
  /** Recent events (last 200). */
  get events(): readonly SupervisorEvent[] {
    return this.#events;
  }

  /** Stops gracefully (stop signal, grace, SIGKILL to the group) and ends supervision. Idempotent. */
  async stop(): Promise<void> {
    this.#stopRequested = true;
    this.#wakeBackoff?.();
    if (this.#child && this.#closed) {
      this.#state = 'stopping';
      await stopGroup(this.#child, this.#closed, this.spec.graceMs, this.spec.stopSignal);
    }
    await this.finished;
  }

  async #loop(): Promise<void> {
    const s = this.spec;
    let consecutive = 0;
    const logs = s.logDir ? openLogs(s.logDir, s.name) : undefined;
    try {
      while (!this.#stopRequested) {
        const startedAt = Date.now();
        let child: ChildProcess;
        try {
          child = s.shell
            ? spawn('/bin/sh', ['-c', s.command, ...s.args], { cwd: s.cwd, env: { ...process.env, ...s.env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
            : spawn(s.command, s.args, { cwd: s.cwd, env: { ...process.env, ...s.env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
          await new Promise<void>((resolve, reject) => {
            child.once('spawn', () => resolve());
            child.once('error', reject);
          });
        } catch (e) {
          this.#emit({ name: s.name, type: 'spawn-error', at: Date.now(), message: (e as Error).message });
          if (!(await this.#scheduleRestart(consecutive++, true))) return;
          continue;
        }
        const closed = childClosed(child);
        this.#child = child;
        this.#closed = closed;
        this.#pid = child.pid;
        this.#state = 'running';
        child.stdout!.on('data', (c: Buffer) => logs?.out.write(c));
        child.stderr!.on('data', (c: Buffer) => logs?.err.write(c));
        child.once('exit', () => killGroup(child.pid!, 'SIGKILL'));
        this.#emit({ name: s.name, type: 'start', at: Date.now(), pid: child.pid! });
        if (this.#stopRequested) void stopGroup(child, closed, s.graceMs, s.stopSignal);
        let unhealthy = false;
        const stopHealth = s.health
          ? this.#watchHealth(s.health, startedAt, () => {
              unhealthy = true;
              this.#emit({ name: s.name, type: 'unhealthy', at: Date.now(), pid: child.pid!, message: 'health check failed; replacing' });
              void stopGroup(child, closed, s.graceMs, s.stopSignal);
            })
          : () => {};
        const { code, signal } = await closed;
        stopHealth();
        this.#child = undefined;
        this.#closed = undefined;
        this.#pid = undefined;
        this.#emit({ name: s.name, type: 'exit', at: Date.now(), pid: child.pid!, code, signal });
        if (this.#stopRequested) break;
        if (Date.now() - startedAt >= s.resetAfterMs) consecutive = 0;
        const failed = unhealthy || code !== 0;
        if (s.restart === 'never' || (s.restart === 'on-failure' && !failed)) {
          this.#state = 'exited';
          return;
        }
        if (!(await this.#scheduleRestart(consecutive++, true))) return;
      }
      this.#state = 'stopped';
      this.#emit({ name: s.name, type: 'stopped', at: Date.now() });
    } finally {
      logs?.out.end();
      logs?.err.end();
    }
  }

  /** Waits the backoff; `false` when supervision must end (budget exhausted or stop requested). */
  async #scheduleRestart(retry: number, counts: boolean): Promise<boolean> {
    const s = this.spec;
    const now = Date.now();
    this.#restarts = this.#restarts.filter((t) => now - t < s.budget.windowMs);
    if (counts && this.#restarts.length >= s.budget.maxRestarts) {
      this.#state = 'failed';
      this.#emit({ name: s.name, type: 'budget-exhausted', at: now, message: `${this.#restarts.length} restarts within ${s.budget.windowMs} ms` });
      return false;
    }
    const delayMs = backoffDelay(retry, s.backoff);
    this.#state = 'backoff';
    this.#emit({ name: s.name, type: 'restart-scheduled', at: now, delayMs });
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, delayMs);
      this.#wakeBackoff = () => {
        clearTimeout(t);
        resolve();
      };
    });
    this.#wakeBackoff = undefined;
    if (this.#stopRequested) {
      this.#state = 'stopped';
      this.#emit({ name: s.name, type: 'stopped', at: Date.now() });
      return false;
    }
    this.#restarts.push(Date.now());
    return true;
  }

  #watchHealth(h: z.output<typeof HealthCheckSchema>, startedAt: number, onUnhealthy: () => void): () => void {
    let failures = 0;
    let stopped = false;
    let inFlight: AbortController | undefined;
    const tick = async () => {
      if (stopped || inFlight) return;
      const ac = new AbortController();
      inFlight = ac;
      const t = setTimeout(() => ac.abort(new HealthCheckTimeoutError(h.timeoutMs)), h.timeoutMs);
      let ok = false;
      let message = '';
      try {
        ok = await runCheck(h, ac.signal);
        if (!ok) message = 'check reported unhealthy';
      } catch (e) {
        message = (e as Error).message;
      } finally {
        clearTimeout(t);
        inFlight = undefined;
      }
      if (stopped) return;
      if (ok) failures = 0;
      else if (Date.now() - startedAt >= h.startPeriodMs) {
        failures++;
        this.#emit({ name: this.name, type: 'health-fail', at: Date.now(), pid: this.#pid, message: `${failures}/${h.failureThreshold}: ${message}` });
        if (failures >= h.failureThreshold) {
          stopped = true;
          clearInterval(iv);
          onUnhealthy();
        }
      }
    };
    const iv = setInterval(() => void tick(), h.intervalMs);
    iv.unref();
    return () => {
      stopped = true;
      clearInterval(iv);
      inFlight?.abort();
    };
  }
}

async function runCheck(h: z.output<typeof HealthCheckSchema>, signal: AbortSignal): Promise<boolean> {
  if (h.type === 'fn') {
    const r = await Promise.race([
      Promise.resolve(h.check(signal)),
      new Promise((_, rej) => signal.addEventListener('abort', () => rej(signal.reason), { once: true })),
    ]);
    return r !== false;
  }
  if (h.type === 'http') {
    const lib = h.url.startsWith('https:') ? https : http;
    return new Promise<boolean>((resolve, reject) => {
      const req = lib.get(h.url, { signal }, (res) => {
        res.resume();
        res.on('end', () => resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300));
      });
      req.on('error', reject);
    });
  }
  const child = spawn(h.command, h.args, { detached: true, stdio: 'ignore' });
  const closed = childClosed(child);
  const onAbort = () => void stopGroup(child, closed, 500);
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const { code } = await closed;
    if (signal.aborted) throw signal.reason;
    return code === 0;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

function openLogs(dir: string, name: string): { out: WriteStream; err: WriteStream } {
  mkdirSync(dir, { recursive: true });
  const out = createWriteStream(join(dir, `${name}.stdout.log`), { flags: 'a' });
  const err = createWriteStream(join(dir, `${name}.stderr.log`), { flags: 'a' });
  out.on('error', () => {});
  err.on('error', () => {});
  return { out, err };
}

/**
 * Supervises long-running programs. `stopAll()` belongs in the host service's shutdown path;
 * `installSignalHandlers()` hooks SIGTERM/SIGINT only when asked.
 *
 * @example
 * ```ts
 * const sup = new Supervisor();
 * sup.add({ name: 'api', command: 'node', args: ['server.js'],
 *           health: { type: 'http', url: 'http://127.0.0.1:8080/health', intervalMs: 2000 } });
 * process.once('SIGTERM', () => void sup.stopAll());
 * ```
 */
export class Supervisor {
  readonly #procs = new Map<string, SupervisedProcess>();
  readonly #listeners = new Set<(e: SupervisorEvent) => void>();
  #closed = false;

  /** Starts supervising a program. */
  add(spec: SupervisedSpec): SupervisedProcess {
    if (this.#closed) throw new ConfigError('The supervisor is stopped');
    const s = validate(SupervisedSpecSchema, spec, 'supervised process');
    const prev = this.#procs.get(s.name);
    if (prev && !['stopped', 'failed', 'exited'].includes(prev.state)) throw new ConfigError(`A process named '${s.name}' is already supervised`);
    const p = new SupervisedProcess(s, (e) => {
      if (ch.hasSubscribers) ch.publish(e);
      for (const fn of this.#listeners) {
        try {
          fn(e);
        } catch {
          /* listeners must not break supervision */
        }
      }
    });
    this.#procs.set(s.name, p);
    return p;
  }

  /** A supervised process by name. */
  get(name: string): SupervisedProcess | undefined {
    return this.#procs.get(name);
  }

  /** Every supervised process. */
  list(): SupervisedProcess[] {
    return [...this.#procs.values()];
  }

  /** Listens to events. Returns an unsubscribe function. */
  onEvent(fn: (e: SupervisorEvent) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Stops one program gracefully. */
  async stop(name: string): Promise<void> {
    await this.#procs.get(name)?.stop();
  }

  /** Stops every program (in parallel) and refuses new ones. Idempotent. */
  async stopAll(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#procs.values()].map((p) => p.stop()));
  }

  /** Same as `stopAll()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stopAll();
  }

  /**
   * Opt-in: on SIGTERM/SIGINT, `stopAll()` then re-raise the signal with default handling so
   * the service still exits the usual way. Returns a function that removes the handlers.
   */
  installSignalHandlers(signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT']): () => void {
    const handlers = signals.map((sig) => {
      const h = () => {
        remove();
        void this.stopAll().finally(() => process.kill(process.pid, sig));
      };
      process.once(sig, h);
      return [sig, h] as const;
    });
    const remove = () => {
      for (const [sig, h] of handlers) process.removeListener(sig, h);
    };
    return remove;
  }
}
