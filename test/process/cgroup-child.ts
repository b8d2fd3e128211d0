// Child for the crashed-owner test: runs a process task in a cgroup, prints its pid, then waits
// to be SIGKILLed (an owner that crashes leaves its task cgroup behind).
import { ProcessExecutor } from '../../lib/process/index.js';
import { TaskQueue } from '../../lib/task/index.js';

const marker = process.argv[2]!;
const q = new TaskQueue({ concurrency: 1 });
const ex = new ProcessExecutor();
q.registerExecutor('process', ex);
const h = q.submit({ kind: 'process', spec: { command: 'sleep', args: [marker] } });
const t = setInterval(() => {
  const u = ex.usage(h.id);
  if (u && u.processes > 0) {
    clearInterval(t);
    process.stdout.write(`running ${u.processes}\n`);
  }
}, 10);
setInterval(() => {}, 1 << 30);
