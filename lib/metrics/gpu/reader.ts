/**
 * The `gpu` reader: CUDA driver API uprobes (bpf/gpu.bpf.c) per process, dma-fence jobs per
 * process, and NVML device metrics, in one snapshot.
 * @module
 */
import { join } from 'node:path';
import { z } from 'zod';
import { validate } from '../../errors/validate.js';
import { loadObject, u32, u64n, type BpfMap, type BpfObject, type Link } from '../../ebpf/index.js';
import '../../ebpf/attach.js'; // registers program.attach()
import { bpfObjectDir } from '../../native/addon.js';
import { EMPTY_FILTER, type Backend, type ResolvedFilter } from '../family.js';
import { ReaderBase } from '../reader-base.js';
import { WritesGate } from '../readers-shared.js';
import { applyBpfFilter, objectMapBytes } from './bpf-filter.js';
import { findLibcuda } from './libcuda.js';
import { sampleNvml, type NvmlSample } from './nvml.js';
import type { GpuProcess, GpuSnapshot } from './schema.js';
import { gpuProcStats } from './structs.js';

/**
 * The CUDA driver API symbols hooked, by program. The first symbol of each group is the one
 * every CUDA driver since 4.0 exports; the others (per-thread default stream `_ptsz`/`_ptds`
 * variants, async/managed allocators, newer launch entry points) are hooked when present.
 */
export const CUDA_PROBES: readonly { program: string; ret?: string; symbols: readonly string[] }[] = [
  { program: 'cu_launch_kernel', symbols: ['cuLaunchKernel', 'cuLaunchKernel_ptsz', 'cuLaunchKernelEx', 'cuLaunchKernelEx_ptsz', 'cuLaunchCooperativeKernel', 'cuLaunchCooperativeKernel_ptsz'] },
  { program: 'cu_mem_alloc', ret: 'cu_mem_alloc_ret', symbols: ['cuMemAlloc_v2', 'cuMemAllocManaged', 'cuMemAllocAsync', 'cuMemAllocAsync_ptsz'] },
  { program: 'cu_mem_free', symbols: ['cuMemFree_v2', 'cuMemFreeAsync', 'cuMemFreeAsync_ptsz'] },
  { program: 'cu_memcpy_htod', symbols: ['cuMemcpyHtoD_v2', 'cuMemcpyHtoDAsync_v2', 'cuMemcpyHtoD_v2_ptds', 'cuMemcpyHtoDAsync_v2_ptsz'] },
  { program: 'cu_memcpy_dtoh', symbols: ['cuMemcpyDtoH_v2', 'cuMemcpyDtoHAsync_v2', 'cuMemcpyDtoH_v2_ptds', 'cuMemcpyDtoHAsync_v2_ptsz'] },
  { program: 'cu_memcpy_dtod', symbols: ['cuMemcpyDtoD_v2', 'cuMemcpyDtoDAsync_v2', 'cuMemcpyDtoD_v2_ptds', 'cuMemcpyDtoDAsync_v2_ptsz'] },
  { program: 'cu_sync', ret: 'cu_sync_ret', symbols: ['cuCtxSynchronize', 'cuStreamSynchronize', 'cuStreamSynchronize_ptsz'] },
];

/** Options of {@link openGpuReader}. */
export const GpuReaderOptionsSchema = z
  .object({
    /** libcuda path; default: found like the dynamic loader would ({@link findLibcuda}). */
    libcuda: z.string().min(1).optional(),
    /** Hook the CUDA driver API (default true). */
    cuda: z.boolean().default(true),
    /** Attach the CUDA uprobes to this process only (default: every process using the library). */
    pid: z.number().int().positive().optional(),
    /** Attach the dma_fence tracepoints (default true). */
    fences: z.boolean().default(true),
    /** Sample NVML (default true); a string is the library path. */
    nvml: z.union([z.boolean(), z.string().min(1)]).default(true),
    /** The compiled gpu.bpf.o (default `<bpfObjectDir()>/gpu.bpf.o`). */
    objectPath: z.string().min(1).optional(),
    /** Load timeout, ms (default 30 s). */
    timeoutMs: z.number().positive().default(30_000),
    /**
     * `max_entries` of the object's maps, e.g. `{ gpu_allocs: 65536 }` to track more live CUDA
     * allocations exactly than the default 16,384 (88 bytes of kernel memory each, preallocated).
     */
    mapSizes: z.record(z.string().min(1), z.number().int().min(1).max(0xffffffff)).optional(),
  })
  .strict();
