/**
 * Alert rule configuration: zod schemas (JSON-safe forms plus a function form for code).
 * @module
 */
import { z } from 'zod';
import type { Labels, Sample, ScalarSample } from '../aggregate/samples.js';
import { ConfigError } from '../errors/index.js';

const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;

/** Parses `250ms`, `5s`, `1.5m`, `2h` (or a number of ms) into milliseconds. */
export function parseDuration(d: number | string): number {
  if (typeof d === 'number') return d;
  const m = DURATION_RE.exec(d.trim());
  if (!m) throw new ConfigError(`invalid duration ${JSON.stringify(d)} (a number of ms, or like 500ms, 5s, 1m, 2h)`, [`duration: ${JSON.stringify(d)}`]);
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * mult;
}

/** A duration as written: milliseconds, or a string like `5s`, `1m`, `250ms`, `2h`. */
export type Duration = number | string;

/** Zod schema of {@link Duration}; parses to milliseconds. */
export const DurationSchema: z.ZodType<number, Duration> = z
  .union([z.number().nonnegative(), z.string().regex(DURATION_RE, 'a duration like 500ms, 5s, 1m, 2h')])
  .transform((d) => parseDuration(d));

/** Comparison operators. */
export const OPS = ['>', '>=', '<', '<=', '==', '!='] as const;
/** A comparison operator. */
export type Op = (typeof OPS)[number];
/** Zod schema of {@link Op}. */
export const OpSchema: z.ZodType<Op> = z.enum(OPS);

/** Applies a comparison operator. */
export function compare(a: number, op: Op, b: number): boolean {
  switch (op) {
    case '>':
      return a > b;
    case '>=':
      return a >= b;
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '==':
      return a === b;
    case '!=':
      return a !== b;
  }
}

/** Label matchers: each label must equal the string, or be one of the array's strings. */
export type Matchers = Record<string, string | string[]>;

/** Samples by dotted name (`cpu.utilisation`, as `flattenSnapshot` names them) and label matchers. */
export interface Selector {
  /** Dotted sample name `<family>.<field>…`. */
  metric: string;
  /** Label matchers. */
  labels?: Matchers;
}

/** Hysteresis: once active, the alert only resolves when `value <op> value` holds. */
export interface Resolve {
  /** Operator of the resolve condition; default: the opposite direction of the firing op (`>` → `<`). */
  op?: Op;
  /** Resolve threshold. */
  value: number;
}

/** `{ metric, labels?, op, value, resolve? }`: a threshold on a scalar value. */
export interface ThresholdExpr extends Selector {
  /** Comparison. */
  op: Op;
  /** Threshold. */
  value: number;
  /** Hysteresis. */
  resolve?: Resolve;
}

/** The selector of a rate expression. */
export interface RateSelector<D = Duration> extends Selector {
  /** Range the rate is computed over. */
  window: D;
}

/** `{ rate: { metric, labels?, window }, op, value }`: per-second rate of a counter over a window. */
export interface RateExpr<D = Duration> {
  /** What to take the rate of. */
  rate: RateSelector<D>;
  /** Comparison. */
  op: Op;
  /** Threshold. */
  value: number;
  /** Hysteresis. */
  resolve?: Resolve;
}

/** The selector of a percentile expression. */
export interface PercentileSelector<D = Duration> extends Selector {
  /** Quantile, 0..1. */
  q: number;
  /** Take the quantile of the histogram's increase over this window (default: of the whole histogram). */
  window?: D;
}

/** `{ percentile: { metric, labels?, q, window? }, op, value }`: a quantile of a log2 histogram. */
export interface PercentileExpr<D = Duration> {
  /** Which histogram and quantile. */
  percentile: PercentileSelector<D>;
  /** Comparison. */
  op: Op;
  /** Threshold. */
  value: number;
  /** Hysteresis. */
  resolve?: Resolve;
}

/** `{ absent: { metric, labels? } }`: true while no sample matches. */
export interface AbsentExpr {
  /** What must be present. */
  absent: Selector;
}

/**
 * `{ fn, op?, value? }` (code only): `fn(ctx)` returns a boolean (condition), a number (compared
 * with `op`/`value`, or non-zero), or labelled values (one alert per label set).
 */
