/**
 * Codecs for fixed-size binary values (map keys and values, ring buffer records): primitives,
 * fixed char arrays, struct and array combinators, and helpers to sum per-CPU values.
 * Generated codecs (scripts/gen-types.ts) and run-time BTF codecs (btf.ts) are built from these.
 * Everything is little-endian (the byte order of every architecture libbpf CO-RE targets here).
 * @module
 */
import { ConfigError } from '../errors/index.js';
import type { Codec } from './types.js';

// One DataView per buffer, reused while the same buffer is decoded record after record
// (ring buffer batches, readAll results): a DataView per call would dominate decode time.
// Two slots: a map read decodes a key from one buffer and its value from another, turn about.
let bufA: Uint8Array | undefined;
let viewA: DataView | undefined;
let bufB: Uint8Array | undefined;
let viewB: DataView | undefined;
function view(buf: Uint8Array): DataView {
  if (buf === bufA && viewA !== undefined) return viewA;
  if (buf === bufB && viewB !== undefined) return viewB;
  // The older slot makes room.
  bufB = bufA;
  viewB = viewA;
  bufA = buf;
  viewA = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return viewA;
}

function out(size: number, buf?: Uint8Array): Uint8Array {
  return buf ?? new Uint8Array(size);
}

// Primitive codec -> its read as source text over DataView `v` at offset `X`, for the compiled
// struct decoders (constant templates of this file: nothing from BTF goes into them).
const INLINE = new WeakMap<Codec<unknown>, string>();

function prim<T>(size: number, get: (v: DataView, o: number) => T, set: (v: DataView, o: number, x: T) => void, inline?: string): Codec<T> {
  const c: Codec<T> = {
    size,
    decode: (buf, offset = 0) => get(view(buf), offset),
    encode(value, buf, offset = 0) {
      const b = out(size, buf);
      set(view(b), offset, value);
      return b;
    },
  };
  if (inline) INLINE.set(c as Codec<unknown>, inline);
  return c;
}

/** Unsigned 8-bit integer. */
export const u8: Codec<number> = prim(1, (v, o) => v.getUint8(o), (v, o, x) => v.setUint8(o, x), 'v.getUint8(X)');
/** Signed 8-bit integer. */
export const i8: Codec<number> = prim(1, (v, o) => v.getInt8(o), (v, o, x) => v.setInt8(o, x), 'v.getInt8(X)');
/** Unsigned 16-bit integer. */
export const u16: Codec<number> = prim(2, (v, o) => v.getUint16(o, true), (v, o, x) => v.setUint16(o, x, true), 'v.getUint16(X, true)');
/** Signed 16-bit integer. */
export const i16: Codec<number> = prim(2, (v, o) => v.getInt16(o, true), (v, o, x) => v.setInt16(o, x, true), 'v.getInt16(X, true)');
/** Unsigned 32-bit integer. */
export const u32: Codec<number> = prim(4, (v, o) => v.getUint32(o, true), (v, o, x) => v.setUint32(o, x, true), 'v.getUint32(X, true)');
/** Signed 32-bit integer. */
export const i32: Codec<number> = prim(4, (v, o) => v.getInt32(o, true), (v, o, x) => v.setInt32(o, x, true), 'v.getInt32(X, true)');
/** Unsigned 64-bit integer as `bigint` (no precision loss). */
export const u64: Codec<bigint> = prim(8, (v, o) => v.getBigUint64(o, true), (v, o, x) => v.setBigUint64(o, BigInt.asUintN(64, x), true), 'v.getBigUint64(X, true)');
/** Signed 64-bit integer as `bigint`. */
export const i64: Codec<bigint> = prim(8, (v, o) => v.getBigInt64(o, true), (v, o, x) => v.setBigInt64(o, BigInt.asIntN(64, x), true), 'v.getBigInt64(X, true)');
/**
 * Unsigned 64-bit integer as `number`: exact below 2^53, the convenient choice for counters
 * and nanosecond timestamps that stay below 104 days of uptime... use {@link u64} when in doubt.
 */