/** Options of {@link openGpuReader}. */
export type GpuReaderOptions = z.input<typeof GpuReaderOptionsSchema>;

/** How long a reader reuses "NVML library not found" before looking for the library again. */
const NVML_RETRY_MS = 30_000;

/** Reader of the `gpu` family. */
export class GpuReader extends ReaderBase<GpuSnapshot> {
  /** Family name. */
  readonly family = 'gpu';
  /** `ebpf` when the BPF object is loaded, `nvml` when only NVML is sampled. */
  readonly backend: Backend;
  /** CUDA symbols hooked (entry and return probes count once). */
  readonly symbols: readonly string[];
  readonly #obj: BpfObject | undefined;
  readonly #links: Link[];
  readonly #cuda: GpuSnapshot['cuda'];
  readonly #fences: GpuSnapshot['fences'];
  readonly #nvml: false | string | true;
  readonly #lacks: string[];

  /** @internal use {@link openGpuReader} */
  constructor(
    parts: { obj?: BpfObject; links: Link[]; cuda: GpuSnapshot['cuda']; fences: GpuSnapshot['fences']; nvml: false | string | true; lacks: string[] },
    filter: ResolvedFilter,
  ) {
    super(filter);
    this.#obj = parts.obj;
    this.backend = parts.obj ? 'ebpf' : 'nvml';
    this.#links = parts.links;
    this.#cuda = parts.cuda;
    this.#fences = parts.fences;
    this.#nvml = parts.nvml;
    this.#lacks = parts.lacks;
    this.symbols = parts.cuda.symbols;
    this.#procs = parts.obj?.map('gpu_procs', { key: u32, value: gpuProcStats });
    // (An object of its own, `objectPath`, may predate the counter: then every read reads.)
    this.#writes = parts.obj?.maps.has('st_writes') ? parts.obj.map('st_writes', { key: u32, value: u64n }) : undefined;
    this.#procsGate = this.#writes ? new WritesGate(this.#writes) : undefined;
  }

  /** gpu_procs, opened once (a read is one batch lookup, no fd churn). */
  readonly #procs: BpfMap<number, ReturnType<typeof gpuProcStats.decode>> | undefined;
  /** The object's write counter, bumped after every write to gpu_procs. */
  readonly #writes: BpfMap<number, number> | undefined;
  /**
   * gpu_procs' last records, read again only when the counter moved: a node where no process
   * used the GPU since the reader opened reads one counter a tick, not 1,024 buckets.
   */
  readonly #procsGate: WritesGate<GpuProcess[]> | undefined;

  /** The loaded object (programs carry run-time stats for the benchmark). @internal */
  get object(): BpfObject | undefined {
    return this.#obj;
  }

