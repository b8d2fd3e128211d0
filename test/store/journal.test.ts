// The group-committed journal on its own: line format, torn and damaged lines, preallocation,
// group commits, and a journal that refuses lines after it was closed.
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GroupCommitJournal, journalLine, parseJournal } from '../../lib/store/journal.js';
import { StoreClosedError } from '../../lib/store/errors.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'st-journal-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const lines = (...vs: unknown[]) => Buffer.from(vs.map((v) => journalLine(v)).join(''), 'utf8');

describe('journal lines', () => {
  it('round-trip values, UTF-8 included', () => {
    const vs = [{ a: 1 }, 'plain', { s: 'é✓ 𝄞', n: null }, [1, 2, 3]];
    expect(parseJournal(lines(...vs))).toEqual({ records: vs, droppedBytes: 0, bad: 0 });
  });

  it('a journal stops at a torn or damaged line; a snapshot skips it and keeps the rest', () => {
    const whole = lines({ i: 1 }, { i: 2 }, { i: 3 });
    // torn: the last line cut in the middle
    const torn = whole.subarray(0, whole.length - 5);
    expect(parseJournal(torn)).toMatchObject({ records: [{ i: 1 }, { i: 2 }], bad: 0 });
    expect(parseJournal(torn).droppedBytes).toBe(journalLine({ i: 3 }).length - 5);
    // damaged: a byte of the second line's JSON changed (the CRC no longer matches)
    const damaged = Buffer.from(whole);
    const at = damaged.indexOf('"i":2') + 4;
    damaged[at] = '7'.charCodeAt(0);
    expect(parseJournal(damaged).records).toEqual([{ i: 1 }]);
    expect(parseJournal(damaged, true)).toEqual({ records: [{ i: 1 }, { i: 3 }], droppedBytes: 0, bad: 1 });
    // a length that runs past the end, garbage, an empty buffer
    expect(parseJournal(Buffer.from('00000000 99999 {}\n')).records).toEqual([]);
    expect(parseJournal(Buffer.from('not a journal\n'), true)).toMatchObject({ records: [], bad: 1 });
    expect(parseJournal(Buffer.alloc(0))).toEqual({ records: [], droppedBytes: 0, bad: 0 });
  });

  it('preallocated zeros after the last line are unused space, not damage', () => {
    const buf = Buffer.concat([lines({ i: 1 }), Buffer.alloc(4096)]);
    expect(parseJournal(buf)).toEqual({ records: [{ i: 1 }], droppedBytes: 0, bad: 0 });
    const cut = Buffer.concat([lines({ i: 1 }), Buffer.from('1234'), Buffer.alloc(4096)]);
    expect(parseJournal(cut)).toEqual({ records: [{ i: 1 }], droppedBytes: 4, bad: 0 });
  });
});

describe('GroupCommitJournal', () => {
  it('appends of one turn of the event loop share one commit; the file holds them in order after its preallocated size', async () => {
    const path = join(root, 'a.log');
    const j = await GroupCommitJournal.open(path, 1 << 20);
    expect((await stat(path)).size).toBe(1 << 20);
    await Promise.all(Array.from({ length: 100 }, (_, i) => j.append({ i })));
    expect(j.commits).toBe(1);
    await j.append({ i: 100 });
    expect(j.commits).toBe(2);
    await j.close();
    const { records, droppedBytes } = parseJournal(await readFile(path));
    expect(records).toEqual(Array.from({ length: 101 }, (_, i) => ({ i })));
    expect(droppedBytes).toBe(0);
  });

  it('lines past the preallocated size extend the file', async () => {
    const path = join(root, 'b.log');
    const j = await GroupCommitJournal.open(path, 64);
    const big = 'x'.repeat(1000);
    for (let i = 0; i < 5; i++) await j.append({ i, big });
    await j.close();
    expect(parseJournal(await readFile(path)).records).toHaveLength(5);
    expect((await stat(path)).size).toBeGreaterThan(5000);
  });

  it('an existing file is never reused; a closed journal refuses lines with a typed error', async () => {
    const path = join(root, 'c.log');
    const j = await GroupCommitJournal.open(path, 0);
    await expect(GroupCommitJournal.open(path, 0)).rejects.toMatchObject({ code: 'ERR_STORE_IO', systemCode: 'EEXIST' });
    await j.close();
    await expect(j.append({ late: true })).rejects.toBeInstanceOf(StoreClosedError);
  });
});
