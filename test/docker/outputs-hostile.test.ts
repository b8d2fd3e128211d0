// Hostile tasks against the outputs folder, inside real containers through the real queue:
// a task that replaces its outputs folder with a link to /etc (container and compose), a task
// that plants a link to a host directory on attempt 1 so that attempt 2's mkdir/chmod would go
// through it, a task that fills its outputs with links, FIFOs and device nodes, and a task
// whose file names carry backslashes, drive letters, newlines, bidi controls and bytes that are
// not UTF-8. No byte from outside the workspace may reach a ZIP, no host directory may change.
import { lstat, mkdir, readdir, readFile, stat, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import yauzl from 'yauzl';
import { ComposeTaskSpecSchema, ContainerTaskSpecSchema, registerDockerExecutors } from '../../lib/docker/index.js';
import { TaskQueue, type TaskRecord } from '../../lib/task/index.js';
import { engineGate, IMAGE, probeEngine, tempDir } from './helpers.js';

const probe = await probeEngine();
const PREFIX = `hostile-${process.pid}-`;

/** Every entry of a ZIP as raw bytes (yauzl validates CRCs and sizes). */
function readZipRaw(path: string): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    yauzl.open(path, { lazyEntries: true, validateEntrySizes: true, strictFileNames: false }, (err, zip) => {
      if (err || !zip) return reject(err ?? new Error('no zip'));
      const out = new Map<string, Buffer>();
      zip.on('error', reject);
      zip.on('end', () => resolve(out));
      zip.on('entry', (entry: yauzl.Entry) => {
        zip.openReadStream(entry, (e2, stream) => {
          if (e2 || !stream) return reject(e2 ?? new Error('no stream'));
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('error', reject);
          stream.on('end', () => {
            out.set(entry.fileName, Buffer.concat(chunks));
            zip.readEntry();
          });
        });
      });
      zip.readEntry();
    });
  });
}

/** Reverses the documented entry-name escaping: `%XX` is one byte. */
function unescapeName(name: string): Buffer {
  const bytes: number[] = [];
  const raw = Buffer.from(name, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x25 && /^[0-9A-F]{2}$/.test(raw.subarray(i + 1, i + 3).toString('latin1'))) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 3).toString('latin1'), 16));
      i += 2;
    } else bytes.push(raw[i]!);
  }
  return Buffer.from(bytes);
}

/**
 * Every entry of the ZIP is a regular file reached from `outputs` without following any link
 * (lstat on each component, the outputs folder included), with the same bytes.
 */
async function assertZipInside(zipPath: string, outputs: string): Promise<Map<string, Buffer>> {
  const entries = await readZipRaw(zipPath);
  expect((await lstat(outputs)).isDirectory(), `${outputs} is not a real directory`).toBe(true);
  for (const [name, data] of entries) {
    const parts = unescapeName(name).toString('latin1').split('/');
    let p = Buffer.from(outputs);
    for (const [i, part] of parts.entries()) {
      p = Buffer.concat([p, Buffer.from('/'), Buffer.from(part, 'latin1')]);
      const st = await lstat(p);
      expect(i === parts.length - 1 ? st.isFile() : st.isDirectory(), `entry ${JSON.stringify(name)}: ${p.toString()} crosses a link or special file`).toBe(true);
    }
    expect((await readFile(p)).equals(data), `entry ${JSON.stringify(name)} differs from the workspace file`).toBe(true);
  }
  return entries;
}

/** Octal escapes of a name's bytes for busybox printf. */
const oct = (b: Buffer): string => [...b].map((x) => `\\${x.toString(8).padStart(3, '0')}`).join('');

