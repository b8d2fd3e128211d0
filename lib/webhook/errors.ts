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

/** One delivery attempt failed (network error, timeout or non-2xx status). */
export class WebhookDeliveryError extends SmoothtaskError {
  /** HTTP status, when a response arrived. */
  readonly status: number | undefined;
  /** Creates the error. */
  constructor(message: string, status?: number, options: SmoothtaskErrorOptions = {}) {
    super('ERR_WEBHOOK_DELIVERY', message, options);
    this.status = status;
  }
}
