#!/usr/bin/env node
/**
 * The `smoothtask` command (the package's `bin`). See {@link main} and docs/agent.md, "Launcher".
 * @module
 */
import { main } from './main.js';

// A reader that went away (`smoothtask agent --check-config … | head -1`) must not crash the
// command, least of all a running agent: output to a closed pipe is dropped.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`smoothtask: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
