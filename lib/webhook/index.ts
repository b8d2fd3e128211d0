/**
 * smoothtask/webhook: Standard Webhooks signing and verification, and a durable dispatcher
 * (ordered per key, at-least-once, retried with backoff, Retry-After, 410 disables, SSRF
 * guard in the connect-time lookup; a refused address fails once, permanently) shared by task
 * events and alert notifications, and an in-memory sender over the same request code.
 * @module
 */
export { generateWebhookSecret, signWebhook, webhookHeaders, webhookKey, verifyWebhook } from './signature.js';
export type { VerifyWebhookOptions, VerifiedWebhook } from './signature.js';
export { WebhookVerificationError, SsrfBlockedError, WebhookDeliveryError } from './errors.js';
export { NetworkPolicySchema, SPECIAL_PURPOSE_RANGES, createAddressGuard, embeddedIPv4, embeddedIPv4Addresses, guardedLookup, checkLiteralHost } from './ssrf.js';
export type { NetworkPolicy, AddressGuard, LookupCb } from './ssrf.js';
export {
  WebhookDispatcher,
  WebhookDispatcherOptionsSchema,
  EndpointSchema,
  WEBHOOK_CHANNELS,
} from './dispatcher.js';
export { postWebhook, parseRetryAfter } from './post.js';
export type { PostWebhookRequest, PostWebhookResult } from './post.js';
export { standardWebhookSender } from './sender.js';
export type { StandardWebhookSenderOptions, WebhookMessage, WebhookSender } from './sender.js';
export type { WebhookDispatcherOptions, Endpoint, EndpointInput, DeliveryEvent, WebhookEvent, SendOptions } from './dispatcher.js';
export { forwardTaskEvents } from './task-events.js';
export type { TaskWebhookData, ForwardableQueue } from './task-events.js';
