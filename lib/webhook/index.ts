/**
 * smoothtask/webhook: Standard Webhooks signing and verification, and a durable dispatcher
 * (ordered per key, at-least-once, retried with backoff, Retry-After, 410 disables, SSRF
 * guard in the connect-time lookup) shared by task events and alert notifications.
 * @module
 */
export { generateWebhookSecret, signWebhook, webhookHeaders, verifyWebhook } from './signature.js';
export type { VerifyWebhookOptions, VerifiedWebhook } from './signature.js';
export { WebhookVerificationError, SsrfBlockedError, WebhookDeliveryError } from './errors.js';
export { NetworkPolicySchema, createAddressGuard, guardedLookup, checkLiteralHost } from './ssrf.js';
export type { NetworkPolicy, AddressGuard, LookupCb } from './ssrf.js';
export {
  WebhookDispatcher,
  WebhookDispatcherOptionsSchema,
  EndpointSchema,
  WEBHOOK_CHANNELS,
  parseRetryAfter,
} from './dispatcher.js';
export type { WebhookDispatcherOptions, Endpoint, EndpointInput, DeliveryEvent, WebhookEvent, SendOptions } from './dispatcher.js';
export { forwardTaskEvents } from './task-events.js';
export type { TaskWebhookData, ForwardableQueue } from './task-events.js';
