import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { u32, u64 } from '../../lib/ebpf/codec.js';
import {
  BpfError,
  ClosedError,
  InvalidObjectError,
  LoadTimeoutError,
  UnsupportedError,
  VerifierError,
} from '../../lib/ebpf/errors.js';
import { configureLoader, enableBpfStats, loadChannel, loadObject, objectHash, type LoadEvent } from '../../lib/ebpf/load.js';
import { programCache } from '../../lib/ebpf/cache.js';
import { ConfigError } from '../../lib/errors/index.js';
import { bundled, fdCount, getpidChild, progExists, testObject } from './helpers-loader.js';

afterAll(() => programCache.clear());

describe('loadObject', () => {
  it('loads the bundled counter, attaches it and the counter moves', async () => {
    using obj = await loadObject(bundled('counter'), { cache: false });
    expect(obj.name).toBe('counter');
    expect(obj.fromCache).toBe(false);
    expect(obj.hash).toMatch(/^[0-9a-f]{64}$/);
    const prog = obj.program('count_getpid');
    expect(prog).toMatchObject({ section: 'tracepoint/syscalls/sys_enter_getpid', type: 'tracepoint', loaded: true });
    expect(prog.fd).toBeGreaterThan(2);
    expect(prog.id).toBeGreaterThan(0);
    expect(prog.tag).toMatch(/^[0-9a-f]{16}$/);
    expect(obj.mapInfo('counts')).toMatchObject({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 1024 });
    expect(obj.memoryBytes).toBeGreaterThan(0);
    const links = obj.attach();
    try {
      using counts = obj.map('counts', { key: u32, value: u64 });
      const child = getpidChild(300);
      await child.go();
      expect(counts.get(child.pid)).toBeGreaterThanOrEqual(300n);
    } finally {
      for (const l of links) l.close();
    }
  });

  it('program stats count runs while bpf_stats is on', async () => {
    using obj = await loadObject(bundled('counter'), { cache: false });
    const prog = obj.program('count_getpid');
    const links = obj.attach();
    try {
      using stats = enableBpfStats();
      await getpidChild(100).go();
      const s = prog.stats();
      expect(s.runCount).toBeGreaterThanOrEqual(100);
      expect(s.runTimeNs).toBeGreaterThan(0);
      stats.close();
    } finally {
      for (const l of links) l.close();
    }
  });

  it('accepts ELF bytes and reports the object BTF', async () => {
    const bytes = readFileSync(bundled('counter'));
    using obj = await loadObject(new Uint8Array(bytes), { name: 'counter_bytes', cache: false });
    expect(obj.name).toBe('counter_bytes');
    const btf = obj.btf();
    expect(btf).toBeInstanceOf(Uint8Array);
    expect(new DataView(btf!.buffer, btf!.byteOffset).getUint16(0, true)).toBe(0xeb9f); // BTF magic
  });

  it('loads only the programs asked for; the others are present but not loaded', async () => {
    using obj = await loadObject(testObject('selective'), { programs: ['on_getppid', 'on_raw_sys_enter'], cache: false });
    expect(obj.program('on_getppid').loaded).toBe(true);
    expect(obj.program('on_raw_sys_enter').loaded).toBe(true);
    expect(obj.program('on_raw_sys_enter').type).toBe('raw_tracepoint');
    const fentry = obj.program('on_nanosleep_fentry');
    expect(fentry).toMatchObject({ loaded: false, fd: -1, id: 0, type: 'tracing', attachType: 'trace_fentry' });
    expect(obj.program('on_nanosleep_kprobe')).toMatchObject({ loaded: false, type: 'kprobe' });
    expect(() => obj.program('nope')).toThrow(/on_getppid/);
  });

  it('sets const volatile constants and map sizes before the load', async () => {
    const child = getpidChild(200);
    using obj = await loadObject(testObject('consts'), {
      cache: false,
      constants: { targ_tgid: child.pid, targ_scale: 5n, targ_enabled: true },
      mapSizes: { hits: 8 },
    });
    expect(obj.mapInfo('hits').maxEntries).toBe(8);
    expect(obj.mapInfo('.rodata').type).toBe('array');
    using rodata = obj.map('.rodata');
    const ro = rodata.get(Buffer.alloc(4))!;
    expect(ro.readUInt32LE(0)).toBe(child.pid);
    expect(ro.readBigUInt64LE(8)).toBe(5n);
    const links = obj.attach();
    try {
      using hits = obj.map('hits', { key: u32, value: u64 });
      await child.go();
      await getpidChild(50).go(); // another process: filtered out in the kernel
      // 200 calls x scale 5, plus the few getpid() calls python makes while starting
      const n = hits.get(0)!;
      expect(n).toBeGreaterThanOrEqual(1000n);
      expect(n).toBeLessThan(1200n);
      expect(n % 5n).toBe(0n);
    } finally {
      for (const l of links) l.close();
    }
  });

  it('keeps the verifier log of successful loads at logLevel 1 or more', async () => {
    using quiet = await loadObject(bundled('counter'), { cache: false });
    expect(quiet.verifierLog('count_getpid')).toBe('');
    using verbose = await loadObject(bundled('counter'), { cache: false, logLevel: 1 });
    expect(verbose.verifierLog('count_getpid')).toMatch(/processed \d+ insns/);
  });

  it('names unknown programs, maps and constants in a ConfigError', async () => {
    await expect(loadObject(testObject('selective'), { programs: ['nope'], cache: false })).rejects.toThrow(ConfigError);
    await expect(loadObject(testObject('consts'), { constants: { nope: 1 }, cache: false })).rejects.toThrow(/targ_tgid/);
    await expect(loadObject(testObject('consts'), { mapSizes: { nope: 1 }, cache: false })).rejects.toThrow(/hits/);
    await expect(loadObject(testObject('consts'), { timeoutMs: -1 } as never)).rejects.toThrow(/timeoutMs/);
    await expect(loadObject(testObject('consts'), { bogus: 1 } as never)).rejects.toThrow(ConfigError);
  });

  it('handles are idempotent to close and throw ClosedError after', async () => {
    const obj = await loadObject(bundled('counter'), { cache: false });
    const id = obj.program('count_getpid').id;
    expect(progExists(id)).toBe(true);
    obj.close();
    obj.close();
    expect(obj.closed).toBe(true);
    expect(() => obj.program('count_getpid')).toThrow(ClosedError);
    expect(progExists(id)).toBe(false);
  });
});

