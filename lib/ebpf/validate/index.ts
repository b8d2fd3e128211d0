/**
 * In-process validation of BPF objects before native code (libbpf, libelf) reads them: the
 * ELF container ({@link validateElf}), `.BTF` ({@link validateBtf}) and `.BTF.ext`
 * ({@link validateBtfExt}). {@link validateObject} runs all three; `loadObject` calls it on
 * every input, so malformed objects are {@link InvalidObjectError}s and the addon's
 * fork-isolated pre-check is a second line of defence.
 * @module
 */
import { InvalidObjectError } from '../errors.js';
import { validateBtf, validateBtfExt } from './btf.js';
import { Elf, validateElf } from './elf.js';

export { validateBtf, validateBtfExt, type ValidBtf } from './btf.js';
export { Elf, validateElf, type ElfLayout, type ElfSection } from './elf.js';

/** What {@link validateObject} looked at. */
export interface ObjectValidation {
  /** Sections in the ELF. */
  sections: number;
  /** BTF types (0 when the object has no `.BTF`). */
  btfTypes: number;
  /** Whether a `.BTF.ext` was checked. */
  btfExt: boolean;
}

/**
 * Validates a BPF object's ELF container, `.BTF` and `.BTF.ext` in JS. `name` only labels
 * the error message.
 *
 * @throws InvalidObjectError whose message names the object, the section and the type id,
 * symbol, record or offset at fault.
 */
export function validateObject(elf: Uint8Array, name = 'object'): ObjectValidation {
  try {
    const layout = validateElf(elf);
    const sectionSize = (n: string): number | undefined => layout.byName(n)?.size;
    const btfSec = layout.byName('.BTF');
    const extSec = layout.byName('.BTF.ext');
    if (btfSec && btfSec.type === Elf.SHT_NOBITS) throw new InvalidObjectError('malformed ELF: .BTF has no contents (SHT_NOBITS)');
    if (extSec && extSec.type === Elf.SHT_NOBITS) throw new InvalidObjectError('malformed ELF: .BTF.ext has no contents (SHT_NOBITS)');
    const rawBtf = layout.contents('.BTF');
    if (!rawBtf) return { sections: layout.sections.length, btfTypes: 0, btfExt: false };
    const btf = validateBtf(rawBtf, sectionSize);
    const rawExt = layout.contents('.BTF.ext');
    if (rawExt) validateBtfExt(rawExt, btf, sectionSize);
    return { sections: layout.sections.length, btfTypes: btf.btf.types.length, btfExt: rawExt !== undefined };
  } catch (e) {
    if (e instanceof InvalidObjectError) throw new InvalidObjectError(`'${name}' is not a valid BPF object: ${e.message}`);
    // a DataView read past the end is a bounds check this validator missed: still the input's fault
    throw new InvalidObjectError(`'${name}' is not a valid BPF object: validator fault: ${(e as Error).message}`, { cause: e });
  }
}
