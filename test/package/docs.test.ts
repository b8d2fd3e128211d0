// Docs that run: every TypeScript / JavaScript block of README.md and docs/*.md, as a user
// would copy it into a fresh project that installed the packed tarball (with the optional
// peers, and zod and prom-client for the blocks that import them: a package you import is a
// package you install).
//
// Each block becomes <doc>-<n>.mts, is type-checked by a strict TypeScript (NodeNext, as a
// Node service compiles) and compiled to JavaScript, then run with node in its own empty
// working directory, with a time limit: it must exit 0. A block whose info string says
// `fragment` (```ts fragment) is an excerpt (an interface listing) and is neither compiled
// nor run; fragments must stay rare.
//
// The blocks use what CI has: root, the kernel's eBPF, dockerd with smoothtask/busybox:latest,
// and redis-server (one started here on a loopback port, passed as REDIS_URL).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../fleet/redis.js';
import { npmEnv, npmInstall, packTarball, root, run } from './tarball.js';

const hasDist = existsSync(join(root, 'dist', 'index.js'));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { peerDependencies: Record<string, string>; dependencies: Record<string, string> };

interface Block {
  name: string;
  doc: string;
  line: number;
  code: string;
  fragment: boolean;
}

/** Every ```ts / ```typescript / ```js / ```mjs block of README.md and docs/*.md (not docs/api). */
function blocks(): Block[] {
  const docs = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
  const out: Block[] = [];
  for (const doc of docs) {
    const text = readFileSync(join(root, doc), 'utf8');
    let n = 0;
    for (const m of text.matchAll(/^```(ts|typescript|js|mjs)(?![\w-])([^\n]*)\n([\s\S]*?)^```/gm)) {
      const base = doc.replace(/^docs\//, '').replace(/\.md$/, '');
      out.push({
        name: `${base}-${++n}`,
        doc,
        line: text.slice(0, m.index).split('\n').length,
        code: m[3]!,
        fragment: /\bfragment\b/.test(m[2]!),
      });
    }
  }
  return out;
}


/**
 * What each block's output must show (by block name: <doc>-<n>), so that a block that runs but
 * no longer does what its document says fails too.
 */
const EXPECT: Record<string, RegExp[]> = {
  'README-1': [/^succeeded$/m],
  'agent-1': [/ succeeded$/m],
  'aggregate-1': [/^\d+\.\d\d cores$/m],
  'aggregate-2': [/smoothtask_cpu_processes_cpu_ns_total\{/],
  'docker-1': [/^succeeded 0 \[/m, /outputs\.zip/],
  'ebpf-datapath-1': [/-> \d+$/m],
  'ebpf-loader-1': [/^1 link\(s\); [1-9]\d* process\(es\) counted$/m],
  'files-1': [/^ftp:\/\/127\.0\.0\.1:\d+$/m],
  'fleet-1': [/^succeeded 0 /m, /node: 'node-1'/],
  'metrics-1': [/^\d+ \d+$/m],
  'notify-1': [/^received msg_\w+ alert\.firing .*KilledBySigkill sleep/m],
  'process-1': [/^succeeded \[/m, /model\.bin/],
  'process-2': [/^api start/m, /\[ 'api' \]/, /^api stopped/m],
  'status-1': [/^200 \{/m],
  'store-1': [/\{ n: 1 \} \[ 'counters\/jobs' \]/],
  'tasks-1': [/running -> succeeded/, /^succeeded 0$/m],
  'tasks-3': [/^true$/m],
  'webhooks-1': [/^give the receiver whsec_/m, /ops: \d+/],
};

const all = blocks();
const runnable = all.filter((b) => !b.fragment);

describe.skipIf(!hasDist)('docs that run: every code block of README.md and docs/*.md', () => {
  let tmp = '';
  let project = '';
  let redis: RedisServer | undefined;
  let redisUrl = '';
  let tscOutput = '';

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'smoothtask-docs-'));
    const { tarball } = packTarball(tmp);
    project = join(tmp, 'project');
    mkdirSync(join(project, 'blocks'), { recursive: true });
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'docs-check', version: '1.0.0', private: true, type: 'module' }, null, 2));
    const peers = Object.entries(pkg.peerDependencies)
      .filter(([n]) => n !== 'cmake-js' && n !== 'node-addon-api')
      .map(([n, r]) => `${n}@${r}`);
    const direct = ['zod', 'prom-client'].map((n) => `${n}@${pkg.dependencies[n]}`);
    npmInstall(project, [tarball, ...peers, ...direct], { flags: ['--ignore-scripts'] });
    // The prebuilt addon in the installed package is what the eBPF blocks load (the install
    // hook was skipped above: it would only check that the prebuilt loads).
    mkdirSync(join(project, 'types'));
    symlinkSync(join(root, 'node_modules', '@types', 'node'), join(project, 'types', 'node'));
    for (const b of runnable) writeFileSync(join(project, 'blocks', `${b.name}.mts`), `// ${b.doc}:${b.line}\n${b.code}`);
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          lib: ['es2023', 'esnext.disposable'],
          strict: true,
          skipLibCheck: true,
          outDir: 'out',
          typeRoots: ['./types'],
          types: ['node'],
        },
        include: ['blocks/*.mts'],
      }),
    );
    try {
      run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], project);
    } catch (e) {
      tscOutput = String((e as { stdout?: string }).stdout ?? e);
    }
    redis = await startRedis();
    redisUrl = redis.url;
  }, 300_000);

  afterAll(async () => {
    await redis?.close();
    if (tmp) spawn('rm', ['-rf', tmp], { detached: true, stdio: 'ignore' }).unref();
  });

  it('finds the blocks, and fragments are rare; every expectation names a block', () => {
    for (const name of Object.keys(EXPECT)) expect(runnable.map((b) => b.name), name).toContain(name);
    expect(all.length).toBeGreaterThanOrEqual(20);
    expect(all.filter((b) => b.fragment).map((b) => `${b.doc}:${b.line}`).length).toBeLessThanOrEqual(2);
  });

  it('every block type-checks under strict TypeScript (NodeNext) against the installed package', () => {
    expect(tscOutput).toBe('');
  });

  it.each(runnable.map((b) => [`${b.doc}:${b.line}`, b] as const))('%s runs, exits 0 and shows what its document says', (_, b) => {
    expect(tscOutput, 'type errors above').toBe('');
    const cwd = mkdtempSync(join(tmp, `run-${b.name}-`));
    const r = spawnSync(process.execPath, [join(project, 'out', `${b.name}.mjs`)], {
      cwd,
      env: { ...npmEnv, REDIS_URL: redisUrl, NODE_PATH: '' },
      encoding: 'utf8',
      timeout: 60_000,
      killSignal: 'SIGKILL',
    });
    expect(r.status, `${b.doc}:${b.line} (${r.signal ?? 'exit'})\n${r.stdout}\n${r.stderr}`).toBe(0);
    if (process.env.SMOOTHTASK_DOCS_SHOW) console.log(`---- ${b.doc}:${b.line}\n${r.stdout}${r.stderr}`);
    for (const re of EXPECT[b.name] ?? []) expect(r.stdout, `${b.doc}:${b.line} output`).toMatch(re);
  }, 90_000);
});
