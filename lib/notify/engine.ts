/**
 * The alert engine: evaluates rules over readers' samples and event streams, keeps each
 * alert's state (inactive → pending → firing → resolved, as Prometheus alerting defines them),
 * and hands firing/resolved alerts to the grouping dispatcher and the notifiers.
 * @module
 */
import { channel } from 'node:diagnostics_channel';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { histogramDelta, histogramPercentile } from '../aggregate/histogram.js';
import { flattenSnapshot, labelsKey, labelsMatch, type Labels, type Sample, type ScalarSample, type SnapshotSource } from '../aggregate/samples.js';
import { rateOver } from '../aggregate/series.js';
import { validate } from '../errors/validate.js';
import { NotificationDispatcher, type NotifiedAlert, type Notification } from './dispatcher.js';
import {
  compare,
  NotifyConfigSchema,
  RuleSchema,
  type AbsentExpr,
  type EventExpr,
  type Expr,
  type FnExpr,
  type NotifyConfig,
  type Op,
  type Rule,
  type RuleConfig,
  type RuleContext,
  type PercentileExpr,
  type RateExpr,
  type ThresholdExpr,
} from './schema.js';

/** diagnostics_channel names published by the engine. */
export const NOTIFY_CHANNELS = {
  /** An alert changed state: `{ alert, from, to }`. */
  alert: 'smoothtask:notify:alert',
  /** A notification was produced: `Notification`. */
  notification: 'smoothtask:notify:notification',
  /** A source, rule or notifier failed: `{ where, name, error }`. */
  error: 'smoothtask:notify:error',
} as const;
const chAlert = channel(NOTIFY_CHANNELS.alert);
const chNotification = channel(NOTIFY_CHANNELS.notification);
const chError = channel(NOTIFY_CHANNELS.error);

/** Alert states as Prometheus alerting defines them (`inactive` = no alert object). */
export type AlertState = 'inactive' | 'pending' | 'firing' | 'resolved';

/** An alert: one rule × one label set. */
export interface Alert {
  /** Rule name. */
  rule: string;
  /** Current state. */
  state: AlertState;
  /** Labels: rule labels + series labels + `alertname`. */
  labels: Labels;
  /** Expanded annotations. */
  annotations: Record<string, string>;
  /** Last evaluated value. */
  value: number;
  /** Since when the condition holds (pending began). */
  activeAt: number;
  /** When it started firing. */
  firedAt?: number;
  /** When it resolved. */
  resolvedAt?: number;
  /** Last time the condition held. */
  lastActiveAt: number;
  /** Stable id of the label set. */
  fingerprint: string;
}

/** A state change, emitted as `'alert'`. */
export interface AlertTransition {
  /** The alert after the change. */
  alert: Alert;
  /** Previous state. */
  from: AlertState;
  /** New state. */
  to: AlertState;
}

/** Receives notifications. */
export interface Notifier {
  /** Name for diagnostics. */
  readonly name: string;
  /** Delivers one notification; a rejection is counted and published, never thrown at the engine. */
  notify(n: Notification): void | Promise<void>;
  /** Optional cleanup. */
  close?(): void | Promise<void>;
}

/** Counters of an {@link AlertEngine}. */
export interface EngineStats {
  /** Full evaluations run. */
  evaluations: number;
  /** Source reads that failed. */
  sourceErrors: number;
  /** Rule evaluations that threw. */
  ruleErrors: number;
  /** Notifier calls that failed. */
  notifierErrors: number;
  /** Notifications produced. */
  notifications: number;
  /** Events received. */
  events: number;
}

/** Options of {@link AlertEngine}. */
export interface AlertEngineOptions extends NotifyConfig {
  /** Notifiers to start with. */
  notifiers?: Notifier[];
  /** Clock in ms (default `Date.now`); inject a fake one in tests. */
  now?: () => number;
}

interface Entry extends Alert {
  seenAt: number;
}

