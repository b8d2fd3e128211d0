/**
 * The dashboard in real headless Chromium (Debian's package, driven by playwright-core)
 * against a real agent on loopback: live charts, a task submitted through the API appearing
 * and succeeding, a long task cancelled with the button, log lines streaming, a CPU burner
 * the test starts reaching the top of the process list within 3 s, an alert firing and
 * resolving, the eBPF page. No console errors on any page; every page has a title and
 * labelled controls. Screenshots of each page go to test-results/dashboard/.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, TOKENS, type Harness } from '../agent/api-harness.js';
import { artifactDir, installedMajor, launch, playwrightMajor, watchedPage } from './browser.js';

let h: Harness;
let browser: Browser;
let ctx: BrowserContext;
let page: Page;
let problems: string[];
let alarm = false;
const children: ChildProcess[] = [];
const shots = artifactDir();

beforeAll(async () => {
  h = await startAgent({
    metrics: { enabled: true, families: ['cpu', 'process', 'network', 'disk'], backend: 'auto', intervalMs: 1000 },
    alerts: { rules: [{ name: 'TestAlarm', expr: { fn: () => (alarm ? 1 : 0), op: '>', value: 0 }, labels: { severity: 'warning', team: 'dash' } }] as never },
  });
  browser = await launch();
  ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  ({ page, problems } = await watchedPage(ctx));
}, 120_000);

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await ctx?.close();
  await browser?.close();
  await h?.close();
});

async function open(route: string, token: keyof typeof TOKENS = 'submit'): Promise<void> {
  await page.goto(`${h.url}/ui/#token=${TOKENS[token]}`);
  await page.waitForFunction(() => (globalThis as any).__dashboard?.connected === true, null, { timeout: 15_000 });
  await page.evaluate((r) => ((globalThis as any).location.hash = r), route);
}

/** Every input, select, textarea and button on the page has an accessible name. */
async function unlabelled(): Promise<string[]> {
  return page.evaluate(() =>
    [...(globalThis as any).document.querySelectorAll('input, select, textarea, button')]
      .filter((e: any) => e.offsetParent !== null)
      .filter((e: any) => !(e.labels?.length || e.getAttribute('aria-label') || e.getAttribute('aria-labelledby') || (e.tagName === 'BUTTON' && e.textContent?.trim())))
      .map((e: any) => String(e.outerHTML).slice(0, 120)),
  );
}

