/**
 * In-process validation of the ELF container of a BPF object, before libbpf (libelf) reads
 * it: headers, section table, string tables, symbols and relocations are bounds-checked here,
 * in JS, so a malformed file is an {@link InvalidObjectError} instead of a crash in native code.
 * @module
 */
import { InvalidObjectError } from '../errors.js';

/** One section header of an ELF64 object. */
export interface ElfSection {
  /** Index in the section table. */
  index: number;
  /** Name from the section header string table (`''` for the null section). */
  name: string;
  /** `sh_type` (SHT_*). */
  type: number;
  /** `sh_flags`. */
  flags: number;
  /** `sh_offset`: file offset of the contents. */
  offset: number;
  /** `sh_size`: size of the contents (in memory only for SHT_NOBITS). */
  size: number;
  /** `sh_link`. */
  link: number;
  /** `sh_info`. */
  info: number;
  /** `sh_entsize`. */
  entsize: number;
}

/** The section table of a validated ELF object. */
export interface ElfLayout {
  /** Every section, by index. */
  sections: ElfSection[];
  /** The contents of a section by name (first match), or undefined when absent or SHT_NOBITS. */
  contents(name: string): Uint8Array | undefined;
  /** The first section with this name. */
  byName(name: string): ElfSection | undefined;
}

/** ELF constants used by the validator. */
export const Elf = {
  SHT_NULL: 0,
  SHT_PROGBITS: 1,
  SHT_SYMTAB: 2,
  SHT_STRTAB: 3,
  SHT_RELA: 4,
  SHT_NOBITS: 8,
  SHT_REL: 9,
  SHT_DYNSYM: 11,
  SHF_EXECINSTR: 0x4,
  ET_REL: 1,
  EM_NONE: 0,
  EM_BPF: 247,
  SHN_UNDEF: 0,
  SHN_LORESERVE: 0xff00,
  SHN_ABS: 0xfff1,
  SHN_COMMON: 0xfff2,
  SHN_XINDEX: 0xffff,
  EHDR_SIZE: 64,
  SHDR_SIZE: 64,
  SYM_SIZE: 24,
  REL_SIZE: 16,
  RELA_SIZE: 24,
  BPF_INSN_SIZE: 8,
} as const;

function bad(what: string): InvalidObjectError {
  return new InvalidObjectError(`malformed ELF: ${what}`);
}

/** A u64 read as a number (values past 2^53 stay larger than any file, which is all that matters). */
function u64(v: DataView, at: number): number {
  return Number(v.getBigUint64(at, true));
}

/** The NUL-terminated string at `off` of a string table, or undefined when it runs past the table. */
function strAt(elf: Uint8Array, table: ElfSection, off: number): string | undefined {
  if (off >= table.size) return undefined;
  const start = table.offset + off;
  const len = elf.subarray(start, table.offset + table.size).indexOf(0); // bounded by the table
  if (len < 0) return undefined;
  return Buffer.from(elf.buffer, elf.byteOffset + start, len).toString('latin1');
}

/**
 * Checks the ELF container of a BPF object: ELF64 little-endian relocatable for EM_BPF (or
 * EM_NONE); section and program header tables inside the file; every non-NOBITS section's
 * contents inside the file; section names, `sh_link` and `sh_info` in range; one symbol table
 * whose entries name strings inside its string table and sections that exist, with
 * functions and objects inside their sections; relocation entries naming existing symbols at
 * offsets inside their target section; program sections a whole number of instructions.
 *
 * @throws InvalidObjectError naming the section, symbol or relocation at fault.
 */
