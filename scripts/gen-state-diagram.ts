/**
 * Generates the mermaid state diagram of the task transition table (lib/task/states.ts) into
 * docs/tasks.md between the markers below. `--check` exits 1 if the file is out of date.
 *
 *   node --import tsx scripts/gen-state-diagram.ts [--check]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TASK_STATES, TRANSITIONS, OUTCOME_STATES } from '../lib/task/states.js';

const BEGIN = '<!-- BEGIN GENERATED: task-state-diagram (scripts/gen-state-diagram.ts) -->';
const END = '<!-- END GENERATED: task-state-diagram -->';
const doc = fileURLToPath(new URL('../docs/tasks.md', import.meta.url));

export function diagram(): string {
  const lines = ['```mermaid', 'stateDiagram-v2', '    [*] --> created'];
  for (const from of TASK_STATES) {
    // Group events that lead to the same state on one edge.
    const byTarget = new Map<string, string[]>();
    for (const [event, to] of Object.entries(TRANSITIONS[from])) byTarget.set(to!, [...(byTarget.get(to!) ?? []), event]);
    for (const [to, events] of byTarget) lines.push(`    ${from} --> ${to}: ${events.join(', ')}`);
  }
  lines.push('    archived --> [*]');
  for (const o of OUTCOME_STATES) lines.push(`    class ${o} outcome`);
  lines.push('    classDef outcome font-weight:bold');
  lines.push('```');
  const table = ['', '| state | event | next state |', '|---|---|---|'];
  for (const from of TASK_STATES) for (const [event, to] of Object.entries(TRANSITIONS[from])) table.push(`| ${from} | ${event} | ${to} |`);
  return [BEGIN, ...lines, ...table, END].join('\n');
}

const text = readFileSync(doc, 'utf8');
const a = text.indexOf(BEGIN);
const b = text.indexOf(END);
if (a < 0 || b < 0) {
  console.error(`docs/tasks.md lacks the markers:\n${BEGIN}\n${END}`);
  process.exit(2);
}
const next = text.slice(0, a) + diagram() + text.slice(b + END.length);
if (process.argv.includes('--check')) {
  if (next !== text) {
    console.error('docs/tasks.md state diagram is out of date: run node --import tsx scripts/gen-state-diagram.ts');
    process.exit(1);
  }
  console.log('docs/tasks.md state diagram is up to date');
} else {
  writeFileSync(doc, next);
  console.log(next === text ? 'docs/tasks.md unchanged' : 'docs/tasks.md updated');
}
