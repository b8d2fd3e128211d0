#!/usr/bin/env node
/**
 * The `smoothtask` command (the package's `bin`). See {@link main} and docs/agent.md, "Launcher".
 * @module
 */
import { main } from './main.js';

// A reader that went away (`smoothtask agent --check-config … | head -1`) must not crash the
// command, least of all a running agent: output to a closed pipe is dropped.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});

/**
 * Exits once stdout and stderr are flushed: writes to a pipe are asynchronous, and a bare
 * `process.exit` drops whatever the pipe has not taken yet (a long error list). A reader that
 * never reads cannot hold the exit for more than 10 s.
 */
function exitWhenFlushed(code: number): void {
  process.exitCode = code;
  let pending = 2;
  const done = (): void => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
  setTimeout(() => process.exit(code), 10_000).unref();
}

main(process.argv.slice(2)).then(exitWhenFlushed, (e: unknown) => {
  process.stderr.write(`smoothtask: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  exitWhenFlushed(1);
});
