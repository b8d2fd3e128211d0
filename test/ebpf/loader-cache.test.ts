import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { programCache } from '../../lib/ebpf/cache.js';
import { InvalidObjectError, PermissionError, VerifierError } from '../../lib/ebpf/errors.js';
import { configureLoader, loadObject, loadObjects } from '../../lib/ebpf/load.js';
import { pinDirectory, readPinMeta, unpin } from '../../lib/ebpf/pin.js';
import { probe } from '../../lib/ebpf/probe.js';
import { bundled, progExists, testObject } from './helpers-loader.js';

const run = promisify(execFile);
const NS = `st_loader_test_${process.pid}`;
const child = new URL('./loader-child.ts', import.meta.url).pathname;

async function inChild(args: string[], wrap?: string, nodeFlags: string[] = []): Promise<Record<string, any>> {
  const cmd = ['node', ...nodeFlags, '--import', 'tsx', child, ...args];
  const r = wrap
    ? await run('capsh', [`--drop=${wrap}`, '--', '-c', `exec ${cmd.map((a) => `'${a}'`).join(' ')}`], { timeout: 60_000 })
    : await run(cmd[0] as string, cmd.slice(1), { timeout: 60_000 });
  return JSON.parse(r.stdout.trim().split('\n').pop() as string);
}

beforeEach(() => programCache.clear({ resetStats: true }));
afterAll(() => {
  programCache.clear();
  unpin({ namespace: NS });
});

describe('program cache', () => {
  it('a hit returns the loaded object without running the verifier', async () => {
    const a = await loadObject(testObject('slow_verify'));
    const b = await loadObject(testObject('slow_verify'));
    expect(a.fromCache).toBe(false);
    expect(b.fromCache).toBe(true);
    // the same kernel program: nothing was loaded (verified) again
    expect(b.program('slow_verify').id).toBe(a.program('slow_verify').id);
    const s = programCache.stats();
    expect(s).toMatchObject({ hits: 1, misses: 1, entries: 1, evictions: 0 });
    expect(s.bytes).toBeGreaterThan(0);
    expect(s.loadTimeSavedMs).toBeCloseTo(a.loadTimeMs, 5);
    a.close();
    b.close();
    // still cached after every handle closed: the next load is a hit too
    const c = await loadObject(testObject('slow_verify'));
    expect(c.fromCache).toBe(true);
    const id = c.program('slow_verify').id;
    c.close();
    programCache.clear();
    expect(programCache.stats().entries).toBe(0);
    expect(progExists(id)).toBe(false);
  });

  it('different options are different entries; cache: false bypasses it', async () => {
    const a = await loadObject(bundled('counter'));
    const b = await loadObject(bundled('counter'), { mapSizes: { counts: 64 } });
    const c = await loadObject(bundled('counter'), { cache: false });
    expect(b.fromCache).toBe(false);
    expect(b.hash).not.toBe(a.hash);
    expect(c.fromCache).toBe(false);
    expect(c.program('count_getpid').id).not.toBe(a.program('count_getpid').id);
    expect(programCache.stats()).toMatchObject({ misses: 2, entries: 2 });
    for (const o of [a, b, c]) o.close();
  });

  it('single-flight: concurrent loads of one key share one load', async () => {
    const objs = await Promise.all(Array.from({ length: 5 }, () => loadObject(testObject('slow_verify'))));
    const ids = new Set(objs.map((o) => o.program('slow_verify').id));
    expect(ids.size).toBe(1);
    expect(programCache.stats()).toMatchObject({ misses: 1, hits: 4, sharedInFlight: 4 });
    for (const o of objs) o.close();
  });

  it('evicts the least recently used beyond maxEntries; in-use objects stay loaded until closed', async () => {
    programCache.configure({ maxEntries: 1 });
    try {
      const a = await loadObject(bundled('counter'));
      const idA = a.program('count_getpid').id;
      const b = await loadObject(testObject('consts'));
      expect(programCache.stats()).toMatchObject({ entries: 1, evictions: 1 });
      expect(progExists(idA)).toBe(true); // a still holds it
      a.close();
      expect(progExists(idA)).toBe(false);
      b.close();
    } finally {
      programCache.configure({ maxEntries: 64 });
    }
  });

  it('does not cache failures', async () => {
    await expect(loadObject(testObject('broken'))).rejects.toThrow(VerifierError);
    await expect(loadObject(testObject('broken'))).rejects.toThrow(VerifierError);
    expect(programCache.stats()).toMatchObject({ misses: 2, hits: 0, entries: 0 });
  });
});

