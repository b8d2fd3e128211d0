/**
 * The monitor side of the self-cost benchmark, in its own process, as a user's service runs it:
 * plain `node` on the built package (no TypeScript loader, whose own thread costs CPU), with
 * `createMonitor` over every registered family (what loads here) and one `read()` a second.
 * Prints `ready <families>` after the first read, then runs until stdin ends.
 *
 *   node bench/_monitor-child.mjs
 */
import { createMonitor, listFamilies } from 'smoothtask/metrics';

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
