// Without a usable addon (as on a host where the native part was never built, or where BPF
// is not permitted), createMonitor falls back to procfs family by family and says why.
// The addon path is forced to a missing file before anything loads it (this file runs in
// its own fork).
process.env.SMOOTHTASK_ADDON = '/nonexistent/smoothtask.node';

import { describe, expect, it } from 'vitest';
import { createMonitor, CpuSnapshotSchema, ProcessSnapshotSchema } from '../../lib/metrics/index.js';
import { AddonNotBuiltError } from '../../lib/native/addon.js';

describe('backend fallback', () => {
  it('auto: eBPF fails to load, cpu/process/network/disk open on procfs, syscalls is reported', async () => {
    const m = await createMonitor({ families: ['cpu', 'process', 'network', 'disk', 'syscalls'], filter: { tgids: [process.pid] } });
    try {
      expect(Object.fromEntries([...m.readers].map(([n, r]) => [n, r.backend]))).toEqual({ cpu: 'procfs', process: 'procfs', network: 'procfs', disk: 'procfs' });
      expect([...m.failures.keys()]).toEqual(['syscalls']);
      expect(m.failures.get('syscalls')).toBeInstanceOf(AddonNotBuiltError);
      const { snapshots, errors } = await m.read();
      expect(errors).toEqual({});
      CpuSnapshotSchema.parse(snapshots.cpu);
      ProcessSnapshotSchema.parse(snapshots.process);
      expect(snapshots.process!.processes.map((p) => p.tgid)).toEqual([process.pid]);
      expect(snapshots.cpu!.processes[0]!.cpuNs).toBeGreaterThan(0);
    } finally {
      m.close();
    }
  });

  it('forced ebpf backend: every family fails with the addon error; required rejects', async () => {
    const m = await createMonitor({ families: ['cpu', 'disk'], backend: 'ebpf' });
    expect(m.readers.size).toBe(0);
    expect([...m.failures.values()].every((e) => e instanceof AddonNotBuiltError)).toBe(true);
    m.close();
    await expect(createMonitor({ families: ['cpu'], backend: 'ebpf', required: true })).rejects.toThrow(/failed to open/);
    await expect(createMonitor({ families: ['nope'] }).then((x) => x.failures.get('nope')?.message)).resolves.toMatch(/unknown metric family/);
  });
});
