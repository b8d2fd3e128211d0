/**
 * Errors of the store.
 * @module
 */
import { SmoothtaskError, type SmoothtaskErrorOptions } from '../errors/index.js';

/** Base class of every store error. */
export class StoreError extends SmoothtaskError {
  /** Creates a store error with a stable `code` (`ERR_STORE_*`). */
  constructor(code: string, message: string, options: SmoothtaskErrorOptions = {}) {
    super(code, message, options);
  }
}

/**
 * A system call of the store failed (e.g. `ENOSPC` on a full disk, `EACCES`, `EIO`). The
 * document keeps its previous content, no temp file is left, and the document's lock is
 * released before this is thrown, so another writer can proceed once the cause is fixed.
 */
export class StoreIoError extends StoreError {
  /** The file or directory the failed call was about. */
  readonly path: string;
  /** What the store was doing: `read`, `write` (temp file, fsync, rename, directory fsync), `lock`, `mkdir`, `delete`, `list`. */
  readonly operation: string;
  /** The system error's code, e.g. `ENOSPC` (`errno` holds its number). */
  readonly systemCode: string;
  /** Creates the error from the failed call's Node error (`cause`). */
  constructor(path: string, operation: string, cause: NodeJS.ErrnoException) {
    const systemCode = cause.code ?? 'EIO';
    super('ERR_STORE_IO', `Store ${operation} of ${path} failed: ${systemCode}${cause.message ? ` (${cause.message})` : ''}`, {
      cause,
      ...(typeof cause.errno === 'number' ? { errno: Math.abs(cause.errno) } : {}),
    });
    this.path = path;
    this.operation = operation;
    this.systemCode = systemCode;
  }
}

/**
 * A document could not be parsed or did not match its schema. The bad file was moved aside
 * to {@link StoreCorruptError.movedTo} (never overwritten); the key now reads as absent.
 */
export class StoreCorruptError extends StoreError {
  /** The document's path. */
  readonly path: string;
  /** Where the bad bytes were kept (`<path>.corrupt-<epoch ms>`), or `undefined` if moving failed. */
  readonly movedTo: string | undefined;
  /** `json`: not JSON; `schema`: JSON that failed validation. */
  readonly kind: 'json' | 'schema';
  /** Creates the error. */
  constructor(path: string, movedTo: string | undefined, kind: 'json' | 'schema', options: SmoothtaskErrorOptions = {}) {
    super(
      'ERR_STORE_CORRUPT',
      `Store document ${path} is ${kind === 'json' ? 'not valid JSON' : 'not valid for its schema'}${
        movedTo ? `; moved aside to ${movedTo}` : ''
      }`,
      options,
    );
    this.path = path;
    this.movedTo = movedTo;
    this.kind = kind;
  }
}

/** The inter-process lock could not be taken, or was lost ("compromised") while held. */
export class StoreLockError extends StoreError {
  /** The locked document's path. */
  readonly path: string;
  /** Creates the error. */
  constructor(path: string, message: string, options: SmoothtaskErrorOptions = {}) {
    super('ERR_STORE_LOCK', `Store lock on ${path}: ${message}`, options);
    this.path = path;
  }
}

/** The store was closed. */
export class StoreClosedError extends StoreError {
  /** Creates the error. */
  constructor() {
    super('ERR_STORE_CLOSED', 'The store is closed');
  }
}
