import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { array, cstring, field, i32, struct, u32, u64 } from '../../lib/ebpf/codec.js';
import { InvalidObjectError, PermissionError, UnsupportedError } from '../../lib/ebpf/errors.js';
import { loadAddon } from '../../lib/native/addon.js';
import { loadObjects, loadObject } from '../../lib/ebpf/load.js';
import { probe } from '../../lib/ebpf/probe.js';
import { testObject } from './helpers-loader.js';

// Objects written in the style of bcc libbpf-tools (test/bpf/runqlat_like.bpf.c,
// opensnoop_like.bpf.c): several attach types per object, alternates for older kernels,
// `const volatile` filters. This host has no kprobes and refuses fentry, so those programs
// are left out through `programs`, as a third-party object's user would do.

/**
 * Polls `read` (up to 5 s) while three busy threads run. The switch program alone records only
 * preempted tasks (a task switched out while still runnable): on a quiet machine there may be
 * none for a while, so make some; three busy threads on the test machine's cores are preempted
 * at every tick.
 */
async function totalWhilePreempting(read: () => bigint): Promise<bigint> {
  const busy = spawn(process.execPath, ['-e', "const { Worker } = require('node:worker_threads'); for (let i = 0; i < 2; i++) new Worker('for (;;) {}', { eval: true }); for (;;) {}"], { stdio: 'ignore' });
  let total = 0n;
  try {
    for (let i = 0; i < 250 && total === 0n; i++) {
      await sleep(20);
      total = read();
    }
  } finally {
    busy.kill('SIGKILL');
  }
  return total;
}

