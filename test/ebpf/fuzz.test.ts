import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../lib/native/addon.js';
import { formatSummary, fuzz } from '../../scripts/fuzz.js';

// Loader fuzzing as a test. Inputs run in child processes (scripts/fuzz-child.ts): a crash
// in native code kills a child, which the runner counts as a death and saves the input.
const corpusDir = join(packageRoot(), 'test', 'fixtures', 'fuzz-corpus');
const corpus = readdirSync(corpusDir)
  .filter((f) => f.endsWith('.o'))
  .sort()
  .map((f) => join(corpusDir, f));

describe('loader fuzzing', () => {
  it('the corpus of inputs that once crashed the loader or libbpf: every one a typed error, no child dies', async () => {
    expect(corpus.length).toBeGreaterThan(0);
    const total = corpus.reduce((n, f) => n + statSync(f).size, 0);
    expect(total).toBeLessThan(2 * 1024 * 1024);
    const s = await fuzz({ files: corpus, batch: 50, concurrency: 1, stallMs: 180_000 });
    console.info(`fuzz corpus:\n${formatSummary(s)}`);
    expect(s.deaths).toEqual([]);
    expect(s.hangs).toEqual([]);
    expect(s.untyped).toEqual([]);
    expect(s.inputs).toBe(corpus.length);
    // each of them crashed libbpf once: the validator now rejects them before libbpf sees them,
    // so none reaches the fork pre-check or the in-process open
    expect(s.load['InvalidObjectError(crash-isolated)'] ?? 0).toBe(0);
    expect(s.load.ok ?? 0).toBe(0);
  }, 300_000);

  it('a seeded fuzz of generic and BTF-aware mutants through open and load: no deaths, every failure typed', async () => {
    const count = 80;
    const s = await fuzz({ seed: 0x5eed, count, batch: 40, concurrency: 2, stallMs: 180_000 });
    console.info(`seeded fuzz:\n${formatSummary(s, 0x5eed)}`);
    expect(s.deaths).toEqual([]);
    expect(s.hangs).toEqual([]);
    expect(s.untyped).toEqual([]);
    expect(s.inputs).toBe(count);
    expect(s.btfAware).toBe(count / 2);
    // the mutants exercise every stage: rejected by the validator, opened in-process, loaded
    expect(s.load['InvalidObjectError(validator)'] ?? 0).toBeGreaterThan(10);
    expect(s.open.ok ?? 0).toBeGreaterThan(5);
    expect(s.loaded).toBeGreaterThan(2);
    expect(s.load['InvalidObjectError(validator-gap)'] ?? 0).toBe(0);
  }, 600_000);
});