export const u64n: Codec<number> = prim(8, (v, o) => v.getUint32(o + 4, true) * 0x1_0000_0000 + v.getUint32(o, true), (v, o, x) => v.setBigUint64(o, BigInt(Math.trunc(x)), true), '(v.getUint32(X + 4, true) * 4294967296 + v.getUint32(X, true))');
/** Signed 64-bit integer as `number`: exact between -(2^53) and 2^53; see {@link u64n}. */
export const i64n: Codec<number> = prim(8, (v, o) => v.getInt32(o + 4, true) * 0x1_0000_0000 + v.getUint32(o, true), (v, o, x) => v.setBigInt64(o, BigInt(Math.trunc(x)), true), '(v.getInt32(X + 4, true) * 4294967296 + v.getUint32(X, true))');
/** 32-bit float. */
export const f32: Codec<number> = prim(4, (v, o) => v.getFloat32(o, true), (v, o, x) => v.setFloat32(o, x, true), 'v.getFloat32(X, true)');
/** 64-bit float. */
export const f64: Codec<number> = prim(8, (v, o) => v.getFloat64(o, true), (v, o, x) => v.setFloat64(o, x, true), 'v.getFloat64(X, true)');
/** C `_Bool` / `__u8` flag. */
export const bool: Codec<boolean> = prim(1, (v, o) => v.getUint8(o) !== 0, (v, o, x) => v.setUint8(o, x ? 1 : 0), '(v.getUint8(X) !== 0)');

const utf8 = new TextDecoder('utf-8');
const utf8e = new TextEncoder();

/** A fixed `char[n]` read as a NUL-terminated UTF-8 string (e.g. `comm[16]`); encoding pads with NULs. */
export function cstring(n: number): Codec<string> {
  return {
    size: n,
    decode(buf, offset = 0) {
      let end = offset;
      const stop = offset + n;
      while (end < stop && buf[end] !== 0) end++;
      return utf8.decode(buf.subarray(offset, end));
    },
    encode(value, buf, offset = 0) {
      const b = out(n, buf);
      b.fill(0, offset, offset + n);
      const bytes = utf8e.encode(value);
      b.set(bytes.subarray(0, n), offset);
      return b;
    },
  };
}

/** `n` raw bytes, decoded as a copied `Buffer` (safe to keep after the source is reused). */
export function bytes(n: number): Codec<Buffer> {
  return {
    size: n,
    decode: (buf, offset = 0) => Buffer.from(buf.subarray(offset, offset + n)),
    encode(value, buf, offset = 0) {
      const b = out(n, buf);
      if (value.length !== n) throw new ConfigError(`expected ${n} bytes, got ${value.length}`);
      b.set(value, offset);
      return b;
    },
  };
}

/** A fixed array `T[n]` of elements encoded by `elem`, `stride` bytes apart (default elem.size). */
export function array<T>(elem: Codec<T>, n: number, stride = elem.size): Codec<T[]> {
  return {
    size: stride * n,
    decode(buf, offset = 0) {
      const r = new Array<T>(n);
      for (let i = 0; i < n; i++) r[i] = elem.decode(buf, offset + i * stride);
      return r;
    },
    encode(value, buf, offset = 0) {
      const b = out(stride * n, buf);
      if (value.length !== n) throw new ConfigError(`expected ${n} elements, got ${value.length}`);
      for (let i = 0; i < n; i++) elem.encode(value[i] as T, b, offset + i * stride);
      return b;
    },
  };
}

/** One field of a {@link struct}: its codec and byte offset within the struct. */
export interface FieldSpec<T = unknown> {
  codec: Codec<T>;
  offset: number;
}

/** The decoded type of a struct described by `F`. */
export type StructOf<F extends Record<string, FieldSpec>> = { [N in keyof F]: F[N] extends FieldSpec<infer T> ? T : never };

/**
 * A C struct: fields at explicit byte offsets (padding stays zero on encode), total `size`
 * as the compiler laid it out (sizeof, including tail padding).
 */
export function struct<F extends Record<string, FieldSpec>>(fields: F, size: number): Codec<StructOf<F>> {
  const entries = Object.entries(fields);
  for (const [name, f] of entries) {
    if (f.offset + f.codec.size > size) throw new ConfigError(`field ${name} (offset ${f.offset}, size ${f.codec.size}) exceeds struct size ${size}`);
  }
  return {
    size,
    decode: structDecoder(entries) as (buf: Uint8Array, offset?: number) => StructOf<F>,
    encode(value, buf, offset = 0) {
      const b = out(size, buf);
      if (buf) b.fill(0, offset, offset + size);
      const v = value as Record<string, unknown>;
      for (const [name, f] of entries) f.codec.encode(v[name], b, offset + f.offset);
      return b;
    },
  };
}

type Decode = (buf: Uint8Array, offset?: number) => Record<string, unknown>;

/**
 * The decoder of a struct. Decoding runs per record on the event path and per entry on every
 * map read: the object is built as one literal with the fields as constant keys (one hidden
 * class, no keyed store per field), compiled once per struct. Field names come from BTF, which
 * may be hostile: they enter the source only as JSON string literals, `__proto__` as a computed
 * key (an own data property, never the prototype), and an environment that refuses code
 * generation gets the generic loop instead.
 */
