/**
 * The lexical half of the workspace path policy: which relative paths and names are accepted,
 * and how a file name becomes a portable archive entry name. No file-system access here; the
 * walk that never follows a link is in `root.ts`.
 * @module
 */
import { UnsafePathError } from './errors.js';

/** Longest accepted path component, in UTF-8 bytes (Linux NAME_MAX). */
export const MAX_COMPONENT_BYTES = 255;

/**
 * Splits a path relative to a workspace root into its components, or refuses it.
 *
 * Accepted: POSIX relative paths; empty components and `.` are dropped, so `''`, `'.'` and
 * `'./'` name the root itself (`[]`). Refused with {@link UnsafePathError}: absolute paths,
 * any `..` component (even one that would stay inside, such as `a/../b`), NUL, backslash,
 * a leading drive letter (`C:x`, `c:/x`) and components over 255 bytes.
 *
 * @param path the relative path
 * @param what how the path is named in the error message
 */
export function splitRelativePath(path: string, what = 'path'): string[] {
  if (typeof path !== 'string') throw new UnsafePathError(String(path), 'empty', what);
  if (path.includes('\0')) throw new UnsafePathError(path, 'nul', what);
  if (path.includes('\\')) throw new UnsafePathError(path, 'backslash', what);
  if (path.startsWith('/')) throw new UnsafePathError(path, 'absolute', what);
  if (/^[A-Za-z]:/.test(path)) throw new UnsafePathError(path, 'drive-letter', what);
  const parts: string[] = [];
  for (const p of path.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') throw new UnsafePathError(path, 'traversal', what);
    if (Buffer.byteLength(p, 'utf8') > MAX_COMPONENT_BYTES) throw new UnsafePathError(path, 'too-long', what);
    parts.push(p);
  }
  return parts;
}

/**
 * Whether `name` is safe as one path component created by us (a task id, a folder name):
 * not empty, not `.` or `..`, no `/`, no NUL, no backslash, at most 255 bytes.
 */
export function isSafeComponent(name: string): boolean {
  return (
    typeof name === 'string' &&
    name !== '' &&
    name !== '.' &&
    name !== '..' &&
    !/[/\\\0]/.test(name) &&
    Buffer.byteLength(name, 'utf8') <= MAX_COMPONENT_BYTES
  );
}

/** Code points written as `%XX` in entry names (besides `%` itself). */
function mustEscape(c: number): boolean {
  return (
    c === 0x25 || // `%`: escaped so that the escaping can be undone
    c === 0x5c || // `\`: a separator for Windows extractors (and yazl turns it into `/`)
    c < 0x20 || // C0 controls, newline and tab included
    c === 0x7f ||
    (c >= 0x80 && c <= 0x9f) || // C1 controls
    c === 0x061c || // Arabic letter mark
    c === 0x200e ||
    c === 0x200f || // LRM, RLM
    (c >= 0x202a && c <= 0x202e) || // LRE, RLE, PDF, LRO, RLO
    (c >= 0x2066 && c <= 0x2069) || // LRI, RLI, FSI, PDI
    c === 0x2028 ||
    c === 0x2029 // line and paragraph separators
  );
}

const pct = (b: number): string => `%${b.toString(16).toUpperCase().padStart(2, '0')}`;

/**
 * Escapes one file name (raw bytes as read from the directory) for an archive entry:
 *
 * 1. a name that is not valid UTF-8 has each byte ≥ 0x80 written as `%XX`;
 * 2. `%`, `\`, control characters (C0, DEL, C1), bidi controls (U+061C, U+200E, U+200F,
 *    U+202A–U+202E, U+2066–U+2069) and U+2028/U+2029 are written as `%XX` per UTF-8 byte;
 * 3. a name starting with an ASCII letter and `:` (a drive letter) has that colon written `%3A`.
 *
 * Every other character is kept. Because `%` is always escaped, percent-decoding each
 * component byte-wise gives the original name back: distinct names never collide.
 */
export function escapeEntryComponent(raw: Uint8Array): string {
  const buf = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const text = buf.toString('utf8');
  let out = '';
  if (Buffer.from(text, 'utf8').equals(buf)) {
    for (const ch of text) {
      const c = ch.codePointAt(0)!;
      out += mustEscape(c) ? [...Buffer.from(ch, 'utf8')].map(pct).join('') : ch;
    }
  } else {
    for (const b of buf) out += b >= 0x80 || mustEscape(b) ? pct(b) : String.fromCharCode(b);
  }
  if (/^[A-Za-z]:/.test(out)) out = `${out[0]}%3A${out.slice(2)}`;
  return out;
}

/** Joins escaped components ({@link escapeEntryComponent}) with `/`: a ZIP entry name. */
export function entryName(parts: readonly Uint8Array[]): string {
  return parts.map(escapeEntryComponent).join('/');
}

/** Reverses {@link escapeEntryComponent} for one component (byte-wise percent-decoding). */
export function unescapeEntryComponent(escaped: string): Buffer {
  const raw = Buffer.from(escaped, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const hex = raw[i] === 0x25 ? raw.subarray(i + 1, i + 3).toString('latin1') : '';
    if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
      out.push(parseInt(hex, 16));
      i += 2;
    } else out.push(raw[i]!);
  }
  return Buffer.from(out);
}
