/**
 * A BTF parser and BTF-driven codecs. {@link parseBtf} reads raw BTF (the `.BTF` section of a
 * BPF object, {@link btfFromElf}, or a kernel BTF blob); {@link codecFromBtf} builds a
 * {@link Codec} for any type in it at run time, which is how users decode maps and records of
 * their own objects without describing a struct by hand. scripts/gen-types.ts uses the same
 * parser at build time to generate TypeScript types for the structs in `bpf/*.h`.
 * @module
 */
import { array, bool, bytes, cstring, f32, f64, i16, i32, i64, i8, u16, u32, u64, u8 } from './codec.js';
import { ConfigError } from '../errors/index.js';
import { InvalidObjectError } from './errors.js';
import type { Codec } from './types.js';

/** BTF kinds (BTF_KIND_*). */
export const BtfKind = {
  UNKN: 0,
  INT: 1,
  PTR: 2,
  ARRAY: 3,
  STRUCT: 4,
  UNION: 5,
  ENUM: 6,
  FWD: 7,
  TYPEDEF: 8,
  VOLATILE: 9,
  CONST: 10,
  RESTRICT: 11,
  FUNC: 12,
  FUNC_PROTO: 13,
  VAR: 14,
  DATASEC: 15,
  FLOAT: 16,
  DECL_TAG: 17,
  TYPE_TAG: 18,
  ENUM64: 19,
} as const;

/** A member of a struct or union. */
export interface BtfMember {
  name: string;
  type: number;
  /** Offset from the start of the struct, in bits. */
  bitOffset: number;
  /** Bitfield width in bits, 0 for a whole member. */
  bitSize: number;
}

/** One BTF type. Fields beyond `kind`, `name` and `id` depend on the kind. */
export interface BtfType {
  id: number;
  kind: number;
  name: string;
  /** Byte offset of this type's record in the raw BTF (undefined for `void`). */
  offset?: number;
  /** Number of entries after the record's header (members, enum values, params, vars). */
  vlen?: number;
  /** The record's kind flag (bitfield members, enum signedness, decl_tag on attributes). */
  kflag?: boolean;
  /** INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC: byte size. */
  size?: number;
  /** PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG, FUNC, VAR: referenced type. */
  type?: number;
  /** INT: encoding (1 signed, 2 char, 4 bool), bit offset and bits. */
  intEncoding?: number;
  intBits?: number;
  intOffset?: number;
  /** ARRAY. */
  elemType?: number;
  nelems?: number;
  /** STRUCT, UNION. */
  members?: BtfMember[];
  /** ENUM, ENUM64. */
  enumValues?: { name: string; value: bigint }[];
  /** DATASEC: variables. */
  vars?: { type: number; offset: number; size: number }[];
  /** ARRAY: index type. */
  indexType?: number;
  /** FUNC_PROTO: parameters (`type` of the return is in `type`). */
  params?: { name: string; type: number }[];
  /** FUNC, VAR: linkage. */
  linkage?: number;
  /** DECL_TAG: member or parameter index the tag applies to, -1 for the type itself. */
  componentIdx?: number;
}

/** Parsed BTF: types by id (index 0 is `void`). */
export interface Btf {
  types: BtfType[];
  /** First type id with a given name and kind. */
  find(name: string, kind?: number): BtfType | undefined;
  /** Follows typedefs and qualifiers to the underlying type. */
  resolve(id: number): BtfType | undefined;
  /** Size in bytes of a type (arrays included, pointers 8). */
  sizeOf(id: number): number;
}

const MODIFIERS = new Set<number>([BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT, BtfKind.TYPE_TAG]);

/**
 * Bytes that follow the 12-byte header of a BTF type record of `kind` with `vlen` entries, or
 * -1 for an unknown kind.
 */
export function btfRecordExtra(kind: number, vlen: number): number {
  switch (kind) {
    case BtfKind.INT:
    case BtfKind.VAR:
    case BtfKind.DECL_TAG:
      return 4;
    case BtfKind.ARRAY:
      return 12;
    case BtfKind.STRUCT:
    case BtfKind.UNION:
    case BtfKind.DATASEC:
    case BtfKind.ENUM64:
      return 12 * vlen;
    case BtfKind.ENUM:
    case BtfKind.FUNC_PROTO:
      return 8 * vlen;
    case BtfKind.PTR:
    case BtfKind.FWD:
    case BtfKind.TYPEDEF:
    case BtfKind.VOLATILE:
    case BtfKind.CONST:
    case BtfKind.RESTRICT:
    case BtfKind.FUNC:
    case BtfKind.FLOAT:
    case BtfKind.TYPE_TAG:
      return 0;
    default:
      return -1;
  }
}

