/**
 * Seeded mutations of BPF objects for the loader fuzzer (scripts/fuzz.ts, test/ebpf/fuzz.test.ts).
 *
 * Input `i` of seed `s` is a pure function of (s, i, the source objects): a crash found by a
 * long run is reproduced from its seed and index alone. Mutations are generic (byte flips,
 * truncation, splices, interesting integers), ELF-aware (section headers, symbols,
 * relocations) and BTF-aware (type ids, kinds, vlen, member offsets, string offsets, the BTF
 * header, `.BTF.ext` records and CO-RE access strings).
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { BtfKind, type BtfType, parseBtf } from '../lib/ebpf/btf.js';
import { validateElf, type ElfSection } from '../lib/ebpf/validate/elf.js';

/** Deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A source object with the positions the structured mutations need. */
export interface FuzzSource {
  name: string;
  bytes: Uint8Array;
  sections: ElfSection[];
  /** Sections libbpf reads (not debug info): where generic mutations land most of the time. */
  hot: ElfSection[];
  symtab?: ElfSection;
  rels: ElfSection[];
  /** File offset of `.BTF`, its length, and its parsed types (with record offsets). */
  btf?: { at: number; len: number; hdrLen: number; strAt: number; strLen: number; types: BtfType[] };
  /** File offset and length of `.BTF.ext` and its record positions. */
  ext?: { at: number; len: number; records: { at: number; size: number; sub: 'func' | 'line' | 'core' }[]; blocks: number[]; subHeaders: number[] };
}

/** Reads and indexes the source objects. */
export function loadSources(paths: string[]): FuzzSource[] {
  return paths.map((p) => indexSource(basename(p).replace(/\.bpf\.o$/, ''), new Uint8Array(readFileSync(p))));
}

/** Indexes one (valid) object. */
export function indexSource(name: string, bytes: Uint8Array): FuzzSource {
  const layout = validateElf(bytes);
  const sections = layout.sections;
  const src: FuzzSource = {
    name,
    bytes,
    sections,
    hot: sections.filter((s) => s.index > 0 && s.type !== 8 && s.size > 0 && !/debug|\.llvm/.test(s.name)),
    symtab: sections.find((s) => s.type === 2),
    rels: sections.filter((s) => s.type === 9 && !/debug/.test(s.name)),
  };
  const btfSec = layout.byName('.BTF');
  if (btfSec) {
    const raw = bytes.subarray(btfSec.offset, btfSec.offset + btfSec.size);
    const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const hdrLen = v.getUint32(4, true);
    src.btf = {
      at: btfSec.offset,
      len: btfSec.size,
      hdrLen,
      strAt: btfSec.offset + hdrLen + v.getUint32(16, true),
      strLen: v.getUint32(20, true),
      types: parseBtf(raw).types,
    };
  }
  const extSec = layout.byName('.BTF.ext');
  if (extSec) {
    const at = extSec.offset;
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const hdrLen = v.getUint32(at + 4, true);
    const records: NonNullable<FuzzSource['ext']>['records'] = [];
    const blocks: number[] = [];
    const subHeaders: number[] = [];
    const subs: ['func' | 'line' | 'core', number][] = [['func', 8], ['line', 16]];
    if (hdrLen >= 32) subs.push(['core', 24]);
    for (const [sub, h] of subs) {
      const off = v.getUint32(at + h, true);
      const len = v.getUint32(at + h + 4, true);
      if (len < 4) continue;
      const start = at + hdrLen + off;
      subHeaders.push(start);
      const size = v.getUint32(start, true);
      let p = start + 4;
      while (p + 8 <= start + len) {
        blocks.push(p);
        const num = v.getUint32(p + 4, true);
        for (let r = 0; r < num; r++) records.push({ at: p + 8 + r * size, size, sub });
        p += 8 + num * size;
      }
    }
    src.ext = { at, len: extSec.size, records, blocks, subHeaders };
  }
  return src;
}

/** Whether mutation `i` is BTF-aware (`.BTF` or `.BTF.ext`): half of them, when the source has BTF. */
export function isBtfAware(i: number): boolean {
  return i % 2 === 1;
}

/** A mutated input and what was done to it. */
export interface Mutant {
  index: number;
  source: string;
  btfAware: boolean;
  ops: string[];
  bytes: Uint8Array;
}

