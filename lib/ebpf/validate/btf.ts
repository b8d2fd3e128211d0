/**
 * In-process validation of the `.BTF` and `.BTF.ext` sections of a BPF object, before libbpf
 * reads them. libbpf 1.1 trusts type ids, string offsets and `.BTF.ext` records and
 * dereferences what they point to (a struct member whose type id is past the last type
 * crashes CO-RE relocation); later libbpf versions added these checks after fuzzing
 * (`btf_sanity_check`, `btf_validate_type`, `btf_validate_id`, `btf_validate_str` in
 * libbpf's btf.c). This module does them, and more, in JS.
 * @module
 */
import { type Btf, BtfKind, type BtfType, parseBtf } from '../btf.js';
import { InvalidObjectError } from '../errors.js';

const KIND_NAMES = [
  'UNKN', 'INT', 'PTR', 'ARRAY', 'STRUCT', 'UNION', 'ENUM', 'FWD', 'TYPEDEF', 'VOLATILE', 'CONST', 'RESTRICT', 'FUNC',
  'FUNC_PROTO', 'VAR', 'DATASEC', 'FLOAT', 'DECL_TAG', 'TYPE_TAG', 'ENUM64',
];
const MODIFIERS = new Set<number>([BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT, BtfKind.TYPE_TAG]);
// kinds that are not data types: nothing may hold one by value or point at one
const NOT_DATA = new Set<number>([BtfKind.FUNC, BtfKind.VAR, BtfKind.DATASEC, BtfKind.DECL_TAG]);
const MAX_TYPES = 0x7fffffff;
const HDR_LEN = 24;

function bad(what: string): InvalidObjectError {
  return new InvalidObjectError(`malformed BTF: ${what}`);
}

/** `type 33 STRUCT 'trace_event_raw_sys_enter'`. */
function describe(t: BtfType): string {
  return `type ${t.id} ${KIND_NAMES[t.kind] ?? t.kind}${t.name ? ` '${t.name}'` : ''}`;
}

/** What {@link validateBtf} found valid: the parsed types and the string section's bounds. */
export interface ValidBtf {
  /** The parsed BTF. */
  btf: Btf;
  /** Length of the string section, bytes. */
  strLen: number;
  /** The string at a string-section offset (already known to be in range and terminated). */
  str(off: number): string;
}

/**
 * Checks raw BTF: header (magic, version, flags, `hdr_len`, section layout), string section
 * (inside the blob, starting and ending with NUL), every type record (known kind, record
 * inside the type section), every name offset inside the string section, every referenced
 * type id (members, array element and index types, function prototype return and parameter
 * types, modifier/pointer/typedef/var/decl_tag targets, datasec entries, func → proto)
 * smaller than the number of types and of a kind that may be referenced there, integer,
 * enum and float sizes, members inside their struct, decl_tag component indexes, datasec
 * entries inside their section (`sectionSize` gives the ELF section sizes for datasecs of
 * size 0), and no reference cycle that does not go through a pointer.
 *
 * @throws InvalidObjectError naming the type id, member or offset at fault.
 */
