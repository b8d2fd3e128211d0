/**
 * Real headless Chromium for the dashboard tests: Debian's `chromium` package driven by
 * `playwright-core` through `executablePath` (no browser download). playwright-core is pinned
 * to the release whose Chromium major is the one Debian ships (docs/dashboard.md); the first
 * test checks that match.
 */
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/** The browser binary (Debian's package; `SMOOTHTASK_CHROMIUM` to use another). */
export const CHROMIUM = process.env.SMOOTHTASK_CHROMIUM ?? '/usr/bin/chromium';

/** Major version of the installed Chromium (`chromium --version`). */
export function installedMajor(): number {
  const out = execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8' });
  const m = /(\d+)\.\d+\.\d+\.\d+/.exec(out);
  if (!m) throw new Error(`cannot read the version of ${CHROMIUM}: ${out}`);
  return Number(m[1]);
}

/** Major version of the Chromium the installed playwright-core targets. */
export function playwrightMajor(): number {
  const root = dirname(createRequire(import.meta.url).resolve('playwright-core/package.json'));
  const browsers = JSON.parse(readFileSync(join(root, 'browsers.json'), 'utf8')) as { browsers: Array<{ name: string; browserVersion: string }> };
  return Number(browsers.browsers.find((b) => b.name === 'chromium')!.browserVersion.split('.')[0]);
}

/** Launches Chromium with a fresh profile and no background traffic. */
export async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-features=Translate,MediaRouter', '--disable-dev-shm-usage'],
  });
}

/** A page that records console errors/warnings and page errors into `problems`. */
export async function watchedPage(ctx: BrowserContext): Promise<{ page: Page; problems: string[] }> {
  const page = await ctx.newPage();
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  return { page, problems };
}

/** Where screenshots go (a test artifact folder, ignored by git). */
export function artifactDir(): string {
  const dir = join(process.cwd(), 'test-results', 'dashboard');
  execFileSync('mkdir', ['-p', dir]);
  return dir;
}

/** A throwaway folder. */
export function tmp(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}
