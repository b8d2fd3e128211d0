import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

// Issue 12 item 13: every error the library raises is a typed `SmoothtaskError`. This scan
// keeps plain `Error`/`TypeError`/`RangeError`/`SyntaxError` constructions out of `lib/`;
// the only ones allowed are stack captures (`const stack = new Error()`) and the argument
// to `fromNative(e, new Error())`, which only lends its stack to a typed error.
const root = join(__dirname, '..', '..', 'lib');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return files(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

describe('typed errors only', () => {
  it('lib/ constructs no plain Error, TypeError, RangeError or SyntaxError', () => {
    const found: string[] = [];
    for (const file of files(root)) {
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (!/\bnew (Error|TypeError|RangeError|SyntaxError)\(|\bthrow (Error|TypeError|RangeError)\(/.test(line)) return;
          if (/fromNative\([^,]+, new Error\(\)\)/.test(line)) return;
          if (/^\s*const \w+ = new Error\(\);/.test(line)) return;
          found.push(`${relative(root, file)}:${i + 1}: ${line.trim()}`);
        });
    }
    expect(found).toEqual([]);
  });
});