export interface FnExpr {
  /** The function. */
  fn: (ctx: RuleContext) => RuleFnResult;
  /** Comparison for numeric results. */
  op?: Op;
  /** Threshold for numeric results. */
  value?: number;
  /** Hysteresis. */
  resolve?: Resolve;
}

/** A value an event field is matched against. */
export type EventMatchValue = string | number | boolean | Array<string | number | boolean>;

/** Which events an event rule counts. */
export interface EventSelector {
  /** Name the event source was added under. */
  source: string;
  /** Field equality (an array = any of). */
  match?: Record<string, EventMatchValue>;
  /** Code-only predicate. */
  where?: (event: Record<string, unknown>) => boolean;
}

/** The count condition of an event rule. */
export interface EventCount<D = Duration> {
  /** Comparison (default `>=`). */
  op?: Op;
  /** Threshold. */
  value: number;
  /** Window the events are counted in. */
  window: D;
}

/**
 * `{ event: { source, match?, where? }, count: { op, value, window }, groupBy? }`: how many
 * matching events arrived in the window (OOM kills, exits by signal, TCP retransmits…).
 */
export interface EventExpr<D = Duration> {
  /** Which events. */
  event: EventSelector;
  /** The condition on their count. */
  count: EventCount<D>;
  /** Event fields that split alerts (each distinct value set is its own alert), e.g. `['comm']`. */
  groupBy?: string[];
}

/** Any rule expression, as written. */
export type ExprConfig = ThresholdExpr | RateExpr | PercentileExpr | AbsentExpr | FnExpr | EventExpr;
/** Any rule expression, validated (durations in ms). */
export type Expr = ThresholdExpr | RateExpr<number> | PercentileExpr<number> | AbsentExpr | FnExpr | EventExpr<number>;

const MatchersSchema = z.record(z.string(), z.union([z.string(), z.array(z.string())]));
const sel = { metric: z.string().min(1), labels: MatchersSchema.optional() };
const ResolveSchema = z.object({ op: z.enum(OPS).optional(), value: z.number() }).strict();
const cmp = { op: z.enum(OPS), value: z.number(), resolve: ResolveSchema.optional() };
const isFn = <T>(what: string) => z.custom<T>((v) => typeof v === 'function', `${what} must be a function`);
const scalar = z.union([z.string(), z.number(), z.boolean()]);

/** Zod schema of {@link ExprConfig}; parses to {@link Expr}. */
export const ExprSchema: z.ZodType<Expr, ExprConfig> = z.union([
  z.object({ ...sel, ...cmp }).strict(),
  z.object({ rate: z.object({ ...sel, window: DurationSchema }).strict(), ...cmp }).strict(),
  z.object({ percentile: z.object({ ...sel, q: z.number().min(0).max(1), window: DurationSchema.optional() }).strict(), ...cmp }).strict(),
  z.object({ absent: z.object(sel).strict() }).strict(),
  z.object({ fn: isFn<(ctx: RuleContext) => RuleFnResult>('fn'), op: z.enum(OPS).optional(), value: z.number().optional(), resolve: ResolveSchema.optional() }).strict(),
  z
    .object({
      event: z
        .object({
          source: z.string().min(1),
          match: z.record(z.string(), z.union([scalar, z.array(scalar)])).optional(),
          where: isFn<(event: Record<string, unknown>) => boolean>('where').optional(),
        })
        .strict(),
      count: z.object({ op: z.enum(OPS).default('>='), value: z.number(), window: DurationSchema }).strict(),
      groupBy: z.array(z.string()).optional(),
    })
    .strict(),
]);

/** One alert rule, as written (JSON or code). */
export interface RuleConfig {
  /** Alert name (the `alertname` label): letters, digits, `_ . -`. */
  name: string;
  /** The condition. */
  expr: ExprConfig;
  /** How long the condition must hold before the alert fires (pending until then; default 0). */
  for?: Duration;
  /** Keep firing this long after the condition clears (Prometheus `keep_firing_for`; default 0). */
  keepFiringFor?: Duration;
  /** Labels added to the alert (`severity`…). */
  labels?: Record<string, string>;
  /** Annotations; `{{ $value }}` and `{{ $labels.x }}` are expanded. */
  annotations?: Record<string, string>;
}

