/**
 * Typed errors of the eBPF loader and data path. Native code rejects or throws plain
 * `Error`s that carry one of the stable `code`s below plus extra fields; {@link fromNative}
 * turns them into these classes so callers can rely on `instanceof` and `code`.
 * @module
 */
import { SmoothtaskError, type SmoothtaskErrorOptions } from '../errors/index.js';
import { capsFromCapEff, classifyLoadFailure, type FailureMap, type FailureProgram, type LoadStage } from './classify.js';

/** Base class of every eBPF error. */
export class BpfError extends SmoothtaskError {
  /** Creates an eBPF error with a stable `code` (one of {@link NativeErrorCode}'s values, or another `ERR_BPF_*`). */
  constructor(code: string, message: string, options: SmoothtaskErrorOptions = {}) {
    super(code, message, options);
  }
}

/** The kernel verifier rejected a program. `log` holds the verifier's log for that program. */
export class VerifierError extends BpfError {
  /** Name of the program that failed verification. */
  readonly program: string;
  /** The full verifier log (may be long). */
  readonly log: string;
  /** The last lines of the log, which usually say why. */
  readonly summary: string;
  /** True when the kernel's log buffer filled and the log is cut. */
  readonly truncated: boolean;
  /** Creates a verifier error for `fields.program` carrying its log. */
  constructor(message: string, fields: { program: string; log: string; truncated?: boolean }, options: SmoothtaskErrorOptions = {}) {
    super('ERR_BPF_VERIFIER', message, options);
    this.program = fields.program;
    this.log = fields.log;
    this.truncated = fields.truncated ?? false;
    this.summary = fields.log.trimEnd().split('\n').slice(-8).join('\n');
  }
}

/** The process lacks a capability (or a sysctl forbids the operation). */
export class PermissionError extends BpfError {
  /** The capability or setting that is missing, e.g. `CAP_BPF`, `CAP_PERFMON`, `kernel.unprivileged_bpf_disabled`. */
  readonly capability: string;
  /** Creates a permission error naming the missing `capability`. */
  constructor(message: string, capability: string, options: SmoothtaskErrorOptions = {}) {
    super('ERR_BPF_PERMISSION', message, options);
    this.capability = capability;
  }
}

/** The host kernel lacks a feature (an attach type, a map type, BTF, a helper). */
export class UnsupportedError extends BpfError {
  /** The missing feature, e.g. `kprobe`, `fentry`, `BTF`, `ringbuf`. */
  readonly feature: string;
  /** Creates an error naming the missing kernel `feature`. */
  constructor(message: string, feature: string, options: SmoothtaskErrorOptions = {}) {
    super('ERR_BPF_UNSUPPORTED', message, options);
    this.feature = feature;
  }
}

/** A load did not finish within `timeoutMs`; the verification was interrupted in the kernel. */
export class LoadTimeoutError extends BpfError {
  /** The timeout that was exceeded, in milliseconds. */
  readonly timeoutMs: number;
  /** How long the load ran before it was stopped, in milliseconds. */
  readonly elapsedMs: number;
  /** Creates a timeout error with the limit and the time the load ran. */
  constructor(message: string, timeoutMs: number, elapsedMs: number, options: SmoothtaskErrorOptions = {}) {
    super('ERR_BPF_LOAD_TIMEOUT', message, options);
    this.timeoutMs = timeoutMs;
    this.elapsedMs = elapsedMs;
  }
}

/** The input is not a usable BPF ELF object (malformed ELF, bad BTF, failed CO-RE relocation). */
export class InvalidObjectError extends BpfError {
  /** Creates an error saying why the object is unusable. */
  constructor(message: string, options: SmoothtaskErrorOptions = {}) {
    super('ERR_BPF_INVALID_OBJECT', message, options);
  }
}

/** A resource (object, map, link, ring buffer) was used after `close()`. */
export class ClosedError extends BpfError {
  /** Creates an error saying that `what` is closed. */
  constructor(what: string) {
    super('ERR_BPF_CLOSED', `${what} is closed`);
  }
}

