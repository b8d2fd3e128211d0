import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { BpfMap } from '../../lib/ebpf/map.js';
import { EMPTY_FILTER } from '../../lib/metrics/family.js';
import { findLibcuda, GpuSnapshotSchema, openGpuReader, type GpuReader } from '../../lib/metrics/gpu/index.js';
import { buildCudaStubs, type CudaStubBuild } from '../fixtures/cuda-stub/build.js';

// No GPU here: the uprobes attach to a stub libcuda.so.1 exporting the real CUDA driver API
// symbols with the real signatures; a driver program calls it a known number of times and
// prints what it did. Every counter must match exactly.
let stubs: CudaStubBuild;
const readers: GpuReader[] = [];
const children: ChildProcessWithoutNullStreams[] = [];
beforeAll(() => {
  stubs = buildCudaStubs();
});
afterAll(() => {
  for (const r of readers) r.close();
  for (const c of children) c.kill('SIGKILL');
  stubs?.close();
});

interface Expected {
  pid: number;
  launches: number;
  allocs: number;
  allocBytes: number;
  failedAllocs: number;
  frees: number;
  freeBytes: number;
  outstandingBytes: number;
  htod: number;
  htodBytes: number;
  dtoh: number;
  dtohBytes: number;
  syncs: number;
}

/** Starts the driver; it waits for "go" so probes can attach to its pid first. */
async function startDriver(rounds: number, threads = 1): Promise<{ pid: number; run(): Promise<Expected>; finish(): Promise<void> }> {
  const child = spawn(stubs.driver, ['run', String(rounds), String(threads)], { env: { ...process.env, SMOOTHTASK_STUB_SYNC_US: '2000' } });
  children.push(child);
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<Record<string, number>> => {
    const timer = new Promise<never>((_, rej) => setTimeout(() => rej(new Error('driver did not answer in 20 s')), 20_000).unref());
    const r = await Promise.race([lines.next(), timer]);
    if (r.done) throw new Error('driver exited early');
    return JSON.parse(r.value) as Record<string, number>;
  };
  const ready = await next();
  return {
    pid: ready.pid!,
    async run() {
      child.stdin.write('go\n');
      return (await next()) as unknown as Expected;
    },
    async finish() {
      const exited = new Promise((res) => child.once('exit', res));
      child.stdin.end('\n');
      await exited;
    },
  };
}

function expectExact(snapProcess: Record<string, unknown> | undefined, e: Expected): void {
  expect(snapProcess).toBeDefined();
  expect(snapProcess).toMatchObject({
    pid: e.pid,
    comm: 'driver',
    launches: e.launches,
    allocations: e.allocs,
    allocatedBytes: e.allocBytes,
    failedAllocations: e.failedAllocs,
    frees: e.frees,
    freedBytes: e.freeBytes,
    untrackedFrees: 0,
    outstandingBytes: e.outstandingBytes,
    htodCopies: e.htod,
    htodBytes: e.htodBytes,
    dtohCopies: e.dtoh,
    dtohBytes: e.dtohBytes,
    dtodCopies: 0,
    dtodBytes: 0,
    syncs: e.syncs,
    fencesEmitted: 0,
  });
}

