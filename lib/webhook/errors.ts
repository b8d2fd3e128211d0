/**
 * Errors of the webhook module.
 * @module
 */
import { SmoothtaskError, type SmoothtaskErrorOptions } from '../errors/index.js';

/** `verifyWebhook()` rejected a request (bad or missing headers, stale timestamp, wrong signature). */
export class WebhookVerificationError extends SmoothtaskError {
  /** Creates the error. */
  constructor(message: string) {
    super('ERR_WEBHOOK_VERIFY', message);
  }
}

/** The SSRF guard refused to connect to an address. */
export class SsrfBlockedError extends SmoothtaskError {
  /** The host name asked for. */
  readonly host: string;
  /** The address that was refused. */
  readonly address: string;
  /** Creates the error. */
  constructor(host: string, address: string) {
    super('ERR_WEBHOOK_SSRF_BLOCKED', `Refusing to connect to ${host} (${address}): address is blocked by the webhook network policy`);
    this.host = host;
    this.address = address;
  }
}

/**
 * A delivery failed (network error, timeout or non-2xx status). The one delivery error class
 * of smoothtask: `smoothtask/notify` re-exports this class.
 */
export class WebhookDeliveryError extends SmoothtaskError {
  /** HTTP status, when a response arrived. */
  readonly status: number | undefined;
  /** Attempts made, when the error ends a series of attempts (the in-memory sender). */
  readonly attempts: number | undefined;
  /** Creates the error. */
  constructor(message: string, status?: number, options: SmoothtaskErrorOptions & { attempts?: number } = {}) {
    super('ERR_WEBHOOK_DELIVERY', message, options);
    this.status = status;
    this.attempts = options.attempts;
  }
}
