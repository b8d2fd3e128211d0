/**
 * Errors of the process module.
 * @module
 */
import { SmoothtaskError, type SmoothtaskErrorOptions } from '../errors/index.js';

/** A task cgroup could not be created, joined, limited or emptied, or a limit cannot be enforced here. */
export class CgroupError extends SmoothtaskError {
  /** Creates the error. */
  constructor(message: string, options: SmoothtaskErrorOptions = {}) {
    super('ERR_PROCESS_CGROUP', message, options);
  }
}

/** The command of a process task could not be started (not found, not executable). */
export class ProcessSpawnError extends SmoothtaskError {
  /** The command. */
  readonly command: string;
  /** Creates the error. */
  constructor(command: string, message: string, options: SmoothtaskErrorOptions = {}) {
    super('ERR_PROCESS_SPAWN', message, options);
    this.command = command;
  }
}

/** A supervisor health check ran past its `timeoutMs` (the abort reason of the check). */
export class HealthCheckTimeoutError extends SmoothtaskError {
  /** Creates the error. */
  constructor(timeoutMs: number) {
    super('ERR_PROCESS_HEALTH_TIMEOUT', `health check timed out after ${timeoutMs} ms`);
  }
}

/** Signalling a process or process group failed for another reason than "it is gone" (e.g. EPERM). */
export class ProcessSignalError extends SmoothtaskError {
  /** Creates the error. */
  constructor(message: string, options: SmoothtaskErrorOptions = {}) {
    super('ERR_PROCESS_SIGNAL', message, options);
  }
}
