/**
 * `smoothtask/notify`: alert rules over any reader's values and over eBPF event streams
 * (threshold, rate, percentile, absence, event counts, or a function), with `for` durations,
 * hysteresis and labels; Prometheus' alert states; grouped, deduplicated, throttled
 * notifications to callbacks, emitters, log lines and signed webhooks.
 * @module
 */
export { parseDuration, compare, OPS, DurationSchema, OpSchema, ExprSchema, RuleSchema, RouteSchema, NotifyConfigSchema } from './schema.js';
export type {
  Duration,
  Op,
  Matchers,
  Selector,
  Resolve,
  ThresholdExpr,
  RateSelector,
  RateExpr,
  PercentileSelector,
  PercentileExpr,
  AbsentExpr,
  FnExpr,
  EventMatchValue,
  EventSelector,
  EventCount,
  EventExpr,
  ExprConfig,
  Expr,
  RuleConfig,
  Rule,
  RouteConfig,
  Route,
  NotifyConfig,
  NotifyConfigParsed,
  RuleContext,
  RuleFnResult,
  LabelledValue,
} from './schema.js';
export { NotificationDispatcher } from './dispatcher.js';
export type { NotifiedAlert, Notification } from './dispatcher.js';
export { AlertEngine, NOTIFY_CHANNELS, expand } from './engine.js';
export type { AlertState, Alert, AlertTransition, Notifier, AlertEngineOptions, SampleFn, EngineStats } from './engine.js';
export { callbackNotifier, emitterNotifier, logNotifier, formatNotificationLines, webhookNotifier, dispatcherSender } from './notifiers.js';
export type { LogNotifierOptions, WebhookNotifierOptions, WebhookDispatcherLike } from './notifiers.js';
// The webhook notifier sends through smoothtask/webhook; these are the same functions and
// classes as there, re-exported under their old names for compatibility.
export { webhookKey, signWebhook } from '../webhook/signature.js';
export { standardWebhookSender } from '../webhook/sender.js';
export type { WebhookMessage, WebhookSender, StandardWebhookSenderOptions } from '../webhook/sender.js';
export { WebhookDeliveryError } from '../webhook/errors.js';
