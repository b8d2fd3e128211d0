// Optional peer dependencies (dockerode, bullmq, ioredis): package.json and the loader agree,
// and a missing peer becomes a typed MissingPeerError naming the package and the command.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MissingPeerError, SmoothtaskError } from '../../lib/index.js';
import { OPTIONAL_PEERS, importPeer, installCommand } from '../../lib/util/peer.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional?: boolean }>;
};

const notFound = (message: string, code: string) => Object.assign(new Error(message), { code });

describe('optional peer dependencies', () => {
  it('package.json peerDependencies are OPTIONAL_PEERS and the source-build peers: each optional, in devDependencies with the same range, not a dependency', () => {
    // cmake-js and node-addon-api: only scripts/install.mjs uses them, for a build from source.
    const buildPeers = { 'cmake-js': pkg.peerDependencies['cmake-js'], 'node-addon-api': pkg.peerDependencies['node-addon-api'] };
    expect(Object.values(buildPeers).every(Boolean)).toBe(true);
    expect(pkg.peerDependencies).toEqual({ ...OPTIONAL_PEERS, ...buildPeers });
    for (const [name, range] of Object.entries(pkg.peerDependencies)) {
      expect(pkg.peerDependenciesMeta[name]?.optional, name).toBe(true);
      expect(pkg.devDependencies[name], name).toBe(range);
      expect(pkg.dependencies[name], name).toBeUndefined();
    }
  });

  it('a missing peer (ESM loader or require) rejects with MissingPeerError, code ERR_MISSING_PEER, naming the package and the command', async () => {
    for (const [message, code] of [
      ["Cannot find package 'ioredis' imported from /srv/node_modules/smoothtask/dist/worker-x.js", 'ERR_MODULE_NOT_FOUND'],
      ["Cannot find module 'ioredis'\nRequire stack:\n- /srv/node_modules/smoothtask/dist/worker-x.cjs", 'MODULE_NOT_FOUND'],
    ] as const) {
      const cause = notFound(message, code);
      const err = await importPeer('smoothtask/fleet', ['bullmq', 'ioredis'], () => Promise.reject(cause)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MissingPeerError);
      expect(err).toBeInstanceOf(SmoothtaskError);
      const e = err as MissingPeerError;
      expect(e.code).toBe('ERR_MISSING_PEER');
      expect(e.missing).toBe('ioredis');
      expect(e.packages).toEqual(['bullmq', 'ioredis']);
      expect(e.install).toBe(installCommand(['bullmq', 'ioredis']));
      expect(e.install).toBe(`npm install bullmq@${OPTIONAL_PEERS.bullmq} ioredis@${OPTIONAL_PEERS.ioredis}`);
      expect(e.message).toContain("'ioredis' is not installed");
      expect(e.message).toContain(e.install);
      expect(e.cause).toBe(cause);
    }
  });

  it('other failures pass through unchanged: a missing dependency of the peer, any other error', async () => {
    const inner = notFound("Cannot find package 'cron-parser' imported from /srv/node_modules/bullmq/dist/esm/index.js", 'ERR_MODULE_NOT_FOUND');
    await expect(importPeer('smoothtask/fleet', ['bullmq', 'ioredis'], () => Promise.reject(inner))).rejects.toBe(inner);
    const other = new Error('boom');
    await expect(importPeer('smoothtask/docker', ['dockerode'], () => Promise.reject(other))).rejects.toBe(other);
    await expect(importPeer('smoothtask/docker', ['dockerode'], async () => 42)).resolves.toBe(42);
  });
});
