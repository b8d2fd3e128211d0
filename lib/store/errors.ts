/**
 * Errors of the store.
 * @module
 */
import { SmoothtaskError, type SmoothtaskErrorOptions } from '../errors/index.js';

/**
 * A document could not be parsed or did not match its schema. The bad file was moved aside
 * to {@link StoreCorruptError.movedTo} (never overwritten); the key now reads as absent.
 */
export class StoreCorruptError extends SmoothtaskError {
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
export class StoreLockError extends SmoothtaskError {
  /** The locked document's path. */
  readonly path: string;
  /** Creates the error. */
  constructor(path: string, message: string, options: SmoothtaskErrorOptions = {}) {
    super('ERR_STORE_LOCK', `Store lock on ${path}: ${message}`, options);
    this.path = path;
  }
}

/** The store was closed. */
export class StoreClosedError extends SmoothtaskError {
  /** Creates the error. */
  constructor() {
    super('ERR_STORE_CLOSED', 'The store is closed');
  }
}