export function validateBtf(raw: Uint8Array, sectionSize: (name: string) => number | undefined = () => undefined): ValidBtf {
  if (raw.byteLength < HDR_LEN) throw bad(`${raw.byteLength} bytes is shorter than the BTF header`);
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const magic = v.getUint16(0, true);
  if (magic !== 0xeb9f) throw bad(`bad magic 0x${magic.toString(16)} (big-endian BTF is not supported)`);
  if (raw[2] !== 1) throw bad(`version ${raw[2]} is not 1`);
  if (raw[3] !== 0) throw bad(`flags ${raw[3]} are not 0`);
  const hdrLen = v.getUint32(4, true);
  if (hdrLen < HDR_LEN || hdrLen > raw.byteLength) throw bad(`hdr_len ${hdrLen} is out of range (${HDR_LEN}..${raw.byteLength})`);
  // a longer header than known must be zero past the known fields (as libbpf and the kernel require)
  for (let i = HDR_LEN; i < hdrLen; i++) if (raw[i] !== 0) throw bad(`unknown header field at byte ${i} is not 0`);
  const typeOff = v.getUint32(8, true);
  const typeLen = v.getUint32(12, true);
  const strOff = v.getUint32(16, true);
  const strLen = v.getUint32(20, true);
  const dataLen = raw.byteLength - hdrLen;
  if (typeOff % 4 !== 0) throw bad(`type section offset ${typeOff} is not 4-byte aligned`);
  if (typeLen % 4 !== 0) throw bad(`type section length ${typeLen} is not a multiple of 4`);
  if (typeOff + typeLen > dataLen) throw bad(`type section (offset ${typeOff}, ${typeLen} bytes) runs past the end of the BTF (${dataLen} bytes of data)`);
  if (strOff + strLen > dataLen) throw bad(`string section (offset ${strOff}, ${strLen} bytes) runs past the end of the BTF (${dataLen} bytes of data)`);
  if (typeOff + typeLen > strOff && strOff + strLen > typeOff) throw bad('type and string sections overlap');
  const strStart = hdrLen + strOff;
  if (strLen === 0 || raw[strStart] !== 0 || raw[strStart + strLen - 1] !== 0)
    throw bad(`string section (${strLen} bytes) does not start and end with NUL`);

  let btf: Btf;
  try {
    btf = parseBtf(raw); // bounds-checked records, known kinds
  } catch (e) {
    if (e instanceof InvalidObjectError) throw bad(e.message.replace(/^BTF /, ''));
    throw e;
  }
  const types = btf.types;
  const n = types.length;
  if (n > MAX_TYPES) throw bad(`${n} types is too many`);
  const dec = new TextDecoder();
  const str = (off: number): string => {
    if (off === 0) return '';
    const end = raw.indexOf(0, strStart + off);
    return dec.decode(raw.subarray(strStart + off, end));
  };
  const checkStr = (t: BtfType, off: number, what: string): void => {
    if (off >= strLen) throw bad(`${describe(t)}: ${what} name offset ${off} is past the string section (${strLen} bytes)`);
  };
  // a reference from `t` (`what`) to `id`: in range, and not to something that is not a data type
  const checkRef = (t: BtfType, id: number, what: string, opts: { voidOk?: boolean; kinds?: Set<number> } = {}): void => {
    if (id >= n) throw bad(`${describe(t)}: ${what} refers to type ${id} (0x${id.toString(16)}), past the last type ${n - 1}`);
    if (id === 0) {
      if (opts.voidOk === false) throw bad(`${describe(t)}: ${what} is void`);
      return;
    }
    const target = types[id] as BtfType;
    if (opts.kinds ? !opts.kinds.has(target.kind) : NOT_DATA.has(target.kind))
      throw bad(`${describe(t)}: ${what} refers to ${describe(target)}, which cannot be used there`);
  };

  for (let id = 1; id < n; id++) {
    const t = types[id] as BtfType;
    const at = t.offset as number;
    const vlen = t.vlen ?? 0;
    checkStr(t, v.getUint32(at, true), 'its');
    switch (t.kind) {
      case BtfKind.INT: {
        const size = t.size ?? 0;
        if (![1, 2, 4, 8, 16].includes(size)) throw bad(`${describe(t)}: size ${size} is not 1, 2, 4, 8 or 16`);
        if ((t.intBits ?? 0) + (t.intOffset ?? 0) > size * 8 || (t.intBits ?? 0) > 128)
          throw bad(`${describe(t)}: ${t.intBits} bits at bit ${t.intOffset} do not fit in ${size} bytes`);
        break;
      }
      case BtfKind.FLOAT:
        if (![2, 4, 8, 12, 16].includes(t.size ?? 0)) throw bad(`${describe(t)}: float size ${t.size} is not 2, 4, 8, 12 or 16`);
        break;
      case BtfKind.ENUM:
      case BtfKind.ENUM64: {
        if (![1, 2, 4, 8].includes(t.size ?? 0)) throw bad(`${describe(t)}: enum size ${t.size} is not 1, 2, 4 or 8`);
        const step = t.kind === BtfKind.ENUM ? 8 : 12;
        for (let i = 0; i < vlen; i++) checkStr(t, v.getUint32(at + 12 + step * i, true), `value ${i}`);
        break;
      }
      case BtfKind.PTR:
        checkRef(t, t.type ?? 0, 'pointer target');
        break;
      case BtfKind.TYPEDEF:
      case BtfKind.VOLATILE:
      case BtfKind.CONST:
      case BtfKind.RESTRICT:
      case BtfKind.TYPE_TAG:
        checkRef(t, t.type ?? 0, 'target');
        break;
      case BtfKind.ARRAY:
        checkRef(t, t.elemType ?? 0, 'element type', { voidOk: false });
        checkRef(t, t.indexType ?? 0, 'index type');
        break;
      case BtfKind.STRUCT:
      case BtfKind.UNION:
        for (let i = 0; i < vlen; i++) {
          const m = t.members?.[i];
          if (!m) break;
          const what = `member ${i}${m.name ? ` '${m.name}'` : ''}`;
          checkStr(t, v.getUint32(at + 12 + 12 * i, true), what);
          checkRef(t, m.type, `${what} type`, { voidOk: false });
          if (m.bitOffset + m.bitSize > (t.size ?? 0) * 8)
            throw bad(`${describe(t)}: ${what} at bit ${m.bitOffset} (${m.bitSize} bits) is outside the ${t.size}-byte ${KIND_NAMES[t.kind]?.toLowerCase()}`);
        }
        break;
      case BtfKind.FUNC: {
        checkRef(t, t.type ?? 0, 'prototype', { voidOk: false, kinds: new Set([BtfKind.FUNC_PROTO]) });
        if ((t.linkage ?? 0) > 2) throw bad(`${describe(t)}: linkage ${t.linkage} is not static, global or extern`);
        break;
      }
      case BtfKind.FUNC_PROTO:
        checkRef(t, t.type ?? 0, 'return type');
        for (let i = 0; i < vlen; i++) {
          const p = t.params?.[i];
          if (!p) break;
          checkStr(t, v.getUint32(at + 12 + 8 * i, true), `parameter ${i}`);
          // type 0 is allowed only as the last parameter (varargs)
          checkRef(t, p.type, `parameter ${i} type`, { voidOk: i === vlen - 1 });
        }
        break;
      case BtfKind.VAR:
        checkRef(t, t.type ?? 0, 'variable type', { voidOk: false });
        if ((t.linkage ?? 0) > 2) throw bad(`${describe(t)}: linkage ${t.linkage} is not static, global or extern`);
        break;
      case BtfKind.DATASEC: {
        const secSize = t.size || (sectionSize(t.name) ?? Number.POSITIVE_INFINITY);
        for (let i = 0; i < vlen; i++) {
          const e = t.vars?.[i];
          if (!e) break;
          checkRef(t, e.type, `entry ${i}`, { voidOk: false, kinds: new Set([BtfKind.VAR, BtfKind.FUNC]) });
          if (e.offset + e.size > secSize) throw bad(`${describe(t)}: entry ${i} (offset ${e.offset}, size ${e.size}) is outside the ${secSize}-byte section`);
        }
        break;
      }
      case BtfKind.DECL_TAG: {
        checkRef(t, t.type ?? 0, 'tagged type', { voidOk: false, kinds: new Set([BtfKind.STRUCT, BtfKind.UNION, BtfKind.FUNC, BtfKind.VAR, BtfKind.TYPEDEF]) });
        const target = types[t.type ?? 0] as BtfType;
        const ci = t.componentIdx ?? -1;
        if (ci !== -1) {
          const count = target.kind === BtfKind.FUNC ? ((types[target.type ?? 0] as BtfType).vlen ?? 0) : target.kind === BtfKind.STRUCT || target.kind === BtfKind.UNION ? (target.vlen ?? 0) : 0;
          if (ci < 0 || ci >= count) throw bad(`${describe(t)}: component index ${ci} is not a member or parameter of ${describe(target)}`);
        }
        break;
      }
      default:
        break; // FWD
    }
  }
  checkCycles(types);
  // members hold their whole type (sizes are only known once cycles are ruled out)
  for (const t of types) {
    if (t.kind !== BtfKind.STRUCT && t.kind !== BtfKind.UNION) continue;
    for (const [i, m] of (t.members ?? []).entries()) {
      if (m.bitSize > 0 || m.bitOffset % 8 !== 0) continue;
      const mt = btf.resolve(m.type);
      // an old-style bitfield (no kflag): an INT of fewer bits than its size, placed by bits
      if (mt?.kind === BtfKind.INT && (mt.intBits ?? 0) < (mt.size ?? 0) * 8) continue;
      const size = btf.sizeOf(m.type);
      if (m.bitOffset / 8 + size > (t.size ?? 0))
        throw bad(`${describe(t)}: member ${i}${m.name ? ` '${m.name}'` : ''} (${size} bytes at byte ${m.bitOffset / 8}) is outside the ${t.size}-byte ${KIND_NAMES[t.kind]?.toLowerCase()}`);
    }
  }
  return { btf, strLen, str };
}

