/**
 * Errors of the workspace path policy.
 * @module
 */
import { SmoothtaskError, type SmoothtaskErrorOptions } from '../errors/index.js';

/**
 * Why a path was refused: lexical reasons (`empty` … `too-long`) come from the text alone;
 * the others from what the walk met on disk.
 */
export type UnsafePathReason =
  | 'empty'
  | 'absolute'
  | 'traversal'
  | 'nul'
  | 'backslash'
  | 'drive-letter'
  | 'too-long'
  | 'symlink'
  | 'not-directory'
  | 'not-regular-file';

const WHY: Record<UnsafePathReason, string> = {
  empty: 'is empty',
  absolute: 'is absolute',
  traversal: 'contains a `..` component',
  nul: 'contains a NUL byte',
  backslash: 'contains a backslash',
  'drive-letter': 'starts with a drive letter',
  'too-long': 'has a component longer than 255 bytes',
  symlink: 'is a symbolic link (not followed)',
  'not-directory': 'is not a directory',
  'not-regular-file': 'is not a regular file',
};

/**
 * A path was refused by the workspace policy: it would leave the workspace root (absolute,
 * `..`, drive letter), is not a plain POSIX relative path (NUL, backslash), or meets a
 * symbolic link, a special file or a non-directory where the walk needs a directory or a file.
 */
export class UnsafePathError extends SmoothtaskError {
  /** The path as given (relative to the workspace root). */
  readonly path: string;
  /** Why it was refused. */
  readonly reason: UnsafePathReason;
  /** The leading part of `path` where the walk stopped (a link or non-directory on the way); `path` itself when it was the last component or a lexical refusal. */
  readonly at: string;
  /**
   * Creates the error.
   * @param path the path as given
   * @param reason why it was refused
   * @param what how the caller names the path in the message (default `path`)
   * @param options cause, and `at`: the leading part of `path` where the walk stopped
   */
  constructor(path: string, reason: UnsafePathReason, what = 'path', options: SmoothtaskErrorOptions & { at?: string } = {}) {
    const at = options.at ?? path;
    super(
      'ERR_UNSAFE_PATH',
      at === path ? `The ${what} ${JSON.stringify(path)} ${WHY[reason]}` : `The ${what} ${JSON.stringify(path)} is refused: ${JSON.stringify(at)} ${WHY[reason]}`,
      options,
    );
    this.path = path;
    this.reason = reason;
    this.at = at;
  }
}

/**
 * A file-system call inside a workspace failed for a reason other than the policy (missing
 * entry, permissions, no `/proc`). `sysCode` is the OS code, e.g. `ENOENT`.
 */
export class WorkspaceError extends SmoothtaskError {
  /** The OS error code (`ENOENT`, `EACCES`, …), when the failure came from a system call. */
  readonly sysCode: string | undefined;
  /** The path (relative to the workspace root) being worked on. */
  readonly path: string;
  /**
   * Creates the error.
   * @param message what failed
   * @param path the relative path
   * @param options cause and errno
   */
  constructor(message: string, path: string, options: SmoothtaskErrorOptions & { sysCode?: string } = {}) {
    super('ERR_WORKSPACE', message, options);
    this.sysCode = options.sysCode;
    this.path = path;
  }
}
