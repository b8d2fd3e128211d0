/**
 * Composable, typed stream operators. One implementation serves synchronous iterables,
 * asynchronous iterables and push-style use: an {@link Operator} is a factory of stateful
 * {@link Stage}s, and {@link transform} drives a stage over whatever source it is given.
 * @module
 */

/** One running instance of an operator: fed one item at a time, it yields zero or more. */
export interface Stage<I, O> {
  /** Feeds one item; returns what the stage emits in response (often nothing or one item). */
  push(item: I): O[];
  /** Called once at the end of the input: emits what is still held (an open window). */
  flush(): O[];
}

/** A reusable operator: each {@link Operator.create} call starts fresh state. */
export interface Operator<I, O> {
  /** A short name for diagnostics (`rate`, `ewma`, …). */
  readonly name: string;
  /** Creates a new independent stage. */
  create(): Stage<I, O>;
}

/** Builds an operator from a stage factory. */
export function operator<I, O>(name: string, create: () => Stage<I, O>): Operator<I, O> {
  return { name, create };
}

/** Composes operators left to right. */
export function pipe<A, B>(a: Operator<A, B>): Operator<A, B>;
export function pipe<A, B, C>(a: Operator<A, B>, b: Operator<B, C>): Operator<A, C>;
export function pipe<A, B, C, D>(a: Operator<A, B>, b: Operator<B, C>, c: Operator<C, D>): Operator<A, D>;
export function pipe<A, B, C, D, E>(
  a: Operator<A, B>,
  b: Operator<B, C>,
  c: Operator<C, D>,
  d: Operator<D, E>,
): Operator<A, E>;
export function pipe(...ops: Operator<unknown, unknown>[]): Operator<unknown, unknown>;
export function pipe(...ops: Operator<unknown, unknown>[]): Operator<unknown, unknown> {
  return operator(ops.map((o) => o.name).join('|'), () => {
    const stages = ops.map((o) => o.create());
    const run = (items: unknown[], from: number): unknown[] => {
      let cur = items;
      for (let i = from; i < stages.length; i++) {
        const next: unknown[] = [];
        for (const x of cur) next.push(...stages[i]!.push(x));
        cur = next;
      }
      return cur;
    };
    return {
      push: (item) => run([item], 0),
      flush: () => {
        // What stage i emits on flush must still pass through (and then be flushed by) i+1…
        let carried: unknown[] = [];
        for (const st of stages) {
          const next: unknown[] = [];
          for (const x of carried) next.push(...st.push(x));
          next.push(...st.flush());
          carried = next;
        }
        return carried;
      },
    };
  });
}

/** True when `x` is an async iterable. */
function isAsyncIterable<T>(x: Iterable<T> | AsyncIterable<T>): x is AsyncIterable<T> {
  return typeof (x as AsyncIterable<T>)[Symbol.asyncIterator] === 'function';
}

/** Runs an operator over a synchronous iterable. */
export function transformSync<I, O>(source: Iterable<I>, op: Operator<I, O>): Iterable<O> {
  return {
    *[Symbol.iterator]() {
      const s = op.create();
      for (const x of source) yield* s.push(x);
      yield* s.flush();
    },
  };
}

/** Runs an operator over an asynchronous iterable. */
export function transformAsync<I, O>(source: AsyncIterable<I>, op: Operator<I, O>): AsyncIterable<O> {
  return {
    async *[Symbol.asyncIterator]() {
      const s = op.create();
      for await (const x of source) yield* s.push(x);
      yield* s.flush();
    },
  };
}

/**
 * Runs an operator over a sync or async iterable; the result has the same flavour as the input.
 *
 * @example
 * ```ts
 * const rates = transform(samples, pipe(filter((s) => s.pid === 42), rate({ value: (s) => s.cpuNs, time: (s) => s.t })));
 * ```
 */
export function transform<I, O>(source: Iterable<I>, op: Operator<I, O>): Iterable<O>;
export function transform<I, O>(source: AsyncIterable<I>, op: Operator<I, O>): AsyncIterable<O>;
export function transform<I, O>(
  source: Iterable<I> | AsyncIterable<I>,
  op: Operator<I, O>,
): Iterable<O> | AsyncIterable<O> {
  return isAsyncIterable(source) ? transformAsync(source, op) : transformSync(source, op);
}

/** Keeps the items for which `pred` is true. */
export function filter<T, S extends T>(pred: (x: T) => x is S): Operator<T, S>;
export function filter<T>(pred: (x: T) => boolean): Operator<T, T>;
export function filter<T>(pred: (x: T) => boolean): Operator<T, T> {
  return operator('filter', () => ({ push: (x) => (pred(x) ? [x] : []), flush: () => [] }));
}

/** Maps every item. */
export function map<T, U>(fn: (x: T) => U): Operator<T, U> {
  return operator('map', () => ({ push: (x) => [fn(x)], flush: () => [] }));
}

/** Maps every item to zero or more items. */
export function flatMap<T, U>(fn: (x: T) => Iterable<U>): Operator<T, U> {
  return operator('flatMap', () => ({ push: (x) => [...fn(x)], flush: () => [] }));
}
