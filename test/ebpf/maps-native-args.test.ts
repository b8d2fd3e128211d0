import { describe, expect, it } from 'vitest';
import { BpfError, fromNative } from '../../lib/ebpf/errors.js';
import { numPossibleCpus } from '../../lib/ebpf/map.js';
import { loadAddon } from '../../lib/native/addon.js';
import type { DatapathNative } from '../../lib/native/binding-datapath.js';

// The native map operations are reachable with any arguments (binding.dp is a plain object):
// every buffer length from JS is checked against the map's key and value size (per-CPU:
// round_up(value, 8) x possible CPUs) before the kernel reads or writes through it. Before
// this check a short buffer made the kernel copy past its end: it read, or overwrote, the
// Node heap next to the Buffer, silently (no sanitizer sees a copy done by the kernel).

const dp = (loadAddon() as unknown as { dp: DatapathNative }).dp;
const HASH = 1;
const PERCPU_HASH = 5;

function nativeError(fn: () => unknown): { code?: string; errno?: number; message: string } {
  try {
    fn();
  } catch (e) {
    return e as { code?: string; errno?: number; message: string };
  }
  throw new Error('expected the native call to throw');
}

function expectArgError(fn: () => unknown, match: RegExp): void {
  const e = nativeError(fn);
  expect(e.code).toBe('ERR_BPF_INVALID_ARGUMENT');
  expect(e.errno).toBe(22);
  expect(e.message).toMatch(match);
  // the JS layer maps it to a typed error
  const typed = fromNative(e);
  expect(typed).toBeInstanceOf(BpfError);
  expect((typed as BpfError).code).toBe('ERR_BPF_INVALID_ARGUMENT');
}

