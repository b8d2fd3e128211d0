import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const lib = fileURLToPath(new URL('./lib/', import.meta.url));

export default defineConfig({
  resolve: {
    alias: [
      { find: /^smoothtask$/, replacement: `${lib}index.ts` },
      { find: /^smoothtask\/(.*)$/, replacement: `${lib}$1/index.ts` },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    // Native code runs in forks: a crash takes down one fork, not the whole run.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // 2-core machines: eBPF, Docker and timing-sensitive tests must not starve each other.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
