import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { btfFromElf, BtfKind, parseBtf } from '../../lib/ebpf/btf.js';
import { InvalidObjectError } from '../../lib/ebpf/errors.js';
import { bundledObjects, loadObject } from '../../lib/ebpf/load.js';
import { validateObject } from '../../lib/ebpf/validate/index.js';
import { validateElf } from '../../lib/ebpf/validate/elf.js';
import { defaultSourcePaths } from '../../scripts/fuzz-child.js';
import { testObject } from './helpers-loader.js';

const dir = mkdtempSync(join(tmpdir(), 'st-validate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs scripts/fuzz-child.ts on one file in a child process: a segfault shows as a signal. */
function runChild(bytes: Uint8Array, extra: string[] = []): { signal: NodeJS.Signals | null; status: number | null; open: string; load: string; message: string; stderr: string } {
  const file = join(dir, `in-${process.pid}-${Math.random().toString(36).slice(2)}.o`);
  writeFileSync(file, bytes);
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/fuzz-child.ts', ...extra, '--files', file], { encoding: 'utf8', timeout: 120_000 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('R ')) ?? '';
  const [, , , open = '', load = '', ...msg] = line.split(' ');
  return { signal: r.signal, status: r.status, open, load, message: msg.join(' '), stderr: r.stderr };
}

/** opensnoop_like with BTF member `args` of `trace_event_raw_sys_enter` given type id `id`. */
function opensnoopWithArgsType(id: number): { bytes: Uint8Array; structId: number } {
  const elf = new Uint8Array(readFileSync(testObject('opensnoop_like')));
  const raw = btfFromElf(elf) as Uint8Array;
  const t = parseBtf(raw).find('trace_event_raw_sys_enter', BtfKind.STRUCT);
  const m = t?.members?.findIndex((x) => x.name === 'args') ?? -1;
  if (!t || t.offset === undefined || m < 0) throw new Error('opensnoop_like has no trace_event_raw_sys_enter.args');
  new DataView(elf.buffer).setUint32(raw.byteOffset + t.offset + 12 + 12 * m + 4, id, true);
  return { bytes: elf, structId: t.id };
}

describe('issue 11 reproducer: a struct member with an out-of-range BTF type id', () => {
  it('opensnoop_like with trace_event_raw_sys_enter.args -> type 0xAE0027 is an InvalidObjectError naming the type, not a SIGSEGV', () => {
    const { bytes, structId } = opensnoopWithArgsType(0xae0027);
    const r = runChild(bytes);
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status).toBe(0);
    expect(r.load).toBe('InvalidObjectError(validator)');
    expect(r.message).toContain(`type ${structId} STRUCT 'trace_event_raw_sys_enter'`);
    expect(r.message).toContain("member 2 'args'");
    expect(r.message).toContain('0xae0027');
  }, 150_000);

  it('in-process: loadObject rejects it with InvalidObjectError before native code sees it', async () => {
    const { bytes } = opensnoopWithArgsType(0xae0027);
    await expect(loadObject(bytes, { cache: false })).rejects.toThrow(InvalidObjectError);
    await expect(loadObject(bytes, { cache: false })).rejects.toThrow(/refers to type 11403303 \(0xae0027\), past the last type/);
  });
});

describe('validateObject', () => {
  it('accepts every bundled and test object', () => {
    const paths = [...defaultSourcePaths(), testObject('slow_verify')];
    expect(paths.length).toBeGreaterThanOrEqual(bundledObjects().length + 5);
    for (const p of paths) {
      const r = validateObject(new Uint8Array(readFileSync(p)), p);
      expect(r.sections, p).toBeGreaterThan(3);
    }
  });

  const opensnoop = (): Uint8Array => new Uint8Array(readFileSync(testObject('opensnoop_like')));
  const btfAt = (elf: Uint8Array): { raw: Uint8Array; at: number; dv: DataView } => {
    const raw = btfFromElf(elf) as Uint8Array;
    return { raw, at: raw.byteOffset, dv: new DataView(elf.buffer) };
  };
  const reject = (bytes: Uint8Array, re: RegExp): void => {
    expect(() => validateObject(bytes, 'x')).toThrow(InvalidObjectError);
    expect(() => validateObject(bytes, 'x')).toThrow(re);
  };

  it('names a bad ELF header, section, symbol and relocation', () => {
    const base = opensnoop();
    const dv = new DataView(base.buffer);
    const shoff = Number(dv.getBigUint64(40, true));
    const layout = validateElf(base);
    let b = base.slice();
    new DataView(b.buffer).setUint16(18, 62, true); // EM_X86_64
    reject(b, /e_machine 62 is not EM_BPF/);
    b = base.slice();
    new DataView(b.buffer).setUint16(62, 999, true);
    reject(b, /e_shstrndx 999 is not a section/);
    const prog = layout.sections.find((s) => s.name.startsWith('tracepoint/')) as { index: number };
    b = base.slice();
    new DataView(b.buffer).setBigUint64(shoff + prog.index * 64 + 32, 1n << 40n, true);
    reject(b, new RegExp(`section ${prog.index} \\(offset \\d+, size ${2 ** 40}\\) runs past the end of the file`));
    const symtab = layout.sections.find((s) => s.type === 2) as { offset: number; size: number };
    b = base.slice();
    new DataView(b.buffer).setUint16(symtab.offset + 24 * 3 + 6, 500, true);
    reject(b, /symbol 3 '.*': section index 500 is not a section/);
    const rel = layout.sections.find((s) => s.type === 9 && s.name.startsWith('.reltracepoint')) as { offset: number; name: string; index: number };
    b = base.slice();
    new DataView(b.buffer).setUint32(rel.offset + 12, 0xffff, true);
    reject(b, new RegExp(`section ${rel.index} '${rel.name.replace(/[./]/g, '\\$&')}' relocation 0: symbol index 65535 is past the \\d+ symbols`));
  });

  it('names a bad BTF type id, name offset, kind, cycle and member offset', () => {
    const base = opensnoop();
    const { raw, at } = btfAt(base);
    const btf = parseBtf(raw);
    const st = btf.find('trace_event_raw_sys_enter', BtfKind.STRUCT);
    const td = btf.types.find((t) => t.kind === BtfKind.TYPEDEF);
    const fn = btf.types.find((t) => t.kind === BtfKind.FUNC);
    if (!st?.offset || !td?.offset || !fn?.offset) throw new Error('test object lacks the types this test needs');
    const set = (off: number, val: number): Uint8Array => {
      const b = base.slice();
      new DataView(b.buffer).setUint32(at + off, val, true);
      return b;
    };
    reject(set(st.offset, 0xfffffff), new RegExp(`type ${st.id} STRUCT: its name offset ${0xfffffff} is past the string section`));
    reject(set(st.offset + 4, (0x1f << 24) | 4), new RegExp(`malformed BTF: type ${st.id} has unknown kind 31`));
    reject(set(td.offset + 8, td.id), new RegExp(`type ${td.id} TYPEDEF.*refers back to type ${td.id}`));
    reject(set(fn.offset + 8, td.id), new RegExp(`type ${fn.id} FUNC '${fn.name}': prototype refers to type ${td.id} TYPEDEF`));
    reject(set(st.offset + 12 + 12 * 3 + 8, 1 << 20), new RegExp(`member 3 '__data' at bit ${1 << 20} .* is outside the ${st.size}-byte struct`));
    reject(set(4, 0xffff), /hdr_len 65535 is out of range/);
  });

  it('names a bad .BTF.ext record and CO-RE access string', () => {
    const base = opensnoop();
    const dv = new DataView(base.buffer);
    const layout = validateElf(base);
    const ext = layout.byName('.BTF.ext') as { offset: number };
    const hdrLen = dv.getUint32(ext.offset + 4, true);
    const coreOff = dv.getUint32(ext.offset + 24, true);
    expect(dv.getUint32(ext.offset + 28, true)).toBeGreaterThan(0); // the object has CO-RE relocations
    const rec = ext.offset + hdrLen + coreOff + 4 + 8; // first record of the first section block
    let b = base.slice();
    new DataView(b.buffer).setUint32(rec + 4, 0xae0027, true);
    reject(b, /\.BTF\.ext core_relo record 0 of section '.*': CO-RE type id 11403303 \(0xae0027\) is not a type/);
    b = base.slice();
    new DataView(b.buffer).setUint32(rec + 12, 99, true);
    reject(b, /CO-RE relocation kind 99 is unknown/);
    b = base.slice();
    new DataView(b.buffer).setUint32(ext.offset + hdrLen + coreOff, 3, true);
    reject(b, /\.BTF\.ext core_relo: record size 3 is less than 16/);
    // an access string index past the members of the struct it walks
    const { raw } = btfAt(base);
    const strStart = raw.byteOffset + new DataView(raw.buffer, raw.byteOffset).getUint32(4, true) + new DataView(raw.buffer, raw.byteOffset).getUint32(16, true);
    const accessOff = dv.getUint32(rec + 8, true);
    const spec = Buffer.from(base.subarray(strStart + accessOff, base.indexOf(0, strStart + accessOff))).toString();
    expect(spec).toMatch(/^\d+(:\d+)+$/);
    b = base.slice();
    const bad = spec.replace(/\d+$/, (d) => '9'.repeat(d.length));
    b.set(Buffer.from(bad), strStart + accessOff);
    reject(b, /access '.*' index \d+ \(9+\) is past the/);
  });
});
