// Child for the signal-handler test: supervises a sleep, hooks SIGTERM/SIGINT, prints the pid.
import { Supervisor } from '../../lib/process/index.js';

const marker = process.argv[2]!;
const sup = new Supervisor();
sup.installSignalHandlers();
const p = sup.add({ name: 'sleeper', command: 'sh', args: ['-c', `trap '' TERM; sleep ${marker}`], graceMs: 300 });
const t = setInterval(() => {
  if (p.pid !== undefined) {
    clearInterval(t);
    process.stdout.write(`supervised ${p.pid}\n`);
  }
}, 10);
setInterval(() => {}, 1 << 30); // a service keeps running until signalled
