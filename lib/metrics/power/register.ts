/**
 * Registers the `power` family with the metrics registry.
 * @internal
 */
import { loadBundled } from '../bpf-base.js';
import { BUILTIN_OBJECTS } from '../builtin.js';
import { registerFamily, type FamilyContext } from '../family.js';
import { EbpfProcessReader } from '../process/ebpf.js';
import { MetricsError } from '../errors.js';
import type { ProcessSnapshot } from '../schemas.js';
import type { CpuTimeSample, CpuTimeSource } from '../energy/estimate.js';
import { openPowerReader } from './reader.js';

/**
 * Per-process CPU times for the power estimate from the kernel's task iterator instead of
 * reading `/proc/<pid>/stat` of every process every second: through the `process` family's
 * reader when the same monitor has it on eBPF (the snapshot it read in the same tick: one pass
 * of the iterator for both), else from the process family's object loaded with the iterator
 * alone (nothing attached to any event; released once the process family's reader is seen).
 * Undefined when eBPF cannot load here: the estimate then reads procfs.
 */
async function iteratorCpuTimes(ctx: FamilyContext): Promise<{ cpuTimes: CpuTimeSource; close: () => void } | undefined> {
  let own: EbpfProcessReader | undefined;
  try {
    const object = await loadBundled(BUILTIN_OBJECTS.process, { programs: ['st_proc_iter'] });
    own = new EbpfProcessReader({ object, filter: ctx.filter, events: false });
  } catch {
    return undefined;
  }
  // The estimate reads the samples before it asks again: one array and its objects serve
  // every read (not a new object per process per second).
  const samples: CpuTimeSample[] = [];
  const toSamples = (s: ProcessSnapshot): CpuTimeSample[] => {
    const ps = s.processes;
    for (let i = 0; i < ps.length; i++) {
      const p = ps[i]!;
      const o = (samples[i] ??= { pid: 0, comm: '', cpuNs: 0 });
      o.pid = p.tgid;
      o.comm = p.comm;
      o.cpuNs = p.cpuNs;
    }
    samples.length = ps.length;
    return samples;
  };
  return {
    cpuTimes: async () => {
      const peer = ctx.peer?.('process');
      if (peer instanceof EbpfProcessReader && !peer.closed) {
        own?.close();
        own = undefined;
        // Read in the same tick by the monitor (or now, when this read comes first).
        return toSamples(await peer.recent(PEER_MAX_AGE_MS));
      }
      if (!own) throw new MetricsError('ERR_METRICS_SOURCE', "the process family's reader this estimate read through was closed");
      return toSamples(await own.read());
    },
    close: () => own?.close(),
  };
}

/** How old a snapshot of the process family may be for the estimate (a monitor reads every family in the same tick). */
const PEER_MAX_AGE_MS = 250;

registerFamily('power', async (ctx) => {
  const times = await iteratorCpuTimes(ctx);
  return openPowerReader(times ? { cpuTimes: times.cpuTimes, onClose: times.close } : {}, { filter: ctx.filter });
}, {
  backends: ['sysfs'],
  description: 'RAPL package/core/dram watts, hwmon power sensors, per-process power estimate',
});
