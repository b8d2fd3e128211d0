// lib/agent/config-file.ts in process: merge semantics, variable parsing, redaction (including
// a property test that no secret value survives), typed errors, prototype safety.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/errors/index.js';
import { deepMerge, envConfigPath, envOverrides, loadAgentConfig, readConfigFile, redactConfig, REDACTED } from '../../lib/agent/config-file.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'st-config-file-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HEX = 'ab'.repeat(32);

describe('deepMerge', () => {
  it('merges objects, replaces arrays and scalars, lets null override, never touches Object.prototype', () => {
    const a = { x: { y: 1, z: [1, 2] }, k: 'a', n: { m: 1 } };
    const b = JSON.parse('{"x":{"z":[3]},"n":null,"__proto__":{"polluted":true}}') as unknown;
    const m = deepMerge(a, b) as Record<string, any>;
    expect(m.x).toEqual({ y: 1, z: [3] });
    expect(m.n).toBeNull();
    expect(m.k).toBe('a');
    expect(Object.hasOwn(m, '__proto__')).toBe(true); // kept as data, for the strict schema to refuse
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(m)).toBe(Object.prototype);
    expect(a.x.z).toEqual([1, 2]); // inputs unchanged
  });
});

describe('envOverrides', () => {
  it('maps UPPER_SNAKE levels to camelCase, parses JSON values, keeps non-JSON as strings', () => {
    const { overrides, names } = envOverrides({
      SMOOTHTASK_AGENT__LISTEN__PORT: '8080',
      SMOOTHTASK_AGENT__LISTEN__HOST: '::1',
      SMOOTHTASK_AGENT__QUEUE__MAX_LOG_BYTES: '1024',
      SMOOTHTASK_AGENT__policy__process__commands: '["/bin/true"]',
      SMOOTHTASK_AGENT__AUTH__TOKENS__NAME_QUOTED: '"0123"',
      SMOOTHTASK_ENV: 'production',
      OTHER: '1',
    });
    expect(overrides).toEqual({
      listen: { port: 8080, host: '::1' },
      queue: { maxLogBytes: 1024 },
      policy: { process: { commands: ['/bin/true'] } },
      auth: { tokens: { nameQuoted: '0123' } },
    });
    expect(names).toHaveLength(5);
  });

  it('an empty level is a typed error naming the variable', () => {
    expect(() => envOverrides({ SMOOTHTASK_AGENT__LISTEN____PORT: '1' })).toThrow(ConfigError);
    try {
      envOverrides({ SMOOTHTASK_AGENT__: '1' });
    } catch (e) {
      expect((e as ConfigError).issues[0]).toMatch(/^SMOOTHTASK_AGENT__: empty key level/);
    }
  });
});

