/**
 * Exponential backoff shared by the task queue, the webhook dispatcher and the supervisor.
 * Internal; re-exported from `smoothtask/task`, where it has always been public.
 * @module
 */

/** Backoff parameters. */
export interface BackoffOptions {
  /** Delay before the first retry, before jitter. */
  baseMs: number;
  /** Upper bound of any delay. */
  maxMs: number;
  /** Growth per retry (default 2). */
  factor?: number;
  /**
   * `full` (default): uniform in [0, cap] (AWS "full jitter", best at spreading herds);
   * `equal`: cap/2 + uniform in [0, cap/2] (never collapses to ~0); `none`: the cap itself.
   */
  jitter?: 'full' | 'equal' | 'none';
}

/**
 * Delay before retry number `retry` (0 for the first retry):
 * `cap = min(maxMs, baseMs * factor^retry)`, then jitter.
 */
export function backoffDelay(retry: number, options: BackoffOptions, random: () => number = Math.random): number {
  const factor = options.factor ?? 2;
  const cap = Math.min(options.maxMs, options.baseMs * Math.pow(factor, Math.max(0, retry)));
  switch (options.jitter ?? 'full') {
    case 'none':
      return cap;
    case 'equal':
      return cap / 2 + random() * (cap / 2);
    default:
      return random() * cap;
  }
}
