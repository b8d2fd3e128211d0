/**
 * The `power` reader (sysfs + procfs, no eBPF needed): RAPL package/core/dram watts, hwmon
 * power sensors, and the per-process estimate of {@link EnergyEstimator}.
 * @module
 */
import { z } from 'zod';
import { validate } from '../../errors/validate.js';
import { EnergyEstimator, readNodeCpuNs, type CpuTimeSource } from '../energy/estimate.js';
import { KeptFiles } from '../procfs.js';
import { EMPTY_FILTER, type Backend, type ResolvedFilter } from '../family.js';
import { ReaderBase } from '../reader-base.js';
import { readHwmon } from '../thermal/hwmon.js';
import { SysfsLayoutCache } from '../thermal/sysfs-util.js';
import { RaplSampler } from './rapl.js';
import type { PowerSnapshot } from './schema.js';

/** Options of {@link openPowerReader}. */
export const PowerReaderOptionsSchema = z
  .object({
    sysfsRoot: z.string().min(1).optional(),
    procRoot: z.string().min(1).optional(),
    /** Estimate per-process power (default true). */
    processes: z.boolean().default(true),
    /** Keep the N processes using the most power (default 20). */
    topProcesses: z.number().int().positive().default(20),
    /** Package power at idle, W: only the power above it is attributed (default 0). */
    idleWatts: z.number().nonnegative().default(0),
  })
  .strict();
/** Options of {@link openPowerReader}. */
export type PowerReaderOptions = z.input<typeof PowerReaderOptionsSchema> & {
  /** Process CPU times (e.g. from the eBPF cpu reader); default procfs. */
  cpuTimes?: CpuTimeSource;
  /** Called once when the reader closes (releases what `cpuTimes` holds). */
  onClose?: () => void;
};

/** Reader of the `power` family. Watts are averages between two reads. */
export class PowerReader extends ReaderBase<PowerSnapshot> {
  /** Family name. */
  readonly family = 'power';
  /** Always `sysfs`. */
  readonly backend: Backend = 'sysfs';
  readonly #rapl: RaplSampler;
  readonly #estimator: EnergyEstimator | undefined;
  readonly #top: number;
  /** sysfs root and the directory listings reused between reads. */
  readonly #sys: { sysfsRoot?: string; layout: SysfsLayoutCache };

  /** @internal use {@link openPowerReader} */
  constructor(options: PowerReaderOptions, filter: ResolvedFilter) {
    super(filter);
    const { cpuTimes, onClose, ...rest } = options;
    this.#onClose = onClose;
    const o = validate(PowerReaderOptionsSchema, rest, 'power reader options');
    this.#top = o.topProcesses;
    const sys = o.sysfsRoot ? { sysfsRoot: o.sysfsRoot } : {};
    this.#sys = { ...sys, layout: new SysfsLayoutCache() };
    this.#rapl = new RaplSampler(this.#sys);
    if (o.processes) {
      // The estimator reads package power through this reader's sampler: one read of the counters per snapshot.
      let last: number | null = null;
      this.#estimator = new EnergyEstimator({
        ...sys,
        ...(o.procRoot ? { procRoot: o.procRoot } : {}),
        ...(filter.tgids.length ? { pids: [...filter.tgids] } : {}),
        idleWatts: o.idleWatts,
        ...(cpuTimes ? { cpuTimes } : {}),
        packageWatts: async () => last,
        // /proc/stat kept open and read again at offset 0 each sample (no open, path walk and close).
        nodeCpuNs: () => readNodeCpuNs(o.procRoot, (path) => this.#files.read(path)),
      });
      this.#setLast = (w) => (last = w);
    }
  }

  #setLast: (w: number | null) => void = () => {};
  readonly #onClose: (() => void) | undefined;

  /** Files read at every sample, kept open (see KeptFiles). */
  readonly #files = new KeptFiles(2);

  protected override onClose(): void {
    this.#files.close();
    this.#onClose?.();
  }

  protected async collect(): Promise<PowerSnapshot> {
    const now = process.hrtime.bigint();
    const [rapl, hwmon] = await Promise.all([this.#rapl.sample(now), readHwmon(this.#sys)]);
    const pkgs = rapl.filter((z) => z.parent === null && z.name.startsWith('package'));
    const packageWatts = pkgs.length && pkgs.every((z) => z.watts !== null) ? pkgs.reduce((s, z) => s + (z.watts ?? 0), 0) : null;
    this.#setLast(packageWatts);
    const est = this.#estimator ? await this.#estimator.sample(now) : undefined;
    this.check();
    const lacks: string[] = [];
    if (!rapl.length) lacks.push('no RAPL powercap zones in sysfs (/sys/class/powercap): package power and per-process watts unknown');
    const hwmonPower = hwmon.flatMap((c) => c.sensors.filter((s) => s.kind === 'power').map((s) => ({ chip: c.name, sensor: s.sensor, label: s.label, watts: s.value })));
    return {
      family: 'power',
      backend: this.backend,
      timestamp: Date.now(),
      rapl,
      packageWatts,
      hwmonPower,
      processes: est ? est.processes.slice(0, this.#top) : [],
      lacks,
    };
  }
}

/** Opens the power reader (never needs eBPF or root, except that energy_uj is root-only on recent kernels). */
export function openPowerReader(options: PowerReaderOptions = {}, context: { filter?: ResolvedFilter } = {}): PowerReader {
  return new PowerReader(options, context.filter ?? EMPTY_FILTER);
}
