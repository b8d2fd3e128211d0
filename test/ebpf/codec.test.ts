import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { array, bool, bytes, cstring, f64, field, i16, i32, i64, i64n, i8, struct, sumPerCpu, sumRawPerCpu, sumValues, u16, u32, u64, u64n, u8 } from '../../lib/ebpf/codec.js';

describe('codecs', () => {
  it('integers round-trip at any offset, little-endian', () => {
    const cases = [
      [u8, fc.integer({ min: 0, max: 255 })],
      [i8, fc.integer({ min: -128, max: 127 })],
      [u16, fc.integer({ min: 0, max: 0xffff })],
      [i16, fc.integer({ min: -0x8000, max: 0x7fff })],
      [u32, fc.integer({ min: 0, max: 0xffffffff })],
      [i32, fc.integer({ min: -0x80000000, max: 0x7fffffff })],
    ] as const;
    for (const [c, arb] of cases) {
      fc.assert(
        fc.property(arb, fc.integer({ min: 0, max: 16 }), (v, off) => {
          const buf = new Uint8Array(off + c.size + 3);
          c.encode(v, buf, off);
          return c.decode(buf, off) === v;
        }),
      );
    }
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (v) => u64.decode(u64.encode(v)) === v));
    fc.assert(fc.property(fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }), (v) => i64.decode(i64.encode(v)) === v));
    expect(Buffer.from(u32.encode(0x01020304)).toString('hex')).toBe('04030201');
    expect(u64n.decode(u64.encode(123456789012n))).toBe(123456789012);
  });

  it('64-bit integers as numbers decode as Number(bigint) would, rounding included', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.integer({ min: 0, max: 9 }), (v, off) => {
      const buf = new Uint8Array(off + 8);
      u64.encode(v, buf, off);
      return u64n.decode(buf, off) === Number(v);
    }));
    fc.assert(fc.property(fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }), (v) => i64n.decode(i64.encode(v)) === Number(v)));
    for (const v of [0n, 1n, (1n << 53n) - 1n, (1n << 53n) + 1n, (1n << 64n) - 1n]) expect(u64n.decode(u64.encode(v))).toBe(Number(v));
    for (const v of [-1n, -(1n << 63n), -(1n << 53n) - 1n]) expect(i64n.decode(i64.encode(v))).toBe(Number(v));
  });

  it('struct field names from hostile BTF stay data: quotes, line separators, __proto__, code', () => {
    const names = ['a"b', "c'd", 'e\\', 'f\u2028g', '});globalThis.pwned=1;({', '__proto__', 'constructor', '0', ''];
    for (const withProto of [true, false]) {
      const list = names.filter((n) => withProto || n !== '__proto__');
      const fields = Object.fromEntries(list.map((n, i) => [n, field(u32, i * 4)]));
      const c = struct(fields, list.length * 4);
      const buf = new Uint8Array(list.length * 4);
      list.forEach((_, i) => new DataView(buf.buffer).setUint32(i * 4, 1000 + i, true));
      const o = c.decode(buf) as Record<string, number>;
      list.forEach((n, i) => {
        expect(Object.getOwnPropertyDescriptor(o, n)?.value).toBe(1000 + i);
      });
      expect(Object.getPrototypeOf(o)).toBe(Object.prototype);
      expect((globalThis as Record<string, unknown>).pwned).toBeUndefined();
      expect(c.decode(c.encode(o))).toEqual(o);
    }
    // Above 256 fields the decoder is the generic loop: the same rules hold there.
    const many = Object.fromEntries([...Array.from({ length: 300 }, (_, i) => [`f${i}`, field(u8, i)]), ['__proto__', field(u8, 300)]]);
    const big = struct(many, 301).decode(Uint8Array.from({ length: 301 }, (_, i) => i & 0xff)) as Record<string, number>;
    expect(Object.getOwnPropertyDescriptor(big, '__proto__')?.value).toBe(300 & 0xff);
    expect(Object.getPrototypeOf(big)).toBe(Object.prototype);
    expect(big.f299).toBe(299 & 0xff);
  });

  it('decodes right when reads turn between buffers (the cached views of the last two buffers)', () => {
    // A map read decodes a key from one buffer and its value from another, turn about; a third
    // buffer evicts the older view. Each read must see its own buffer's bytes.
    const bufs = [0, 1, 2].map((b) => {
      const x = Buffer.alloc(64);
      for (let i = 0; i < 16; i++) x.writeUInt32LE(b * 1000 + i, i * 4);
      return x;
    });
    const order = [0, 1, 0, 1, 2, 0, 2, 1, 1, 0, 2, 2, 1];
    for (const [n, b] of order.entries()) expect(u32.decode(bufs[b]!, (n % 16) * 4)).toBe(b * 1000 + (n % 16));
    // Views of subarrays at an offset into a shared ArrayBuffer.
    const whole = Buffer.alloc(32);
    whole.writeUInt32LE(7, 16);
    const a = whole.subarray(16);
    const b = whole.subarray(8);
    expect([u32.decode(a, 0), u32.decode(b, 8), u32.decode(a, 0)]).toEqual([7, 7, 7]);
  });

  it('cstring stops at NUL, truncates and pads on encode', () => {
    const c = cstring(8);
    expect(c.decode(Buffer.from('abc\0zzzz'))).toBe('abc');
    expect(c.decode(Buffer.from('abcdefgh'))).toBe('abcdefgh');
    expect(Buffer.from(c.encode('toolongvalue')).toString()).toBe('toolongv');
    expect([...c.encode('a')]).toEqual([97, 0, 0, 0, 0, 0, 0, 0]);
    fc.assert(fc.property(fc.string({ unit: fc.constantFrom('a', 'b', 'z', '_'), maxLength: 8 }), (s) => c.decode(c.encode(s)) === s));
  });

  it('struct and array combinators use explicit offsets and zero padding', () => {
    const point = struct({ x: field(i32, 0), y: field(i32, 4) }, 8);
    const rec = struct({ id: field(u16, 0), ok: field(bool, 2), pts: field(array(point, 2), 8), name: field(cstring(4), 24), raw: field(bytes(2), 28), w: field(f64, 32) }, 40);
    const v = { id: 9, ok: true, pts: [{ x: -1, y: 2 }, { x: 3, y: -4 }], name: 'ab', raw: Buffer.from([5, 6]), w: 1.5 };
    const enc = rec.encode(v);
    expect(enc.length).toBe(40);
    expect(enc[3]).toBe(0); // padding
    expect(rec.decode(enc)).toEqual(v);
    expect(() => struct({ a: field(u64, 4) }, 8)).toThrow(/exceeds/);
    expect(() => array(u8, 2).encode([1])).toThrow(/2 elements/);
  });

  it('sums per-CPU values field by field, and raw values in integer lanes', () => {
    expect(sumValues({ a: 1, b: 2n, c: [1, 2], s: 'x' }, { a: 2, b: 3n, c: [3, 4], s: 'y' })).toEqual({ a: 3, b: 5n, c: [4, 6], s: 'x' });
    expect(sumPerCpu([1n, 2n, 3n])).toBe(6n);
    expect(sumPerCpu([])).toBeUndefined();
    const stride = 16;
    const data = Buffer.alloc(stride * 3);
    for (let c = 0; c < 3; c++) {
      data.writeBigUInt64LE(BigInt(c + 1), c * stride);
      data.writeBigUInt64LE(10n, c * stride + 8);
    }
    const s = sumRawPerCpu(data, 0, 16, stride, 3);
    expect(s.readBigUInt64LE(0)).toBe(6n);
    expect(s.readBigUInt64LE(8)).toBe(30n);
    const d4 = Buffer.alloc(24);
    d4.writeUInt32LE(7, 0);
    d4.writeUInt32LE(8, 8);
    d4.writeUInt32LE(9, 16);
    expect(sumRawPerCpu(d4, 0, 4, 8, 3).readUInt32LE(0)).toBe(24);
  });
});
