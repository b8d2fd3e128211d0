import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { btfFromElf, BtfKind, codecFromBtf, codecFromBtfName, elfSection, parseBtf } from '../../lib/ebpf/btf.js';
import { field, struct, u32, u64 } from '../../lib/ebpf/codec.js';
import * as generated from '../../lib/ebpf/generated/index.js';
import { loadObject } from '../../lib/ebpf/load.js';
import { bpfObjectDir } from '../../lib/native/addon.js';
import type { Codec } from '../../lib/ebpf/types.js';

const root = join(import.meta.dirname, '..', '..');
const objDir = bpfObjectDir();
const tmp = mkdtempSync(join(tmpdir(), 'smoothtask-dp-btf-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function objects(): { name: string; btf: ReturnType<typeof parseBtf> }[] {
  return readdirSync(objDir)
    .filter((f) => f.endsWith('.bpf.o'))
    .map((f) => ({ name: f, btf: parseBtf(btfFromElf(readFileSync(join(objDir, f))) as Uint8Array) }));
}

describe('generated types (scripts/gen-types.ts)', () => {
  const layouts = Object.entries(generated)
    .filter(([k]) => k.endsWith('Layouts'))
    .flatMap(([, v]) => Object.entries(v as Record<string, { size: number; fields: Record<string, number> }>));

  it('cover the shared structs, and every size and field offset matches the BTF of the compiled objects', () => {
    expect(layouts.length).toBeGreaterThan(5);
    const objs = objects();
    let checked = 0;
    for (const [name, layout] of layouts) {
      const found = objs.map((o) => o.btf.find(name, BtfKind.STRUCT)).filter((t) => t !== undefined);
      expect(found.length, `struct ${name} in some object`).toBeGreaterThan(0);
      for (const t of found) {
        expect(t.size, `sizeof(struct ${name})`).toBe(layout.size);
        const btfFields = Object.fromEntries((t.members ?? []).map((m) => [m.name, m.bitOffset / 8]));
        expect(btfFields, `offsets of struct ${name}`).toEqual(layout.fields);
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(layouts.length);
  });

  it('codec sizes equal the struct sizes', () => {
    const codecs = Object.entries(generated).filter(([k, v]) => !k.endsWith('Layouts') && typeof v === 'object' && v !== null && 'decode' in v) as [string, Codec<unknown>][];
    const sizes = Object.fromEntries(layouts.map(([n, l]) => [n.split('_').filter(Boolean).map((p) => p[0]?.toUpperCase() + p.slice(1)).join(''), l.size]));
    // Each struct has a bigint codec (`StFoo`) and a number-valued one (`StFooN`) of the same size.
    expect(codecs.length).toBe(2 * layouts.length);
    for (const [name, c] of codecs) expect(c.size, name).toBe(sizes[name.replace(/N$/, '')]);
  });

  it('are up to date (gen-types --check against the built objects)', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'scripts', 'gen-types.ts'), '--check', '--dir', objDir], { encoding: 'utf8', cwd: root });
    expect(r.stderr + r.stdout).toMatch(/up to date/);
    expect(r.status).toBe(0);
  });
});

describe('codecFromBtf (run time, users\' own objects)', () => {
  it('decodes what the compiler laid out: bitfields, chars, nested and anonymous members, enums, floats, pointers', () => {
    const obj = join(tmp, 'btf_sample.o');
    execFileSync('clang', ['-g', '-O2', '-target', 'bpf', '-c', join(root, 'test', 'fixtures', 'dp', 'btf_sample.c'), '-o', obj]);
    const elf = readFileSync(obj);
    const btf = parseBtf(btfFromElf(elf) as Uint8Array);
    const codec = codecFromBtfName(btf, 'sample_t');
    const data = elfSection(elf, '.data') as Uint8Array;
    expect(codec.size).toBe(btf.find('sample_t', BtfKind.STRUCT)?.size);
    const v = codec.decode(data) as Record<string, unknown>;
    expect(v).toMatchObject({
      tag: 7,
      flags: 5,
      level: 17,
      neg: -3,
      delta: -1234567890123n,
      comm: 'smoothtask',
      in: { a: 513, b: 0x1122334455667788n },
      pair: [
        { a: 1, b: 2n },
        { a: 3, b: 4n },
      ],
      color: -3,
      as_u32: 0x3f800000,
      as_f32: 1,
      ok: true,
      ratio: 0.25,
      ptr: 0x1000n,
    });
    expect([...(v.raw as Buffer)]).toEqual([1, 2, 3, 4]);
    // Encoding what we decoded reproduces the compiler's bytes.
    const again = codec.encode(v);
    expect(Buffer.from(again).equals(Buffer.from(data.subarray(0, codec.size)))).toBe(true);
  });

  it('decodes ring buffer records and map values of a loaded object from its BTF', async () => {
    using obj = await loadObject(join(objDir, 'test', 'dp_ringbuf.bpf.o'), { cache: false });
    const raw = obj.btf();
    expect(raw).toBeDefined();
    const rec = codecFromBtfName(raw as Uint8Array, 'dp_rec');
    const hand = struct({ seq: field(u64, 0), cpu: field(u32, 8), tag: field(u32, 12) }, 16);
    const bytes = hand.encode({ seq: 42n, cpu: 1, tag: 9 });
    expect(rec.decode(bytes)).toEqual({ seq: 42n, cpu: 1, tag: 9 });
    const info = obj.mapInfo('dropped');
    expect(info.btfValueTypeId).toBeGreaterThan(0);
    const value = codecFromBtf(raw as Uint8Array, info.btfValueTypeId);
    const key = codecFromBtf(raw as Uint8Array, info.btfKeyTypeId);
    using m = obj.map('dropped', { key: key as Codec<number>, value: value as Codec<bigint> });
    m.set(0, 5n);
    expect(m.get(0)).toBe(5n);
  });

  it('rejects data that is not BTF', () => {
    expect(() => parseBtf(new Uint8Array(64))).toThrow(/BTF/);
  });
});