describe('loadObjects', () => {
  it('loads in parallel; each settles on its own, one broken does not fail the others', async () => {
    const results = await loadObjects(
      [bundled('counter'), testObject('broken'), testObject('consts'), new Uint8Array([1, 2, 3]), testObject('slow_verify')],
      { cache: false, concurrency: 2 },
    );
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(VerifierError);
    expect((results[3] as PromiseRejectedResult).reason).toBeInstanceOf(InvalidObjectError);
    const names = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.name] : []));
    expect(names).toEqual(['counter', 'consts', 'slow_verify']);
    for (const r of results) if (r.status === 'fulfilled') r.value.close();
  });

  it('runs the loads at the same time on the loader threads (their load times overlap)', async () => {
    configureLoader({ threads: 2 });
    const bytes = readFileSync(testObject('slow_verify'));
    // two different cache keys of one slow object, uncached
    const t0 = performance.now();
    const res = await loadObjects(
      [
        { source: bytes, options: { name: 'slow_a' } },
        { source: bytes, options: { name: 'slow_b' } },
      ],
      { cache: false, concurrency: 2 },
    );
    const wall = performance.now() - t0;
    const objs = res.map((r) => (r as PromiseFulfilledResult<Awaited<ReturnType<typeof loadObject>>>).value);
    const sum = objs.reduce((a, o) => a + o.loadTimeMs, 0);
    // run one after the other, the load times could only add up to less than the wall time
    expect(sum).toBeGreaterThan(wall * 1.3);
    for (const o of objs) o.close();
  });

  it('applies per-entry options', async () => {
    const [a] = await loadObjects([{ source: testObject('selective'), options: { programs: ['on_getppid'] } }], { cache: false });
    expect(a?.status).toBe('fulfilled');
    const obj = (a as PromiseFulfilledResult<Awaited<ReturnType<typeof loadObject>>>).value;
    expect(obj.program('on_raw_sys_enter').loaded).toBe(false);
    obj.close();
  });
});

describe('pins', () => {
  it('pins programs and maps with metadata; a child process reuses them without the verifier', async () => {
    const obj = await loadObject(testObject('consts'), { pin: { namespace: NS }, cache: false });
    expect(obj.fromPins).toBe(false);
    const dir = pinDirectory({ namespace: NS }, 'consts');
    expect(existsSync(`${dir}/prog_count_target`)).toBe(true);
    expect(existsSync(`${dir}/map_hits`)).toBe(true);
    expect(existsSync(`${dir}/map_-rodata`)).toBe(true);
    const meta = readPinMeta(dir)!;
    expect(meta.hash).toBe(obj.hash);
    expect(meta.programs[0]).toMatchObject({ name: 'count_target', tag: obj.program('count_target').tag, type: 'tracepoint' });
    const id = obj.program('count_target').id;
    const mapId = obj.mapInfo('hits').id;
    obj.close(); // the pins keep the program and maps alive

    const r = await inChild(['pin', testObject('consts'), NS]);
    expect(r.error).toBeUndefined();
    expect(r.fromPins).toBe(true);
    expect(r.hash).toBe(meta.hash);
    expect(r.programs.count_target.id).toBe(id); // the same kernel program: no new verification
    expect(r.maps.hits).toBe(mapId);
  });

  it('replaces stale pins made from a different object', async () => {
    const dir = pinDirectory({ namespace: NS }, 'counter');
    const a = await loadObject(bundled('counter'), { pin: { namespace: NS }, cache: false });
    const oldHash = a.hash;
    const oldId = a.program('count_getpid').id;
    a.close();
    // same name, other bytes: a different object under the same pin directory
    const b = await loadObject(testObject('consts'), { name: 'counter', pin: { namespace: NS }, cache: false });
    expect(b.fromPins).toBe(false);
    expect(readPinMeta(dir)?.hash).toBe(b.hash);
    expect(b.hash).not.toBe(oldHash);
    expect(existsSync(`${dir}/prog_count_getpid`)).toBe(false);
    expect(progExists(oldId)).toBe(false); // the stale program is gone from the kernel
    b.close();
    const c = await loadObject(testObject('consts'), { name: 'counter', pin: { namespace: NS }, cache: false });
    expect(c.fromPins).toBe(true);
    c.close();
    unpin({ namespace: NS }, 'counter');
    expect(existsSync(dir)).toBe(false);
  });

  it('an object reopened from pins gives maps and BTF like a loaded one', async () => {
    const a = await loadObject(bundled('counter'), { name: 'counter2', pin: { namespace: NS }, cache: false });
    a.close();
    using b = await loadObject(bundled('counter'), { name: 'counter2', pin: { namespace: NS }, cache: false });
    expect(b.fromPins).toBe(true);
    expect(b.mapInfo('counts')).toMatchObject({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 1024 });
    using counts = b.map('counts');
    expect(counts.info.fd).toBeGreaterThan(2);
    expect(b.btf()?.byteLength).toBeGreaterThan(0);
  });
});