describe('redactConfig', () => {
  it('redacts token hashes and secret-named keys at any depth, keeps null and the rest', () => {
    const out = redactConfig({
      auth: { tokens: [{ name: 'ci', sha256: HEX, scopes: ['read'] }], anonymous: null },
      webhooks: { endpoints: [{ url: 'http://x', secret: 's3cr3t' }] },
      misc: { dbPassword: 'pw', apiKey: 'k', secretRef: null, note: 'hello' },
    }) as Record<string, any>;
    expect(out.auth.tokens[0]).toEqual({ name: 'ci', sha256: REDACTED, scopes: ['read'] });
    expect(out.webhooks.endpoints[0].secret).toBe(REDACTED);
    expect(out.misc).toEqual({ dbPassword: REDACTED, apiKey: REDACTED, secretRef: null, note: 'hello' });
  });

  it('redacts the password of a URL (a fleet Redis URL), keeping the rest of it', () => {
    const out = redactConfig({ fleet: { redis: { url: 'rediss://app:hunter2hunter2@redis.internal:6380/2' } }, other: { url: 'redis://redis.internal:6379' } }) as Record<string, any>;
    expect(out.fleet.redis.url).toBe(`rediss://app:${REDACTED}@redis.internal:6380/2`);
    expect(JSON.stringify(out)).not.toContain('hunter2');
    expect(out.other.url).toBe('redis://redis.internal:6379');
  });

  it('property: no value under a secret key survives, whatever the shape', () => {
    const secretKey = fc.constantFrom('sha256', 'secret', 'password', 'token', 'webhookSecret', 'apiKey', 'privateKey');
    const leaf = fc.string({ minLength: 8 }).map((s) => `S!${s}`);
    const tree: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
      // Leaves first: at maxDepth fast-check takes the first one.
      node: fc.oneof(
        { maxDepth: 5 },
        fc.constantFrom('plain', 1, true, null),
        fc.record({ k: secretKey, v: leaf }).map(({ k, v }) => ({ [k]: v })),
        fc.dictionary(fc.oneof(secretKey, fc.constantFrom('name', 'url', 'items')), tie('node'), { maxKeys: 4 }),
        fc.array(tie('node'), { maxLength: 3 }),
      ),
    })).node;
    fc.assert(
      fc.property(tree, (t) => {
        const text = JSON.stringify(redactConfig(t));
        for (const m of JSON.stringify(t).matchAll(/"S!(?:[^"\\]|\\.)*"/g)) expect(text).not.toContain(m[0]);
      }),
      { numRuns: 300 },
    );
  });
});

describe('readConfigFile and loadAgentConfig', () => {
  it('envConfigPath inserts the environment before the extension', () => {
    expect(envConfigPath('/etc/st/agent.json', 'prod')).toBe('/etc/st/agent.prod.json');
    expect(envConfigPath('/etc/st/agent', 'prod')).toBe('/etc/st/agent.prod');
  });

  it('a leading BOM is accepted; an empty file is a typed error', async () => {
    const p = join(dir, 'bom.json');
    writeFileSync(p, `\ufeff{"dataDir":"/x"}`);
    expect(await readConfigFile(p)).toEqual({ dataDir: '/x' });
    writeFileSync(p, '');
    await expect(readConfigFile(p)).rejects.toBeInstanceOf(ConfigError);
  });

  it('a file of exactly 1 MiB is read; one byte more is refused', async () => {
    const p = join(dir, 'edge.json');
    const head = '{"dataDir":"/x","pad":"';
    const tail = '"}';
    writeFileSync(p, head + 'a'.repeat(1024 * 1024 - head.length - tail.length) + tail);
    expect(((await readConfigFile(p)) as { dataDir: string }).dataDir).toBe('/x');
    writeFileSync(p, head + 'a'.repeat(1024 * 1024 - head.length - tail.length + 1) + tail);
    await expect(readConfigFile(p)).rejects.toThrow(/larger than the 1048576-byte limit/);
  });

  it('flags beat variables beat the env file beat the file; paths from each layer resolve against their base', async () => {
    const sub = mkdtempSync(join(dir, 'layers-'));
    const p = join(sub, 'agent.json');
    writeFileSync(p, JSON.stringify({ dataDir: 'd-file', listen: { port: 1 }, queue: { concurrency: 1, maxQueued: 1 } }));
    writeFileSync(join(sub, 'agent.ci.json'), JSON.stringify({ listen: { port: 2 }, queue: { concurrency: 2 } }));
    const r = await loadAgentConfig({
      configPath: p,
      env: 'ci',
      environ: { SMOOTHTASK_AGENT__LISTEN__PORT: '3', SMOOTHTASK_AGENT__DATA_DIR: 'd-var' },
      overrides: { listen: { port: 4 } },
      cwd: '/srv',
    });
    expect(r.config.listen.port).toBe(4);
    expect(r.config.queue).toMatchObject({ concurrency: 2, maxQueued: 1 });
    expect(r.config.dataDir).toBe('/srv/d-var');
    expect(r.sources.map((s) => s.kind)).toEqual(['file', 'env-file', 'env', 'env', 'flags']);
    expect(r.env).toBe('ci');
  });
});
