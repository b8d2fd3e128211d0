/**
 * `smoothtask hash-token`: reads a bearer token on stdin and prints its SHA-256, the value
 * `auth.tokens[].sha256` holds. The token never appears on the command line (where `ps` and
 * shell history would show it).
 * @module
 */
import { hashToken } from '../agent/config.js';

/** Largest token accepted on stdin, in bytes. */
const MAX_TOKEN_BYTES = 64 * 1024;

/**
 * Reads stdin to its end (at most {@link MAX_TOKEN_BYTES}), drops one trailing newline, and
 * prints `hashToken(token)`. Resolves with the exit status: 0, or 2 for an empty or oversized
 * token, one with whitespace at either end (almost always a copy-paste slip), or one with a
 * character outside printable ASCII (it could never match a token sent over HTTP).
 */
export async function hashTokenCommand(stdin: NodeJS.ReadableStream = process.stdin): Promise<number> {
  if ((stdin as { isTTY?: boolean }).isTTY) process.stderr.write('Type the token, then Enter and Ctrl-D:\n');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += b.length;
    if (size > MAX_TOKEN_BYTES) {
      process.stderr.write(`smoothtask hash-token: the token is longer than ${MAX_TOKEN_BYTES} bytes\n`);
      return 2;
    }
    chunks.push(b);
  }
  const token = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  if (token === '') {
    process.stderr.write('smoothtask hash-token: no token on stdin\n');
    return 2;
  }
  if (token.trim() !== token) {
    process.stderr.write('smoothtask hash-token: the token starts or ends with whitespace (a copy-paste slip?); refused\n');
    return 2;
  }
  if (!/^[\x21-\x7e]+$/.test(token)) {
    // HTTP hands the Authorization header over as latin1: anything else could never match.
    process.stderr.write('smoothtask hash-token: a bearer token is printable ASCII without spaces (RFC 6750 b64token); refused\n');
    return 2;
  }
  process.stdout.write(`${hashToken(token)}\n`);
  return 0;
}
