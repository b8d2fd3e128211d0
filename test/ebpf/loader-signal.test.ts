// The loader's timeout signal never replaces a handler the host process installed: it picks a
// free real-time signal, or (none free) refuses timed loads with a typed error.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const child = new URL('./loader-signal-child.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'st-sig-'));
const lib = join(dir, 'plant.so');

// A preload library whose constructor installs a handler (as a host application would) on
// SIGRTMAX-5 (the loader's default) or, with PLANT_ALL, on every real-time signal; at exit it
// reports whether its handlers are still installed and whether any fired.
const source = `
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
static volatile sig_atomic_t fired = 0;
static void h(int s) { (void)s; fired++; }
static int lo, hi;
__attribute__((constructor)) static void plant(void) {
  lo = getenv("PLANT_ALL") ? SIGRTMIN : SIGRTMAX - 5;
  hi = getenv("PLANT_ALL") ? SIGRTMAX : SIGRTMAX - 5;
  struct sigaction sa = {0};
  sa.sa_handler = h;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int s = lo; s <= hi; s++) sigaction(s, &sa, 0);
}
__attribute__((destructor)) static void report(void) {
  int intact = 1;
  for (int s = lo; s <= hi; s++) {
    struct sigaction cur;
    sigaction(s, 0, &cur);
    if (cur.sa_handler != h) intact = 0;
  }
  fprintf(stderr, "PLANTED intact=%d fired=%d default=%d\\n", intact, (int)fired, SIGRTMAX - 5);
}
`;

async function inChild(env: Record<string, string>): Promise<{ out: Record<string, any>; planted: string }> {
  const r = await run('node', ['--import', 'tsx', child], { timeout: 120_000, env: { ...process.env, LD_PRELOAD: lib, ...env } }).catch(
    (e: { stdout: string; stderr: string }) => e,
  );
  const planted = /PLANTED intact=(\d) fired=(\d+) default=(\d+)/.exec(r.stderr)?.[0] ?? `no report; stderr: ${r.stderr}`;
  return { out: JSON.parse(r.stdout.trim().split('\n').pop() as string), planted };
}

beforeAll(() => {
  writeFileSync(join(dir, 'plant.c'), source);
  execFileSync('cc', ['-shared', '-fPIC', '-O1', '-o', lib, join(dir, 'plant.c')]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('loader timeout signal', () => {
  it('leaves a host handler on SIGRTMAX-5 alone and times out with another free signal', async () => {
    const { out, planted } = await inChild({});
    const m = /intact=(\d) fired=(\d+) default=(\d+)/.exec(planted);
    expect(planted).toMatch(/^PLANTED/);
    expect(m?.[1]).toBe('1'); // the host handler is still installed at exit
    expect(m?.[2]).toBe('0'); // and the loader never signalled it
    expect(out.signal).not.toBe(Number(m?.[3]));
    expect(out.signal).toBeGreaterThan(0);
    expect(out.timed).toMatchObject({ name: 'LoadTimeoutError', code: 'ERR_BPF_LOAD_TIMEOUT' });
    expect(out.untimed).toBe('loaded');
  });

  it('with every real-time signal taken, timed loads fail typed, untimed loads work, no handler is replaced', async () => {
    const { out, planted } = await inChild({ PLANT_ALL: '1', TIMED_MS: '20000' });
    expect(planted).toMatch(/^PLANTED intact=1 fired=0/);
    expect(out.timed).toMatchObject({ name: 'BpfError', code: 'ERR_BPF_SYSTEM' });
    expect(out.timed.message).toMatch(/real-time signal/);
    expect(out.untimed).toBe('loaded');
    expect(out.signal).toBe(0);
  });
});