/** Stable codes carried by native errors. */
export const NativeErrorCode = {
  verifier: 'ERR_BPF_VERIFIER',
  permission: 'ERR_BPF_PERMISSION',
  unsupported: 'ERR_BPF_UNSUPPORTED',
  timeout: 'ERR_BPF_LOAD_TIMEOUT',
  invalid: 'ERR_BPF_INVALID_OBJECT',
  closed: 'ERR_BPF_CLOSED',
  system: 'ERR_BPF_SYSTEM',
} as const;

/** Shape of an error coming out of the addon. @internal */
interface NativeErrorLike {
  message: string;
  code?: string;
  errno?: number;
  program?: string;
  log?: string;
  truncated?: boolean;
  capability?: string;
  feature?: string;
  timeoutMs?: number;
  elapsedMs?: number;
  /** The facts of a failed open or load, classified by classify.ts. */
  failure?: {
    stage: LoadStage;
    errno: number;
    warnings: string;
    log?: string;
    capEff?: string;
    programs?: FailureProgram[];
    maps?: FailureMap[];
  };
  object?: string;
}

/** The object name in a native load message (`... '<name>' ...`). */
function objectOf(message: string): string {
  return /'([^']*)'/.exec(message)?.[1] ?? 'object';
}

/**
 * Converts an error thrown by the addon into the matching typed error. Errors that are
 * already smoothtask errors pass through. `stackFrom` (captured before an async native call)
 * keeps the caller's stack.
 * @internal
 */
export function fromNative(err: unknown, stackFrom?: Error): Error {
  if (err instanceof SmoothtaskError) return err;
  const e = (err ?? {}) as NativeErrorLike;
  const message = typeof e.message === 'string' ? e.message : String(err);
  const opts: SmoothtaskErrorOptions = { cause: err };
  if (typeof e.errno === 'number') opts.errno = e.errno;
  let out: BpfError;
  if (e.failure && typeof e.failure === 'object') {
    // a load failure: the class comes from the stage and the errno (classify.ts)
    const f = e.failure;
    const v = classifyLoadFailure({
      object: e.object ?? objectOf(message),
      stage: f.stage,
      errno: f.errno,
      warnings: f.warnings ?? '',
      ...(f.programs ? { programs: f.programs } : {}),
      ...(f.maps ? { maps: f.maps } : {}),
      ...(f.capEff !== undefined ? { caps: capsFromCapEff(f.capEff) } : {}),
    });
    if (v.errno) opts.errno = v.errno;
    switch (v.class) {
      case 'verifier':
        out = new VerifierError(v.message, { program: v.program ?? '', log: v.log ?? '', truncated: v.truncated ?? false }, opts);
        break;
      case 'permission':
        out = new PermissionError(v.message, v.capability ?? 'CAP_BPF', opts);
        break;
      case 'unsupported':
        out = new UnsupportedError(v.message, v.feature ?? 'unknown', opts);
        break;
      case 'invalid':
        out = new InvalidObjectError(v.message, opts);
        break;
      default:
        out = new BpfError(NativeErrorCode.system, v.message, opts);
    }
    if (stackFrom?.stack) out.stack = `${out.name}: ${v.message}\n${stackFrom.stack.split('\n').slice(1).join('\n')}`;
    return out;
  }
  switch (e.code) {
    case NativeErrorCode.verifier:
      out = new VerifierError(message, { program: e.program ?? '', log: e.log ?? '', truncated: e.truncated ?? false }, opts);
      break;
    case NativeErrorCode.permission:
      out = new PermissionError(message, e.capability ?? 'CAP_BPF', opts);
      break;
    case NativeErrorCode.unsupported:
      out = new UnsupportedError(message, e.feature ?? 'unknown', opts);
      break;
    case NativeErrorCode.timeout:
      out = new LoadTimeoutError(message, e.timeoutMs ?? 0, e.elapsedMs ?? 0, opts);
      break;
    case NativeErrorCode.invalid:
      out = new InvalidObjectError(message, opts);
      break;
    case NativeErrorCode.closed:
      out = new ClosedError(message);
      break;
    default:
      out = new BpfError(e.code ?? NativeErrorCode.system, message, opts);
  }
  if (stackFrom?.stack) out.stack = `${out.name}: ${message}\n${stackFrom.stack.split('\n').slice(1).join('\n')}`;
  return out;
}