/** Parses raw BTF bytes (little-endian). Throws InvalidObjectError on malformed input. */
export function parseBtf(raw: Uint8Array): Btf {
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  if (raw.byteLength < 24 || v.getUint16(0, true) !== 0xeb9f) throw new InvalidObjectError('not BTF data (bad magic)');
  const hdrLen = v.getUint32(4, true);
  const typeOff = hdrLen + v.getUint32(8, true);
  const typeLen = v.getUint32(12, true);
  const strOff = hdrLen + v.getUint32(16, true);
  const strLen = v.getUint32(20, true);
  if (typeOff + typeLen > raw.byteLength || strOff + strLen > raw.byteLength) throw new InvalidObjectError('truncated BTF');
  const dec = new TextDecoder();
  const str = (off: number): string => {
    if (off === 0) return '';
    let end = strOff + off;
    while (end < strOff + strLen && raw[end] !== 0) end++;
    return dec.decode(raw.subarray(strOff + off, end));
  };
  const types: BtfType[] = [{ id: 0, kind: BtfKind.UNKN, name: 'void' }];
  let p = typeOff;
  const end = typeOff + typeLen;
  while (p < end) {
    const start = p;
    if (p + 12 > end) throw new InvalidObjectError(`BTF type ${types.length} at offset ${p - typeOff} of the type section is cut off`);
    const nameOff = v.getUint32(p, true);
    const info = v.getUint32(p + 4, true);
    const sizeOrType = v.getUint32(p + 8, true);
    p += 12;
    const vlen = info & 0xffff;
    const kind = (info >>> 24) & 0x1f;
    const kflag = info >>> 31 === 1;
    const extra = btfRecordExtra(kind, vlen);
    if (extra < 0) throw new InvalidObjectError(`BTF type ${types.length} has unknown kind ${kind}`);
    if (p + extra > end) throw new InvalidObjectError(`BTF type ${types.length} (kind ${kind}, vlen ${vlen}) runs past the end of the type section`);
    const t: BtfType = { id: types.length, kind, name: str(nameOff), offset: start, vlen, kflag };
    switch (kind) {
      case BtfKind.INT: {
        const enc = v.getUint32(p, true);
        p += 4;
        t.size = sizeOrType;
        t.intEncoding = (enc >>> 24) & 0xf;
        t.intOffset = (enc >>> 16) & 0xff;
        t.intBits = enc & 0xff;
        break;
      }
      case BtfKind.PTR:
      case BtfKind.TYPEDEF:
      case BtfKind.VOLATILE:
      case BtfKind.CONST:
      case BtfKind.RESTRICT:
      case BtfKind.TYPE_TAG:
        t.type = sizeOrType;
        break;
      case BtfKind.FUNC:
        t.type = sizeOrType;
        t.linkage = vlen;
        break;
      case BtfKind.FWD:
        break;
      case BtfKind.ARRAY:
        t.elemType = v.getUint32(p, true);
        t.indexType = v.getUint32(p + 4, true);
        t.nelems = v.getUint32(p + 8, true);
        p += 12;
        break;
      case BtfKind.STRUCT:
      case BtfKind.UNION: {
        t.size = sizeOrType;
        t.members = [];
        for (let i = 0; i < vlen; i++, p += 12) {
          const off = v.getUint32(p + 8, true);
          t.members.push({
            name: str(v.getUint32(p, true)),
            type: v.getUint32(p + 4, true),
            bitOffset: kflag ? off & 0xffffff : off,
            bitSize: kflag ? off >>> 24 : 0,
          });
        }
        break;
      }
      case BtfKind.ENUM: {
        t.size = sizeOrType;
        t.enumValues = [];
        for (let i = 0; i < vlen; i++, p += 8) t.enumValues.push({ name: str(v.getUint32(p, true)), value: BigInt(kflag ? v.getInt32(p + 4, true) : v.getUint32(p + 4, true)) });
        break;
      }
      case BtfKind.ENUM64: {
        t.size = sizeOrType;
        t.enumValues = [];
        for (let i = 0; i < vlen; i++, p += 12) {
          const lo = BigInt(v.getUint32(p + 4, true));
          const hi = BigInt(v.getUint32(p + 8, true));
          t.enumValues.push({ name: str(v.getUint32(p, true)), value: (hi << 32n) | lo });
        }
        break;
      }
      case BtfKind.FUNC_PROTO:
        t.type = sizeOrType;
        t.params = [];
        for (let i = 0; i < vlen; i++, p += 8) t.params.push({ name: str(v.getUint32(p, true)), type: v.getUint32(p + 4, true) });
        break;
      case BtfKind.VAR:
        t.type = sizeOrType;
        t.linkage = v.getUint32(p, true);
        p += 4;
        break;
      case BtfKind.DATASEC:
        t.size = sizeOrType;
        t.vars = [];
        for (let i = 0; i < vlen; i++, p += 12) t.vars.push({ type: v.getUint32(p, true), offset: v.getUint32(p + 4, true), size: v.getUint32(p + 8, true) });
        break;
      case BtfKind.FLOAT:
        t.size = sizeOrType;
        break;
      case BtfKind.DECL_TAG:
        t.type = sizeOrType;
        t.componentIdx = v.getInt32(p, true);
        p += 4;
        break;
      default:
        throw new InvalidObjectError(`unknown BTF kind ${kind} at type ${types.length}`);
    }
    types.push(t);
  }
  const byName = new Map<string, BtfType[]>();
  for (const t of types) {
    if (!t.name) continue;
    const l = byName.get(t.name);
    if (l) l.push(t);
    else byName.set(t.name, [t]);
  }
  const btf: Btf = {
    types,
    find(name, kind) {
      return byName.get(name)?.find((t) => kind === undefined || t.kind === kind);
    },
    resolve(id) {
      let t = types[id];
      for (let guard = 0; t && MODIFIERS.has(t.kind) && guard < 64; guard++) t = types[t.type ?? 0];
      return t;
    },
    sizeOf(id) {
      const t = btf.resolve(id);
      if (!t) return 0;
      if (t.kind === BtfKind.PTR) return 8;
      if (t.kind === BtfKind.ARRAY) return (t.nelems ?? 0) * btf.sizeOf(t.elemType ?? 0);
      return t.size ?? 0;
    },
  };
  return btf;
}

