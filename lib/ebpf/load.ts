/**
 * Loading eBPF objects: {@link loadObject} and {@link loadObjects}.
 *
 * Loads run on the addon's own loader threads (never libuv's pool), with a timeout that
 * interrupts the verifier inside the kernel, a cache of loaded objects with single-flight,
 * and optional bpffs pinning that lets the next process skip the verifier.
 * @module
 */
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { createHash } from 'node:crypto';
import diagnostics_channel from 'node:diagnostics_channel';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { chmod, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { release } from 'node:os';
import { promisify } from 'node:util';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors/index.js';
import { validate } from '../errors/validate.js';
import { bpfObjectDir, loadAddon } from '../native/addon.js';
import type { NativeObjectHandle } from '../native/binding-loader.js';
import { programCache } from './cache.js';
import { BpfError, fromNative, InvalidObjectError, LoadTimeoutError, VerifierError } from './errors.js';
import { BpfObject, ObjectCore } from './object.js';
import { pinCore, pinDirectory, PinOptionsSchema, reusePins } from './pin.js';
import { validateObject } from './validate/index.js';
import { notPrivate, privateDir } from './private-dir.js';

/** Published on `smoothtask:ebpf:load` after every load (success or failure). */
export interface LoadEvent {
  /** Object name. */
  name: string;
  /** Object hash (cache key without the pin directory). */
  hash: string;
  /** Answered by the program cache. */
  fromCache: boolean;
  /** Reopened from bpffs pins. */
  fromPins: boolean;
  /** Wall time of this call, in milliseconds. */
  elapsedMs: number;
  /** Error code on failure. */
  error?: string;
}

/** diagnostics_channel on which every load is reported ({@link LoadEvent}). */
export const loadChannel = diagnostics_channel.channel('smoothtask:ebpf:load');

const ConstantSchema = z.union([z.number().int(), z.bigint(), z.boolean(), z.instanceof(Uint8Array)]);

/** Options of {@link loadObject}. */
export const LoadOptionsSchema = z
  .object({
    /** Object name (internal map names derive from it). Default: the file name without `.bpf.o`. */
    name: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ - . only')
      .optional(),
    /** Give up after this many milliseconds: the verifier is interrupted and the promise rejects with LoadTimeoutError. */
    timeoutMs: z.number().positive().max(2_147_483_647).optional(),
    /** Names of the programs to load; the others get autoload off. Default: all. */
    programs: z.array(z.string().min(1)).optional(),
    /** Pin programs and maps under `<root>/<namespace>/<name>/` and reuse them. Default: false. */
    pin: z.union([z.literal(false), PinOptionsSchema]).default(false),
    /** Use the program cache. Default true. */
    cache: z.boolean().default(true),
    /** Verifier log level for every program (0: only on failure, 1: basic, 2: verbose, 4: stats). */
    logLevel: z.number().int().min(0).max(7).default(0),
    /** Values of `const volatile` globals (in `.rodata`), set by name before the load. */
    constants: z.record(z.string().min(1), ConstantSchema).optional(),
    /** `max_entries` overrides by map name. */
    mapSizes: z.record(z.string().min(1), z.number().int().min(1).max(0xffffffff)).optional(),
    /** BTF file to use for CO-RE relocations instead of the kernel's (e.g. a `bpftool gen min_core_btf` output). */
    btfCustomPath: z.string().min(1).optional(),
    /**
     * Use a minimal kernel BTF for CO-RE (made once per object and boot with `bpftool gen
     * min_core_btf`, kept in a directory only this user can write: `$XDG_RUNTIME_DIR/smoothtask/btf`
     * or `$TMPDIR/smoothtask-<euid>/btf`, verified before use) so the load does not parse the whole kernel BTF.
     * Ignored when `btfCustomPath` is set, bpftool is missing, or a loaded program needs kernel
     * attach targets (tp_btf, fentry/fexit, iterators), which parse the kernel BTF anyway.
     */
    minimalKernelBtf: z.boolean().default(false),
    /** Stop waiting when aborted (a load already verifying completes in the background and is cached). */
    signal: z.instanceof(AbortSignal).optional(),
  })
  .strict();
/** Options of {@link loadObject}. */
export type LoadOptions = z.input<typeof LoadOptionsSchema>;
/** Load options after validation and defaults. */
export type ParsedLoadOptions = z.output<typeof LoadOptionsSchema>;

/** What {@link loadObject} accepts: a path to an ELF file or its bytes. */
export type ObjectSource = string | Uint8Array;

/**
 * Paths of the bundled eBPF objects (compiled from the package's `bpf/*.bpf.c`), or of one of
 * them by name (`bundledObject('counter')`). The directory is `SMOOTHTASK_BPF_DIR` when set.
 */
export function bundledObjects(): string[] {
  const dir = bpfObjectDir();
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith('.bpf.o'))
      .sort()
      .map((f) => join(dir, f));
  } catch {
    return [];
  }
}