describe('typed errors from real causes', () => {
  it('VerifierError with the log, a summary and the program', async () => {
    const err = await loadObject(testObject('broken'), { cache: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VerifierError);
    const v = err as VerifierError;
    expect(v.code).toBe('ERR_BPF_VERIFIER');
    expect(v.program).toBe('broken_deref');
    expect(v.log).toMatch(/invalid mem access 'map_value_or_null'/);
    expect(v.summary).toMatch(/map_value_or_null/);
    expect(v.truncated).toBe(false);
    expect(v.message).toMatch(/broken_deref/);
  });

  it('InvalidObjectError for bytes that are not ELF, a missing file and a CO-RE relocation failure', async () => {
    await expect(loadObject(new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 1, 2, 3]))).rejects.toThrow(InvalidObjectError);
    await expect(loadObject('/nonexistent/x.bpf.o')).rejects.toThrow(InvalidObjectError);
    const err = (await loadObject(testObject('core_missing'), { cache: false }).catch((e: unknown) => e)) as InvalidObjectError;
    expect(err).toBeInstanceOf(InvalidObjectError);
    expect(err.message).toMatch(/CO-RE relocation/);
    expect(err.message).toMatch(/smoothtask_no_such_field/);
  });

  it('UnsupportedError naming fentry when the kernel refuses trampolines', async () => {
    const err = (await loadObject(testObject('selective'), { cache: false }).catch((e: unknown) => e)) as UnsupportedError;
    // On kernels with working fentry the whole object loads; this host refuses fentry (EPERM).
    if (!(err instanceof Error)) return;
    expect(err).toBeInstanceOf(UnsupportedError);
    expect(err.feature).toBe('fentry');
    expect(err).toBeInstanceOf(BpfError);
  });
});

