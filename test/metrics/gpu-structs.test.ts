import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { bpfObjectDir } from '../../lib/native/addon.js';
import { GPU_STRUCT_LAYOUTS } from '../../lib/metrics/gpu/structs.js';

// The TS decoders of bpf/gpu.h and bpf/thermal.h must match what clang laid out: checked
// against the BTF of the compiled objects (bpftool), so a header change not mirrored fails here.
interface BtfType {
  kind: string;
  name?: string;
  size?: number;
  members?: { name: string; bits_offset: number }[];
}

function structs(obj: string): Map<string, BtfType> {
  const out = execFileSync(existsSync('/usr/sbin/bpftool') ? '/usr/sbin/bpftool' : 'bpftool', ['-j', 'btf', 'dump', 'file', obj], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const types = (JSON.parse(out) as { types: BtfType[] }).types;
  return new Map(types.filter((t) => t.kind === 'STRUCT' && t.name).map((t) => [t.name!, t]));
}

describe('gpu/thermal struct decoders match the BTF', () => {
  const btf = new Map([...structs(join(bpfObjectDir(), 'gpu.bpf.o')), ...structs(join(bpfObjectDir(), 'thermal.bpf.o'))]);
  for (const [name, layout] of Object.entries(GPU_STRUCT_LAYOUTS)) {
    it(name, () => {
      const t = btf.get(name);
      expect(t, `struct ${name} in BTF`).toBeDefined();
      expect(layout.size).toBe(t!.size);
      const btfOffsets = Object.fromEntries(t!.members!.map((m) => [m.name, m.bits_offset / 8]));
      expect(layout.offsets).toEqual(btfOffsets);
    });
  }
});