/** Path of one bundled object by name (`counter` → `<dir>/counter.bpf.o`); it may not exist. */
export function bundledObject(name: string): string {
  return join(bpfObjectDir(), `${name}.bpf.o`);
}

/** Object name from a path: `dir/runqlat.bpf.o` → `runqlat`. */
export function objectNameOf(source: ObjectSource): string {
  if (typeof source !== 'string') return 'object';
  const n = basename(source)
    .replace(/\.bpf\.o$|\.o$/, '')
    .replace(/[^A-Za-z0-9_.-]/g, '_');
  return n.slice(0, 64) || 'object';
}

function canonical(v: unknown): unknown {
  if (typeof v === 'bigint') return `${v}n`;
  if (v instanceof Uint8Array) return `hex:${Buffer.from(v).toString('hex')}`;
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

/**
 * The object hash: sha256 of the ELF bytes and every option that changes what is loaded
 * (name, programs, constants, map sizes, log level, BTF path). Timeouts and pins do not.
 */
export function objectHash(
  elf: Uint8Array,
  name: string,
  o: Pick<ParsedLoadOptions, 'programs' | 'constants' | 'mapSizes' | 'logLevel' | 'btfCustomPath'> & { minimalKernelBtf?: boolean },
): string {
  const norm = canonical({
    minimalKernelBtf: o.minimalKernelBtf ?? false,
    name,
    programs: o.programs ? [...new Set(o.programs)].sort() : null,
    constants: o.constants ?? null,
    mapSizes: o.mapSizes ?? null,
    logLevel: o.logLevel,
    btfCustomPath: o.btfCustomPath ?? null,
  });
  return createHash('sha256').update(elfDigest(elf)).update('\0').update(JSON.stringify(norm)).digest('hex');
}

const digests = new WeakMap<Uint8Array, string>();
/** sha256 of the ELF bytes alone (memoised per buffer). */
function elfDigest(elf: Uint8Array): string {
  let d = digests.get(elf);
  if (!d) {
    d = createHash('sha256').update(elf).digest('hex');
    digests.set(elf, d);
  }
  return d;
}

// ELF contents (by digest) that libbpf has opened without harm in this process: the addon
// skips its isolated pre-check for them (libbpf 1.1 can crash on malformed ELF).
const trustedElf = new Set<string>();
function trust(elf: Uint8Array): void {
  if (trustedElf.size >= 4096) trustedElf.clear();
  trustedElf.add(elfDigest(elf));
}

// ELF contents (by digest) that passed the in-process validator: every input is checked in JS
// (lib/ebpf/validate) before libbpf sees it; the addon's isolated pre-check is the second line.
const validElf = new Set<string>();
function validated(elf: Uint8Array, name: string): void {
  const digest = elfDigest(elf);
  if (validElf.has(digest)) return;
  validateObject(elf, name); // throws InvalidObjectError naming the section, type id or offset
  if (validElf.size >= 4096) validElf.clear();
  validElf.add(digest);
}

// How long past its timeout the owner of a load waits for the addon's own timeout before
// giving up in JS (the addon normally answers within a few ms of the deadline).
const OWNER_GRACE_MS = 2000;

// Last load time by ELF digest, so loadObjects can start the slowest objects first.
const loadTimeByDigest = new Map<string, number>();

// Files read before, by path: a file whose inode, size, mtime and ctime are unchanged is not
// read (and hashed) again, so a cache hit or a pin reuse costs a stat, not a read.
const fileMemo = new Map<string, { key: string; bytes: Uint8Array }>();
const FILE_MEMO_MAX_BYTES = 64 * 1024 * 1024;
let memoBytes = 0;

async function readSource(source: ObjectSource): Promise<Uint8Array> {
  if (source instanceof Uint8Array) return source;
  try {
    // a stat is a few microseconds: done inline, it saves a trip through libuv's thread pool
    const st = statSync(source, { bigint: true });
    const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    const memo = fileMemo.get(source);
    if (memo?.key === key) return memo.bytes;
    const bytes = await readFile(source);
    if (memo) memoBytes -= memo.bytes.byteLength;
    fileMemo.delete(source);
    // bounded: oldest first out beyond 64 MiB of remembered files
    for (const [p, m] of fileMemo) {
      if (memoBytes + bytes.byteLength <= FILE_MEMO_MAX_BYTES) break;
      fileMemo.delete(p);
      memoBytes -= m.bytes.byteLength;
    }
    if (bytes.byteLength <= FILE_MEMO_MAX_BYTES) {
      fileMemo.set(source, { key, bytes });
      memoBytes += bytes.byteLength;
    }
    return bytes;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT' || err.code === 'EISDIR')
      throw new InvalidObjectError(`cannot read BPF object ${source}: ${err.message}`, { cause: e });
    throw new BpfError('ERR_BPF_SYSTEM', `cannot read BPF object ${source}: ${err.message}`, { cause: e });
  }
}

function convert(e: unknown, stackFrom: Error): Error {
  const code = (e as { code?: unknown } | null)?.code;
  if (code === 'ERR_CONFIG') {
    const message = (e as Error).message;
    const err = new ConfigError(`Invalid load options: ${message}`, [message], { cause: e });
    return err;
  }
  return fromNative(e, stackFrom);
}

// libbpf 1.1 caches its kernel feature probes (global data, expected attach type, BTF
// kinds, ...) process-wide, and a probe that a timeout signal interrupts would be cached as
// "missing" for good. So before the first load with a timeout, loads run once without one:
// the bundled counter object (program-side probes) and the object itself with every program
// off (map, global-data and BTF probes). Neither counts against the caller's timeout.
// Every caller shares the one warm-up promise: a timed load that starts while the warm-up is
// still running waits for it instead of racing it.
let warmUp: Promise<void> | undefined;
function warmUpFeatureProbes(elf: Uint8Array, name: string): Promise<void> {
  warmUp ??= runWarmUp(elf, name);
  return warmUp;
}
async function runWarmUp(elf: Uint8Array, name: string): Promise<void> {
  const loader = loadAddon().loader;
  const counter = `${bpfObjectDir()}/counter.bpf.o`;
  try {
    (await loader.load(await readFile(counter), { name: 'st_warmup', trusted: true })).close();
  } catch {
    /* not built or not permitted: the real load reports what matters */
  }
  try {
    (await loader.load(elf, { name, programs: [] })).close();
    trust(elf); // opened safely: the real load can skip the isolated pre-check
  } catch {
    /* same */
  }
}

const execFileP = promisify(execFile);
const TRACING_SECTION = /^(tp_btf|fentry|fexit|fmod_ret|lsm|lsm\.s|iter|iter\.s|freplace|struct_ops|fentry\.s|fexit\.s)(\/|$)/;

/** Section names of a 64-bit little-endian ELF, bounds-checked ([] when it is not one). */
function elfSectionNames(elf: Uint8Array): string[] {
  const dv = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  if (elf.byteLength < 64 || dv.getUint32(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) return [];
  const shoff = Number(dv.getBigUint64(0x28, true));
  const shentsize = dv.getUint16(0x3a, true);
  const shnum = dv.getUint16(0x3c, true);
  const shstrndx = dv.getUint16(0x3e, true);
  if (shentsize < 64 || shoff + shnum * shentsize > elf.byteLength || shstrndx >= shnum) return [];
  const sh = (i: number): number => shoff + i * shentsize;
  const strOff = Number(dv.getBigUint64(sh(shstrndx) + 0x18, true));
  const strSize = Number(dv.getBigUint64(sh(shstrndx) + 0x20, true));
  if (strOff + strSize > elf.byteLength) return [];
  const names: string[] = [];
  for (let i = 0; i < shnum; i++) {
    const at = dv.getUint32(sh(i), true);
    if (at >= strSize) continue;
    let end = strOff + at;
    while (end < strOff + strSize && elf[end] !== 0) end++;
    names.push(Buffer.from(elf.buffer, elf.byteOffset + strOff + at, end - strOff - at).toString('latin1'));
  }
  return names;
}
const minimalBtfFailures = new Set<string>();

/**
 * Path of a minimal kernel BTF for `elf` (generated with bpftool on first use, cached per
 * object and boot in a private directory, see private-dir.ts), or undefined when it cannot help or cannot be made.
 */
async function minimalKernelBtf(elf: Uint8Array, name: string, programs: string[] | undefined): Promise<string | undefined> {
  const digest = elfDigest(elf);
  if (minimalBtfFailures.has(digest)) return undefined;
  try {
    // programs that need kernel attach targets make libbpf parse the kernel BTF anyway. The
    // sections are read here in JS (libbpf may crash on bytes not checked yet); with a program
    // selection, trusted bytes are asked about each selected program.
    if (programs && trustedElf.has(digest)) {
      const progs = loadAddon().loader.inspect(elf, name).programs.filter((p) => programs.includes(p.name));
      if (progs.some((p) => ['tracing', 'lsm', 'ext', 'struct_ops'].includes(p.type))) return undefined;
    } else if (elfSectionNames(elf).some((n) => TRACING_SECTION.test(n))) {
      return undefined;
    }
    const vmlinux = '/sys/kernel/btf/vmlinux';
    const st = await stat(vmlinux);
    const kernel = createHash('sha256').update(`${release()}:${st.size}:${st.mtimeMs}`).digest('hex').slice(0, 16);
    // CO-RE input of a privileged process: kept where only this user can write, and checked
    // (owner, mode, no symlink) before it is used; a file that fails the check is made again.
    const dir = await privateDir('btf');
    const file = join(dir, `${digest.slice(0, 32)}-${kernel}.btf`);
    if (!(await notPrivate(file, true))) return file;
    const bpftool = ['/usr/sbin/bpftool', '/usr/local/sbin/bpftool', '/sbin/bpftool'].find((p) => existsSync(p)) ?? 'bpftool';
    const tmp = `${file}.${process.pid}.${Date.now()}`;
    await writeFile(`${tmp}.o`, elf, { mode: 0o600, flag: 'wx' });
    try {
      await execFileP(bpftool, ['gen', 'min_core_btf', vmlinux, tmp, `${tmp}.o`], { timeout: 30_000 });
      await chmod(tmp, 0o600);
      await rename(tmp, file);
    } finally {
      await rm(`${tmp}.o`, { force: true });
      await rm(tmp, { force: true });
    }
    const why = await notPrivate(file, true);
    if (why) throw new BpfError('ERR_BPF_SYSTEM', `minimal kernel BTF is not private: ${why}`);
    return file;
  } catch {
    minimalBtfFailures.add(digest);
    return undefined;
  }
}

/**
 * Starts the native pre-check of bytes this process has neither opened nor validated (undefined
 * when it has: nothing to check). Settles as the load would: rejects with the load's error.
 */
function startPrecheck(elf: Uint8Array, name: string, timeoutMs: number | undefined, stackFrom: Error): Promise<void> | undefined {
  const digest = elfDigest(elf);
  if (trustedElf.has(digest) || validElf.has(digest)) return undefined;
  try {
    return loadAddon()
      .loader.precheck(elf, { name, ...(timeoutMs ? { timeoutMs } : {}) })
      .catch((e: unknown) => {
        throw convert(e, stackFrom);
      });
  } catch {
    return undefined; // no loader thread could be started: the load's own pre-check runs
  }
}

async function nativeLoad(
  elf: Uint8Array,
  name: string,
  hash: string,
  o: ParsedLoadOptions,
  stackFrom: Error,
  prechecked = false,
  spentMs = 0,
): Promise<ObjectCore> {
  let native: NativeObjectHandle;
  if (o.timeoutMs) await warmUpFeatureProbes(elf, name);
  const btfCustomPath = o.btfCustomPath ?? (o.minimalKernelBtf ? await minimalKernelBtf(elf, name, o.programs) : undefined);
  try {
    native = await loadAddon().loader.load(elf, {
      name,
      trusted: prechecked || trustedElf.has(elfDigest(elf)),
      ...(o.programs ? { programs: o.programs } : {}),
      logLevel: o.logLevel,
      ...(o.timeoutMs ? { timeoutMs: o.timeoutMs, ...(spentMs > 0 ? { spentMs } : {}) } : {}),
      ...(btfCustomPath ? { btfCustomPath } : {}),
      ...(o.mapSizes ? { mapSizes: o.mapSizes } : {}),
      ...(o.constants ? { constants: o.constants } : {}),
    });
  } catch (e) {
    const err = convert(e, stackFrom);
    // a verifier or config failure means libbpf opened the bytes fine
    if (err instanceof VerifierError || err instanceof ConfigError) trust(elf);
    throw err;
  }
  trust(elf);
  const meta = native.meta();
  const loadTimeMs = meta.openMs + meta.loadMs;
  if (loadTimeByDigest.size >= 4096) loadTimeByDigest.clear();
  loadTimeByDigest.set(elfDigest(elf), loadTimeMs);
  return new ObjectCore(native, hash, name, loadTimeMs, false, () => native.btf());
}

/** Waits for `p`, giving up on `timeoutMs` or `signal`; a result that comes later is released. */
function waitFor(
  p: Promise<{ core: ObjectCore; hit: boolean }>,
  name: string,
  timeoutMs: number | undefined,
  signal: AbortSignal | undefined,
  started: number,
  graceMs: number,
): Promise<{ core: ObjectCore; hit: boolean }> {
  if (!timeoutMs && !signal) return p;
  return new Promise((resolve, reject) => {
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void => finish(signal?.reason ?? new DOMException('aborted', 'AbortError'));
    const finish = (err?: unknown, v?: { core: ObjectCore; hit: boolean }): void => {
      if (done) {
        v?.core.release();
        return;
      }
      done = true;
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (v) resolve(v);
      else reject(err);
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timeoutMs) {
      // The addon interrupts the loading thread itself; this timer answers callers that joined
      // a shared load, and is a last resort (after `graceMs`) for the caller that owns it.
      const left = Math.max(0, timeoutMs - (performance.now() - started)) + graceMs;
      timer = setTimeout(() => {
        const elapsed = performance.now() - started;
        finish(new LoadTimeoutError(`loading '${name}' timed out after ${timeoutMs} ms (waiting for a shared load)`, timeoutMs, elapsed));
      }, left);
      timer.unref();
    }
    p.then(
      (v) => finish(undefined, v),
      (e: unknown) => finish(e),
    );
  });
}

/**
 * Loads an eBPF object (a path or the ELF bytes) into the kernel, off the main thread.
 *
 * Rejects with {@link VerifierError} (with the log), {@link PermissionError} (naming the
 * capability), {@link UnsupportedError}, {@link LoadTimeoutError}, {@link InvalidObjectError}
 * or `ConfigError` (bad options, unknown program, map or constant names).
 *
 * @example
 * ```ts
 * using obj = await loadObject('build/bpf/counter.bpf.o', { timeoutMs: 5000 });
 * const links = obj.attach();
 * ```
 */
export async function loadObject(source: ObjectSource, options: LoadOptions = {}): Promise<BpfObject> {
  // A span per load (OpenTelemetry API: a no-op without an SDK), with the error's code on failure.
  return trace.getTracer('smoothtask').startActiveSpan('smoothtask.ebpf.load', { attributes: { 'smoothtask.ebpf.object': typeof source === 'string' ? source : `<${source.byteLength} bytes>` } }, async (span) => {
    try {
      return await loadObjectTraced(source, options);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      span.setStatus({ code: SpanStatusCode.ERROR, message: typeof code === 'string' ? code : String(e) });
      throw e;
    } finally {
      span.end();
    }
  });
}

async function loadObjectTraced(source: ObjectSource, options: LoadOptions): Promise<BpfObject> {
  const stackFrom = new Error();
  const started = performance.now();
  const o = validate(LoadOptionsSchema, options, 'load options');
  if (typeof source !== 'string' && !(source instanceof Uint8Array))
    throw new ConfigError('Invalid load source: expected a path or a Uint8Array', ['source: expected string | Uint8Array']);
  const elf = await readSource(source);
  const name = o.name ?? objectNameOf(source);
  const pin = o.pin === false ? undefined : o.pin;
  // Bytes new to this process: the isolated pre-check (another process) runs while the
  // validator runs here; both must pass before libbpf opens the bytes in this process. (With
  // pins, a reuse may need no open at all: the load does its own pre-check if it comes to one.)
  const precheck = pin ? undefined : startPrecheck(elf, name, o.timeoutMs, stackFrom);
  precheck?.catch(() => {}); // awaited by the load; a load never started leaves it unheard
  validated(elf, name);
  const hash = objectHash(elf, name, o);
  const pinDir = pin ? pinDirectory(pin, name) : undefined;

  // `timeoutMs` (the time this caller has left) replaces the option when a caller starts a
  // new load after a shared one timed out under another caller's deadline.
  const loadCore = async (timeoutMs = o.timeoutMs): Promise<ObjectCore> => {
    if (pin && pinDir) {
      const btf = lazyBtf(elf, name);
      const reused = reusePins(pinDir, hash, name, btf);
      if (reused) return reused;
    }
    let prechecked = false;
    let spentMs = 0;
    if (precheck) {
      await precheck;
      prechecked = true;
      // the pre-check's time counts against the caller's limit (a restarted load's limit is
      // already what the caller has left)
      if (timeoutMs === o.timeoutMs) spentMs = performance.now() - started;
    }
    const core = await nativeLoad(elf, name, hash, timeoutMs === o.timeoutMs ? o : { ...o, timeoutMs }, stackFrom, prechecked, spentMs);
    if (pin && pinDir) {
      try {
        pinCore(core, pin.root, pinDir);
      } catch (e) {
        core.destroy();
        throw e;
      }
    }
    return core;
  };

  let result: { core: ObjectCore; hit: boolean };
  try {
    if (o.cache) {
      // Single-flight contract: each caller's own timeout and signal govern its own wait. A
      // shared load runs under the deadline of the caller that started it; when that deadline
      // interrupts it, every joiner whose own deadline has not passed (or that has none) starts
      // or joins a new load with the time it has left, instead of inheriting the timeout.
      const key = `${hash}|${pinDir ?? ''}`;
      for (let restarted = false; ; restarted = true) {
        const joining = programCache.inFlight(key);
        const left = o.timeoutMs === undefined ? undefined : o.timeoutMs - (performance.now() - started);
        try {
          const load = restarted ? () => loadCore(left === undefined ? undefined : Math.max(1, left)) : () => loadCore();
          result = await waitFor(programCache.get(key, load), name, o.timeoutMs, o.signal, started, joining ? 0 : OWNER_GRACE_MS);
          break;
        } catch (e) {
          const mineExpired = o.timeoutMs !== undefined && performance.now() - started >= o.timeoutMs;
          if (!joining || !(e instanceof LoadTimeoutError) || mineExpired || o.signal?.aborted) throw e;
        }
      }
    } else {
      const p = loadCore().then((core) => {
        core.acquire();
        return { core, hit: false };
      });
      result = await waitFor(p, name, o.timeoutMs, o.signal, started, OWNER_GRACE_MS);
    }
  } catch (err) {
    let e = err;
    // a load restarted with the time this caller had left reports this caller's own limit
    if (e instanceof LoadTimeoutError && o.timeoutMs !== undefined && e.timeoutMs !== o.timeoutMs) {
      e = new LoadTimeoutError(`loading '${name}' timed out after ${o.timeoutMs} ms`, o.timeoutMs, performance.now() - started, { cause: e });
    }
    if (loadChannel.hasSubscribers) {
      loadChannel.publish({ name, hash, fromCache: false, fromPins: false, elapsedMs: performance.now() - started, error: (e as { code?: string }).code ?? 'ERR' } satisfies LoadEvent);
    }
    throw e;
  }
  const obj = new BpfObject(result.core, result.hit);
  if (loadChannel.hasSubscribers) {
    loadChannel.publish({ name, hash, fromCache: result.hit, fromPins: obj.fromPins, elapsedMs: performance.now() - started } satisfies LoadEvent);
  }
  return obj;
}

function lazyBtf(elf: Uint8Array, name: string): () => Uint8Array | undefined {
  let btf: Uint8Array | undefined;
  let done = false;
  return () => {
    if (!done) {
      try {
        btf = loadAddon().loader.inspect(elf, name).btf;
      } catch {
        btf = undefined;
      }
      done = true;
    }
    return btf;
  };
}

/** One entry of {@link loadObjects}: a source, or a source with its own options. */
export type LoadObjectsEntry =
  | ObjectSource
  | {
      /** Path or ELF bytes. */
      source: ObjectSource;
      /** Options of this object (over the shared ones). */
      options?: LoadOptions;
    };

/** Options of {@link loadObjects}. */
export const LoadObjectsOptionsSchema = z
  .object({
    /** Most loads at once. Default: the loader pool size (number of cores). */
    concurrency: z.number().int().min(1).max(1024).optional(),
  })
  .strict();
/** Options of {@link loadObjects}: shared load options plus `concurrency`. */
export type LoadObjectsOptions = LoadOptions & z.input<typeof LoadObjectsOptionsSchema>;

/**
 * Loads many objects in parallel. Each settles on its own: one bad object does not fail the
 * others. The objects expected to be slowest (by a previous load time, else size) start first,
 * so the total is close to the slowest load rather than the sum.
 *
 * @returns one `PromiseSettledResult` per source, in input order.
 */
export async function loadObjects(sources: readonly LoadObjectsEntry[], options: LoadObjectsOptions = {}): Promise<PromiseSettledResult<BpfObject>[]> {
  const { concurrency, ...shared } = options;
  const c = validate(LoadObjectsOptionsSchema, { concurrency }, 'loadObjects options');
  validate(LoadOptionsSchema, shared, 'load options');
  const limit = c.concurrency ?? loaderPoolSize();
  const entries = sources.map((s) => (typeof s === 'string' || s instanceof Uint8Array ? { source: s, options: {} } : { source: s.source, options: s.options ?? {} }));
  // Expected cost: the last load time of the same bytes in this process when every object has
  // one, else the ELF size. The most expensive start first, so the total is near the slowest.
  const known = await Promise.all(
    entries.map(async (e) => {
      try {
        const bytes = await readSource(e.source); // memoised: loadObject does not read it again
        return { size: bytes.byteLength, ms: loadTimeByDigest.get(elfDigest(bytes)) };
      } catch {
        return { size: 0, ms: undefined };
      }
    }),
  );
  const byTime = known.every((k) => k.ms !== undefined);
  const costs = known.map((k) => (byTime ? (k.ms as number) : k.size));
  const order = entries.map((_, i) => i).sort((a, b) => (costs[b] ?? 0) - (costs[a] ?? 0));
  const results: PromiseSettledResult<BpfObject>[] = new Array(entries.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const k = next++;
      if (k >= order.length) return;
      const i = order[k] as number;
      const e = entries[i] as { source: ObjectSource; options: LoadOptions };
      try {
        results[i] = { status: 'fulfilled', value: await loadObject(e.source, { ...shared, ...e.options }) };
      } catch (err) {
        results[i] = { status: 'rejected', reason: err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, entries.length) }, worker));
  return results;
}

/** Options of the loader thread pool. */
export const LoaderConfigSchema = z
  .object({
    /** Loader threads (bounded concurrency of loads). Default: number of cores. */
    threads: z.number().int().min(1).max(256).optional(),
  })
  .strict();
/** Options of {@link configureLoader}. */
export type LoaderConfig = z.input<typeof LoaderConfigSchema>;

/** State of the loader thread pool. */
export interface LoaderPoolState {
  /** Most loader threads. */
  threads: number;
  /** Threads alive now (idle ones exit after 30 s). */
  running: number;
  /** Loads waiting for a thread. */
  queued: number;
  /** The real-time signal used to interrupt the verifier (the first free one from SIGRTMAX-5 down; 0 when the host handles every one, and timed loads then fail). */
  signal: number;
}

/** Sets the size of the loader thread pool; returns its state. */
export function configureLoader(config: LoaderConfig = {}): LoaderPoolState {
  const c = validate(LoaderConfigSchema, config, 'loader config');
  return loadAddon().loader.configure(c.threads ? { threads: c.threads } : {});
}

function loaderPoolSize(): number {
  try {
    return loadAddon().loader.configure().threads;
  } catch {
    return 2;
  }
}

/** Runs `fn` while kernel BPF run-time statistics are on; see {@link enableBpfStats}. */
export interface BpfStatsHandle extends Disposable {
  /** Turns the statistics off again (unless another holder keeps them on); idempotent. */
  close(): void;
}

/**
 * Turns on kernel run-time statistics for BPF programs (run_time_ns, run_cnt) until the
 * returned handle is closed (BPF_ENABLE_STATS; needs CAP_SYS_ADMIN).
 */
export function enableBpfStats(): BpfStatsHandle {
  let fd: number;
  try {
    fd = loadAddon().loader.enableStats();
  } catch (e) {
    throw fromNative(e, new Error());
  }
  let open = true;
  const close = (): void => {
    if (!open) return;
    open = false;
    loadAddon().loader.closeFd(fd);
  };
  return { close, [Symbol.dispose]: close };
}

/**
 * Time to parse the kernel's BTF once. libbpf 1.1 parses it again inside every
 * `bpf_object__load` that needs it (CO-RE relocations, tp_btf/fentry targets) and offers no
 * way to share a parsed copy; see docs/ebpf-loader.md.
 */
export function kernelBtfParseCost(): {
  /** Milliseconds one parse took. */
  ms: number;
  /** Types in the kernel BTF. */
  types: number;
} {
  return loadAddon().loader.kernelBtfCost();
}
