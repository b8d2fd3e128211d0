/**
 * The workspace path policy: one module for every door into a task's workspace (the outputs
 * ZIP today; HTTP and FTP file access later). Paths are checked lexically
 * ({@link splitRelativePath}) and walked one component at a time relative to a directory
 * descriptor, never following a symbolic link ({@link WorkspaceRoot}); archive entry names are
 * escaped one way ({@link escapeEntryComponent}). Internal for now: not a package subpath.
 * @module
 */
export { UnsafePathError, WorkspaceError, type UnsafePathReason } from './errors.js';
export { MAX_COMPONENT_BYTES, entryName, escapeEntryComponent, isSafeComponent, splitRelativePath, unescapeEntryComponent } from './policy.js';
export {
  DEFAULT_MAX_DEPTH,
  WorkspaceRoot,
  type DirEntry,
  type EnsureDirOptions,
  type EntryKind,
  type NewFile,
  type OpenRootOptions,
  type OpenedFile,
  type WalkEntry,
  type WalkFile,
  type WalkSkipped,
} from './root.js';
export { ArchiveTooLargeError, zipFolder, type FolderZip } from './zip.js';
