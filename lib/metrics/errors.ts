/**
 * Errors of the metric readers that are neither bad options (`ConfigError`), eBPF failures
 * (`BpfError` and subclasses) nor unresolved cgroups (`CgroupNotFoundError`).
 * @module
 */
import { SmoothtaskError, type SmoothtaskErrorOptions } from '../errors/index.js';

/**
 * A metric family could not be opened or read: `ERR_METRICS_OPEN` (a required family failed
 * to open; `cause` is why), `ERR_METRICS_SOURCE` (a kernel file did not have the expected
 * content), `ERR_METRICS_INTERNAL` (a broken invariant of a reader factory).
 */
export class MetricsError extends SmoothtaskError {
  /** Creates the error with its stable `code`. */
  constructor(code: 'ERR_METRICS_OPEN' | 'ERR_METRICS_SOURCE' | 'ERR_METRICS_INTERNAL', message: string, options: SmoothtaskErrorOptions = {}) {
    super(code, message, options);
  }
}