/**
 * A FIFO of time-ordered items with O(1) amortised removal from the front (an array and a
 * head index, compacted when the dead prefix is the larger half): windows drop their oldest
 * items on every evaluation, where `Array.shift()` would copy the whole window each time.
 */
class Window<T> {
  #items: T[] = [];
  #head = 0;
  get size(): number {
    return this.#items.length - this.#head;
  }
  push(item: T): void {
    this.#items.push(item);
  }
  first(): T | undefined {
    return this.#items[this.#head];
  }
  last(): T | undefined {
    return this.size ? this.#items[this.#items.length - 1] : undefined;
  }
  /** Drops items from the front while `old(item)` holds, keeping at least `keep`. */
  dropWhile(old: (item: T) => boolean, keep = 0): void {
    while (this.size > keep && old(this.#items[this.#head]!)) this.#head++;
    if (this.#head > 64 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
  }
  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.#head; i < this.#items.length; i++) yield this.#items[i]!;
  }
}

/**
 * Event times of one group of an event-count rule, as (time, count) runs: events recorded at
 * the same time (a batch) take one slot, and the count is kept, not recounted.
 */
class TimeCounts {
  #times: number[] = [];
  #counts: number[] = [];
  #head = 0;
  #total = 0;
  /** Events in the window. */
  get size(): number {
    return this.#total;
  }
  push(t: number, n = 1): void {
    const last = this.#times.length - 1;
    if (last >= this.#head && this.#times[last] === t) this.#counts[last]! += n;
    else {
      this.#times.push(t);
      this.#counts.push(n);
    }
    this.#total += n;
  }
  /** Drops the events at or before `cutoff`. */
  dropUpTo(cutoff: number): void {
    while (this.#head < this.#times.length && this.#times[this.#head]! <= cutoff) this.#total -= this.#counts[this.#head++]!;
    if (this.#head > 64 && this.#head * 2 > this.#times.length) {
      this.#times = this.#times.slice(this.#head);
      this.#counts = this.#counts.slice(this.#head);
      this.#head = 0;
    }
  }
}

interface EventBucket {
  labels: Labels;
  times: TimeCounts;
}

/** What each kind of expression is: the key its config object is told apart by. */
type ExprKind = 'event' | 'absent' | 'fn' | 'rate' | 'percentile' | 'threshold';
function exprKind(e: Expr): ExprKind {
  if ('event' in e) return 'event';
  if ('absent' in e) return 'absent';
  if ('fn' in e) return 'fn';
  if ('rate' in e) return 'rate';
  if ('percentile' in e) return 'percentile';
  return 'threshold';
}
/** The expression of kind `K`. */
type ExprOf<K extends ExprKind> = K extends 'event'
  ? EventExpr<number>
  : K extends 'absent'
    ? AbsentExpr
    : K extends 'fn'
      ? FnExpr
      : K extends 'rate'
        ? RateExpr<number>
        : K extends 'percentile'
          ? PercentileExpr<number>
          : ThresholdExpr;

type SeriesResult = { labels: Labels; value: number; fire: boolean; resolve?: boolean };

/** A series compared with its threshold (and, when given, its resolve condition: hysteresis). */
function cmpSeries(labels: Labels, value: number, op: Op, threshold: number, resolve?: { op?: Op | undefined; value: number }): SeriesResult {
  return {
    labels,
    value,
    fire: compare(value, op, threshold),
    ...(resolve ? { resolve: compare(value, resolve.op ?? opposite(op), resolve.value) } : {}),
  };
}

/** A function source: returns samples directly (already named). */
export type SampleFn = () => Sample[] | Promise<Sample[]>;

/**
 * Evaluates alert rules and dispatches notifications.
 *
 * Use it with a real timer (`start()`, evaluation every `evaluationInterval`, unref'd) or
 * drive it yourself with `evaluate(now)` and a fake clock.
 *
 * Events: `'alert'` ({@link AlertTransition}), `'notification'` ({@link Notification}),
 * `'notifierError'` (`{ notifier, error }`). No `'error'` event is ever emitted.
 */
export class AlertEngine extends EventEmitter {
  private readonly rules = new Map<string, Rule>();
  private readonly alertsByRule = new Map<string, Map<string, Entry>>();
  private readonly sources = new Map<string, SampleFn>();
  private readonly eventBuckets = new Map<string, Map<string, EventBucket>>(); // rule → group → times
  /** Event rules by source: an event is matched against its source's rules only. */
  private readonly eventRules = new Map<string, Map<string, Rule>>();
  /** An event rule's `match`, taken apart when the rule is installed (rule name → keys and values). */
  private readonly eventMatchers = new Map<string, CompiledMatch>();
  private readonly history = new Map<string, Window<{ time: number; sample: Sample }>>();
  private readonly historyWindow = new Map<string, number>(); // metric → ms to keep
  private readonly notifiers: Notifier[] = [];
  private readonly dispatcher: NotificationDispatcher;
  private readonly interval: number;
  private readonly retention: number;
  private readonly now: () => number;
  private readonly inflight = new Set<Promise<void>>();
  private readonly abortEvents = new AbortController();
  private chain: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private eventEvalQueued = false;
  private isClosed = false;
  /** Counters for health reporting. */
  readonly stats: EngineStats = { evaluations: 0, sourceErrors: 0, ruleErrors: 0, notifierErrors: 0, notifications: 0, events: 0 };
  /** Sources whose last read failed, with the error message. */
  readonly failingSources = new Map<string, string>();

  /** Creates an engine from a (JSON or code) config; throws `ConfigError` on bad options. */
  constructor(options: AlertEngineOptions = {}) {
    super();
    const { notifiers, now, ...config } = options;
    const cfg = validate(NotifyConfigSchema, config, 'notify config');
    this.dispatcher = new NotificationDispatcher(cfg.route);
    this.interval = cfg.evaluationInterval;
    this.retention = cfg.resolvedRetention;
    this.now = now ?? Date.now;
    for (const r of cfg.rules) this.installRule(r);
    for (const n of notifiers ?? []) this.addNotifier(n);
  }

  /** Adds (or replaces) a rule. */
  addRule(rule: RuleConfig): void {
    this.installRule(validate(RuleSchema, rule, `rule ${JSON.stringify((rule as { name?: unknown }).name)}`));
  }

  private installRule(r: Rule): void {
    this.unindex(r.name);
    this.rules.set(r.name, r);
    if (!this.alertsByRule.has(r.name)) this.alertsByRule.set(r.name, new Map());
    const e = r.expr;
    if ('rate' in e) this.keepHistory(e.rate.metric, e.rate.window);
    if ('percentile' in e && e.percentile.window !== undefined) this.keepHistory(e.percentile.metric, e.percentile.window);
    if ('event' in e) {
      this.eventBuckets.set(r.name, new Map());
      const bySource = this.eventRules.get(e.event.source) ?? new Map<string, Rule>();
      bySource.set(r.name, r);
      this.eventRules.set(e.event.source, bySource);
      if (e.event.match) this.eventMatchers.set(r.name, compileMatch(e.event.match));
    }
  }

  private unindex(name: string): void {
    const old = this.rules.get(name);
    this.eventMatchers.delete(name);
    if (old && 'event' in old.expr) {
      const bySource = this.eventRules.get(old.expr.event.source);
      bySource?.delete(name);
      if (bySource?.size === 0) this.eventRules.delete(old.expr.event.source);
    }
  }

  private keepHistory(metric: string, windowMs: number): void {
    this.historyWindow.set(metric, Math.max(this.historyWindow.get(metric) ?? 0, windowMs));
  }

  /** Removes a rule; its firing alerts resolve at the next notification. */
  removeRule(name: string): void {
    this.unindex(name);
    this.rules.delete(name);
    this.alertsByRule.delete(name);
    this.eventBuckets.delete(name);
  }

  /**
   * Adds a sample source: a reader (any `read()` returning a snapshot, flattened with the
   * snapshot's `family`, or `name` when it has none, as prefix) or a function returning samples.
   */
  addSource(name: string, source: SnapshotSource | SampleFn): void {
    if (typeof source === 'function') {
      this.sources.set(name, source);
      return;
    }
    this.sources.set(name, async () => {
      const snap = await source.read();
      const fam = (snap as { family?: unknown }).family;
      return flattenSnapshot(snap, typeof fam === 'string' ? {} : { prefix: name });
    });
  }

  /** Removes a sample source. */
  removeSource(name: string): void {
    this.sources.delete(name);
    this.failingSources.delete(name);
  }

  /** Adds a notifier. */
  addNotifier(n: Notifier): void {
    this.notifiers.push(n);
  }

  /**
   * Consumes an event stream (e.g. a reader's `events()`, typed `unknown` by the generic
   * reader interface) in the background; events count for the event rules naming `name` as
   * their source. Items that are not objects match no rule and are skipped. Stops at `close()`.
   */
  addEventSource(name: string, events: AsyncIterable<unknown> | ((signal: AbortSignal) => AsyncIterable<unknown>)): void {
    const it = typeof events === 'function' ? events(this.abortEvents.signal) : events;
    const run = async () => {
      try {
        for await (const ev of it) {
          if (this.isClosed) break;
          if (typeof ev === 'object' && ev !== null) this.pushEvent(name, ev);
        }
      } catch (error) {
        if (!this.isClosed) this.reportError('eventSource', name, error);
      }
    };
    void run();
  }

  /**
   * Feeds the event rules of `source` from an async iterable of event batches (arrays), such
   * as `monitor.eventBatches()` or a reader's `eventBatches()`: one promise per batch, none per
   * event. Non-objects in a batch are skipped. Same lifetime as {@link addEventSource}.
   */
  addEventBatchSource(name: string, batches: AsyncIterable<readonly unknown[]> | ((signal: AbortSignal) => AsyncIterable<readonly unknown[]>)): void {
    const it = typeof batches === 'function' ? batches(this.abortEvents.signal) : batches;
    const run = async () => {
      try {
        for await (const batch of it) {
          if (this.isClosed) break;
          if (Array.isArray(batch)) this.pushEvents(name, batch);
        }
      } catch (error) {
        if (!this.isClosed) this.reportError('eventSource', name, error);
      }
    };
    void run();
  }

  /** Records one event from `source` now (what {@link addEventSource} does per event). */
  pushEvent(source: string, event: object): void {
    this.pushEvents(source, [event]);
  }

  /** Records a batch of events from `source`, all at the same time (now); non-objects are skipped. */
  pushEvents(source: string, events: readonly unknown[]): void {
    if (this.isClosed) return;
    let counted = 0;
    for (let i = 0; i < events.length; i++) {
      const ev = events[i];
      if (typeof ev === 'object' && ev !== null) counted++;
    }
    this.stats.events += counted;
    const byName = this.eventRules.get(source);
    if (!counted || !byName?.size) return;
    const t = this.now();
    let matched = false;
    // Rule by rule over the batch: a rule without groupBy adds its matches as one count.
    for (const r of byName.values()) {
      const e = r.expr as EventExpr<number>;
      const buckets = this.eventBuckets.get(r.name)!;
      const grouped = !!e.groupBy?.length;
      const match = this.eventMatchers.get(r.name);
      let n = 0;
      for (let i = 0; i < events.length; i++) {
        const event = events[i];
        if (typeof event !== 'object' || event === null) continue;
        const ev = event as Record<string, unknown>;
        if (match && !eventMatches(ev, match)) continue;
        if (e.event.where) {
          try {
            if (!e.event.where(ev)) continue;
          } catch (error) {
            this.reportError('rule', r.name, error);
            continue;
          }
        }
        if (!grouped) {
          n++;
          continue;
        }
        const labels: Labels = {};
        for (const k of e.groupBy!) labels[k] = ev[k] === undefined ? '' : String(ev[k]);
        this.#bucket(buckets, labelsKey(labels), labels).push(t);
        matched = true;
      }
      if (n) {
        this.#bucket(buckets, '', {}).push(t, n);
        matched = true;
      }
    }
    // evaluate event rules right away (coalesced) so a storm fires without waiting a whole interval
    if (matched && !this.eventEvalQueued) {
      this.eventEvalQueued = true;
      setImmediate(() => {
        this.eventEvalQueued = false;
        if (!this.isClosed) void this.evaluate(this.now(), { eventsOnly: true });
      }).unref();
    }
  }

  #bucket(buckets: Map<string, EventBucket>, key: string, labels: Labels): TimeCounts {
    let b = buckets.get(key);
    if (!b) {
      b = { labels, times: new TimeCounts() };
      buckets.set(key, b);
    }
    return b.times;
  }

  /**
   * One evaluation at `now`: reads every source once, evaluates every rule, updates alert
   * states, and sends the notifications that are due. Evaluations never overlap.
   */
  evaluate(now: number = this.now(), opts: { eventsOnly?: boolean } = {}): Promise<Alert[]> {
    const p = this.chain.then(() => this.evaluateNow(now, opts.eventsOnly ?? false));
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async readSources(now: number): Promise<Sample[]> {
    const all: Sample[] = [];
    await Promise.all(
      [...this.sources].map(async ([name, fn]) => {
        try {
          const s = await fn();
          this.failingSources.delete(name);
          all.push(...s);
        } catch (error) {
          this.stats.sourceErrors++;
          this.failingSources.set(name, error instanceof Error ? error.message : String(error));
          this.reportError('source', name, error);
        }
      }),
    );
    // history for rate / windowed percentile rules
    for (const s of all) {
      const w = this.historyWindow.get(s.name);
      if (w === undefined) continue;
      const k = `${s.name}{${labelsKey(s.labels)}}`;
      const h = this.history.get(k) ?? new Window<{ time: number; sample: Sample }>();
      h.push({ time: now, sample: s });
      h.dropWhile((p) => p.time < now - w, 1);
      this.history.set(k, h);
    }
    for (const [k, h] of this.history) {
      const name = k.slice(0, k.indexOf('{'));
      const w = this.historyWindow.get(name) ?? 0;
      h.dropWhile((p) => p.time < now - w);
      if (!h.size) this.history.delete(k);
    }
    return all;
  }

  private async evaluateNow(now: number, eventsOnly: boolean): Promise<Alert[]> {
    if (this.isClosed) return [];
    const samples = eventsOnly ? [] : await this.readSources(now);
    if (!eventsOnly) this.stats.evaluations++;
    const ctx: RuleContext = {
      now,
      samples,
      get: (metric, labels) => samples.filter((s): s is ScalarSample => s.kind === 'scalar' && s.name === metric && labelsMatch(s.labels, labels)),
    };
    for (const rule of this.rules.values()) {
      const isEvent = 'event' in rule.expr;
      if (eventsOnly && !isEvent) continue;
      let series: SeriesResult[];
      try {
        series = this.seriesOf(rule, ctx);
      } catch (error) {
        this.stats.ruleErrors++;
        this.reportError('rule', rule.name, error);
        continue;
      }
      this.updateStates(rule, series, now);
    }
    this.dispatch(now);
    return this.alerts();
  }

  private seriesOf(rule: Rule, ctx: RuleContext): SeriesResult[] {
    const kind = exprKind(rule.expr);
    return (this.evaluators[kind] as (rule: Rule, e: Expr, ctx: RuleContext) => SeriesResult[])(rule, rule.expr, ctx);
  }

  /** One evaluator per kind of expression: the series it yields at `ctx.now`. */
  private readonly evaluators: { [K in ExprKind]: (rule: Rule, e: ExprOf<K>, ctx: RuleContext) => SeriesResult[] } = {
    event: (rule, e, ctx) => {
      const buckets = this.eventBuckets.get(rule.name)!;
      const out: SeriesResult[] = [];
      for (const [k, b] of buckets) {
        b.times.dropUpTo(ctx.now - e.count.window);
        out.push(cmpSeries(b.labels, b.times.size, e.count.op ?? '>=', e.count.value));
        if (!b.times.size) buckets.delete(k);
      }
      if (!e.groupBy?.length && !out.length) out.push(cmpSeries({}, 0, e.count.op ?? '>=', e.count.value));
      return out;
    },
    absent: (_rule, e, ctx) => {
      const present = ctx.samples.some((s) => s.name === e.absent.metric && labelsMatch(s.labels, e.absent.labels));
      return present ? [] : [{ labels: equalityLabels(e.absent.labels), value: 1, fire: true }];
    },
    fn: (_rule, e, ctx) => {
      const r = e.fn(ctx);
      const one = (labels: Labels, v: number | boolean): SeriesResult => {
        if (typeof v === 'boolean') return { labels, value: v ? 1 : 0, fire: v };
        if (e.op === undefined || e.value === undefined) return { labels, value: v, fire: v !== 0 && !Number.isNaN(v) };
        return cmpSeries(labels, v, e.op, e.value, e.resolve);
      };
      if (Array.isArray(r)) return r.map((x) => one(x.labels ?? {}, x.value));
      return [one({}, r)];
    },
    rate: (_rule, e, ctx) => {
      const out: SeriesResult[] = [];
      for (const [k, h] of this.history) {
        const first = h.first()?.sample;
        if (!first || first.kind !== 'scalar' || first.name !== e.rate.metric || !k.startsWith(`${e.rate.metric}{`)) continue;
        if (!labelsMatch(first.labels, e.rate.labels)) continue;
        if (h.last()!.time !== ctx.now) continue; // series gone in this evaluation
        const pts: Array<{ time: number; value: number }> = [];
        for (const p of h) if (p.time >= ctx.now - e.rate.window) pts.push({ time: p.time, value: (p.sample as ScalarSample).value });
        const r = rateOver(pts);
        if (!Number.isNaN(r)) out.push(cmpSeries(first.labels, r, e.op, e.value, e.resolve));
      }
      return out;
    },
    percentile: (_rule, e, ctx) => {
      const p = e.percentile;
      const out: SeriesResult[] = [];
      for (const s of ctx.samples) {
        if (s.kind !== 'histogram' || s.name !== p.metric || !labelsMatch(s.labels, p.labels)) continue;
        let slots = s.slots;
        if (p.window !== undefined) {
          const oldest = this.history.get(`${s.name}{${labelsKey(s.labels)}}`)?.first()?.sample;
          if (oldest && oldest.kind === 'histogram') slots = histogramDelta(oldest.slots, s.slots);
        }
        const v = histogramPercentile(slots, p.q);
        if (!Number.isNaN(v)) out.push(cmpSeries(s.labels, v, e.op, e.value, e.resolve));
      }
      return out;
    },
    threshold: (_rule, e, ctx) => ctx.get(e.metric, e.labels).map((s) => cmpSeries(s.labels, s.value, e.op, e.value, e.resolve)),
  };

  private updateStates(rule: Rule, series: SeriesResult[], now: number): void {
    const alerts = this.alertsByRule.get(rule.name)!;
    const seen = new Set<string>();
    for (const s of series) {
      const labels: Labels = { ...s.labels, ...rule.labels, alertname: rule.name };
      const fp = labelsKey(labels);
      seen.add(fp);
      const cur = alerts.get(fp);
      const wasActive = cur !== undefined && (cur.state === 'pending' || cur.state === 'firing');
      // hysteresis: once active, only the resolve condition ends it
      const active = wasActive && s.resolve !== undefined ? !s.resolve : s.fire;
      this.step(rule, alerts, fp, labels, active, s.value, now);
    }
    for (const [fp, a] of alerts) if (!seen.has(fp)) this.step(rule, alerts, fp, a.labels, false, a.value, now);
  }

  private step(rule: Rule, alerts: Map<string, Entry>, fp: string, labels: Labels, active: boolean, value: number, now: number): void {
    const cur = alerts.get(fp);
    const from: AlertState = cur?.state ?? 'inactive';
    if (active) {
      if (!cur || cur.state === 'resolved') {
        const a: Entry = { rule: rule.name, state: 'pending', labels, annotations: {}, value, activeAt: now, lastActiveAt: now, fingerprint: fp, seenAt: now };
        alerts.set(fp, a);
        this.transition(a, from, 'pending', rule);
        if (rule.for <= 0) this.fire(a, rule, now);
        return;
      }
      cur.value = value;
      cur.lastActiveAt = now;
      cur.seenAt = now;
      cur.annotations = expand(rule.annotations, cur.labels, value);
      if (cur.state === 'pending' && now - cur.activeAt >= rule.for) this.fire(cur, rule, now);
      return;
    }
    if (!cur) return;
    cur.seenAt = now;
    if (cur.state === 'pending') {
      alerts.delete(fp);
      this.transition({ ...cur, state: 'inactive' }, 'pending', 'inactive', rule);
    } else if (cur.state === 'firing') {
      if (rule.keepFiringFor > 0 && now - cur.lastActiveAt < rule.keepFiringFor) return;
      cur.state = 'resolved';
      cur.resolvedAt = now;
      this.transition(cur, 'firing', 'resolved', rule);
    } else if (cur.state === 'resolved' && now - (cur.resolvedAt ?? now) >= this.retention) {
      alerts.delete(fp);
    }
  }

  private fire(a: Entry, rule: Rule, now: number): void {
    a.state = 'firing';
    a.firedAt = now;
    this.transition(a, 'pending', 'firing', rule);
  }

  private transition(a: Entry | Alert, from: AlertState, to: AlertState, rule: Rule): void {
    a.annotations = expand(rule.annotations, a.labels, a.value);
    const ev: AlertTransition = { alert: publicAlert(a), from, to };
    if (chAlert.hasSubscribers) chAlert.publish(ev);
    this.emit('alert', ev);
  }

  private dispatch(now: number): void {
    const list: NotifiedAlert[] = [];
    for (const alerts of this.alertsByRule.values()) {
      for (const a of alerts.values()) {
        if (a.state !== 'firing' && a.state !== 'resolved') continue;
        list.push({
          status: a.state,
          labels: a.labels,
          annotations: a.annotations,
          startsAt: a.activeAt,
          ...(a.firedAt !== undefined ? { firedAt: a.firedAt } : {}),
          ...(a.resolvedAt !== undefined ? { endsAt: a.resolvedAt } : {}),
          value: a.value,
          fingerprint: a.fingerprint,
        });
      }
    }
    this.dispatcher.ingest(list, now);
    for (const n of this.dispatcher.due(now)) {
      this.stats.notifications++;
      if (chNotification.hasSubscribers) chNotification.publish(n);
      this.emit('notification', n);
      for (const notifier of this.notifiers) {
        const p = (async () => notifier.notify(n))().catch((error: unknown) => {
          this.stats.notifierErrors++;
          this.reportError('notifier', notifier.name, error);
          this.emit('notifierError', { notifier: notifier.name, error });
        });
        this.inflight.add(p);
        void p.finally(() => this.inflight.delete(p));
      }
    }
  }

  private reportError(where: string, name: string, error: unknown): void {
    if (chError.hasSubscribers) chError.publish({ where, name, error });
  }

  /** Every pending, firing and (remembered) resolved alert. */
  alerts(): Alert[] {
    const out: Alert[] = [];
    for (const alerts of this.alertsByRule.values()) for (const a of alerts.values()) out.push(publicAlert(a));
    return out;
  }

  /** Waits until every notifier call started so far has settled. */
  async flush(): Promise<void> {
    await this.chain;
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
  }

  /**
   * Evaluates every `evaluationInterval` on a drift-free schedule with an unref'd timer
   * (the engine never keeps the process alive). Idempotent.
   */
  start(): void {
    if (this.timer || this.isClosed) return;
    const t0 = performance.now();
    let k = 0;
    const tick = () => {
      k++;
      const due = t0 + k * this.interval;
      const now = performance.now();
      if (now > due) k += Math.floor((now - due) / this.interval); // skip missed ticks, keep the grid
      this.timer = setTimeout(() => {
        void this.evaluate().finally(() => {
          if (!this.isClosed && this.timer) tick();
        });
      }, Math.max(0, t0 + k * this.interval - now));
      this.timer.unref();
    };
    void this.evaluate();
    tick();
  }

  /** Stops the timer (evaluation can still be driven by hand). */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Stops evaluating, ends event sources, waits for notifier calls, closes notifiers. Idempotent. */
  async close(): Promise<void> {
    if (this.isClosed) return;
    this.stop();
    await this.flush();
    this.isClosed = true;
    this.abortEvents.abort();
    for (const n of this.notifiers) await n.close?.();
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function publicAlert(a: Entry | Alert): Alert {
  const { seenAt: _s, ...rest } = a as Entry;
  return { ...rest, labels: { ...rest.labels }, annotations: { ...rest.annotations } };
}

function opposite(op: Op): Op {
  switch (op) {
    case '>':
    case '>=':
      return '<';
    case '<':
    case '<=':
      return '>';
    case '==':
      return '!=';
    case '!=':
      return '==';
  }
}

function equalityLabels(m: Record<string, string | readonly string[]> | undefined): Labels {
  const out: Labels = {};
  for (const [k, v] of Object.entries(m ?? {})) if (typeof v === 'string') out[k] = v;
  return out;
}

/** A rule's `match`, taken apart once: each key with its wanted values and their strings. */
type CompiledMatch = Array<{ key: string; values: unknown[]; strings: string[] }>;

function compileMatch(match: Record<string, unknown>): CompiledMatch {
  return Object.keys(match).map((key) => {
    const want = match[key];
    const values = Array.isArray(want) ? [...want] : [want];
    return { key, values, strings: values.map((v) => String(v)) };
  });
}

/** Whether `ev` has, for every key of the match, one of its values (the same, or the same as a string). */
function eventMatches(ev: Record<string, unknown>, match: CompiledMatch): boolean {
  for (let i = 0; i < match.length; i++) {
    const m = match[i]!;
    const have = ev[m.key];
    let ok = false;
    for (let j = 0; j < m.values.length && !ok; j++) ok = m.values[j] === have;
    if (!ok) {
      const hs = String(have);
      for (let j = 0; j < m.strings.length && !ok; j++) ok = m.strings[j] === hs;
    }
    if (!ok) return false;
  }
  return true;
}

/** Expands `{{ $value }}` and `{{ $labels.name }}` in annotation templates. */
export function expand(templates: Record<string, string>, labels: Labels, value: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, t] of Object.entries(templates)) {
    out[k] = t.replace(/\{\{\s*\$(value|labels\.([A-Za-z_][A-Za-z0-9_]*))\s*\}\}/g, (_m, what: string, name?: string) =>
      what === 'value' ? formatValue(value) : (labels[name!] ?? ''),
    );
  }
  return out;
}

function formatValue(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
}
