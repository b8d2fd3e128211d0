import { readFileSync, unlinkSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { array, cstring, field, struct, u32, u64 } from '../../lib/ebpf/codec.js';
import { BpfMap, createMap, numPossibleCpus, openPinnedMap } from '../../lib/ebpf/map.js';
import { BpfError, ClosedError } from '../../lib/ebpf/errors.js';

const cpus = numPossibleCpus();

describe('BpfMap on kernel maps', () => {
  it('reports the possible CPU count libbpf uses for per-CPU values', () => {
    const possible = readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim();
    const last = Number(possible.split(/[-,]/).pop());
    expect(cpus).toBe(last + 1);
  });

  it('hash: get/set/has/delete with flags, keys and entries', () => {
    using m = createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 64, name: 'dp_hash' }, { key: u32, value: u64 });
    expect(m.get(1)).toBeUndefined();
    m.set(1, 10n);
    m.set(2, 20n, 'noexist');
    expect(() => m.set(2, 21n, 'noexist')).toThrow(BpfError);
    expect(() => m.set(3, 30n, 'exist')).toThrow(/does not exist/);
    m.set(2, 22n, 'exist');
    expect(m.get(2)).toBe(22n);
    expect(m.has(1)).toBe(true);
    expect(m.delete(1)).toBe(true);
    expect(m.delete(1)).toBe(false);
    expect(m.has(1)).toBe(false);
    for (let i = 10; i < 20; i++) m.set(i, BigInt(i * 100));
    expect([...m.keys()].sort((a, b) => a - b)).toEqual([2, ...Array.from({ length: 10 }, (_, i) => i + 10)]);
    const e = new Map(m.entries());
    expect(e.get(15)).toBe(1500n);
    expect(e.size).toBe(11);
    const md = m.metadata();
    expect(md).toMatchObject({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 64, perCpu: false });
    expect(md.memoryBytes).toBeGreaterThan(0);
    expect(m.memoryBytes()).toBe(md.memoryBytes);
  });

  it('array: fixed slots, zero-initialised, batch read returns every slot', () => {
    using m = createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 16 }, { key: u32, value: u32 });
    expect(m.get(3)).toBe(0);
    m.set(3, 33);
    expect(m.get(3)).toBe(33);
    const all = m.readAll();
    expect(all.size).toBe(16);
    expect(all.get(3)).toBe(33);
    expect(() => m.set(16, 1)).toThrow(BpfError);
  });

  it('lru_hash evicts instead of failing when full', () => {
    using m = createMap({ type: 'lru_hash', keySize: 4, valueSize: 8, maxEntries: 128 }, { key: u32, value: u64 });
    for (let i = 0; i < 1000; i++) m.set(i, BigInt(i));
    const all = m.readAll();
    expect(all.size).toBeGreaterThan(0);
    expect(all.size).toBeLessThanOrEqual(128 + cpus * 64); // LRU keeps at most max_entries (+ per-CPU free lists slack)
    expect(all.get(999)).toBe(999n);
    for (const [k, v] of all) expect(v).toBe(BigInt(k));
  });

  for (const type of ['percpu_hash', 'percpu_array'] as const) {
    it(`${type}: per-CPU values summed and kept per CPU`, () => {
      using m = createMap({ type, keySize: 4, valueSize: 12, maxEntries: 8 }, { key: u32 });
      const counter = struct({ a: field(u32, 0), b: field(u64, 4) }, 12);
      using t = new BpfMap(m.info.fd === -1 ? m.info : { ...m.info, fd: m.fd }, { key: u32, value: counter });
      expect(t.perCpu).toBe(true);
      expect(t.stride).toBe(16); // 12 rounded up to 8 per CPU
      const per = Array.from({ length: cpus }, (_, c) => ({ a: c + 1, b: BigInt(10 * (c + 1)) }));
      t.setPerCpu(5, per);
      expect(t.getPerCpu(5)).toEqual(per);
      const sumA = per.reduce((s, v) => s + v.a, 0);
      const sumB = per.reduce((s, v) => s + v.b, 0n);
      expect(t.get(5)).toEqual({ a: sumA, b: sumB });
      expect(t.readAll().get(5)).toEqual({ a: sumA, b: sumB });
      expect(t.readAllPerCpu().get(5)).toEqual(per);
      // getRaw: every CPU's bytes, stride apart, in the map's own buffer (overwritten by the next lookup).
      const r5 = t.getRaw(5)!;
      for (let c = 0; c < cpus; c++) expect(r5.readUInt32LE(c * t.stride)).toBe(c + 1);
      expect(t.getRaw(404)).toBeUndefined();
      const again = t.getRaw(5)!;
      expect(again).toBe(r5);
      // Raw values (no codec) sum in integer lanes too.
      const raw = m.get(5);
      expect(raw?.readUInt32LE(0)).toBe(sumA);
      t.set(6, { a: 7, b: 8n });
      expect(t.get(6)).toEqual({ a: 7, b: 8n });
    });
  }

  it('readAll with a limit reads at most that many entries (an array: its first indexes)', () => {
    using a = createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 64 }, { key: u32, value: u32 });
    for (let i = 0; i < 64; i++) a.set(i, i * 10);
    for (const mode of ['auto', 'iterate'] as const) {
      expect([...a.readAll(mode, 3)]).toEqual([[0, 0], [1, 10], [2, 20]]);
      expect(a.readAll(mode, 0).size).toBe(0);
      expect(a.readAll(mode, 1000).size).toBe(64); // clamped to max_entries
    }
    using h = createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1024 }, { key: u32, value: u32 });
    h.setMany(Array.from({ length: 500 }, (_, i) => [i, i] as const));
    // A hash map hands out whole buckets: at most the limit, never an error (500 entries in
    // 1,024 buckets: some buckets hold two or three). Every limit from 1 up, in both modes.
    for (let limit = 1; limit <= 520; limit += 7) {
      const got = h.readAll('auto', limit);
      expect(got.size).toBeLessThanOrEqual(limit);
      expect(got.size).toBeGreaterThanOrEqual(Math.min(limit, 500) - 8);
      for (const [k, v] of got) expect(v).toBe(k);
      expect(h.readAll('iterate', limit).size).toBe(Math.min(limit, 500));
    }
    expect(h.readAll('auto').size).toBe(500);
    // Big reads and small ones alternate on the same reused scratch memory: no stale bytes.
    using big = createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 200_000 }, { key: u32, value: u32 });
    big.setMany(Array.from({ length: 150_000 }, (_, i) => [i + 1, 7] as const));
    expect([...big.readAll().values()].every((v) => v === 7)).toBe(true);
    expect(h.readAll().size).toBe(500);
    expect([...h.readAll()].every(([k, v]) => k === v)).toBe(true);
    for (const bad of [Number.NaN, -1, '3' as unknown as number]) expect(() => h.readAll('auto', bad)).toThrow(/limit/);
  });

  it('batch read of 100,000 entries equals per-key reads and next-key iteration', () => {
    const N = 100_000;
    const value = struct({ count: field(u64, 0), comm: field(cstring(16), 8), slots: field(array(u32, 2), 24) }, 32);
    using m = createMap({ type: 'hash', keySize: 4, valueSize: 32, maxEntries: N }, { key: u32, value });
    const entries: [number, { count: bigint; comm: string; slots: number[] }][] = [];
    for (let i = 0; i < N; i++) entries.push([i * 7 + 1, { count: BigInt(i) * 3n, comm: `p${i % 1000}`, slots: [i, N - i] }]);
    m.setMany(entries);
    const batch = m.readAll('auto');
    expect(m.lastReadUsedBatch).toBe(true);
    expect(batch.size).toBe(N);
    const iterated = m.readAll('iterate');
    expect(m.lastReadUsedBatch).toBe(false);
    expect(iterated.size).toBe(N);
    // One assertion over all entries (100,000 expect() calls would dominate the run time).
    const show = (v: unknown) => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x));
    const mismatches: string[] = [];
    for (const [k, v] of entries) {
      const perKey = show(m.get(k));
      if (perKey !== show(v) || show(batch.get(k)) !== perKey || show(iterated.get(k)) !== perKey) mismatches.push(`${k}: ${perKey}`);
    }
    expect(mismatches.slice(0, 5)).toEqual([]);
  });

  it('closing: idempotent, ClosedError afterwards, dup keeps the map alive', () => {
    const a = createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 4 }, { key: u32, value: u32 });
    a.set(1, 1);
    const b = new BpfMap({ ...a.info, fd: a.fd }, { key: u32, value: u32 });
    a.close();
    a.close();
    expect(a.closed).toBe(true);
    expect(() => a.get(1)).toThrow(ClosedError);
    expect(b.get(1)).toBe(1);
    b[Symbol.dispose]();
    expect(b.closed).toBe(true);
  });

  it('pins and reopens a map on bpffs', () => {
    const path = `/sys/fs/bpf/smoothtask-dp-test-${process.pid}`;
    using m = createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 4 }, { key: u32, value: u32 });
    m.set(9, 99);
    m.pin(path);
    try {
      using p = openPinnedMap(path, { key: u32, value: u32 });
      expect(p.get(9)).toBe(99);
      expect(p.info.id).toBe(m.metadata().id);
    } finally {
      unlinkSync(path);
    }
  });

  it('rejects bad options and codec sizes', () => {
    expect(() => createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 0 })).toThrow(/maxEntries/);
    expect(() => createMap({ type: 'nope', keySize: 4, valueSize: 4, maxEntries: 1 })).toThrow(/unknown map type/);
    expect(() => createMap({ type: 'hash', keySize: 8, valueSize: 4, maxEntries: 1 }, { key: u32 })).toThrow(/key codec size/);
  });
});