describe('safety net', () => {
  it('a handle dropped without close() is released by the garbage collector', async () => {
    const r = await inChild(['gc', bundled('counter')], undefined, ['--expose-gc']);
    expect(r.before).toBe(true);
    expect(r.after).toBe(false);
  });
});

describe('permissions', () => {
  it('PermissionError names CAP_BPF, or CAP_PERFMON for tracing programs, in a child without them', async () => {
    if (!existsSync('/usr/sbin/capsh') && !existsSync('/sbin/capsh')) return; // libcap2-bin not installed
    const none = await inChild(['load', bundled('counter')], 'cap_bpf,cap_sys_admin,cap_perfmon');
    expect(none.error).toMatchObject({ name: 'PermissionError', code: 'ERR_BPF_PERMISSION', capability: 'CAP_BPF' });
    const noPerfmon = await inChild(['load', bundled('counter')], 'cap_sys_admin,cap_perfmon');
    expect(noPerfmon.error).toMatchObject({ name: 'PermissionError', capability: 'CAP_PERFMON' });
    expect(PermissionError.name).toBe('PermissionError');
  });
});

describe('probe', () => {
  it('reports this host: BTF, program/map types, attach types tried for real, capabilities', () => {
    const p = probe();
    expect(p.btf.available).toBe(existsSync('/sys/kernel/btf/vmlinux'));
    expect(p.programTypes.tracepoint).toBe(true);
    expect(p.mapTypes.hash).toBe(true);
    expect(p.ringbuf).toBe(p.mapTypes.ringbuf);
    for (const k of ['tracepoint', 'raw_tp', 'tp_btf', 'fentry', 'fexit', 'iterator', 'kprobe', 'uprobe', 'perf_event'] as const) {
      expect(typeof p.attach[k].supported).toBe('boolean');
      expect(p.attach[k].reason.length).toBeGreaterThan(0);
    }
    expect(p.attach.tracepoint.supported).toBe(true);
    // kprobe support follows the kernel's kprobe PMU / kprobe_events
    const kp = existsSync('/sys/bus/event_source/devices/kprobe') || existsSync('/sys/kernel/tracing/kprobe_events');
    expect(p.attach.kprobe.supported).toBe(kp);
    if (!p.attach.fentry.supported) expect(p.attach.fentry.reason).toMatch(/fentry/);
    const capEff = BigInt(`0x${/^CapEff:\s*(\w+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]}`);
    expect(p.capabilities.bpf).toBe(((capEff >> 39n) & 1n) === 1n);
    expect(p.capabilities.effective.includes('CAP_BPF')).toBe(p.capabilities.bpf);
    expect(probe()).toBe(p);
  });
});
