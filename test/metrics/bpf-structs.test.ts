// The hand-written codecs in lib/metrics/bpf-structs.ts must match the C structs as the
// compiler laid them out: checked against the BTF of the compiled objects.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { STRUCT_LAYOUTS, structOffsets } from '../../lib/metrics/bpf-structs.js';
import { ConfigError } from '../../lib/errors/index.js';
import { bpfObjectDir } from '../../lib/native/addon.js';

interface BtfMember {
  name: string;
  bits_offset: number;
}
interface BtfType {
  kind: string;
  name?: string;
  size?: number;
  members?: BtfMember[];
}

const OBJECTS = ['sched.bpf.o', 'proc.bpf.o', 'net.bpf.o', 'blockio.bpf.o', 'syscalls.bpf.o'];

function btfStructs(): Map<string, BtfType> {
  const m = new Map<string, BtfType>();
  for (const o of OBJECTS) {
    const path = join(bpfObjectDir(), o);
    if (!existsSync(path)) throw new Error(`${path} missing: build the BPF objects first (npx cmake-js compile)`);
    const out = execFileSync('bpftool', ['btf', 'dump', 'file', path, '-j'], { encoding: 'utf8', maxBuffer: 64 << 20 });
    for (const t of (JSON.parse(out) as { types: BtfType[] }).types) if (t.kind === 'STRUCT' && t.name?.startsWith('st_')) m.set(t.name, t);
  }
  return m;
}

describe('bpf struct codecs vs BTF', () => {
  const structs = btfStructs();
  for (const [name, layout] of Object.entries(STRUCT_LAYOUTS)) {
    it(`${name}: size and every field offset`, () => {
      const t = structs.get(name);
      expect(t, `${name} in BTF`).toBeDefined();
      expect(layout.size).toBe(t!.size);
      const btf = new Map(t!.members!.map((mm) => [mm.name, mm.bits_offset / 8]));
      for (const [f, off] of Object.entries(layout.offsets)) expect([f, off]).toEqual([f, btf.get(f)]);
      // Every non-padding member of the C struct is decoded.
      const missing = [...btf.keys()].filter((k) => k !== 'pad' && !(k in layout.offsets));
      expect(missing).toEqual([]);
    });
  }
});

describe('structOffsets', () => {
  it('gives the generated offsets of the named fields, and a typed error for a field or struct that is not there', () => {
    expect(structOffsets('st_proc_task', ['tgid', 'comm', 'is_leader'])).toEqual({
      tgid: STRUCT_LAYOUTS.st_proc_task!.offsets.tgid,
      comm: STRUCT_LAYOUTS.st_proc_task!.offsets.comm,
      is_leader: STRUCT_LAYOUTS.st_proc_task!.offsets.is_leader,
    });
    expect(() => structOffsets('st_proc_task', ['tgid', 'no_such_field'])).toThrow(ConfigError);
    expect(() => structOffsets('st_no_such_struct', ['tgid'])).toThrow(/st_no_such_struct has no field tgid/);
  });
});