async function checkPage(name: string): Promise<void> {
  expect(await page.title(), name).toMatch(/smoothtask/);
  expect(await unlabelled(), name).toEqual([]);
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

describe('dashboard in Chromium', () => {
  it('playwright-core targets the Chromium major that is installed', async () => {
    const v = browser.version();
    console.log(`chromium ${v}; playwright-core targets ${playwrightMajor()}`);
    expect(installedMajor()).toBe(playwrightMajor());
    expect(Number(v.split('.')[0])).toBe(playwrightMajor());
  });

  it('the node page: live charts, the busiest processes, a CPU burner on top within 3 s', async () => {
    await open('#/node');
    await page.waitForFunction(() => (globalThis as any).__dashboard.charts.cpu.points >= 3, null, { timeout: 15_000 });
    const d = await page.evaluate(() => (globalThis as any).__dashboard);
    expect(d.events.node).toBeGreaterThanOrEqual(3);
    expect(d.charts.memory.last).toBeGreaterThan(0);
    expect(d.charts.load.points).toBeGreaterThanOrEqual(3);
    // Three busy threads in one process, made the busiest on the host even beside other busy work
    // (a loaded CI machine): its own session (with autogroup scheduling each session gets an equal
    // share, so a burner in the test's session would get less than a busy loop in another) at a
    // higher priority where the test may raise it (root). The dashboard must put it on top.
    const burner = spawn('nice', ['-n', '-10', process.execPath, '-e', "const { Worker } = require('node:worker_threads'); for (let i = 0; i < 2; i++) new Worker('for (;;) {}', { eval: true }); for (;;) {}"], { stdio: 'ignore', detached: true });
    children.push(burner);
    await writeFile(`/proc/${burner.pid}/autogroup`, '-10').catch(() => undefined);
    const t0 = Date.now();
    await page
      .waitForFunction((pid) => (globalThis as any).document.querySelector('[data-testid=proc-table] tbody tr')?.getAttribute('data-pid') === String(pid), burner.pid, { timeout: 3000 })
      .catch(async (e: unknown) => {
        // What the page showed instead (a loaded host: which process, at what share).
        const rows = await page.evaluate(() => [...(globalThis as any).document.querySelectorAll('[data-testid=proc-table] tbody tr')].slice(0, 5).map((r: any) => r.textContent.replace(/\s+/g, ' ').trim()));
        console.log(`burner ${burner.pid} not on top after ${Date.now() - t0} ms; node events ${await page.evaluate(() => (globalThis as any).__dashboard.events.node)}; top rows: ${JSON.stringify(rows)}`);
        throw e;
      });
    console.log(`burner on top after ${Date.now() - t0} ms`);
    burner.kill('SIGKILL');
    await checkPage('node');
  });

  it('a task submitted through the API appears and reaches succeeded; filters narrow the table', async () => {
    await open('#/tasks');
    const r = await h.req('POST', '/v1/tasks', { token: 'submit', json: { id: 'ui-ok-1', kind: 'process', labels: { suite: 'dash' }, spec: { command: '/bin/sh', args: ['-c', 'sleep 1; echo done'] } } });
    expect(r.status).toBe(201);
    const row = page.locator('[data-testid=tasks-table] tr[data-task-id="ui-ok-1"]');
    await row.waitFor({ timeout: 10_000 });
    await expect.poll(() => row.locator('[data-col=state]').textContent(), { timeout: 15_000 }).toMatch(/succeeded/);
    expect((await h.req('POST', '/v1/tasks', { token: 'submit', json: { id: 'ui-fail-1', kind: 'process', spec: { command: '/bin/false' } } })).status).toBe(201);
    await page.locator('[data-testid=tasks-table] tr[data-task-id="ui-fail-1"]').waitFor({ timeout: 10_000 });
    await page.locator('[data-testid=filter-text]').fill('ui-ok');
    await expect.poll(() => page.locator('[data-testid=tasks-table] tbody tr[data-task-id]').count(), { timeout: 5000 }).toBe(1);
    await page.locator('[data-testid=filter-text]').fill('');
    await expect.poll(() => page.locator('[data-testid=tasks-table] tr[data-task-id="ui-fail-1"]').count(), { timeout: 5000 }).toBe(1);
    await checkPage('tasks');
  });

  it('a task page streams its log lines, and its cancel button stops a long task', async () => {
    const script = 'for i in 1 2 3 4 5; do echo log-line-$i; sleep 0.3; done; sleep 120';
    expect((await h.req('POST', '/v1/tasks', { token: 'submit', json: { id: 'ui-long-1', kind: 'process', spec: { command: '/bin/sh', args: ['-c', script] } } })).status).toBe(201);
    await open('#/tasks/ui-long-1');
    await expect.poll(() => page.locator('[data-testid=task-log]').textContent(), { timeout: 15_000 }).toContain('log-line-5');
    await expect.poll(() => page.locator('[data-testid=task-state]').textContent(), { timeout: 10_000 }).toMatch(/running/);
    await checkPage('task');
    await page.locator('[data-testid=task-cancel]').click();
    await expect.poll(() => page.locator('[data-testid=task-state]').textContent(), { timeout: 20_000 }).toMatch(/cancelled/);
    const rec = (await (await h.req('GET', '/v1/tasks/ui-long-1', { token: 'read' })).json()) as { task: { state: string } };
    expect(rec.task.state).toBe('cancelled');
  });

  it('a read-only token sees no cancel button', async () => {
    expect((await h.req('POST', '/v1/tasks', { token: 'submit', json: { id: 'ui-long-2', kind: 'process', spec: { command: '/bin/sleep', args: ['60'] } } })).status).toBe(201);
    await open('#/tasks/ui-long-2', 'read');
    await expect.poll(() => page.locator('[data-testid=task-state]').textContent(), { timeout: 10_000 }).toMatch(/running|queued/);
    expect(await page.locator('[data-testid=task-cancel]').isVisible()).toBe(false);
    await h.req('POST', '/v1/tasks/ui-long-2/cancel', { token: 'submit' });
  });

  it('an alert fires and resolves on the alerts page', async () => {
    await open('#/alerts');
    alarm = true;
    const row = page.locator('[data-testid=alerts-table] tr[data-rule="TestAlarm"]');
    await expect.poll(() => row.first().locator('[data-col=state]').textContent().catch(() => ''), { timeout: 15_000 }).toMatch(/firing/);
    await checkPage('alerts');
    alarm = false;
    await expect.poll(() => row.first().locator('[data-col=state]').textContent().catch(() => ''), { timeout: 15_000 }).toMatch(/resolved/);
  });

  it('the eBPF page lists what the agent loaded, or says why nothing', async () => {
    await open('#/ebpf');
    await page.waitForFunction(() => (globalThis as any).__dashboard.events.ebpf >= 1, null, { timeout: 15_000 });
    const status = (await (await h.req('GET', '/v1/node/metrics', { token: 'read' })).json()) as { backends: Record<string, string> };
    if (Object.values(status.backends).includes('ebpf')) {
      await expect.poll(() => page.locator('[data-testid=ebpf-programs] tbody tr').count(), { timeout: 10_000 }).toBeGreaterThan(0);
      expect(await page.locator('[data-testid=ebpf-maps] tbody tr').count()).toBeGreaterThan(0);
    } else {
      expect(await page.locator('body').textContent()).toMatch(/not available|no metric family runs on eBPF/i);
    }
    await checkPage('ebpf');
  });

  it('no console errors or warnings on any page', () => {
    expect(problems).toEqual([]);
  });
});
