import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { sampleNvml, shutdownNvml } from '../../lib/metrics/gpu/index.js';
import { buildCudaStubs, type CudaStubBuild } from '../fixtures/cuda-stub/build.js';

// This machine has no NVIDIA GPU and no libnvidia-ml: "absent" is checked for real, "present"
// against a stub libnvidia-ml.so.1 with NVML's real signatures, loaded through the override path.
let stubs: CudaStubBuild;
beforeAll(() => {
  stubs = buildCudaStubs();
});
afterAll(() => {
  shutdownNvml();
  stubs?.close();
});

describe('NVML', () => {
  it('without the library: an empty, typed result saying why, not an error', async () => {
    const r = await sampleNvml({ library: '/nonexistent/libnvidia-ml.so.1' });
    expect(r).toEqual({ available: false, library: null, reason: expect.stringContaining('NVML library not found'), driverVersion: null, devices: [] });
  });

  it('on this host (no NVIDIA driver) the default lookup is empty too', async () => {
    const hasNvml = ['/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1', '/usr/lib64/libnvidia-ml.so.1'].some((p) => existsSync(p));
    const saved = process.env.SMOOTHTASK_NVML_LIB;
    delete process.env.SMOOTHTASK_NVML_LIB;
    try {
      const r = await sampleNvml();
      expect(r.available).toBe(hasNvml);
      if (!hasNvml) expect(r.devices).toEqual([]);
    } finally {
      if (saved !== undefined) process.env.SMOOTHTASK_NVML_LIB = saved;
    }
  });

  it('with the stub through SMOOTHTASK_NVML_LIB: every value of every device', async () => {
    process.env.SMOOTHTASK_NVML_LIB = stubs.libnvml;
    try {
      const r = await sampleNvml();
      expect(r.available).toBe(true);
      expect(r.library).toBe(stubs.libnvml);
      expect(r.reason).toBe('');
      expect(r.driverVersion).toBe('550.54.15-stub');
      expect(r.devices).toHaveLength(2);
      expect(r.devices[0]).toEqual({
        index: 0,
        name: 'Stub GPU 0',
        uuid: 'GPU-5eb5eb5e-0000-4000-8000-000000000000',
        utilizationGpuPercent: 37,
        utilizationMemoryPercent: 12,
        memoryTotalBytes: 16 * 2 ** 30,
        memoryUsedBytes: 3 * 2 ** 30,
        memoryFreeBytes: 13 * 2 ** 30,
        temperatureC: 61,
        powerWatts: 123.456,
        powerLimitWatts: 300,
        clocksMHz: { graphics: 1410, sm: 1410, memory: 1215, video: 1275 },
        // the stub reports the caller's own pid: proves the call ran in this process
        processes: [
          { pid: process.pid, usedMemoryBytes: 512 * 2 ** 20 },
          { pid: 4242, usedMemoryBytes: null },
        ],
      });
      const d1 = r.devices[1]!;
      expect(d1.temperatureC).toBeNull(); // NVML_ERROR_NOT_SUPPORTED
      expect(d1.processes).toHaveLength(20); // needed a second call (NVML_ERROR_INSUFFICIENT_SIZE)
      expect(d1.processes!.map((p) => p.pid)).toEqual(Array.from({ length: 20 }, (_, i) => 10000 + i));
      expect(d1.processes![19]!.usedMemoryBytes).toBe(20 * 2 ** 20);
      // a second sample reuses the initialised library
      const again = await sampleNvml({ library: stubs.libnvml });
      expect(again.devices.map((d) => d.uuid)).toEqual(r.devices.map((d) => d.uuid));
    } finally {
      delete process.env.SMOOTHTASK_NVML_LIB;
    }
  });

  it('concurrent samples all settle with the same result', async () => {
    const all = await Promise.all(Array.from({ length: 8 }, () => sampleNvml({ library: stubs.libnvml })));
    for (const r of all) expect(r.devices.map((d) => d.powerWatts)).toEqual([123.456, 250]);
  });

  it('rejects bad options with a ConfigError', async () => {
    await expect(sampleNvml({ library: '' })).rejects.toMatchObject({ code: 'ERR_CONFIG' });
  });
});