/** Types that `t` contains or names by value (not through a pointer). */
function valueRefs(t: BtfType): number[] {
  if (MODIFIERS.has(t.kind) || t.kind === BtfKind.VAR || t.kind === BtfKind.FUNC || t.kind === BtfKind.DECL_TAG) return [t.type ?? 0];
  if (t.kind === BtfKind.ARRAY) return [t.elemType ?? 0, t.indexType ?? 0];
  if (t.kind === BtfKind.STRUCT || t.kind === BtfKind.UNION) return (t.members ?? []).map((m) => m.type);
  if (t.kind === BtfKind.FUNC_PROTO) return [t.type ?? 0, ...(t.params ?? []).map((p) => p.type)];
  if (t.kind === BtfKind.DATASEC) return (t.vars ?? []).map((e) => e.type);
  return [];
}

/** Rejects a cycle of by-value references (a struct containing itself, a typedef of itself): libbpf would recurse or loop on it. */
function checkCycles(types: BtfType[]): void {
  const state = new Uint8Array(types.length); // 0 new, 1 on the stack, 2 done
  for (let root = 1; root < types.length; root++) {
    if (state[root] !== 0) continue;
    const stack: [number, number[], number][] = [[root, valueRefs(types[root] as BtfType), 0]];
    state[root] = 1;
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as [number, number[], number];
      const [id, refs, i] = top;
      if (i >= refs.length) {
        state[id] = 2;
        stack.pop();
        continue;
      }
      top[2] = i + 1;
      const next = refs[i] as number;
      if (next === 0 || next >= types.length) continue;
      if (state[next] === 1) throw bad(`${describe(types[id] as BtfType)} refers back to ${describe(types[next] as BtfType)}: a reference cycle that no pointer breaks`);
      if (state[next] === 0) {
        state[next] = 1;
        stack.push([next, valueRefs(types[next] as BtfType), 0]);
      }
    }
  }
}