describe('timeout', () => {
  it('interrupts a slow verification inside the kernel, within a small margin, leaking nothing', async () => {
    configureLoader({});
    // a warm-up load so the first-load costs (thread start, libbpf feature probes) are not measured
    (await loadObject(bundled('counter'), { cache: false })).close();
    const before = fdCount();
    const t0 = performance.now();
    const err = (await loadObject(testObject('slow_verify'), { timeoutMs: 30, cache: false }).catch((e: unknown) => e)) as LoadTimeoutError;
    const elapsed = performance.now() - t0;
    expect(err).toBeInstanceOf(LoadTimeoutError);
    expect(err.timeoutMs).toBe(30);
    expect(err.elapsedMs).toBeGreaterThanOrEqual(30);
    expect(err.message).toMatch(/interrupted/); // the addon stopped it, not the JS fallback timer
    // the verification of this program takes ~0.3-1 s here; stopping it must be far quicker
    expect(elapsed).toBeLessThan(1000);
    expect(fdCount()).toBe(before);
    // and the loader still works afterwards
    using ok = await loadObject(bundled('counter'), { cache: false });
    expect(ok.program('count_getpid').loaded).toBe(true);
  });

  it('runs off the main thread: the event loop keeps turning during a long verification', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    try {
      using obj = await loadObject(testObject('slow_verify'), { cache: false });
      expect(obj.program('slow_verify').loaded).toBe(true);
      expect(obj.loadTimeMs).toBeGreaterThan(30);
      // a blocked loop would have run the 5 ms timer at most once
      expect(ticks).toBeGreaterThanOrEqual(Math.floor(obj.loadTimeMs / 5 / 4));
      expect(ticks).toBeGreaterThan(2);
    } finally {
      clearInterval(timer);
    }
  });

  it('an aborted wait rejects with the abort reason; the load itself still completes and is released', async () => {
    const ac = new AbortController();
    const p = loadObject(testObject('slow_verify'), { cache: false, signal: ac.signal });
    setTimeout(() => ac.abort(new Error('stop waiting')), 10);
    await expect(p).rejects.toThrow('stop waiting');
  });

  it('publishes every load on diagnostics_channel', async () => {
    const events: LoadEvent[] = [];
    const onMessage = (m: unknown): void => {
      events.push(m as LoadEvent);
    };
    loadChannel.subscribe(onMessage);
    try {
      (await loadObject(bundled('counter'), { cache: false })).close();
      await loadObject(testObject('broken'), { cache: false }).catch(() => undefined);
    } finally {
      loadChannel.unsubscribe(onMessage);
    }
    expect(events.map((e) => [e.name, e.error])).toEqual([
      ['counter', undefined],
      ['broken', 'ERR_BPF_VERIFIER'],
    ]);
  });
});

describe('hash', () => {
  it('changes with the bytes and the options that change the load, not with their order', () => {
    const a = new Uint8Array([1, 2, 3]);
    const base = { logLevel: 0 } as const;
    const h = objectHash(a, 'x', base);
    expect(objectHash(a, 'x', { ...base, programs: ['b', 'a'] })).toBe(objectHash(a, 'x', { ...base, programs: ['a', 'b'] }));
    expect(objectHash(a, 'x', { ...base, constants: { a: 1 } })).not.toBe(h);
    expect(objectHash(a, 'x', { ...base, constants: { a: 1n } })).not.toBe(objectHash(a, 'x', { ...base, constants: { a: 1 } }));
    expect(objectHash(new Uint8Array([1, 2, 4]), 'x', base)).not.toBe(h);
    expect(objectHash(a, 'y', base)).not.toBe(h);
  });
});