describe.skipIf(engineGate(probe))('outputs of hostile tasks', () => {
  const engine = probe.engine!;
  let queue: TaskQueue;
  let data: { dir: string; cleanup: () => Promise<void> };
  let host: { dir: string; cleanup: () => Promise<void> };
  const recs = new Map<string, TaskRecord>();
  // Names the task creates (bytes) and the entry names the ZIP must carry.
  const names: [Buffer, string][] = [
    [Buffer.from('plain.txt'), 'plain.txt'],
    [Buffer.from('a\\b'), 'a%5Cb'],
    [Buffer.from('..\\..\\x'), '..%5C..%5Cx'],
    [Buffer.from('C:x'), 'C%3Ax'],
    [Buffer.from('c:'), 'c%3A'],
    [Buffer.from('new\nline'), 'new%0Aline'],
    [Buffer.from('tab\there'), 'tab%09here'],
    [Buffer.from('rtl\u202Etxt.exe'), 'rtl%E2%80%AEtxt.exe'],
    [Buffer.from('iso\u2066x\u2069'), 'iso%E2%81%A6x%E2%81%A9'],
    [Buffer.from('100%'), '100%25'],
    [Buffer.from('%41'), '%2541'],
    [Buffer.concat([Buffer.from('bad'), Buffer.from([0xff, 0x41])]), 'bad%FFA'],
    [Buffer.from('ünï.txt'), 'ünï.txt'],
    [Buffer.from('sub/D:evil'), 'sub/D%3Aevil'],
    [Buffer.from('sub/x:y'), 'sub/x%3Ay'],
  ];
  let hostMode = 0;

  beforeAll(async () => {
    data = await tempDir('hostile');
    host = await tempDir('hostile-host');
    // A host directory the retry task will point its outputs at; it must come out untouched.
    await mkdir(join(host.dir, 'target'));
    await writeFile(join(host.dir, 'target/secret.txt'), 'host secret\n');
    await chmod(join(host.dir, 'target'), 0o700);
    hostMode = (await stat(join(host.dir, 'target'))).mode & 0o7777;
    // A sibling workspace's file, which a link may point at.
    await mkdir(join(host.dir, 'sibling/work/out'), { recursive: true });
    await writeFile(join(host.dir, 'sibling/work/out/other.txt'), 'sibling secret\n');
    await writeFile(
      join(host.dir, 'compose.yml'),
      [
        'services:',
        '  app:',
        `    image: ${IMAGE}`,
        '    command: ["sh", "-c", "rm -rf /work/out && ln -s /etc /work/out"]',
        '    volumes:',
        '      - ${SMOOTHTASK_WORKSPACE}:/work',
        '',
      ].join('\n'),
    );

    queue = new TaskQueue({ concurrency: 5, dataDir: data.dir, killAfterMs: 300 });
    registerDockerExecutors(queue, { engine });
    await queue.ready;
    const mkNames = names.map(([n], i) => `f="$(printf '/work/out/${oct(n)}')"; echo n${i} > "$f"`).join('; ');
    const submits = [
      { id: `${PREFIX}etc`, kind: 'container', spec: { image: IMAGE, command: ['sh', '-c', 'echo hi > /work/out/x; rm -rf /work/out && ln -s /etc /work/out'] } },
      { id: `${PREFIX}compose-etc`, kind: 'compose', spec: { files: [join(host.dir, 'compose.yml')], exitFrom: 'app' } },
      {
        id: `${PREFIX}retry`,
        kind: 'container',
        retry: { maxAttempts: 2, baseMs: 0 },
        spec: {
          image: IMAGE,
          command: [
            'sh',
            '-c',
            `if [ -e /work/.attempt1 ]; then echo second > /work/out/second.txt; exit 0; fi; touch /work/.attempt1; rm -rf /work/out; ln -s ${join(host.dir, 'target')} /work/out; exit 1`,
          ],
        },
      },
      {
        id: `${PREFIX}specials`,
        kind: 'container',
        spec: {
          image: IMAGE,
          command: [
            'sh',
            '-c',
            [
              'cd /work/out',
              'echo ok > ok.txt',
              'mkdir -p sub/deeper && echo deep > sub/deeper/d.txt',
              'ln -s /etc/passwd leak',
              'ln -s /etc etc',
              `ln -s ${join(host.dir, 'sibling/work/out')} sibling`,
              `ln -s ${join(host.dir, 'sibling/work/out/other.txt')} sibling.txt`,
              'ln -s ../.. sub/up',
              'ln -s /etc sub/deeper/etc',
              'mkfifo fifo sub/fifo',
              'mknod zero c 1 5 && mknod null c 1 3',
              'echo done',
            ].join('; '),
          ],
        },
      },
      { id: `${PREFIX}names`, kind: 'container', spec: { image: IMAGE, command: ['sh', '-c', `mkdir -p /work/out/sub; ${mkNames}`] } },
    ];
    const handles = submits.map((s) => queue.submit(s));
    for (const r of await Promise.all(handles.map((h) => h.done))) recs.set(r.id, r);
  }, 240_000);

  afterAll(async () => {
    await queue?.close();
    await data?.cleanup();
    await host?.cleanup();
  });

  const outputsOf = (r: TaskRecord): string => join(r.workspace!, 'work/out');

  it.each(['etc', 'compose-etc'])('%s: an outputs folder replaced by a link to /etc fails the task and zips nothing from the host', async (which) => {
    const r = recs.get(`${PREFIX}${which}`)!;
    expect(r.state, JSON.stringify(r.error)).toBe('failed');
    expect(r.error?.message).toMatch(/outputs folder .*out.* is a symbolic link/);
    expect(r.artifacts).toEqual([]);
    // Whatever the ending, an archive left on disk may hold only workspace bytes.
    const zip = join(r.workspace!, 'outputs.zip');
    const exists = await stat(zip).then(
      () => true,
      () => false,
    );
    if (exists) await assertZipInside(zip, outputsOf(r));
  });

  it('a link planted on attempt 1 is neither chmodded nor zipped on attempt 2', async () => {
    const r = recs.get(`${PREFIX}retry`)!;
    const target = join(host.dir, 'target');
    expect((await stat(target)).mode & 0o7777).toBe(hostMode);
    expect(await readdir(target)).toEqual(['secret.txt']);
    expect(await readFile(join(target, 'secret.txt'), 'utf8')).toBe('host secret\n');
    expect(r.attempt).toBe(2);
    expect(r.state, JSON.stringify(r.error)).toBe('succeeded');
    // Attempt 2 got a real, fresh outputs folder in place of the link.
    expect((await lstat(outputsOf(r))).isDirectory()).toBe(true);
    expect(r.artifacts).toHaveLength(1);
    const entries = await assertZipInside(r.artifacts[0]!, outputsOf(r));
    expect([...entries.keys()]).toEqual(['second.txt']);
  });

  it('links, FIFOs and device nodes in the outputs are skipped; regular files are zipped', async () => {
    const r = recs.get(`${PREFIX}specials`)!;
    expect(r.state, JSON.stringify(r.error)).toBe('succeeded');
    const entries = await assertZipInside(r.artifacts[0]!, outputsOf(r));
    expect([...entries.keys()].sort()).toEqual(['ok.txt', 'sub/deeper/d.txt']);
    const skipped = (r.result as { archive: { skipped?: string[] } }).archive.skipped;
    expect(skipped).toEqual(expect.arrayContaining(['leak', 'etc', 'sibling', 'sibling.txt', 'sub/up', 'sub/deeper/etc', 'fifo', 'sub/fifo', 'zero', 'null']));
  });

  it('file names with backslashes, drive letters, controls, bidi and non-UTF-8 bytes are escaped one way', async () => {
    const r = recs.get(`${PREFIX}names`)!;
    expect(r.state, JSON.stringify(r.error)).toBe('succeeded');
    const entries = await assertZipInside(r.artifacts[0]!, outputsOf(r));
    expect(Object.fromEntries([...entries].map(([k, v]) => [k, v.toString()]))).toEqual(Object.fromEntries(names.map(([, e], i) => [e, `n${i}\n`])));
    // Reversible: unescaping each entry name gives the file's bytes back.
    for (const [raw, escaped] of names) expect(unescapeName(escaped).equals(raw)).toBe(true);
  });
});

describe('outputs.dir in a spec', () => {
  it.each(['../x', '..', 'a/../../b', '/etc', 'a\\b', 'C:x', 'a\0b'])('%j is refused at validation', (dir) => {
    expect(ContainerTaskSpecSchema.safeParse({ image: IMAGE, outputs: { dir } }).success).toBe(false);
    expect(ComposeTaskSpecSchema.safeParse({ files: ['/x/compose.yml'], outputs: { dir } }).success).toBe(false);
  });

  it.each(['out', 'a/b', './out/', ''])('%j is accepted', (dir) => {
    expect(ContainerTaskSpecSchema.safeParse({ image: IMAGE, outputs: { dir } }).success).toBe(true);
    expect(ComposeTaskSpecSchema.safeParse({ files: ['/x/compose.yml'], outputs: { dir } }).success).toBe(true);
  });
});