/** A validated rule (durations in ms, defaults filled). */
export interface Rule {
  /** Alert name. */
  name: string;
  /** The condition. */
  expr: Expr;
  /** `for`, ms. */
  for: number;
  /** `keepFiringFor`, ms. */
  keepFiringFor: number;
  /** Labels. */
  labels: Record<string, string>;
  /** Annotation templates. */
  annotations: Record<string, string>;
}

/** Zod schema of {@link RuleConfig}; parses to {@link Rule}. */
export const RuleSchema: z.ZodType<Rule, RuleConfig> = z
  .object({
    name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, 'letters, digits, _ . -'),
    expr: ExprSchema,
    for: DurationSchema.default(0),
    keepFiringFor: DurationSchema.default(0),
    labels: z.record(z.string(), z.string()).default({}),
    annotations: z.record(z.string(), z.string()).default({}),
  })
  .strict();

/** Grouping and throttling of notifications (Alertmanager's route options), as written. */
export interface RouteConfig {
  /** Labels that form a group (default `['alertname']`); `['...']` groups by every label. */
  groupBy?: string[];
  /** Wait before the first notification of a new group (default 0). */
  groupWait?: Duration;
  /** Minimum time between notifications of a group when its alerts change (default 5 s). */
  groupInterval?: Duration;
  /** Minimum time before an unchanged notification is sent again (default 1 h). */
  repeatInterval?: Duration;
}

/** Validated route options (ms). */
export interface Route {
  /** Grouping labels. */
  groupBy: string[];
  /** Group wait, ms. */
  groupWait: number;
  /** Group interval, ms. */
  groupInterval: number;
  /** Repeat interval, ms. */
  repeatInterval: number;
}

const ROUTE_DEFAULT = { groupBy: ['alertname'], groupWait: 0, groupInterval: 5000, repeatInterval: 3_600_000 };

/** Zod schema of {@link RouteConfig}; parses to {@link Route}. */
export const RouteSchema: z.ZodType<Route, RouteConfig> = z
  .object({
    groupBy: z.array(z.string()).default(ROUTE_DEFAULT.groupBy),
    groupWait: DurationSchema.default(ROUTE_DEFAULT.groupWait),
    groupInterval: DurationSchema.default(ROUTE_DEFAULT.groupInterval),
    repeatInterval: DurationSchema.default(ROUTE_DEFAULT.repeatInterval),
  })
  .strict();

/** The whole notify config (the JSON file form). */
export interface NotifyConfig {
  /** Alert rules. */
  rules?: RuleConfig[];
  /** Grouping/throttling. */
  route?: RouteConfig;
  /** How often rules are evaluated (default 1 s). */
  evaluationInterval?: Duration;
  /** How long resolved alerts are remembered (default 15 min). */
  resolvedRetention?: Duration;
}

/** A validated notify config. */
export interface NotifyConfigParsed {
  /** Rules. */
  rules: Rule[];
  /** Route. */
  route: Route;
  /** Evaluation interval, ms. */
  evaluationInterval: number;
  /** Resolved retention, ms. */
  resolvedRetention: number;
}

/** Zod schema of {@link NotifyConfig}; parses to {@link NotifyConfigParsed}. */
export const NotifyConfigSchema: z.ZodType<NotifyConfigParsed, NotifyConfig> = z
  .object({
    rules: z.array(RuleSchema).default([]),
    route: RouteSchema.default(ROUTE_DEFAULT),
    evaluationInterval: DurationSchema.default(1000),
    resolvedRetention: DurationSchema.default(900_000),
  })
  .strict();

/** What a function expression receives. */
export interface RuleContext {
  /** Evaluation time (engine clock, ms). */
  now: number;
  /** Every sample of this evaluation. */
  samples: readonly Sample[];
  /** Scalar samples by name and matchers. */
  get(metric: string, labels?: Record<string, string | readonly string[]>): ScalarSample[];
}

/** One labelled value a function expression may return. */
export interface LabelledValue {
  /** Labels of this alert. */
  labels?: Labels;
  /** Its value (a boolean is the condition itself). */
  value: number | boolean;
}

/** What a function expression may return. */
export type RuleFnResult = boolean | number | LabelledValue[];