describe('gpu reader: CUDA driver API uprobes (stub libcuda.so.1)', () => {
  it('finds libcuda through an explicit path and reports none on this host otherwise', () => {
    expect(findLibcuda({ path: stubs.libcuda })).toMatchObject({ realPath: stubs.libcuda, source: 'option' });
    expect(findLibcuda({ env: { SMOOTHTASK_LIBCUDA: stubs.libcuda } })).toMatchObject({ source: 'env' });
    expect(findLibcuda({ env: { LD_LIBRARY_PATH: `/nonexistent:${stubs.dir}` } })).toMatchObject({ source: 'LD_LIBRARY_PATH', realPath: stubs.libcuda });
  });

  it('system-wide: every counter of a process is exact', async () => {
    const reader = await openGpuReader({ libcuda: stubs.libcuda, nvml: stubs.libnvml });
    readers.push(reader);
    expect(reader.backend).toBe('ebpf');
    expect(reader.symbols).toEqual(
      expect.arrayContaining(['cuLaunchKernel', 'cuMemAlloc_v2', 'cuMemAllocManaged', 'cuMemFree_v2', 'cuMemcpyHtoD_v2', 'cuMemcpyHtoDAsync_v2', 'cuMemcpyDtoH_v2', 'cuMemcpyDtoHAsync_v2', 'cuMemcpyDtoD_v2', 'cuCtxSynchronize', 'cuStreamSynchronize']),
    );
    const d = await startDriver(7);
    const expected = await d.run();
    expect(expected.launches).toBe(28);
    const snap = GpuSnapshotSchema.parse(await reader.read());
    expect(snap.cuda.library).toBe(stubs.libcuda);
    const p = snap.processes.find((x) => x.pid === d.pid);
    expectExact(p, expected);
    // each sync sleeps 2 ms in the stub: the time inside is at least that, and bounded
    expect(p!.syncSeconds).toBeGreaterThanOrEqual(expected.syncs * 0.002);
    expect(p!.syncSeconds).toBeLessThan(expected.syncs * 0.002 + 5);
    expect(p!.syncMaxSeconds).toBeGreaterThanOrEqual(0.002);
    // NVML (stub) came along in the same snapshot
    expect(snap.nvml.available).toBe(true);
    expect(snap.nvml.devices).toHaveLength(2);
    await d.finish();
    expect(reader.memoryBytes()).toBeGreaterThan(0);
  });

  it('reads gpu_procs again only after a program wrote it: nothing before the calls, exact after, the same (as new records) while nothing is called', async () => {
    const reader = await openGpuReader({ libcuda: stubs.libcuda, nvml: stubs.libnvml });
    readers.push(reader);
    const walks = vi.spyOn(BpfMap.prototype, 'readAll');
    try {
      const d = await startDriver(3);
      const before = await reader.read();
      expect(before.processes.find((x) => x.pid === d.pid)).toBeUndefined();
      walks.mockClear();
      await reader.read(); // no call since: the write counter stood still
      expect(walks).not.toHaveBeenCalled();
      const expected = await d.run();
      const a = await reader.read();
      expect(walks).toHaveBeenCalledTimes(1);
      expectExact(a.processes.find((x) => x.pid === d.pid), expected);
      const b = await reader.read();
      expect(walks).toHaveBeenCalledTimes(1);
      expect(b.processes).toEqual(a.processes);
      // Each snapshot has records of its own (the read fills in nvmlMemoryBytes).
      expect(b.processes.find((x) => x.pid === d.pid)).not.toBe(a.processes.find((x) => x.pid === d.pid));
      await d.finish();
    } finally {
      walks.mockRestore();
    }
  });

  it('per pid: only the chosen process is counted', async () => {
    const a = await startDriver(3);
    const b = await startDriver(2);
    const reader = await openGpuReader({ libcuda: stubs.libcuda, pid: a.pid, nvml: false, fences: false });
    readers.push(reader);
    const [ea] = await Promise.all([a.run(), b.run()]);
    const snap = await reader.read();
    expect(snap.cuda.pid).toBe(a.pid);
    expectExact(snap.processes.find((x) => x.pid === a.pid), ea);
    expect(snap.processes.find((x) => x.pid === b.pid)).toBeUndefined();
    expect(snap.processes).toHaveLength(1);
    await Promise.all([a.finish(), b.finish()]);
    reader.close();
    expect(reader.closed).toBe(true);
    await expect(reader.read()).rejects.toMatchObject({ code: 'ERR_BPF_CLOSED' });
    reader.close(); // idempotent
  });

  it('per pid, multi-threaded caller: every thread of the process is counted, exactly', async () => {
    const d = await startDriver(3, 4);
    const reader = await openGpuReader({ libcuda: stubs.libcuda, pid: d.pid, nvml: false, fences: false });
    readers.push(reader);
    const e = await d.run();
    expect(e.launches).toBe(4 * 3 * 4);
    const snap = await reader.read();
    const p = snap.processes.find((x) => x.pid === d.pid);
    expectExact(p, e);
    expect(p!.syncSeconds).toBeGreaterThanOrEqual(e.syncs * 0.002);
    await d.finish();
  });

  it('in-kernel filter changes at run time without a reload', async () => {
    const reader = await openGpuReader({ libcuda: stubs.libcuda, nvml: false, fences: false });
    readers.push(reader);
    const a = await startDriver(2);
    const b = await startDriver(4);
    reader.setFilter({ ...EMPTY_FILTER, tgids: [b.pid] });
    const [, eb] = await Promise.all([a.run(), b.run()]);
    const snap = await reader.read();
    expect(snap.processes.find((x) => x.pid === a.pid)).toBeUndefined();
    expectExact(snap.processes.find((x) => x.pid === b.pid), eb);
    await Promise.all([a.finish(), b.finish()]);
  });

  it('mapSizes: gpu_allocs sized by the caller (88 bytes a live allocation, preallocated); an unknown map is refused', async () => {
    const small = await openGpuReader({ libcuda: stubs.libcuda, nvml: false, fences: false });
    readers.push(small);
    const big = await openGpuReader({ libcuda: stubs.libcuda, nvml: false, fences: false, mapSizes: { gpu_allocs: 65536 } });
    readers.push(big);
    expect(big.memoryBytes() - small.memoryBytes()).toBeGreaterThanOrEqual((65536 - 16384) * 80);
    // Counting is the same with the bigger map.
    const d = await startDriver(3);
    const e = await d.run();
    const snap = await big.read();
    expectExact(snap.processes.find((x) => x.pid === d.pid), e);
    await d.finish();
    await expect(openGpuReader({ libcuda: stubs.libcuda, nvml: false, fences: false, mapSizes: { gpu_allocz: 10 } })).rejects.toMatchObject({ code: 'ERR_CONFIG', message: expect.stringMatching(/gpu_allocz/) });
  });

  it('says what is missing: no libcuda, dma_fence tracepoints that never fire here', async () => {
    const reader = await openGpuReader({ libcuda: '/nonexistent/libcuda.so.1', nvml: '/nonexistent/libnvidia-ml.so.1' });
    readers.push(reader);
    const snap = await reader.read();
    expect(snap.cuda.symbols).toEqual([]);
    expect(snap.lacks.join('\n')).toMatch(/CUDA driver: \/nonexistent\/libcuda.so.1 does not exist/);
    expect(snap.lacks.join('\n')).toMatch(/NVML: NVML library not found/);
    // dma_fence exists in this kernel (no GPU driver emits on it, so counts stay 0)
    expect(snap.fences.attached).toBe(true);
    expect(snap.processes.every((p) => p.fencesEmitted === 0)).toBe(true);
  });
});
