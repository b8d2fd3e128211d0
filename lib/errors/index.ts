/**
 * The one error base class of smoothtask. Every error the library throws or rejects with
 * extends {@link SmoothtaskError} and carries a stable string `code`.
 *
 * `instanceof` works across the ESM and CJS copies of the package (and across duplicated
 * installs) because each class is branded with a `Symbol.for` key and checks the brand.
 * @module
 */

const BRAND = Symbol.for('smoothtask.error');

/** Options accepted by every smoothtask error constructor. */
export interface SmoothtaskErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
  /** The OS errno (positive) when the failure came from a system call. */
  errno?: number;
}

/**
 * Base class of every error thrown by smoothtask.
 *
 * @example
 * ```ts
 * try { await loadObject('x.bpf.o'); }
 * catch (e) { if (e instanceof SmoothtaskError) console.error(e.code, e.message); }
 * ```
 */
export class SmoothtaskError extends Error {
  /** A stable, machine-readable code such as `ERR_BPF_VERIFIER`. */
  readonly code: string;
  /** The OS errno (positive) when the failure came from a system call. */
  readonly errno?: number;

  /** Creates an error with a stable `code`, a message, and optionally a cause and an errno. */
  constructor(code: string, message: string, options: SmoothtaskErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    if (options.errno !== undefined) this.errno = options.errno;
    Object.defineProperty(this, BRAND, { value: brandsOf(new.target), enumerable: false });
    this.name = new.target.name;
  }

  /** Brand-based check so `instanceof` survives separate copies of this module. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (value === null || typeof value !== 'object') return false;
    const brands = (value as Record<symbol, unknown>)[BRAND];
    if (!Array.isArray(brands)) return Function.prototype[Symbol.hasInstance].call(this, value);
    return brands.includes(this.name);
  }
}

function brandsOf(ctor: Function): string[] {
  const names: string[] = [];
  let c: unknown = ctor;
  while (typeof c === 'function' && c !== Error && c !== Function.prototype) {
    names.push((c as Function).name);
    c = Object.getPrototypeOf(c);
  }
  return names;
}

/** Thrown when options passed to a smoothtask API fail validation. */
export class ConfigError extends SmoothtaskError {
  /** Each problem found, as `path: message`. */
  readonly issues: string[];
  /** Creates a configuration error listing each problem as `path: message`. */
  constructor(message: string, issues: string[] = [], options: SmoothtaskErrorOptions = {}) {
    super('ERR_CONFIG', message, options);
    this.issues = issues;
  }
}

/**
 * Thrown (code `ERR_MISSING_PEER`) when a feature needs an optional peer dependency that is
 * not installed: `dockerode` for `smoothtask/docker`, `bullmq` and `ioredis` for
 * `smoothtask/fleet`. The message names the package and the command that installs it.
 */
export class MissingPeerError extends SmoothtaskError {
  /** The packages the feature needs. */
  readonly packages: string[];
  /** The package that could not be found. */
  readonly missing: string;
  /** The command that installs {@link MissingPeerError.packages}, e.g. `npm install dockerode@^4.0.8`. */
  readonly install: string;
  /** Creates the error for `feature`, which needs `packages`, of which `missing` is not installed. */
  constructor(feature: string, packages: string[], missing: string, install: string, options: SmoothtaskErrorOptions = {}) {
    const needs = packages.length > 1 ? `the optional peer dependencies ${packages.join(' and ')}` : `the optional peer dependency ${missing}`;
    super('ERR_MISSING_PEER', `${feature} needs ${needs}, and '${missing}' is not installed; install ${packages.length > 1 ? 'them' : 'it'} with \`${install}\``, options);
    this.packages = packages;
    this.missing = missing;
    this.install = install;
  }
}
