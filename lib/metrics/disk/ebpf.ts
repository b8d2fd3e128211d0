/**
 * The eBPF backend of the `disk` family (blockio.bpf.o).
 * @internal
 */
import { u32, u64n } from '../../ebpf/codec.js';
import type { BpfMap } from '../../ebpf/map.js';
import { BpfReaderBase, type BpfReaderOptions } from '../bpf-base.js';
import { stBioDev, stBioProc, stBioProcKey } from '../bpf-structs.js';
import { blockDeviceName } from '../procfs.js';
import type { DiskSnapshot } from '../schemas.js';
import { WritesGate, type Decoded } from '../readers-shared.js';

function devString(dev: number): string {
  return `${dev >>> 20}:${dev & 0xfffff}`;
}

/** eBPF `disk` reader over bpf/blockio.bpf.c. */
export class EbpfDiskReader extends BpfReaderBase<DiskSnapshot> {
  readonly family = 'disk';
  readonly #dev: BpfMap<number, Decoded<typeof stBioDev>>;
  readonly #proc: BpfMap<Decoded<typeof stBioProcKey>, Decoded<typeof stBioProc>>;
  /** The last walk's records, walked again only after a completion (its write counter moved). */
  readonly #walk: WritesGate<{ devices: DiskSnapshot['devices']; processes: DiskSnapshot['processes'] }>;

  /** Attaches the object's programs and opens its maps; the reader owns `o.object`. */
  constructor(o: BpfReaderOptions) {
    super(o);
    this.#dev = this.map('bio_dev', { key: u32, value: stBioDev });
    this.#proc = this.map('bio_proc', { key: stBioProcKey, value: stBioProc });
    this.#walk = new WritesGate(this.map('st_writes', { key: u32, value: u64n }));
  }

  /**
   * Reads bio_dev and bio_proc when a request completed since the last read (the write
   * counter moved); otherwise the last read's records again, in new arrays. On a host whose
   * disks are idle most seconds, that is one lookup instead of two walks of every bucket.
   */
  protected collect(): DiskSnapshot {
    const { devices, processes } = this.#walk.get(() => this.#read());
    return { family: 'disk', backend: 'ebpf', timestamp: Date.now(), devices: devices.slice(), processes: processes.slice() };
  }

  #read(): { devices: DiskSnapshot['devices']; processes: DiskSnapshot['processes'] } {
    const devices: DiskSnapshot['devices'] = [];
    for (const [dev, d] of this.#dev.readAll()) {
      const ds = devString(dev);
      devices.push({
        dev: ds,
        name: blockDeviceName(ds),
        readOps: d.read_ops,
        writeOps: d.write_ops,
        otherOps: d.other_ops,
        readBytes: d.read_bytes,
        writeBytes: d.write_bytes,
        totalLatencyNs: d.total_ns,
        latency: { unit: 'us', slots: d.slots },
      });
    }
    const processes: DiskSnapshot['processes'] = [];
    for (const [k, p] of this.#proc.readAll()) {
      const ds = devString(k.dev);
      processes.push({ tgid: k.tgid, comm: p.comm, dev: ds, name: blockDeviceName(ds), readOps: p.read_ops, writeOps: p.write_ops, readBytes: p.read_bytes, writeBytes: p.write_bytes });
    }
    return { devices, processes };
  }
}
