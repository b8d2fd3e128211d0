/**
 * Registers the `power` family with the metrics registry.
 * @internal
 */
import { loadBundled } from '../bpf-base.js';
import { BUILTIN_OBJECTS } from '../builtin.js';
import { registerFamily, type FamilyContext } from '../family.js';
import { EbpfProcessReader } from '../process/ebpf.js';
import type { CpuTimeSource } from '../energy/estimate.js';
import { openPowerReader } from './reader.js';

/**
 * Per-process CPU times for the power estimate from one pass of the process family's BPF task
 * iterator (its object loaded with the iterator alone: nothing attached to any event), instead
 * of reading `/proc/<pid>/stat` of every process every second. Undefined when eBPF cannot
 * load here: the estimate then reads procfs.
 */
async function iteratorCpuTimes(ctx: FamilyContext): Promise<{ cpuTimes: CpuTimeSource; close: () => void } | undefined> {
  try {
    const object = await loadBundled(BUILTIN_OBJECTS.process, { programs: ['st_proc_iter'] });
    const reader = new EbpfProcessReader({ object, filter: ctx.filter, events: false });
    return {
      cpuTimes: async () => (await reader.read()).processes.map((p) => ({ pid: p.tgid, comm: p.comm, cpuNs: p.cpuNs })),
      close: () => reader.close(),
    };
  } catch {
    return undefined;
  }
}


registerFamily('power', async (ctx) => {
  const times = await iteratorCpuTimes(ctx);
  return openPowerReader(times ? { cpuTimes: times.cpuTimes, onClose: times.close } : {}, { filter: ctx.filter });
}, {
  backends: ['sysfs'],
  description: 'RAPL package/core/dram watts, hwmon power sensors, per-process power estimate',
});