const CORE_KINDS = 12; // BPF_CORE_TYPE_MATCHES is the last relocation kind
const ACCESS_MAX = 64; // BPF_CORE_SPEC_MAX_LEN

/**
 * Checks a `.BTF.ext` section against its (validated) BTF: header (magic, version, flags,
 * `hdr_len`), each of func_info, line_info and core_relo inside the section with a record
 * size at least the known record and a multiple of 4, every per-section block inside the
 * subsection with at least one record; section name offsets, file and line string offsets
 * and access-string offsets inside the BTF string section; instruction offsets inside the
 * named ELF section (`sectionSize`); func_info types that are functions; CO-RE relocation
 * kinds known, type ids in range, and access strings that parse (non-negative decimal
 * indexes, at most 64) and index within the members, array bounds or enum values of the
 * types they walk, as libbpf's `bpf_core_parse_spec` does.
 *
 * @throws InvalidObjectError naming the subsection, record and field at fault.
 */
export function validateBtfExt(raw: Uint8Array, b: ValidBtf, sectionSize: (name: string) => number | undefined): void {
  if (raw.byteLength < 8) throw bad(`.BTF.ext: ${raw.byteLength} bytes is shorter than its header`);
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  if (v.getUint16(0, true) !== 0xeb9f) throw bad(`.BTF.ext: bad magic 0x${v.getUint16(0, true).toString(16)}`);
  if (raw[2] !== 1) throw bad(`.BTF.ext: version ${raw[2]} is not 1`);
  if (raw[3] !== 0) throw bad(`.BTF.ext: flags ${raw[3]} are not 0`);
  const hdrLen = v.getUint32(4, true);
  if (hdrLen < 24 || hdrLen > raw.byteLength || hdrLen % 4 !== 0) throw bad(`.BTF.ext: hdr_len ${hdrLen} is out of range (24..${raw.byteLength}, multiple of 4)`);
  const types = b.btf.types;
  const subs: { name: string; min: number; at: number }[] = [
    { name: 'func_info', min: 8, at: 8 },
    { name: 'line_info', min: 16, at: 16 },
  ];
  if (hdrLen >= 32) subs.push({ name: 'core_relo', min: 16, at: 24 });
  for (const sub of subs) {
    const off = v.getUint32(sub.at, true);
    const len = v.getUint32(sub.at + 4, true);
    if (len === 0) continue;
    const where = `.BTF.ext ${sub.name}`;
    if (off % 4 !== 0) throw bad(`${where}: offset ${off} is not 4-byte aligned`);
    const start = hdrLen + off;
    const end = start + len;
    if (end > raw.byteLength) throw bad(`${where} (offset ${off}, ${len} bytes) runs past the end of .BTF.ext (${raw.byteLength} bytes)`);
    if (len < 4) throw bad(`${where}: ${len} bytes has no record size`);
    const recSize = v.getUint32(start, true);
    if (recSize < sub.min || recSize % 4 !== 0) throw bad(`${where}: record size ${recSize} is less than ${sub.min} or not a multiple of 4`);
    let p = start + 4;
    if (p === end) throw bad(`${where} has no records`);
    while (p < end) {
      if (p + 8 > end) throw bad(`${where}: section block at offset ${p - start} is cut off`);
      const secNameOff = v.getUint32(p, true);
      const num = v.getUint32(p + 4, true);
      if (secNameOff >= b.strLen) throw bad(`${where}: section name offset ${secNameOff} is past the BTF string section (${b.strLen} bytes)`);
      const secName = b.str(secNameOff);
      if (num === 0) throw bad(`${where} for section '${secName}' has no records`);
      if (p + 8 + num * recSize > end) throw bad(`${where} for section '${secName}': ${num} records of ${recSize} bytes run past the subsection`);
      const secSize = sectionSize(secName);
      if (secSize === undefined) throw bad(`${where} names section '${secName}', which the object does not have`);
      for (let r = 0; r < num; r++) {
        const o = p + 8 + r * recSize;
        const rec = `${where} record ${r} of section '${secName}'`;
        const insnOff = v.getUint32(o, true);
        if (insnOff % 8 !== 0 || insnOff >= secSize) throw bad(`${rec}: instruction offset ${insnOff} is not an instruction of the ${secSize}-byte section`);
        if (sub.name === 'func_info') {
          const id = v.getUint32(o + 4, true);
          if (id === 0 || id >= types.length || types[id]?.kind !== BtfKind.FUNC) throw bad(`${rec}: type ${id} is not a FUNC (${types.length} types)`);
        } else if (sub.name === 'line_info') {
          const file = v.getUint32(o + 4, true);
          const line = v.getUint32(o + 8, true);
          if (file >= b.strLen || line >= b.strLen) throw bad(`${rec}: file name offset ${file} or line offset ${line} is past the BTF string section (${b.strLen} bytes)`);
        } else {
          checkCoreRelo(b, v.getUint32(o + 4, true), v.getUint32(o + 8, true), v.getUint32(o + 12, true), rec);
        }
      }
      p += 8 + num * recSize;
    }
  }
}

