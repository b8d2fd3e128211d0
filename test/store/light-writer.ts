// Minimal writer for the SIGKILL trials: only the durable-replace path (no zod, no lock), so
// that many processes start quickly. Each file argument gets its own concurrent write loop,
// so one SIGKILL interrupts each file's write at an independent point.
// Usage: light-writer <file>...
import { writeFileDurable } from '../../lib/store/atomic.js';

const files = process.argv.slice(2);
const pad = 'y'.repeat(16 * 1024);
// 'ready' once every loop has completed its first write: the kill then lands inside running
// write loops even when a busy host delays the child's first write by more than the test's
// random 0-40 ms (under a load of ~30 the kills used to land before any write).
let started = 0;
async function loop(file: string): Promise<void> {
  for (let n = 1; ; n++) {
    await writeFileDurable(file, JSON.stringify({ n, writer: process.pid, pad }) + '\n');
    if (n === 1 && ++started === files.length) process.stdout.write('ready\n');
  }
}
for (const f of files) void loop(f);
