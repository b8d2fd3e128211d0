/**
 * The monitor side of the self-cost benchmark, in its own process: `createMonitor` with every
 * registered family (what loads here), one `read()` a second. Prints `ready <families>` after
 * the first read, then runs until stdin ends.
 *
 *   node --import tsx bench/_monitor-child.ts
 */
import { createMonitor, listFamilies } from '../lib/metrics/index.js';

const monitor = await createMonitor({ families: listFamilies() });
await monitor.read();
process.stdout.write(`ready ${[...monitor.readers.keys()].join(',')}\n`);
const timer = setInterval(() => void monitor.read().catch(() => {}), 1000);
process.stdin.resume();
process.stdin.once('end', () => {
  clearInterval(timer);
  monitor.close();
  process.exit(0);
});