/**
 * The `.BTF` section of an ELF64 little-endian file (a compiled BPF object), or undefined when
 * it has none.
 */
export function btfFromElf(elf: Uint8Array): Uint8Array | undefined {
  return elfSection(elf, '.BTF');
}

/** The bytes of section `name` of an ELF64 little-endian file, or undefined when absent. */
export function elfSection(elf: Uint8Array, name: string): Uint8Array | undefined {
  const v = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  if (elf.byteLength < 64 || v.getUint32(0, false) !== 0x7f454c46) throw new InvalidObjectError('not an ELF file');
  if (elf[4] !== 2 || elf[5] !== 1) throw new InvalidObjectError('only ELF64 little-endian objects are supported');
  const shoff = Number(v.getBigUint64(0x28, true));
  const shentsize = v.getUint16(0x3a, true);
  const shnum = v.getUint16(0x3c, true);
  const shstrndx = v.getUint16(0x3e, true);
  const sec = (i: number) => {
    const o = shoff + i * shentsize;
    return { name: v.getUint32(o, true), offset: Number(v.getBigUint64(o + 0x18, true)), size: Number(v.getBigUint64(o + 0x20, true)) };
  };
  const strtab = sec(shstrndx);
  const dec = new TextDecoder();
  for (let i = 0; i < shnum; i++) {
    const s = sec(i);
    let e = strtab.offset + s.name;
    while (elf[e] !== 0 && e < elf.byteLength) e++;
    if (dec.decode(elf.subarray(strtab.offset + s.name, e)) === name) return elf.subarray(s.offset, s.offset + s.size);
  }
  return undefined;
}

/** Options of {@link codecFromBtf}. */
export interface BtfCodecOptions {
  /**
   * Decide whether a byte array decodes as a NUL-terminated string (`char[]` always does).
   * Default: byte arrays whose field name looks textual (`comm`, `name`, `*name`, `path`, `filename`, `task`).
   */
  isString?: (fieldName: string, length: number) => boolean;
}

const TEXTUAL = /^(comm|name|.*_name|path|filename|task|fname)$/;

function bitfield(byteOffset: number, bitInByte: number, bits: number, signed: boolean): Codec<number> {
  const span = Math.ceil((bitInByte + bits) / 8);
  return {
    size: span,
    decode(buf, offset = 0) {
      let x = 0n;
      for (let i = span - 1; i >= 0; i--) x = (x << 8n) | BigInt(buf[offset + byteOffset + i] ?? 0);
      x = (x >> BigInt(bitInByte)) & ((1n << BigInt(bits)) - 1n);
      if (signed && x >> BigInt(bits - 1)) x -= 1n << BigInt(bits);
      return Number(x);
    },
    encode(value, buf, offset = 0) {
      const b = buf ?? new Uint8Array(span);
      let x = 0n;
      for (let i = span - 1; i >= 0; i--) x = (x << 8n) | BigInt(b[offset + byteOffset + i] ?? 0);
      const mask = ((1n << BigInt(bits)) - 1n) << BigInt(bitInByte);
      x = (x & ~mask) | ((BigInt.asUintN(bits, BigInt(value)) << BigInt(bitInByte)) & mask);
      for (let i = 0; i < span; i++) b[offset + byteOffset + i] = Number((x >> BigInt(8 * i)) & 0xffn);
      return b;
    },
  };
}

