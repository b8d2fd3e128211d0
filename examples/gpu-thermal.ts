/**
 * GPU and thermal monitor: per-process GPU use (CUDA driver API uprobes + NVML), temperatures
 * (thermal zones, hwmon), CPU idle/frequency residency, power (RAPL), and a plain statement of
 * what this host lacks. Runs for SMOOTHTASK_EXAMPLE_SECONDS (default 10) and exits.
 *
 *   node --import tsx examples/gpu-thermal.ts            (root, for eBPF)
 *   SMOOTHTASK_LIBCUDA=/path/libcuda.so.1 ...            (a CUDA driver outside the loader's paths)
 */
import {
  openGpuReader,
  openNvmlGpuReader,
  openPowerReader,
  openThermalReader,
  type GpuReader,
  type ThermalReader,
} from 'smoothtask/metrics';

const seconds = Number(process.env.SMOOTHTASK_EXAMPLE_SECONDS ?? 10);
const fmtBytes = (n: number) => (n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${n} B`);

async function openGpu(): Promise<GpuReader> {
  try {
    return await openGpuReader();
  } catch (e) {
    // No addon, no root or no BPF: NVML alone still tells device use.
    console.log(`gpu: eBPF unavailable (${(e as Error).message.split('\n')[0]}); NVML only`);
    return openNvmlGpuReader();
  }
}

async function openThermal(): Promise<ThermalReader> {
  try {
    return await openThermalReader();
  } catch (e) {
    console.log(`thermal: eBPF unavailable (${(e as Error).message.split('\n')[0]}); sysfs only`);
    return openThermalReader({ backend: 'sysfs' });
  }
}

const gpu = await openGpu();
const thermal = await openThermal();
const power = openPowerReader({ topProcesses: 5 });
const stop = Date.now() + seconds * 1000;
let lacksShown = false;

try {
  for (let tick = 1; ; tick++) {
    await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(0, stop - Date.now()))));
    const [g, t, p] = await Promise.all([gpu.read(), thermal.read(), power.read()]);
    console.log(`\n--- ${new Date(t.timestamp).toISOString()} (gpu: ${g.backend}, thermal: ${t.backend}, power: ${p.backend})`);
    for (const d of g.nvml.devices) {
      console.log(
        `GPU ${d.index} ${d.name}: ${d.utilizationGpuPercent ?? '?'}% busy, ${fmtBytes(d.memoryUsedBytes ?? 0)}/${fmtBytes(d.memoryTotalBytes ?? 0)}, ` +
          `${d.temperatureC ?? '?'} °C, ${d.powerWatts ?? '?'} W`,
      );
    }
    for (const pr of g.processes) {
      console.log(
        `  pid ${pr.pid} ${pr.comm}: ${pr.launches} launches, ${fmtBytes(pr.outstandingBytes)} held, ` +
          `H→D ${fmtBytes(pr.htodBytes)} D→H ${fmtBytes(pr.dtohBytes)}, sync ${(pr.syncSeconds * 1000).toFixed(1)} ms, ${pr.fencesEmitted} GPU jobs`,
      );
    }
    if (!g.processes.length) console.log('  no process used the CUDA driver API or submitted GPU jobs');
    for (const z of t.zones) console.log(`zone ${z.type}: ${z.temperatureC ?? '?'} °C${z.trips.length ? ` (trips ${z.trips.map((x) => `${x.type} ${x.temperatureC}`).join(', ')})` : ''}`);
    for (const c of t.hwmon) for (const s of c.sensors.filter((x) => x.kind === 'temperature')) console.log(`${c.name} ${s.label}: ${s.value ?? '?'} °C`);
    for (const c of t.cpus) {
      const idle = c.idle.reduce((s, r) => s + r.seconds, 0);
      console.log(`cpu${c.cpu}: idle ${idle.toFixed(2)} s in ${c.idle.length} state(s)${c.currentKhz ? `, ${c.currentKhz / 1000} MHz` : ''}`);
    }
    if (p.packageWatts !== null) console.log(`package: ${p.packageWatts.toFixed(1)} W; top: ${p.processes.map((x) => `${x.comm}(${x.pid}) ${x.watts?.toFixed(2)} W`).join(', ')}`);
    if (!lacksShown) {
      lacksShown = true;
      const lacks = [...g.lacks, ...t.lacks, ...p.lacks];
      console.log(lacks.length ? `\nThis host lacks:\n  - ${lacks.join('\n  - ')}` : '\nThis host has everything this monitor reads.');
    }
    if (Date.now() >= stop || tick >= 600) break;
  }
} finally {
  gpu.close();
  thermal.close();
  power.close();
}
