#!/usr/bin/env node
/**
 * The `smoothtask` command (the package's `bin`). See {@link main} and docs/agent.md, "Launcher".
 * @module
 */
import { main } from './main.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`smoothtask: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