export function validateElf(elf: Uint8Array): ElfLayout {
  if (elf.byteLength < Elf.EHDR_SIZE) throw bad(`file of ${elf.byteLength} bytes is shorter than an ELF header`);
  const v = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  if (v.getUint32(0, false) !== 0x7f454c46) throw bad('no ELF magic');
  if (elf[4] !== 2) throw bad(`ELF class ${elf[4]} is not ELFCLASS64`);
  if (elf[5] !== 1) throw bad(`ELF data encoding ${elf[5]} is not little-endian`);
  if (elf[6] !== 1) throw bad(`ELF ident version ${elf[6]} is not 1`);
  const eType = v.getUint16(16, true);
  const machine = v.getUint16(18, true);
  if (eType !== Elf.ET_REL) throw bad(`e_type ${eType} is not ET_REL (a BPF object is relocatable)`);
  if (machine !== Elf.EM_BPF && machine !== Elf.EM_NONE) throw bad(`e_machine ${machine} is not EM_BPF`);
  if (v.getUint32(20, true) !== 1) throw bad(`e_version ${v.getUint32(20, true)} is not 1`);
  const phoff = u64(v, 32);
  const shoff = u64(v, 40);
  const ehsize = v.getUint16(52, true);
  const phentsize = v.getUint16(54, true);
  const phnum = v.getUint16(56, true);
  const shentsize = v.getUint16(58, true);
  let shnum = v.getUint16(60, true);
  let shstrndx = v.getUint16(62, true);
  if (ehsize !== Elf.EHDR_SIZE) throw bad(`e_ehsize ${ehsize} is not ${Elf.EHDR_SIZE}`);
  if (phnum > 0 && (phentsize !== 56 || phoff + phnum * phentsize > elf.byteLength))
    throw bad(`program header table (offset ${phoff}, ${phnum} x ${phentsize} bytes) is not inside the file`);
  if (shoff === 0) throw bad('no section header table (e_shoff is 0)');
  if (shentsize !== Elf.SHDR_SIZE) throw bad(`e_shentsize ${shentsize} is not ${Elf.SHDR_SIZE}`);
  if (shoff % 8 !== 0) throw bad(`e_shoff ${shoff} is not 8-byte aligned`);
  if (shoff + Elf.SHDR_SIZE > elf.byteLength) throw bad(`e_shoff ${shoff} is past the end of the file (${elf.byteLength} bytes)`);
  // extended numbering: the real counts are in the null section's header
  if (shnum === 0) shnum = u64(v, shoff + 32);
  if (shstrndx === Elf.SHN_XINDEX) shstrndx = v.getUint32(shoff + 40, true);
  if (shnum === 0 || shnum >= Elf.SHN_LORESERVE) throw bad(`section count ${shnum} is out of range`);
  if (shoff + shnum * Elf.SHDR_SIZE > elf.byteLength)
    throw bad(`section header table (offset ${shoff}, ${shnum} entries) runs past the end of the file (${elf.byteLength} bytes)`);
  if (shstrndx === Elf.SHN_UNDEF || shstrndx >= shnum) throw bad(`e_shstrndx ${shstrndx} is not a section (${shnum} sections)`);

  const sections: ElfSection[] = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * Elf.SHDR_SIZE;
    const s: ElfSection = {
      index: i,
      name: '',
      type: v.getUint32(o + 4, true),
      flags: u64(v, o + 8),
      offset: u64(v, o + 24),
      size: u64(v, o + 32),
      link: v.getUint32(o + 40, true),
      info: v.getUint32(o + 44, true),
      entsize: u64(v, o + 56),
    };
    if (i > 0 && s.type !== Elf.SHT_NOBITS && s.type !== Elf.SHT_NULL && s.offset + s.size > elf.byteLength)
      throw bad(`section ${i} (offset ${s.offset}, size ${s.size}) runs past the end of the file (${elf.byteLength} bytes)`);
    if (i > 0 && s.link >= shnum) throw bad(`section ${i}: sh_link ${s.link} is not a section (${shnum} sections)`);
    sections.push(s);
  }
  const shstr = sections[shstrndx] as ElfSection;
  if (shstr.type !== Elf.SHT_STRTAB) throw bad(`section name table (section ${shstrndx}) has type ${shstr.type}, not SHT_STRTAB`);
  for (let i = 1; i < shnum; i++) {
    const s = sections[i] as ElfSection;
    const off = v.getUint32(shoff + i * Elf.SHDR_SIZE, true);
    const name = strAt(elf, shstr, off);
    if (name === undefined) throw bad(`section ${i}: name offset ${off} is outside the section name table (${shstr.size} bytes) or unterminated`);
    s.name = name;
  }
  const label = (s: ElfSection): string => `section ${s.index} '${s.name}'`;

  let symtab: ElfSection | undefined;
  for (const s of sections) {
    if (s.type === Elf.SHT_SYMTAB) {
      if (symtab) throw bad(`more than one symbol table (${label(symtab)} and ${label(s)})`);
      symtab = s;
    }
    if (s.type === Elf.SHT_DYNSYM) throw bad(`${label(s)}: a BPF object has no dynamic symbols`);
    if (s.index > 0 && (s.flags & Elf.SHF_EXECINSTR) !== 0 && s.type === Elf.SHT_PROGBITS && s.size % Elf.BPF_INSN_SIZE !== 0)
      throw bad(`${label(s)}: program section of ${s.size} bytes is not a whole number of ${Elf.BPF_INSN_SIZE}-byte instructions`);
  }

  let nsyms = 0;
  if (symtab) {
    if (symtab.entsize !== Elf.SYM_SIZE) throw bad(`${label(symtab)}: sh_entsize ${symtab.entsize} is not ${Elf.SYM_SIZE}`);
    if (symtab.size % Elf.SYM_SIZE !== 0) throw bad(`${label(symtab)}: size ${symtab.size} is not a multiple of ${Elf.SYM_SIZE}`);
    nsyms = symtab.size / Elf.SYM_SIZE;
    if (symtab.info > nsyms) throw bad(`${label(symtab)}: sh_info ${symtab.info} (first global symbol) is past the ${nsyms} symbols`);
    const strtab = sections[symtab.link] as ElfSection;
    if (symtab.link === 0 || strtab.type !== Elf.SHT_STRTAB) throw bad(`${label(symtab)}: sh_link ${symtab.link} is not a string table`);
    for (let k = 1; k < nsyms; k++) {
      const o = symtab.offset + k * Elf.SYM_SIZE;
      const nameOff = v.getUint32(o, true);
      const symType = (elf[o + 4] as number) & 0xf;
      const shndx = v.getUint16(o + 6, true);
      const value = u64(v, o + 8);
      const size = u64(v, o + 16);
      const name = strAt(elf, strtab, nameOff);
      if (name === undefined) throw bad(`symbol ${k}: name offset ${nameOff} is outside the string table (${strtab.size} bytes) or unterminated`);
      const sym = `symbol ${k} '${name}'`;
      if (shndx === Elf.SHN_XINDEX || (shndx >= shnum && shndx < Elf.SHN_LORESERVE)) throw bad(`${sym}: section index ${shndx} is not a section (${shnum} sections)`);
      if (shndx !== Elf.SHN_UNDEF && shndx < shnum && (symType === 1 || symType === 2)) {
        // STT_OBJECT, STT_FUNC: the bytes they name lie inside their section
        const sec = sections[shndx] as ElfSection;
        if (value + size > sec.size) throw bad(`${sym}: offset ${value} + size ${size} is outside ${label(sec)} (${sec.size} bytes)`);
      }
    }
  }

  for (const s of sections) {
    if (s.type !== Elf.SHT_REL && s.type !== Elf.SHT_RELA) continue;
    const entsize = s.type === Elf.SHT_REL ? Elf.REL_SIZE : Elf.RELA_SIZE;
    if (s.size % entsize !== 0) throw bad(`${label(s)}: size ${s.size} is not a multiple of ${entsize}`);
    if (!symtab || s.link !== symtab.index) throw bad(`${label(s)}: sh_link ${s.link} is not the symbol table`);
    if (s.info === 0 || s.info >= shnum) throw bad(`${label(s)}: target section sh_info ${s.info} is not a section (${shnum} sections)`);
    const target = sections[s.info] as ElfSection;
    const n = s.size / entsize;
    for (let r = 0; r < n; r++) {
      const o = s.offset + r * entsize;
      const offset = u64(v, o);
      const sym = v.getUint32(o + 12, true);
      if (sym >= nsyms) throw bad(`${label(s)} relocation ${r}: symbol index ${sym} is past the ${nsyms} symbols`);
      if (offset >= target.size) throw bad(`${label(s)} relocation ${r}: offset ${offset} is outside ${label(target)} (${target.size} bytes)`);
    }
  }

  return {
    sections,
    byName: (name) => sections.find((s) => s.index > 0 && s.name === name),
    contents(name) {
      const s = sections.find((x) => x.index > 0 && x.name === name);
      if (!s || s.type === Elf.SHT_NOBITS) return undefined;
      return elf.subarray(s.offset, s.offset + s.size);
    },
  };
}