const INTERESTING32 = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 0xae0027];

/** Input `index` of seed `seed` over `sources`. */
export function mutant(sources: FuzzSource[], seed: number, index: number): Mutant {
  const rand = rng((Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)] as T;
  const below = (n: number): number => Math.floor(rand() * n);
  const src = sources[index % sources.length] as FuzzSource;
  const b = src.bytes.slice();
  const v = new DataView(b.buffer);
  const ops: string[] = [];
  const put32 = (at: number, x: number, what: string): void => {
    if (at < 0 || at + 4 > b.length) return;
    v.setUint32(at, x >>> 0, true);
    ops.push(`${what}@${at}=0x${(x >>> 0).toString(16)}`);
  };
  const put16 = (at: number, x: number, what: string): void => {
    if (at < 0 || at + 2 > b.length) return;
    v.setUint16(at, x & 0xffff, true);
    ops.push(`${what}@${at}=0x${(x & 0xffff).toString(16)}`);
  };
  const put64 = (at: number, x: bigint, what: string): void => {
    if (at < 0 || at + 8 > b.length) return;
    v.setBigUint64(at, BigInt.asUintN(64, x), true);
    ops.push(`${what}@${at}=0x${BigInt.asUintN(64, x).toString(16)}`);
  };
  // an id that is wrong in one of the ways that matter: past the end, at the end, another
  // valid type (of the wrong kind), itself (a cycle), void
  const typeId = (self: number, n: number): number => pick([n, n + 1, 0xae0027, 0xffffffff, 0x7fffffff, below(n), below(n), self, 0, n - 1]);
  const anyU32 = (len: number): number => pick([...INTERESTING32, len, len + 1, len - 1, below(Math.max(1, len * 2))]);

  const btfAware = isBtfAware(index) && src.btf !== undefined;
  const rounds = 1 + (rand() < 0.3 ? below(3) : 0);
  for (let r = 0; r < rounds; r++) {
    if (btfAware) {
      const btf = src.btf as NonNullable<FuzzSource['btf']>;
      const n = btf.types.length;
      const t = btf.types[1 + below(n - 1)] as BtfType;
      const at = t.offset === undefined ? btf.at : btf.at + t.offset;
      const vlen = t.vlen ?? 0;
      const choice = below(src.ext && src.ext.records.length > 0 ? 12 : 9);
      switch (choice) {
        case 0: // the referenced type of a modifier, pointer, func, var, typedef
          put32(at + 8, t.kind === BtfKind.STRUCT || t.kind === BtfKind.UNION || t.kind === BtfKind.INT ? anyU32(64) : typeId(t.id, n), `type${t.id}.size_type`);
          break;
        case 1: {
          // a member / param / datasec entry / array field
          if (t.kind === BtfKind.STRUCT || t.kind === BtfKind.UNION || t.kind === BtfKind.DATASEC || t.kind === BtfKind.ENUM64) {
            if (vlen === 0) break;
            const m = below(vlen);
            const f = below(3);
            const what = `type${t.id}.m${m}.${['name', 'type', 'offset'][f]}`;
            put32(at + 12 + 12 * m + 4 * f, f === 1 ? typeId(t.id, n) : f === 2 ? anyU32((t.size ?? 8) * 8) : anyU32(btf.strLen), what);
          } else if (t.kind === BtfKind.FUNC_PROTO || t.kind === BtfKind.ENUM) {
            if (vlen === 0) break;
            const m = below(vlen);
            const f = below(2);
            put32(at + 12 + 8 * m + 4 * f, f === 1 && t.kind === BtfKind.FUNC_PROTO ? typeId(t.id, n) : anyU32(btf.strLen), `type${t.id}.p${m}.${f}`);
          } else if (t.kind === BtfKind.ARRAY) {
            const f = below(3);
            put32(at + 12 + 4 * f, f === 2 ? anyU32(64) : typeId(t.id, n), `type${t.id}.array${f}`);
          } else {
            put32(at + 12, anyU32(16), `type${t.id}.extra`);
          }
          break;
        }
        case 2: // name offset
          put32(at, anyU32(btf.strLen), `type${t.id}.name_off`);
          break;
        case 3: {
          // info: kind, vlen, kflag
          const info = v.getUint32(at + 4, true);
          const f = below(3);
          const nv = f === 0 ? (info & ~(0x1f << 24)) | (below(32) << 24) : f === 1 ? (info & ~0xffff) | pick([0, 1, vlen + 1, vlen - 1, 0xffff, below(64)]) : info ^ 0x80000000;
          put32(at + 4, nv, `type${t.id}.info`);
          break;
        }
        case 4: // BTF header
          put32(btf.at + pick([4, 8, 12, 16, 20]), anyU32(btf.len), 'btf.hdr');
          break;
        case 5: {
          // string section: lose a NUL or change a character
          const p = btf.strAt + below(btf.strLen);
          b[p] = b[p] === 0 ? 0x41 : pick([0, 0x30 + below(10), 0x3a, 0xff]);
          ops.push(`btf.str@${p}`);
          break;
        }
        case 6: {
          // swap two type records' ids in a member (another valid id: the wrong kind)
          const s = btf.types.filter((x) => (x.kind === BtfKind.STRUCT || x.kind === BtfKind.UNION) && (x.vlen ?? 0) > 0);
          const st = s.length ? pick(s) : t;
          if (st.offset === undefined || !st.vlen) break;
          put32(btf.at + st.offset + 12 + 12 * below(st.vlen) + 4, below(n), `type${st.id}.member.type(valid id)`);
          break;
        }
        case 7: {
          // member bit offset / struct size
          const s = btf.types.filter((x) => (x.kind === BtfKind.STRUCT || x.kind === BtfKind.UNION) && (x.vlen ?? 0) > 0);
          const st = s.length ? pick(s) : t;
          if (st.offset === undefined || !st.vlen) break;
          if (rand() < 0.5) put32(btf.at + st.offset + 12 + 12 * below(st.vlen) + 8, anyU32((st.size ?? 8) * 8), `type${st.id}.member.offset`);
          else put32(btf.at + st.offset + 8, anyU32(st.size ?? 8), `type${st.id}.size`);
          break;
        }
        case 8: {
          // the type id of a FUNC or VAR or DATASEC entry
          const s = btf.types.filter((x) => x.kind === BtfKind.FUNC || x.kind === BtfKind.VAR || x.kind === BtfKind.DATASEC);
          if (!s.length) break;
          const st = pick(s);
          if (st.offset === undefined) break;
          if (st.kind === BtfKind.DATASEC && st.vlen) put32(btf.at + st.offset + 12 + 12 * below(st.vlen) + 4 * below(3), rand() < 0.5 ? typeId(st.id, n) : anyU32(st.size ?? 64), `type${st.id}.datasec`);
          else put32(btf.at + st.offset + 8, typeId(st.id, n), `type${st.id}.type`);
          break;
        }
        default: {
          // .BTF.ext: header, subsection record size, block header, record field
          const ext = src.ext as NonNullable<FuzzSource['ext']>;
          const f = below(5);
          if (f === 0) put32(ext.at + pick([4, 8, 12, 16, 20, 24, 28]), anyU32(ext.len), 'ext.hdr');
          else if (f === 1 && ext.subHeaders.length) put32(pick(ext.subHeaders), pick([0, 4, 8, 12, 16, 17, 20, 32, 0xffffffff]), 'ext.rec_size');
          else if (f === 2 && ext.blocks.length) put32(pick(ext.blocks) + 4 * below(2), anyU32(btf.strLen), 'ext.block');
          else {
            const rec = pick(ext.records);
            const field = below(rec.size / 4);
            const val = rec.sub === 'core' && field === 1 ? typeId(0, n) : rec.sub === 'core' && field === 3 ? below(16) : field === 0 ? anyU32(4096) : rand() < 0.5 ? typeId(0, n) : anyU32(btf.strLen);
            put32(rec.at + 4 * field, val, `ext.${rec.sub}.f${field}`);
            if (rec.sub === 'core' && field === 2 && rand() < 0.5) {
              // point the access string at another string (a name, another access string)
              put32(rec.at + 8, below(btf.strLen), 'ext.core.access_off');
            }
          }
        }
      }
      continue;
    }
    const choice = below(10);
    const hot = src.hot.length ? pick(src.hot) : undefined;
    const region = (): number => (rand() < 0.2 || !hot ? below(Math.min(b.length, 64)) : hot.offset + below(Math.max(1, hot.size)));
    switch (choice) {
      case 0:
      case 1: {
        const flips = 1 + below(8);
        for (let f = 0; f < flips; f++) {
          const p = region();
          if (p < b.length) b[p] = below(256);
        }
        ops.push(`flip x${flips}`);
        break;
      }
      case 2: {
        // section header field
        const shoff = Number(v.getBigUint64(40, true));
        const s = pick(src.sections);
        const f = pick([0, 4, 24, 32, 40, 44, 56]);
        const at = shoff + s.index * 64 + f;
        if (f === 24 || f === 32 || f === 56) put64(at, BigInt(anyU32(b.length)), `sh${s.index}.${f}`);
        else put32(at, f === 40 || f === 44 ? pick([0, src.sections.length, src.sections.length - 1, 0xffff, below(src.sections.length)]) : anyU32(64), `sh${s.index}.${f}`);
        break;
      }
      case 3: {
        // ELF header field
        const f = pick([16, 18, 32, 40, 52, 54, 56, 58, 60, 62]);
        if (f === 32 || f === 40) put64(f, BigInt(anyU32(b.length)), `ehdr.${f}`);
        else put16(f, pick([0, 1, 0xffff, 0xff00, 64, 247, src.sections.length, src.sections.length + 1]), `ehdr.${f}`);
        break;
      }
      case 4: {
        // symbol field
        if (!src.symtab) break;
        const k = below(src.symtab.size / 24);
        const at = src.symtab.offset + k * 24;
        const f = pick([0, 4, 6, 8, 16]);
        if (f === 0) put32(at, anyU32(4096), `sym${k}.name`);
        else if (f === 4) {
          b[at + 4] = below(256);
          ops.push(`sym${k}.info`);
        } else if (f === 6) put16(at + 6, pick([0, 0xfff1, 0xfff2, 0xffff, 0xff00, src.sections.length, below(src.sections.length)]), `sym${k}.shndx`);
        else put64(at + f, BigInt(anyU32(4096)), `sym${k}.${f === 8 ? 'value' : 'size'}`);
        break;
      }
      case 5: {
        // relocation field
        if (!src.rels.length) break;
        const s = pick(src.rels);
        const n = Math.floor(s.size / 16);
        if (!n) break;
        const at = s.offset + below(n) * 16;
        if (rand() < 0.5) put64(at, BigInt(anyU32(4096)), `rel.${s.name}.offset`);
        else put32(at + 12, anyU32(src.symtab ? src.symtab.size / 24 : 64), `rel.${s.name}.sym`);
        break;
      }
      case 6: {
        // truncation
        const len = below(b.length);
        ops.push(`truncate ${len}`);
        return { index, source: src.name, btfAware, ops, bytes: b.slice(0, len) };
      }
      case 7: {
        // splice: copy a chunk from another object over this one
        const other = pick(sources);
        const len = 1 + below(256);
        const from = below(Math.max(1, other.bytes.length - len));
        const to = region();
        b.set(other.bytes.subarray(from, from + Math.min(len, b.length - to)), Math.min(to, b.length));
        ops.push(`splice ${other.name}@${from}+${len}->${to}`);
        break;
      }
      case 8: {
        // interesting u32 anywhere hot
        put32(region() & ~3, anyU32(4096), 'u32');
        break;
      }
      default: {
        // insert or delete a chunk (shifts everything after it)
        const at = region();
        const len = 1 + below(64);
        ops.push(`${rand() < 0.5 ? 'delete' : 'insert'} ${len}@${at}`);
        if (ops[ops.length - 1]?.startsWith('delete')) return { index, source: src.name, btfAware, ops, bytes: new Uint8Array(Buffer.concat([b.subarray(0, at), b.subarray(at + len)])) };
        const ins = new Uint8Array(len).map(() => below(256));
        return { index, source: src.name, btfAware, ops, bytes: new Uint8Array(Buffer.concat([b.subarray(0, at), ins, b.subarray(at)])) };
      }
    }
  }
  return { index, source: src.name, btfAware, ops, bytes: b };
}