function skipMods(types: BtfType[], id: number): number {
  for (let guard = 0; guard < 64; guard++) {
    const t = types[id];
    if (!t || !MODIFIERS.has(t.kind)) return id;
    id = t.type ?? 0;
  }
  return id;
}

function checkCoreRelo(b: ValidBtf, typeId: number, accessOff: number, kind: number, rec: string): void {
  const types = b.btf.types;
  if (kind > CORE_KINDS) throw bad(`${rec}: CO-RE relocation kind ${kind} is unknown`);
  if (typeId === 0 || typeId >= types.length) throw bad(`${rec}: CO-RE type id ${typeId} (0x${typeId.toString(16)}) is not a type (${types.length} types)`);
  if (accessOff >= b.strLen) throw bad(`${rec}: access string offset ${accessOff} is past the BTF string section (${b.strLen} bytes)`);
  const spec = b.str(accessOff);
  const typeBased = kind === 6 || kind === 7 || kind === 8 || kind === 9 || kind === 12;
  if (typeBased) {
    if (spec !== '0') throw bad(`${rec}: type relocation access string '${spec}' is not '0'`);
    return;
  }
  if (!/^\d{1,9}(:\d{1,9})*$/.test(spec)) throw bad(`${rec}: access string '${spec}' is not colon-separated indexes`);
  const idx = spec.split(':').map(Number);
  if (idx.length > ACCESS_MAX) throw bad(`${rec}: access string has ${idx.length} indexes (at most ${ACCESS_MAX})`);
  let id = skipMods(types, typeId);
  let t = types[id] as BtfType;
  if (kind === 10 || kind === 11) {
    if ((t.kind !== BtfKind.ENUM && t.kind !== BtfKind.ENUM64) || idx.length > 1 || (idx[0] as number) >= (t.vlen ?? 0))
      throw bad(`${rec}: enum value access '${spec}' does not name a value of type ${typeId}`);
    return;
  }
  for (let i = 1; i < idx.length; i++) {
    id = skipMods(types, id);
    t = types[id] as BtfType;
    const a = idx[i] as number;
    if (t.kind === BtfKind.STRUCT || t.kind === BtfKind.UNION) {
      const m = t.members?.[a];
      if (!m) throw bad(`${rec}: access '${spec}' index ${i} (${a}) is past the ${t.vlen} members of ${describe(t)}`);
      id = m.type;
    } else if (t.kind === BtfKind.ARRAY) {
      // a flexible array (nelems 0) may be indexed past its bounds
      if ((t.nelems ?? 0) !== 0 && a >= (t.nelems ?? 0)) throw bad(`${rec}: access '${spec}' index ${i} (${a}) is past the ${t.nelems} elements of ${describe(t)}`);
      id = t.elemType ?? 0;
    } else {
      throw bad(`${rec}: access '${spec}' index ${i} walks into ${describe(t)}, which has no members`);
    }
  }
}