function structDecoder(entries: Array<[string, FieldSpec]>): Decode {
  const names = entries.map(([name]) => name);
  const codecs = entries.map(([, f]) => f.codec);
  const offsets = entries.map(([, f]) => f.offset);
  const n = entries.length;
  const generic: Decode = (buf, offset = 0) => {
    const o: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) {
      const v = codecs[i]!.decode(buf, offset + offsets[i]!);
      if (names[i] === '__proto__') Object.defineProperty(o, '__proto__', { value: v, writable: true, enumerable: true, configurable: true });
      else o[names[i]!] = v;
    }
    return o;
  };
  if (n > 256) return generic;
  try {
    const key = (name: string): string => (name === '__proto__' ? `[${JSON.stringify(name)}]` : JSON.stringify(name));
    const read = (i: number): string => {
      const at = `o + ${offsets[i]! | 0}`;
      const inline = INLINE.get(codecs[i]!);
      return inline ? inline.replaceAll('X', at) : `c[${i}].decode(b, ${at})`;
    };
    const body = names.map((name, i) => `${key(name)}: ${read(i)}`).join(',\n');
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    const make = new Function('c', 'view', `"use strict"; return function decode(b, o = 0) { const v = view(b); return {\n${body}\n}; };`) as (
      c: Codec<unknown>[],
      v: (b: Uint8Array) => DataView,
    ) => Decode;
    return make(codecs, view);
  } catch {
    return generic;
  }
}

/** Shorthand for a {@link FieldSpec}. */
export function field<T>(codec: Codec<T>, offset: number): FieldSpec<T> {
  return { codec, offset };
}

/**
 * Adds two decoded values element-wise: numbers and bigints add, arrays and plain objects add
 * field by field, anything else (strings, booleans, Buffers) keeps the first non-empty value.
 * This is how per-CPU values are summed.
 */
export function sumValues<T>(a: T, b: T): T {
  if (typeof a === 'number' && typeof b === 'number') return (a + b) as T;
  if (typeof a === 'bigint' && typeof b === 'bigint') return (a + b) as T;
  if (Array.isArray(a) && Array.isArray(b)) return a.map((x, i) => sumValues(x, b[i])) as T;
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object' && !(a instanceof Uint8Array)) {
    const r: Record<string, unknown> = {};
    for (const k of Object.keys(a)) r[k] = sumValues((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]);
    return r as T;
  }
  return a;
}

/** Sums per-CPU values with {@link sumValues}; `undefined` for an empty list. */
export function sumPerCpu<T>(values: readonly T[]): T | undefined {
  if (values.length === 0) return undefined;
  let acc = values[0] as T;
  for (let i = 1; i < values.length; i++) acc = sumValues(acc, values[i] as T);
  return acc;
}

/**
 * Sums raw per-CPU value bytes in native-width lanes: u64 lanes when the value size is a
 * multiple of 8, else u32, u16 or u8 lanes (wrapping). `data` holds `cpus` values `stride` apart.
 * Used when a per-CPU map has no value codec.
 */
export function sumRawPerCpu(data: Uint8Array, offset: number, valueSize: number, stride: number, cpus: number): Buffer {
  const r = Buffer.alloc(valueSize);
  const v = view(data);
  const rv = new DataView(r.buffer, r.byteOffset, r.byteLength);
  const lane = valueSize % 8 === 0 ? 8 : valueSize % 4 === 0 ? 4 : valueSize % 2 === 0 ? 2 : 1;
  for (let off = 0; off < valueSize; off += lane) {
    if (lane === 8) {
      let s = 0n;
      for (let c = 0; c < cpus; c++) s += v.getBigUint64(offset + c * stride + off, true);
      rv.setBigUint64(off, BigInt.asUintN(64, s), true);
    } else {
      let s = 0;
      for (let c = 0; c < cpus; c++) {
        const o = offset + c * stride + off;
        s += lane === 4 ? v.getUint32(o, true) : lane === 2 ? v.getUint16(o, true) : v.getUint8(o);
      }
      if (lane === 4) rv.setUint32(off, s >>> 0, true);
      else if (lane === 2) rv.setUint16(off, s & 0xffff, true);
      else rv.setUint8(off, s & 0xff);
    }
  }
  return r;
}

/** The default codec of keys and values without one: raw, copied `Buffer`s of `size` bytes. */
export function rawCodec(size: number): Codec<Buffer> {
  return bytes(size);
}
