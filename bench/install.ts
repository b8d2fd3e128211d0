/**
 * Installing the packed package: with its prebuilt addon against a build from source, in the
 * same run, and the size of what a service that imports only smoothtask/task and
 * smoothtask/process gets.
 *
 * The tarball is packed once from the current dist/ and prebuilds/ (`npm pack --ignore-scripts`;
 * setup.sh makes both). Each round, into a fresh project:
 * - prebuilt: `npm install <tarball>`: the install hook finds that prebuilds/linux-x64 loads and
 *   builds nothing;
 * - source: `npm install <tarball> cmake-js node-addon-api` with SMOOTHTASK_BUILD_FROM_SOURCE=1:
 *   the hook compiles the BPF objects and the addon with cmake-js (the toolchain is on this
 *   machine).
 * The npm cache is warm after the first round (--prefer-offline), so the difference is the
 * hook's work. Rounds alternate the order. Reported: median and min of each, their ratio,
 * and the installed packages / megabytes of the prebuilt install (no optional peers).
 *
 *   npm run bench -- install [rounds=3]
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installSize, npmInstall, packTarball, root } from '../test/package/tarball.js';
import type { BenchResult } from './run.js';

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export default async function install(args: string[]): Promise<BenchResult> {
  const rounds = Number(args[0] ?? 3);
  const target = `${process.platform}-${process.arch}`;
  if (!existsSync(join(root, 'prebuilds', target, 'smoothtask.node'))) throw new Error('prebuilds/ is missing: run `node scripts/prebuild.mjs`');
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { peerDependencies: Record<string, string> };
  const tmp = mkdtempSync(join(tmpdir(), 'smoothtask-bench-install-'));
  try {
    const { tarball } = packTarball(tmp);
    const buildPeers = ['cmake-js', 'node-addon-api'].map((n) => `${n}@${pkg.peerDependencies[n]}`);
    const times: Record<'prebuilt' | 'source', number[]> = { prebuilt: [], source: [] };
    let size = { packages: 0, megabytes: 0 };
    const once = (kind: 'prebuilt' | 'source', i: number) => {
      const project = join(tmp, `${kind}-${i}`);
      mkdirSync(project);
      writeFileSync(join(project, 'package.json'), JSON.stringify({ name: `bench-${kind}`, version: '1.0.0', private: true }));
      const t0 = performance.now();
      npmInstall(project, [tarball, ...(kind === 'source' ? buildPeers : [])], { flags: ['--foreground-scripts'], env: kind === 'source' ? { SMOOTHTASK_BUILD_FROM_SOURCE: '1' } : {} });
      times[kind].push(performance.now() - t0);
      const built = existsSync(join(project, 'node_modules', 'smoothtask', 'build-native', 'Release', 'smoothtask.node'));
      if (built !== (kind === 'source')) throw new Error(`${kind} install: build-native ${built ? 'present' : 'missing'}`);
      if (kind === 'prebuilt') size = installSize(project);
      rmSync(project, { recursive: true, force: true });
    };
    for (let i = 0; i < rounds; i++) {
      const order: Array<'prebuilt' | 'source'> = i % 2 ? ['source', 'prebuilt'] : ['prebuilt', 'source'];
      for (const k of order) once(k, i);
      console.log(`round ${i + 1}: prebuilt ${(times.prebuilt.at(-1)! / 1000).toFixed(1)} s, source ${(times.source.at(-1)! / 1000).toFixed(1)} s`);
    }
    const p = median(times.prebuilt);
    const s = median(times.source);
    return {
      figures: {
        prebuiltInstallSecondsMedian: p / 1000,
        prebuiltInstallSecondsMin: Math.min(...times.prebuilt) / 1000,
        sourceInstallSecondsMedian: s / 1000,
        sourceInstallSecondsMin: Math.min(...times.source) / 1000,
        installedPackages: size.packages,
        installedMegabytes: size.megabytes,
        rounds,
      },
      ratios: { sourceOverPrebuilt: s / p },
    };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