  /** Replaces the in-kernel filter (tgids, cgroups, comm) without a reload. */
  override setFilter(filter: ResolvedFilter): void {
    super.setFilter(filter);
    if (this.#obj) applyBpfFilter(this.#obj, filter);
  }

  /** Kernel memory of the object's maps, bytes. */
  override memoryBytes(): number {
    return this.#obj && !this.#obj.closed ? objectMapBytes(this.#obj) : 0;
  }

  /** Per-process counters from the kernel maps (no NVML). */
  processes(): GpuProcess[] {
    this.check();
    const m = this.#procs;
    if (!m) return [];
    if (!this.#procsGate) return this.#readProcs(m);
    // Copies: the caller fills in nvmlMemoryBytes, and a kept record must not change under an
    // earlier snapshot.
    return this.#procsGate.get(() => this.#readProcs(m)).map((p) => ({ ...p }));
  }

  #readProcs(m: BpfMap<number, ReturnType<typeof gpuProcStats.decode>>): GpuProcess[] {
    const out: GpuProcess[] = [];
    for (const [pid, s] of m.readAll()) {
      out.push({
        pid,
        comm: s.comm,
        launches: s.launches,
        allocations: s.alloc_count,
        allocatedBytes: s.alloc_bytes,
        failedAllocations: s.alloc_failed,
        frees: s.free_count,
        freedBytes: s.free_bytes,
        untrackedFrees: s.free_untracked,
        outstandingBytes: Math.max(0, s.alloc_bytes - s.free_bytes),
        htodCopies: s.htod_count,
        htodBytes: s.htod_bytes,
        dtohCopies: s.dtoh_count,
        dtohBytes: s.dtoh_bytes,
        dtodCopies: s.dtod_count,
        dtodBytes: s.dtod_bytes,
        syncs: s.sync_count,
        syncSeconds: s.sync_ns / 1e9,
        syncMaxSeconds: s.sync_max_ns / 1e9,
        fencesEmitted: s.fence_emitted,
        fencesSignaled: s.fence_signaled,
        fenceLatencySeconds: s.fence_latency_ns / 1e9,
        fenceLatencyMaxSeconds: s.fence_latency_max_ns / 1e9,
        nvmlMemoryBytes: null,
      });
    }
    return out.sort((a, b) => a.pid - b.pid);
  }

  #nvmlMissing: { sample: NvmlSample; at: number } | undefined;

  /**
   * NVML's sample. Where the library is not there, looking for it again costs a dlopen path
   * search (a dozen failed opens) on every read: the answer is reused for NVML_RETRY_MS, so a
   * driver installed later is still picked up.
   */
  async #sampleNvml(): Promise<NvmlSample> {
    const missing = this.#nvmlMissing;
    if (missing && Date.now() - missing.at < NVML_RETRY_MS) return missing.sample;
    const sample = await sampleNvml(typeof this.#nvml === 'string' ? { library: this.#nvml } : {});
    this.#nvmlMissing = !sample.available && sample.reason.startsWith('NVML library not found') ? { sample, at: Date.now() } : undefined;
    return sample;
  }

  protected async collect(): Promise<GpuSnapshot> {
    const nvml: NvmlSample =
      this.#nvml === false
        ? { available: false, library: null, reason: 'NVML sampling disabled', driverVersion: null, devices: [] }
        : await this.#sampleNvml();
    this.check();
    const processes = this.processes();
    // NVML's per-process memory (what the driver really holds, including the context).
    const nvmlMem = new Map<number, number>();
    for (const d of nvml.devices) for (const p of d.processes ?? []) if (p.usedMemoryBytes !== null) nvmlMem.set(p.pid, (nvmlMem.get(p.pid) ?? 0) + p.usedMemoryBytes);
    for (const p of processes) p.nvmlMemoryBytes = nvmlMem.get(p.pid) ?? null;
    const lacks = [...this.#lacks];
    if (!nvml.available) lacks.push(`NVML: ${nvml.reason}`);
    else if (nvml.devices.length === 0) lacks.push('NVML: no NVIDIA device');
    return { family: 'gpu', backend: this.backend, timestamp: Date.now(), cuda: this.#cuda, fences: this.#fences, processes, nvml, lacks };
  }

  protected override onClose(): void {
    for (const l of this.#links) l.close();
    this.#procs?.close();
    this.#writes?.close();
    this.#obj?.close();
  }
}

/**
 * Opens the GPU reader: loads bpf/gpu.bpf.o, hooks the CUDA driver API in libcuda (when found)
 * and the dma_fence tracepoints (when the kernel has them), and samples NVML on each read.
 * Whatever the host lacks is listed in `snapshot.lacks`; only a failure to load the BPF object
 * itself rejects (use `backend: 'nvml'` through the monitor to run without eBPF).
 */
export async function openGpuReader(options: GpuReaderOptions = {}, context: { filter?: ResolvedFilter; object?: Promise<unknown> } = {}): Promise<GpuReader> {
  const o = validate(GpuReaderOptionsSchema, options, 'gpu reader options');
  const filter = context.filter ?? EMPTY_FILTER;
  const lacks: string[] = [];
  const obj = context.object
    ? ((await context.object) as BpfObject)
    : await loadObject(o.objectPath ?? join(bpfObjectDir(), 'gpu.bpf.o'), {
        // Not cached: each reader owns its maps, so two readers never count the same call twice.
        // Per pid: the uprobes attach to that process (its mm, so every thread), and targ_tgid
        // checks the tgid in the kernel as well.
        cache: false,
        timeoutMs: o.timeoutMs,
        ...(o.pid !== undefined ? { constants: { targ_tgid: o.pid } } : {}),
        ...(o.mapSizes ? { mapSizes: o.mapSizes } : {}),
      });
  const links: Link[] = [];
  try {
    applyBpfFilter(obj, filter);
    const cuda: GpuSnapshot['cuda'] = { library: null, pid: o.pid ?? null, symbols: [], reason: '' };
    if (!o.cuda) cuda.reason = 'CUDA uprobes disabled';
    else {
      const lib = findLibcuda(o.libcuda ? { path: o.libcuda } : {});
      if (!lib) {
        cuda.reason = o.libcuda ? `${o.libcuda} does not exist` : 'libcuda.so.1 not found (no NVIDIA CUDA driver installed)';
        lacks.push(`CUDA driver: ${cuda.reason}`);
      } else {
        cuda.library = lib.realPath;
        const errors: string[] = [];
        for (const group of CUDA_PROBES) {
          for (const symbol of group.symbols) {
            const attached: Link[] = [];
            try {
              const base = { type: 'uprobe' as const, binary: lib.realPath, symbol, ...(o.pid !== undefined ? { pid: o.pid } : {}) };
              attached.push(obj.program(group.program).attach(base));
              if (group.ret) attached.push(obj.program(group.ret).attach({ ...base, retprobe: true }));
              links.push(...attached);
              cuda.symbols.push(symbol);
            } catch (e) {
              for (const l of attached) l.close();
              if (symbol === group.symbols[0]) errors.push(`${symbol}: ${(e as Error).message}`);
            }
          }
        }
        if (!cuda.symbols.length) {
          cuda.reason = `no CUDA driver API symbol could be hooked in ${lib.realPath}: ${errors.join('; ')}`;
          lacks.push(`CUDA uprobes: ${cuda.reason}`);
        } else if (errors.length) cuda.reason = `missing: ${errors.join('; ')}`;
      }
    }
    const fences: GpuSnapshot['fences'] = { attached: false, reason: '' };
    if (!o.fences) fences.reason = 'dma-fence tracepoints disabled';
    else {
      try {
        links.push(obj.program('gpu_fence_emit').attach({ type: 'tracepoint', category: 'dma_fence', name: 'dma_fence_emit' }));
        links.push(obj.program('gpu_fence_signaled').attach({ type: 'tracepoint', category: 'dma_fence', name: 'dma_fence_signaled' }));
        fences.attached = true;
      } catch (e) {
        fences.reason = `dma_fence tracepoints unavailable: ${(e as Error).message}`;
        lacks.push(fences.reason);
      }
    }
    return new GpuReader({ obj, links, cuda, fences, nvml: o.nvml, lacks }, filter);
  } catch (e) {
    for (const l of links) l.close();
    obj.close();
    throw e;
  }
}

/** Opens an NVML-only reader (no eBPF): devices and per-process device memory. */
export function openNvmlGpuReader(options: { nvml?: string | true } = {}, filter: ResolvedFilter = EMPTY_FILTER): GpuReader {
  return new GpuReader(
    { links: [], cuda: { library: null, pid: null, symbols: [], reason: 'eBPF backend not used' }, fences: { attached: false, reason: 'eBPF backend not used' }, nvml: options.nvml ?? true, lacks: [] },
    filter,
  );
}
