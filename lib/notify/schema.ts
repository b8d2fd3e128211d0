/**
 * Alert rule configuration: zod schemas (JSON-safe forms plus a function form for code).
 * @module
 */
import { z } from 'zod';
import type { Labels, Sample, ScalarSample } from '../aggregate/samples.js';

const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;

/** Parses `250ms`, `5s`, `1.5m`, `2h` (or a number of ms) into milliseconds. */
export function parseDuration(d: number | string): number {
  if (typeof d === 'number') return d;
  const m = DURATION_RE.exec(d.trim());
  if (!m) throw new RangeError(`invalid duration ${JSON.stringify(d)}`);
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * mult;
}

/** A duration: milliseconds, or a string like `5s`, `1m`, `250ms`. Parsed to ms. */
export const DurationSchema = z
  .union([z.number().nonnegative(), z.string().regex(DURATION_RE, 'a duration like 500ms, 5s, 1m, 2h')])
  .transform((d) => parseDuration(d));

/** Comparison operators. */
export const OpSchema = z.enum(['>', '>=', '<', '<=', '==', '!=']);
/** A comparison operator. */
export type Op = z.infer<typeof OpSchema>;

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
export const MatchersSchema = z.record(z.string(), z.union([z.string(), z.array(z.string())]));

/** A selector of samples by dotted name (`cpu.utilisation`) and label matchers. */
export const SelectorSchema = z.object({
  /** Dotted sample name: `<family>.<field>…` as {@link flattenSnapshot} names it. */
  metric: z.string().min(1),
  /** Label matchers. */
  labels: MatchersSchema.optional(),
});

const FnSchema = z.custom<(ctx: RuleContext) => RuleFnResult>((v) => typeof v === 'function', 'a function');

/** Hysteresis: once active, the alert only resolves when `value <op> value` holds. */
export const ResolveSchema = z.object({
  /** Operator of the resolve condition; default: the opposite direction of the firing op (`>` → `<`). */
  op: OpSchema.optional(),
  /** Resolve threshold. */
  value: z.number(),
});

const compareFields = { op: OpSchema, value: z.number(), resolve: ResolveSchema.optional() };

/** `{ metric, labels?, op, value }`: a threshold on a scalar value. */
export const ThresholdExprSchema = SelectorSchema.extend(compareFields).strict();
/** `{ rate: { metric, labels?, window }, op, value }`: per-second rate of a counter over a window. */
export const RateExprSchema = z
  .object({ rate: SelectorSchema.extend({ window: DurationSchema }).strict(), ...compareFields })
  .strict();
/** `{ percentile: { metric, labels?, q, window? }, op, value }`: a quantile of a log2 histogram (over the window's increase when given). */
export const PercentileExprSchema = z
  .object({
    percentile: SelectorSchema.extend({ q: z.number().min(0).max(1), window: DurationSchema.optional() }).strict(),
    ...compareFields,
  })
  .strict();
/** `{ absent: { metric, labels? } }`: true while no sample matches. */
export const AbsentExprSchema = z.object({ absent: SelectorSchema.strict() }).strict();
/**
 * `{ fn, op?, value? }` (code only): `fn(ctx)` returns a boolean (condition), a number (compared
 * with `op`/`value`), or labelled values (one alert per label set).
 */
export const FnExprSchema = z.object({ fn: FnSchema, op: OpSchema.optional(), value: z.number().optional(), resolve: ResolveSchema.optional() }).strict();
/**
 * `{ event: { source, match? }, count: { op, value, window }, groupBy? }`: how many matching
 * events arrived in the window (OOM kills, exits by signal, TCP retransmits…).
 */
export const EventExprSchema = z
  .object({
    event: z
      .object({
        /** Name the event source was added under. */
        source: z.string().min(1),
        /** Field equality (an array = any of). */
        match: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.array(z.union([z.string(), z.number(), z.boolean()]))])).optional(),
        /** Code-only predicate. */
        where: z.custom<(event: Record<string, unknown>) => boolean>((v) => typeof v === 'function', 'a function').optional(),
      })
      .strict(),
    count: z.object({ op: OpSchema.default('>='), value: z.number(), window: DurationSchema }).strict(),
    /** Event fields that split alerts (each distinct value set is its own alert), e.g. `['comm']`. */
    groupBy: z.array(z.string()).optional(),
  })
  .strict();

/** Any rule expression. */
export const ExprSchema = z.union([
  ThresholdExprSchema,
  RateExprSchema,
  PercentileExprSchema,
  AbsentExprSchema,
  FnExprSchema,
  EventExprSchema,
]);

/** One alert rule. */
export const RuleSchema = z
  .object({
    /** Alert name (the `alertname` label). */
    name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, 'letters, digits, _ . -'),
    /** The condition. */
    expr: ExprSchema,
    /** How long the condition must hold before the alert fires (pending until then). */
    for: DurationSchema.default(0),
    /** Keep firing this long after the condition clears (Prometheus `keep_firing_for`). */
    keepFiringFor: DurationSchema.default(0),
    /** Labels added to the alert (`severity`…). */
    labels: z.record(z.string(), z.string()).default({}),
    /** Annotations; `{{ $value }}` and `{{ $labels.x }}` are expanded. */
    annotations: z.record(z.string(), z.string()).default({}),
  })
  .strict();

/** A rule as written (JSON or code). */
export type RuleConfig = z.input<typeof RuleSchema>;
/** A validated rule. */
export type Rule = z.output<typeof RuleSchema>;
/** A validated expression. */
export type Expr = z.output<typeof ExprSchema>;

/** Grouping and throttling of notifications (Alertmanager's route options). */
export const RouteSchema = z
  .object({
    /** Labels that form a group (default `['alertname']`); `['...']` groups by every label. */
    groupBy: z.array(z.string()).default(['alertname']),
    /** Wait before the first notification of a new group, to batch alerts that start together. */
    groupWait: DurationSchema.default(0),
    /** Minimum time between notifications of a group when its alerts change. */
    groupInterval: DurationSchema.default(5000),
    /** Minimum time before an unchanged notification is sent again. */
    repeatInterval: DurationSchema.default(3_600_000),
  })
  .strict();
/** Route options as written. */
export type RouteConfig = z.input<typeof RouteSchema>;
/** Validated route options. */
export type Route = z.output<typeof RouteSchema>;

/** The whole notify config (JSON file form). */
export const NotifyConfigSchema = z
  .object({
    /** Alert rules. */
    rules: z.array(RuleSchema).default([]),
    /** Grouping/throttling. */
    route: RouteSchema.default({ groupBy: ['alertname'], groupWait: 0, groupInterval: 5000, repeatInterval: 3_600_000 }),
    /** How often rules are evaluated (default 1s). */
    evaluationInterval: DurationSchema.default(1000),
    /** How long resolved alerts are remembered (and re-notified as resolved if needed); default 15m. */
    resolvedRetention: DurationSchema.default(900_000),
  })
  .strict();
/** Config as written. */
export type NotifyConfig = z.input<typeof NotifyConfigSchema>;

/** What a function expression receives. */
export interface RuleContext {
  /** Evaluation time (engine clock, ms). */
  now: number;
  /** Every sample of this evaluation. */
  samples: readonly Sample[];
  /** Scalar samples by name and matchers. */
  get(metric: string, labels?: Record<string, string | readonly string[]>): ScalarSample[];
}

/** What a function expression may return. */
export type RuleFnResult = boolean | number | Array<{ labels?: Labels; value: number | boolean }>;