/**
 * Builds a codec for type `typeId` of `btf` (raw bytes or parsed): integers (64-bit as
 * `bigint`), bool, enums (as numbers), floats, pointers (`bigint` addresses), `char[]` and
 * textual byte arrays as strings, other arrays as arrays, structs and unions as objects
 * (anonymous members flattened, bitfields as numbers).
 */
export function codecFromBtf(btf: Uint8Array | Btf, typeId: number, opts: BtfCodecOptions = {}): Codec<unknown> {
  const b = btf instanceof Uint8Array ? parseBtf(btf) : btf;
  const isString = opts.isString ?? ((n: string) => TEXTUAL.test(n));
  const build = (id: number, fieldName: string): Codec<unknown> => {
    const t = b.resolve(id);
    if (!t) throw new InvalidObjectError(`BTF type ${id} does not exist`);
    switch (t.kind) {
      case BtfKind.INT: {
        const signed = ((t.intEncoding ?? 0) & 1) === 1;
        if (((t.intEncoding ?? 0) & 4) === 4) return bool;
        switch (t.size) {
          case 1:
            return signed ? i8 : u8;
          case 2:
            return signed ? i16 : u16;
          case 4:
            return signed ? i32 : u32;
          case 8:
            return signed ? i64 : u64;
          default:
            return bytes(t.size ?? 0);
        }
      }
      case BtfKind.ENUM:
      case BtfKind.ENUM64:
        return t.size === 8 ? u64 : t.size === 2 ? u16 : t.size === 1 ? u8 : i32;
      case BtfKind.FLOAT:
        return t.size === 4 ? f32 : f64;
      case BtfKind.PTR:
        return u64;
      case BtfKind.ARRAY: {
        const elem = b.resolve(t.elemType ?? 0);
        const n = t.nelems ?? 0;
        if (elem?.kind === BtfKind.INT && elem.size === 1) {
          const isChar = ((elem.intEncoding ?? 0) & 2) === 2 || elem.name === 'char';
          return isChar || isString(fieldName, n) ? cstring(n) : bytes(n);
        }
        const ec = build(t.elemType ?? 0, fieldName);
        return array(ec, n, b.sizeOf(t.elemType ?? 0));
      }
      case BtfKind.STRUCT:
      case BtfKind.UNION:
        return structCodec(t, 0);
      default:
        return bytes(b.sizeOf(id));
    }
  };
  // Fields of a struct, with anonymous struct/union members flattened into the parent.
  const fieldsOf = (t: BtfType, base: number, out: [string, Codec<unknown>, number][]) => {
    for (const m of t.members ?? []) {
      const mt = b.resolve(m.type);
      if (!m.name && mt && (mt.kind === BtfKind.STRUCT || mt.kind === BtfKind.UNION)) {
        fieldsOf(mt, base + m.bitOffset / 8, out);
        continue;
      }
      const name = m.name || `_${m.bitOffset}`;
      if (m.bitSize > 0 || m.bitOffset % 8 !== 0) {
        const width = m.bitSize || (mt?.intBits ?? 8);
        const signed = ((mt?.intEncoding ?? 0) & 1) === 1;
        const byteOff = base + Math.floor(m.bitOffset / 8);
        out.push([name, bitfield(0, m.bitOffset % 8, width, signed), byteOff]);
        continue;
      }
      out.push([name, build(m.type, name), base + m.bitOffset / 8]);
    }
  };
  const structCodec = (t: BtfType, base: number): Codec<unknown> => {
    const fields: [string, Codec<unknown>, number][] = [];
    fieldsOf(t, base, fields);
    const size = t.size ?? 0;
    return {
      size,
      decode(buf, offset = 0) {
        const o: Record<string, unknown> = {};
        for (const [n, c, off] of fields) o[n] = c.decode(buf, offset + off);
        return o;
      },
      encode(value, buf, offset = 0) {
        const out = buf ?? new Uint8Array(size);
        if (buf) out.fill(0, offset, offset + size);
        const v = value as Record<string, unknown>;
        for (const [n, c, off] of fields) if (v[n] !== undefined) c.encode(v[n], out, offset + off);
        return out;
      },
    };
  };
  return build(typeId, '');
}

/** A codec for the struct/union/typedef named `name` in `btf`. */
export function codecFromBtfName(btf: Uint8Array | Btf, name: string, opts?: BtfCodecOptions): Codec<unknown> {
  const b = btf instanceof Uint8Array ? parseBtf(btf) : btf;
  const t = b.find(name, BtfKind.STRUCT) ?? b.find(name, BtfKind.UNION) ?? b.find(name, BtfKind.TYPEDEF);
  if (!t) throw new ConfigError(`BTF has no struct, union or typedef named '${name}'`);
  return codecFromBtf(b, t.id, opts);
}