describe('third-party style objects', () => {
  it('runqlat-like: tp_btf programs load and attach, the kprobe and raw_tp alternates are left out', async () => {
    const p = probe();
    const programs = p.attach.tp_btf.supported ? ['rql_wakeup', 'rql_wakeup_new', 'rql_switch'] : ['rql_switch_raw'];
    using obj = await loadObject(testObject('runqlat_like'), { programs, constants: { targ_ms: false }, cache: false });
    expect(obj.program('rql_finish_switch')).toMatchObject({ loaded: false, type: 'kprobe' });
    for (const name of programs) expect(obj.program(name).loaded).toBe(true);
    const links = obj.attach();
    try {
      const hist = obj.map('hist', { key: u32, value: struct({ slots: field(array(u32, 26), 0), total: field(u64, 104) }, 112) });
      const total = await totalWhilePreempting(() => hist.get(0)?.total ?? 0n);
      expect(total).toBeGreaterThan(0n);
      hist.close();
    } finally {
      for (const l of links) l.close();
    }
  });

  it('opensnoop-like: tracepoints and a ring buffer; loading the fentry variant fails typed', async () => {
    const all = await loadObject(testObject('opensnoop_like'), { cache: false }).catch((e: unknown) => e);
    if (!probe().attach.fentry.supported) {
      expect(all).toBeInstanceOf(UnsupportedError);
      expect((all as UnsupportedError).feature).toBe('fentry');
    } else {
      (all as { close(): void }).close();
    }
    using obj = await loadObject(testObject('opensnoop_like'), {
      programs: ['osl_enter_openat', 'osl_exit_openat'],
      constants: { targ_tgid: process.pid },
      cache: false,
    });
    expect(obj.mapInfo('events').type).toBe('ringbuf');
    const links = obj.attach();
    const dir = mkdtempSync(join(tmpdir(), 'st-osl-'));
    const rb = obj.ringBuffer('events', {
      codec: struct({ ts: field(u64, 0), pid: field(u32, 8), ret: field(i32, 12), fname: field(cstring(128), 36) }, 168),
    });
    try {
      const file = join(dir, 'opened-by-test.txt');
      writeFileSync(file, 'x');
      for (let i = 0; i < 5; i++) closeSync(openSync(file, 'r'));
      using opens = obj.map('opens', { key: u32, value: u64 });
      expect(opens.get(process.pid)).toBeGreaterThanOrEqual(5n);
      const seen: string[] = [];
      const deadline = Date.now() + 5000;
      for await (const ev of rb) {
        expect(ev.pid).toBe(process.pid);
        seen.push(ev.fname);
        if (seen.filter((f) => f === file).length >= 5 || Date.now() > deadline) break;
      }
      expect(seen.filter((f) => f === file).length).toBe(5);
    } finally {
      rb.close();
      for (const l of links) l.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('minimalKernelBtf: CO-RE against a minimal kernel BTF made with bpftool, and the program works', async () => {
    if (!existsSync('/usr/sbin/bpftool') && !existsSync('/usr/local/sbin/bpftool')) return; // bpftool not installed
    // a TMPDIR of this test (os.tmpdir() reads it on each call), no XDG_RUNTIME_DIR
    const saved = { TMPDIR: process.env.TMPDIR, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR };
    const tmp = mkdtempSync(join(tmpdir(), 'st-minbtf-'));
    process.env.TMPDIR = tmp;
    delete process.env.XDG_RUNTIME_DIR;
    const btfDir = join(tmp, `smoothtask-${process.geteuid?.() ?? 0}`, 'btf');
    // trusted bytes with a program selection: only the raw_tp program, which needs no attach target
    (await loadObject(testObject('runqlat_like'), { cache: false, programs: ['rql_switch_raw'] })).close();
    using obj = await loadObject(testObject('runqlat_like'), { cache: false, programs: ['rql_switch_raw'], minimalKernelBtf: true });
    const made = readdirSync(btfDir).filter((f) => f.endsWith('.btf'));
    expect(made.length).toBeGreaterThan(0);
    const links = obj.attach();
    try {
      using hist = obj.map('hist', { key: u32, value: struct({ slots: field(array(u32, 26), 0), total: field(u64, 104) }, 112) });
      const total = await totalWhilePreempting(() => hist.get(0)?.total ?? 0n);
      expect(total).toBeGreaterThan(0n);
    } finally {
      for (const l of links) l.close();
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('loads both third-party objects and a bundled one together with loadObjects', async () => {
    const res = await loadObjects(
      [
        { source: testObject('runqlat_like'), options: { programs: ['rql_switch'] } },
        { source: testObject('opensnoop_like'), options: { programs: ['osl_enter_openat', 'osl_exit_openat'] } },
      ],
      { cache: false },
    );
    expect(res.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
    for (const r of res) if (r.status === 'fulfilled') r.value.close();
  });
});

/** `elf` with the symbol `name` renamed to the empty string (st_name 0), bounds-checked. */
function withUnnamedSymbol(elf: Uint8Array, name: string): Uint8Array {
  const out = Uint8Array.from(elf);
  const dv = new DataView(out.buffer);
  const shoff = Number(dv.getBigUint64(0x28, true));
  const shentsize = dv.getUint16(0x3a, true);
  const shnum = dv.getUint16(0x3c, true);
  const sh = (i: number, off: number, big = true): number => (big ? Number(dv.getBigUint64(shoff + i * shentsize + off, true)) : dv.getUint32(shoff + i * shentsize + off, true));
  let renamed = 0;
  for (let i = 0; i < shnum; i++) {
    if (sh(i, 4, false) !== 2) continue; // SHT_SYMTAB
    const strtab = sh(sh(i, 0x28, false), 0x18);
    const [off, size] = [sh(i, 0x18), sh(i, 0x20)];
    for (let at = off; at + 24 <= off + size; at += 24) {
      const n = dv.getUint32(at, true);
      const sym = Buffer.from(out.subarray(strtab + n, strtab + n + name.length + 1)).toString('latin1');
      if (sym === `${name}\0`) {
        dv.setUint32(at, 0, true);
        renamed++;
      }
    }
  }
  expect(renamed).toBe(1);
  return out;
}

type Outcome = { name: string; code?: string; feature?: string; capability?: string } | 'ok';
async function outcome(source: string | Uint8Array, logLevel: number, programs?: string[]): Promise<Outcome> {
  try {
    (await loadObject(source, { cache: false, logLevel, ...(programs ? { programs } : {}) })).close();
    return 'ok';
  } catch (e) {
    const err = e as Error & { code?: string; feature?: string; capability?: string };
    return { name: err.name, code: err.code, feature: err.feature, capability: err.capability };
  }
}

describe('failure classes do not depend on logLevel', () => {
  const objects = ['runqlat_like', 'opensnoop_like', 'selective', 'core_missing', 'broken', 'user_sized', 'consts'];
  it('each third-party-style object, whole and one program at a time, fails (or loads) the same at logLevel 0 and 1', async () => {
    let failures = 0;
    for (const name of objects) {
      const path = testObject(name);
      const programs = loadAddon()
        .loader.inspect(readFileSync(path), name)
        .programs.map((p: { name: string }) => p.name);
      for (const sel of [undefined, ...programs.map((p: string) => [p])]) {
        const [a, b] = [await outcome(path, 0, sel), await outcome(path, 1, sel)];
        expect({ object: name, sel, outcome: b }).toEqual({ object: name, sel, outcome: a });
        if (a !== 'ok') failures++;
      }
    }
    expect(failures).toBeGreaterThan(3); // the comparison covered real failures
  });

  it('a trampoline program with an empty name is UnsupportedError fentry (not PermissionError CAP_BPF) at both levels', async () => {
    if (probe().attach.fentry.supported) return; // this host refuses fentry; elsewhere it loads
    const elf = withUnnamedSymbol(readFileSync(testObject('opensnoop_like')), 'osl_fentry_openat2');
    for (const logLevel of [0, 1]) {
      const e = await loadObject(elf, { cache: false, logLevel, name: 'osl_unnamed' }).catch((x: unknown) => x);
      expect(e).not.toBeInstanceOf(PermissionError);
      expect(e).toBeInstanceOf(UnsupportedError);
      expect((e as UnsupportedError).feature).toBe('fentry');
    }
  });

  it('a map sized by user space names the map and the mapSizes option, and loads with it', async () => {
    const e = await loadObject(testObject('user_sized'), { cache: false }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InvalidObjectError);
    expect((e as Error).message).toMatch(/map 'per_pid'.*mapSizes/);
    using obj = await loadObject(testObject('user_sized'), { cache: false, mapSizes: { per_pid: 64 } });
    expect(obj.mapInfo('per_pid').maxEntries).toBe(64);
  });
});
