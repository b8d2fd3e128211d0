/**
 * What an open dashboard costs the agent: CPU time of the agent's process (all its threads,
 * from /proc/<pid>/stat) over `seconds` with one dashboard page open in headless Chromium
 * (the node page, updating every second), against the same agent with no page open, in the
 * same run. Phases run idle, page, idle; the idle figure is the mean of the two idle phases.
 * The agent runs in its own process with its default metric families; the browser and this
 * script are not counted.
 *
 * Target: the page costs at most 3% of one core more than no page.
 *
 *   npm run bench -- dashboard [seconds=60]
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';
import type { BenchResult } from './run.js';

const TOKEN = 'bench-dashboard-token-0123456789';

/** CPU seconds (user + system, all threads) of process `pid`. */
function cpuSec(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function phase(pid: number, seconds: number): Promise<number> {
  const c0 = cpuSec(pid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return ((cpuSec(pid) - c0) / ((performance.now() - t0) / 1000)) * 100; // % of one core
}

export default async function bench(args: string[]): Promise<BenchResult> {
  const seconds = Number(args[0] ?? 60);
  const dir = await mkdtemp(join(tmpdir(), 'smoothtask-bench-dash-'));
  const agent = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '_dashboard-agent.ts'), join(dir, 'data'), TOKEN], { stdio: ['ignore', 'pipe', 'inherit'] });
  const browser = await chromium.launch({
    executablePath: process.env.SMOOTHTASK_CHROMIUM ?? '/usr/bin/chromium',
    args: ['--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-dev-shm-usage'],
  });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: agent.stdout! }).once('line', resolve);
      agent.once('exit', (c) => reject(new Error(`agent exited ${c}`)));
    });
    const { url } = JSON.parse(line) as { url: string };
    const pid = agent.pid!;
    await new Promise((r) => setTimeout(r, 5000)); // the agent's own start-up settles
    const idle1 = await phase(pid, seconds);
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    await page.goto(`${url}/ui/#token=${TOKEN}`);
    await page.waitForFunction(() => (globalThis as any).__dashboard?.connected === true, null, { timeout: 30_000 });
    const before = await page.evaluate(() => (globalThis as any).__dashboard.events.node as number);
    const open = await phase(pid, seconds);
    const after = await page.evaluate(() => (globalThis as any).__dashboard.events.node as number);
    await ctx.close();
    await new Promise((r) => setTimeout(r, 2000)); // the stream closes and the feed stops
    const idle2 = await phase(pid, seconds);
    const idle = (idle1 + idle2) / 2;
    const r2 = (x: number) => Math.round(x * 100) / 100;
    const extra = open - idle;
    return {
      figures: {
        seconds,
        idleCorePct1: r2(idle1),
        idleCorePct2: r2(idle2),
        idleCorePct: r2(idle),
        pageOpenCorePct: r2(open),
        extraCorePct: r2(extra),
        nodeEventsReceived: after - before,
      },
      ratios: { pageOpenOverIdle: r2(open / Math.max(idle, 0.01)) },
      targets: { pageCostsAtMost3PctOfACore: extra <= 3, pageGotAnEventPerSecond: after - before >= seconds * 0.8 },
    };
  } finally {
    await browser.close();
    agent.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 1000));
    agent.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
}