describe('native map operations validate buffer lengths from JS', () => {
  it('hash map: short keys and values are refused before the syscall', () => {
    const fd = dp.mapCreate(HASH, 'args_hash', 16, 64, 8, 0);
    try {
      const key = Buffer.alloc(16);
      const val = Buffer.alloc(64);
      dp.mapUpdate(fd, key, val, 0);
      expect(dp.mapLookup(fd, key, val, 0)).toBe(true);
      expectArgError(() => dp.mapLookup(fd, Buffer.alloc(4), val, 0), /key buffer has 4 bytes, the map needs 16/);
      expectArgError(() => dp.mapLookup(fd, key, Buffer.alloc(8), 0), /value buffer has 8 bytes, the map needs 64/);
      expectArgError(() => dp.mapUpdate(fd, key, Buffer.alloc(63), 0), /value buffer has 63 bytes/);
      expectArgError(() => dp.mapUpdate(fd, Buffer.alloc(0), val, 0), /key buffer has 0 bytes/);
      expectArgError(() => dp.mapDelete(fd, Buffer.alloc(15)), /key buffer has 15 bytes/);
      expectArgError(() => dp.mapNextKey(fd, null, Buffer.alloc(1)), /next key buffer has 1 bytes/);
      expectArgError(() => dp.mapNextKey(fd, Buffer.alloc(2), Buffer.alloc(16)), /key buffer has 2 bytes/);
      // a typed array that is not a Buffer counts in bytes, not elements
      expectArgError(() => dp.mapLookup(fd, new Uint32Array(2) as unknown as Uint8Array, val, 0), /key buffer has 8 bytes/);
      // the entry is intact after all the refused calls
      expect(dp.mapLookup(fd, key, val, 0)).toBe(true);
    } finally {
      dp.closeFd(fd);
    }
  });

  it('bulk operations: layout and counts must match the map', () => {
    const fd = dp.mapCreate(HASH, 'args_bulk', 4, 8, 16, 0);
    try {
      // 4 entries claimed, buffers for 2: the per-key fallback would read past the end
      expectArgError(() => dp.mapUpdateMany(fd, Buffer.alloc(8), Buffer.alloc(16), 4, 0), /keys buffer has 8 bytes, the map needs 16/);
      expectArgError(() => dp.mapUpdateMany(fd, Buffer.alloc(16), Buffer.alloc(16), 4, 0), /values buffer has 16 bytes, the map needs 32/);
      const keys = Buffer.alloc(16);
      for (let i = 0; i < 4; i++) keys.writeUInt32LE(i + 1, i * 4);
      dp.mapUpdateMany(fd, keys, Buffer.alloc(32, 7), 4, 0);
      // a readAll layout that is not the map's would make the kernel write past native buffers
      expectArgError(() => dp.mapReadAll(fd, 2, 8, 16, 'auto'), /does not match the map \(key size 4, value stride 8\)/);
      expectArgError(() => dp.mapReadAll(fd, 4, 4, 16, 'iterate'), /does not match the map/);
      expectArgError(() => dp.mapReadAll(fd, 4, 8, 0xffffffff, 'batch'), /max entries 4294967295 exceeds the map's 16/);
      expectArgError(() => dp.mapKeys(fd, 1, 16), /key size 1 does not match the map's 4/);
      expectArgError(() => dp.mapKeys(fd, 4, 1e9), /exceeds the map's 16/);
      expectArgError(() => dp.mapReadAll(fd, 4, 8, 16, 'bogus' as 'auto'), /mode must be/);
      const all = dp.mapReadAll(fd, 4, 8, 16, 'auto');
      expect(all.count).toBe(4);
      expect(dp.mapKeys(fd, 4, 16).length).toBe(16);
    } finally {
      dp.closeFd(fd);
    }
  });

  it('per-CPU maps: values are round_up(size, 8) x possible CPUs', () => {
    const cpus = numPossibleCpus();
    const fd = dp.mapCreate(PERCPU_HASH, 'args_pcpu', 4, 12, 4, 0);
    try {
      const key = Buffer.alloc(4);
      const need = 16 * cpus;
      // one CPU's worth (what a caller that forgot per-CPU layout would pass)
      expectArgError(() => dp.mapLookup(fd, key, Buffer.alloc(12), 0), new RegExp(`value buffer has 12 bytes, the map needs ${need}`));
      expectArgError(() => dp.mapUpdate(fd, key, Buffer.alloc(need - 1), 0), /per-CPU/);
      expectArgError(() => dp.mapReadAll(fd, 4, 12, 4, 'auto'), new RegExp(`value stride ${need}`));
      dp.mapUpdate(fd, key, Buffer.alloc(need, 1), 0);
      const out = Buffer.alloc(need);
      expect(dp.mapLookup(fd, key, out, 0)).toBe(true);
      expect(out.readUInt8(need - 4)).toBe(1);
    } finally {
      dp.closeFd(fd);
    }
  });

  it('numbers from JS: NaN, fractions and out-of-range values are refused, never truncated', () => {
    // NaN would truncate to fd 0 (stdin)
    expectArgError(() => dp.mapInfo(Number.NaN as number), /fd must be an integer/);
    expectArgError(() => dp.closeFd(1.5), /fd must be an integer/);
    expectArgError(() => dp.mapCreate(HASH, 'x', -4, 8, 1, 0), /key size must be an integer/);
    expectArgError(() => dp.mapCreate(HASH, 'x', 4, 2 ** 32, 1, 0), /value size must be an integer/);
    expectArgError(() => dp.mapLookup(3, 'key' as unknown as Uint8Array, Buffer.alloc(1), 0), /key must be a Buffer/);
    const fd = dp.mapCreate(HASH, 'args_flags', 4, 4, 1, 0);
    try {
      expectArgError(() => dp.mapUpdate(fd, Buffer.alloc(4), Buffer.alloc(4), -1), /flags must be an integer/);
    } finally {
      dp.closeFd(fd);
    }
  });

  it('tracepoint names from JS are names, not paths', () => {
    // "../" would make the addon read (and parse) any file named "id"
    expectArgError(() => dp.attachTracepoint(-1, '../../../../tmp', 'x'), /must be plain names/);
    expectArgError(() => dp.attachTracepoint(-1, 'syscalls', '..'), /must be plain names/);
  });
});
