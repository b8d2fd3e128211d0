// Minimal kernel BTF files are CO-RE input of a privileged process: they are kept where only
// the process's user can write, and a planted directory or file (another owner, group- or
// world-writable, a symlink) is never used.
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadObject } from '../../lib/ebpf/load.js';
import { testObject } from './helpers-loader.js';

const hasBpftool = existsSync('/usr/sbin/bpftool') || existsSync('/usr/local/sbin/bpftool');
const root = mkdtempSync(join(tmpdir(), 'st-btfcache-'));
const saved = { TMPDIR: process.env.TMPDIR, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR };
const uid = process.geteuid?.() ?? 0;
const OTHER = 65534;
const GARBAGE = Buffer.from('planted: not BTF at all, a load that used this would fail');
const opts = { cache: false, programs: ['rql_switch_raw'], minimalKernelBtf: true };

function btfFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.btf')) out.push(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

let fileName = '';
let n = 0;
// a fresh TMPDIR per case (os.tmpdir() reads it on each call); XDG_RUNTIME_DIR unset
function freshTmp(): string {
  const t = join(root, `case-${n++}`);
  mkdirSync(t, { mode: 0o755 });
  chmodSync(t, 0o1777);
  process.env.TMPDIR = t;
  delete process.env.XDG_RUNTIME_DIR;
  return t;
}
// plants `GARBAGE` under the name the loader looks for, at the old shared location and the
// per-user one, with `setup` making the planted directory hostile
function plant(t: string, setup: (dir: string, file: string) => void): string[] {
  const planted: string[] = [];
  for (const dir of [join(t, 'smoothtask-btf'), join(t, `smoothtask-${uid}`, 'btf')]) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, fileName);
    writeFileSync(file, GARBAGE, { mode: 0o600 });
    setup(dir, file);
    planted.push(file);
  }
  return planted;
}
async function loadWorks(): Promise<void> {
  using obj = await loadObject(testObject('runqlat_like'), opts);
  expect(obj.program('rql_switch_raw').loaded).toBe(true);
}

beforeAll(async () => {
  if (!hasBpftool) return;
  // trusted bytes first (the program selection is then checked through libbpf)
  (await loadObject(testObject('runqlat_like'), { cache: false, programs: ['rql_switch_raw'] })).close();
  const t = freshTmp();
  await loadWorks();
  const made = btfFiles(t);
  expect(made.length).toBe(1);
  fileName = relative(dirname(made[0] as string), made[0] as string);
});
afterEach(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe.skipIf(!hasBpftool)('minimal kernel BTF cache', () => {
  it('is made in a 0700 directory owned by the user, the file not writable by others', async () => {
    const t = freshTmp();
    await loadWorks();
    const made = btfFiles(t);
    expect(made.length).toBe(1);
    const file = made[0] as string;
    for (let d = dirname(file); d !== t; d = dirname(d)) {
      const st = lstatSync(d);
      expect(st.isDirectory()).toBe(true);
      expect(st.uid).toBe(uid);
      expect(st.mode & 0o077).toBe(0);
    }
    const st = lstatSync(file);
    expect(st.uid).toBe(uid);
    expect(st.mode & 0o022).toBe(0);
    // and it is reused: a second load makes no new file
    await loadWorks();
    expect(btfFiles(t)).toEqual(made);
  });

  it('under XDG_RUNTIME_DIR when it is private to the user', async () => {
    const t = freshTmp();
    const xdg = join(t, 'xdg');
    mkdirSync(xdg, { mode: 0o700 });
    process.env.XDG_RUNTIME_DIR = xdg;
    await loadWorks();
    expect(btfFiles(xdg).length).toBe(1);
  });

  const hostile: [string, (dir: string, file: string) => void][] = [
    ['a directory and file owned by another user', (dir, file) => {
      chownSync(file, OTHER, OTHER);
      chownSync(dir, OTHER, OTHER);
    }],
    ['a group- and world-writable directory', (dir) => chmodSync(dir, 0o777)],
    ['a file owned by another user', (_dir, file) => chownSync(file, OTHER, OTHER)],
    ['a group-writable file', (_dir, file) => chmodSync(file, 0o664)],
    ['a symlink to a file', (_dir, file) => {
      const target = `${file}.target`;
      writeFileSync(target, GARBAGE, { mode: 0o600 });
      rmSync(file);
      symlinkSync(target, file);
    }],
    ['a symlinked directory', (dir) => {
      const real = `${dir}.real`;
      mkdirSync(real, { mode: 0o700 });
      writeFileSync(join(real, fileName), GARBAGE, { mode: 0o600 });
      rmSync(dir, { recursive: true });
      symlinkSync(real, dir);
    }],
  ];
  for (const [what, setup] of hostile) {
    it(`a planted BTF in ${what} is not used`, async () => {
      const t = freshTmp();
      const planted = plant(t, setup);
      await loadWorks(); // the garbage would fail the load
      for (const p of planted) {
        // nothing is written into a directory that is not private; a bad file in a private
        // directory is replaced by a private one
        if (!existsSync(p)) continue;
        const mine = (q: string): boolean => {
          const st = lstatSync(q);
          return !st.isSymbolicLink() && st.uid === uid && (st.mode & 0o022) === 0;
        };
        if (!p.includes('smoothtask-btf') && mine(p) && mine(dirname(p))) expect(readFileSync(p).equals(GARBAGE)).toBe(false);
        else expect(readFileSync(p)).toEqual(GARBAGE);
      }
    });
  }
});
