import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'vitest';
import type Docker from 'dockerode';
import yauzl from 'yauzl';
import { connectDocker, type DockerEngine } from '../../lib/docker/index.js';

/**
 * The dockerode client of an engine, with @types/dockerode's types: the cast the public
 * `DockerEngine.docker: unknown` asks a user to make.
 */
export function dockerOf(engine: DockerEngine): Docker {
  return engine.docker as Docker;
}

/** The one image every test uses (built locally by scripts/docker-up.sh). */
export const IMAGE = 'smoothtask/busybox:latest';

/**
 * Connects to the engine once per test file. When it is missing: in CI (env CI set) the
 * returned `engine` is undefined and {@link engineGate} registers a FAILING test that says
 * so; locally the Docker tests are skipped with the same message.
 */
export async function probeEngine(): Promise<{ engine: DockerEngine | undefined; why: string }> {
  try {
    const engine = await connectDocker({ pingTimeoutMs: 3000 });
    await dockerOf(engine).getImage(IMAGE).inspect().catch(() => {
      throw new Error(`image ${IMAGE} is missing (run scripts/docker-up.sh)`);
    });
    return { engine, why: '' };
  } catch (e) {
    return { engine: undefined, why: (e as Error).message };
  }
}

/** Registers the CI failure when the engine is unavailable; returns whether Docker tests should be skipped. */
export function engineGate(probe: { engine: DockerEngine | undefined; why: string }): boolean {
  if (probe.engine) return false;
  const msg = `Docker Engine unavailable: ${probe.why}`;
  if (process.env.CI) {
    test('Docker Engine is available (required in CI)', () => {
      throw new Error(`${msg}. Docker tests cannot run; start dockerd (scripts/docker-up.sh).`);
    });
  } else {
    test.skip(`${msg} (skipped locally; fails when CI is set)`, () => {});
  }
  return true;
}

/** A temp dir removed by the returned cleanup. */
export async function tempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `smoothtask-docker-${prefix}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Reads every entry of a ZIP with yauzl (validating CRCs); returns name -> content. */
export async function readZip(path: string): Promise<Map<string, string>> {
  const raw = await readZipEntries(path);
  return new Map([...raw].map(([k, v]) => [k, v.toString('utf8')]));
}

/** Every entry of a ZIP (a file path or the bytes), as raw bytes, with entry sizes checked. */
export function readZipEntries(source: string | Buffer): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    const onZip = (err: Error | null, zip?: yauzl.ZipFile) => {
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
    };
    const o = { lazyEntries: true, validateEntrySizes: true };
    if (typeof source === 'string') yauzl.open(source, o, onZip);
    else yauzl.fromBuffer(source, o, onZip);
  });
}
