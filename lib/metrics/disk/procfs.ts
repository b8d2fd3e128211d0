/**
 * The procfs backend of the `disk` family.
 * @internal
 */
import { readDiskstats, readProcIo } from '../procfs.js';
import { ReaderBase } from '../reader-base.js';
import type { DiskProcess, DiskSnapshot } from '../schemas.js';
import { matchingProcesses } from '../readers-shared.js';

/** procfs `disk` reader: /proc/diskstats per disk, /proc/<pid>/io per process (bytes only). */
export class ProcfsDiskReader extends ReaderBase<DiskSnapshot> {
  readonly family = 'disk';
  readonly backend = 'procfs' as const;

  protected collect(): DiskSnapshot {
    const devices: DiskSnapshot['devices'] = readDiskstats().map((d) => ({
      dev: `${d.major}:${d.minor}`,
      name: d.name,
      readOps: d.readOps,
      writeOps: d.writeOps,
      otherOps: null,
      readBytes: d.readBytes,
      writeBytes: d.writeBytes,
      totalLatencyNs: (d.readMs + d.writeMs) * 1e6,
      latency: null,
    }));
    const processes: DiskProcess[] = [];
    for (const p of matchingProcesses(this.filter)) {
      const io = readProcIo(p.pid);
      if (!io || (io.readBytes === 0 && io.writeBytes === 0)) continue;
      processes.push({ tgid: p.pid, comm: p.comm, dev: null, name: null, readOps: null, writeOps: null, readBytes: io.readBytes, writeBytes: io.writeBytes });
    }
    return { family: 'disk', backend: 'procfs', timestamp: Date.now(), devices, processes };
  }
}
