import { cp } from 'node:fs/promises';
import { defineConfig } from 'tsup';

// One entry per public subpath; keep in sync with package.json "exports".
const modules = ['ebpf', 'metrics', 'aggregate', 'notify', 'task', 'store', 'process', 'docker', 'status', 'webhook', 'agent', 'fleet'];

export default defineConfig({
  entry: {
    index: 'lib/index.ts',
    ...Object.fromEntries(modules.map((m) => [`${m}/index`, `lib/${m}/index.ts`])),
    // The `smoothtask` command (package.json "bin"); its `#!/usr/bin/env node` line comes from the source.
    'cli/index': 'lib/cli/index.ts',
  },
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  splitting: true,
  shims: true,
  // The addon is located at run time by lib/native/addon.ts, never bundled.
  external: [/\.node$/],
  // The dashboard's static files (lib/agent/ui) are served from dist/ui, as they are.
  async onSuccess() {
    await cp('lib/agent/ui', 'dist/ui', { recursive: true });
  },
});
