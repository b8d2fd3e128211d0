/**
 * Task workspaces over FTP(S): an optional door beside the HTTP file routes, built on
 * `ftp-srv` 4.6.3 and wrapped so that none of its risky defaults stay:
 *
 * - its own file system (which serves `process.cwd()` when no root is given and follows
 *   symbolic links) is never used: every login gets a {@link WorkspaceFiles}-backed virtual
 *   file system (`/` lists the tasks the user may see, `/<taskId>/…` is that task's workspace),
 *   so the workspace path policy applies to every LIST, RETR, STOR, DELE, RMD and MKD;
 * - the SIGTERM/SIGINT/SIGQUIT listeners its constructor installs (they call `process.exit`)
 *   are removed at once;
 * - `PORT`, `EPRT` (active mode: the server would connect anywhere), `SITE` (CHMOD), `APPE`,
 *   `STOU`, `RNFR` and `RNTO` are refused with 502;
 * - with TLS configured, `USER`/`PASS` are refused until `AUTH TLS`; there is no anonymous user;
 * - passive ports come from a narrow configured range, PASV announces a fixed IPv4 address;
 * - idle control and data connections are closed, the number of connections is capped, and
 *   its logger is a silent bunyan-shaped object unless one is given.
 * @module
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP, type Socket } from 'node:net';
import { PassThrough, type Readable, Writable } from 'node:stream';
import { validate } from '../errors/validate.js';
import { isFinished } from '../task/states.js';
import type { TaskQueue } from '../task/queue.js';
import { TaskIdSchema, type TaskRecord } from '../task/types.js';
import { splitRelativePath, UnsafePathError, type EntryKind } from '../workspace/index.js';
import { FtpConfigSchema, type FtpConfig, type FtpConfigInput } from './config.js';
import { AgentError } from './errors.js';
import { fileErrorOf, INPUTS_DIR, type WorkspaceFiles } from './files.js';

/** A bunyan-shaped logger (what `ftp-srv` writes to). Every method may ignore its arguments. */
export interface FtpLogger {
  /** Most detailed. */
  trace(...args: unknown[]): void;
  /** Debug. */
  debug(...args: unknown[]): void;
  /** Info. */
  info(...args: unknown[]): void;
  /** Warnings. */
  warn(...args: unknown[]): void;
  /** Errors (a refused command or transfer logs here too). */
  error(...args: unknown[]): void;
  /** Fatal. */
  fatal(...args: unknown[]): void;
  /** A logger with more fields (bunyan's `child`). */
  child(fields: Record<string, unknown>): FtpLogger;
}

/** A logger that drops everything (the default of {@link startFtpServer}). */
export const silentFtpLogger: FtpLogger = {
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  fatal: () => undefined,
  child: () => silentFtpLogger,
};

/** What {@link startFtpServer} needs of an agent (an {@link Agent} has both). */
export interface FtpDeps {
  /** The workspace file service: every file operation goes through it. */
  files: WorkspaceFiles;
  /** The task queue: which tasks exist and in which state (uploads only while held). */
  queue: Pick<TaskQueue, 'get' | 'list'>;
  /** Where `ftp-srv` logs (default {@link silentFtpLogger}). */
  log?: FtpLogger;
}

/** A running FTP server. */
export interface FtpServerHandle {
  /** `ftp://host:port` (IPv6 hosts in brackets). */
  url: string;
  /** The bound address. */
  host: string;
  /** The bound control port (the real one when `port` was 0). */
  port: number;
  /** Control connections open now. */
  connections(): number;
  /** Disconnects every client and stops listening (idempotent). */
  close(): Promise<void>;
}

/** The commands refused with 502 whatever the user: active mode, SITE (CHMOD), append, unique store, rename. */
export const FTP_BLACKLIST: readonly string[] = ['PORT', 'EPRT', 'SITE', 'APPE', 'STOU', 'RNFR', 'RNTO'];

const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const;
const MAX_LOGIN_FAILURES = 3;

/** What the virtual file system hands to `ftp-srv` for LIST, STAT, SIZE and MDTM. */
interface FtpStat {
  name: string;
  kind: EntryKind;
  size: number;
  mtime: Date;
  isDirectory(): boolean;
  isFile(): boolean;
  isSymbolicLink(): boolean;
}

const statOf = (name: string, kind: EntryKind, size: number, mtime: Date): FtpStat => ({
  name,
  kind,
  size: kind === 'file' ? size : 0,
  mtime,
  isDirectory: () => kind === 'directory',
  isFile: () => kind === 'file',
  isSymbolicLink: () => kind === 'symlink',
});

/** No control characters in a reply or listing line (a name or message with CR/LF would inject a reply). */
const clean = (s: string): string => s.replace(/[\x00-\x1f\x7f]/g, '?');

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** One `ls -l` style line; links show as `l` (never resolved), FIFOs/sockets/devices as `p`. */
function formatEntry(s: FtpStat): string {
  const t = s.kind === 'directory' ? 'drwxr-xr-x' : s.kind === 'symlink' ? 'lrwxrwxrwx' : s.kind === 'special' ? 'p---------' : '-rw-r--r--';
  const d = s.mtime;
  const recent = Math.abs(Date.now() - d.getTime()) < 180 * 86_400_000;
  const when = `${MONTHS[d.getUTCMonth()]} ${pad(d.getUTCDate())} ${recent ? `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}` : ` ${d.getUTCFullYear()}`}`;
  return `${t} 1 ftp ftp ${String(s.size).padStart(12)} ${when} ${clean(s.name)}`;
}

/** An error `ftp-srv` answers with its message (550 for file commands). */
class FtpRefusal extends Error {
  readonly code: number;
  constructor(message: string, code = 550) {
    super(clean(message));
    this.code = code;
  }
}

/** A workspace error as an FTP refusal: our messages pass, anything else (host paths) is hidden. */
function refusalOf(e: unknown, path: string): FtpRefusal {
  const m = fileErrorOf(e, path);
  if (m instanceof FtpRefusal) return m;
  if (m instanceof AgentError) return new FtpRefusal(m.message);
  return new FtpRefusal('Requested action not taken');
}

interface FtpUser {
  name: string;
  hash: Buffer;
  tasks: '*' | ReadonlySet<string>;
  readOnly: boolean;
}

interface Resolved {
  /** The path shown to the client (`/task/inputs/a.csv`). */
  client: string;
  /** The task id, absent for `/`. */
  task?: string;
  /** The path inside the workspace (`''`: the workspace itself). */
  rel: string;
}

/** The part of an `ftp-srv` connection the file system uses. */
interface FtpConnectionLike {
  secure: boolean;
  commandSocket?: Socket;
  connector: { socket?: Socket | null };
}

/**
 * The file system each login gets: a replacement for `ftp-srv`'s (not a subclass, so no
 * inherited method can reach the disk), where every operation goes through
 * {@link WorkspaceFiles}. `..` is refused in every path except CWD/CDUP, where it moves up the
 * virtual tree; the first component must be a task the user may see.
 */
class WorkspaceFtpFileSystem {
  cwd = '/';
  readonly #deps: FtpDeps;
  readonly #user: FtpUser;
  readonly #conn: FtpConnectionLike;
  readonly #idleMs: number;

  constructor(deps: FtpDeps, user: FtpUser, conn: FtpConnectionLike, idleMs: number) {
    this.#deps = deps;
    this.#user = user;
    this.#conn = conn;
    this.#idleMs = idleMs;
  }

  /** Used by `ftp-srv` (`root` of its own file system): nothing on disk here. */
  get root(): string {
    return '/';
  }

  #visible(id: string): Readonly<TaskRecord> | undefined {
    if (!TaskIdSchema.safeParse(id).success) return undefined;
    const u = this.#user.tasks;
    if (u !== '*' && !u.has(id)) return undefined;
    return this.#deps.queue.get(id);
  }

  #resolve(arg: string | null | undefined, chdir = false): Resolved {
    const raw = arg ?? '';
    if (/[\x00-\x1f\x7f\\]/.test(raw)) throw new FtpRefusal('Unsafe path: control characters and backslashes are refused');
    const parts: string[] = [];
    for (const p of (raw.startsWith('/') ? raw : `${this.cwd}/${raw}`).split('/')) {
      if (p === '' || p === '.') continue;
      if (p === '..') {
        if (!chdir) throw new FtpRefusal("Unsafe path: '..' is refused (use absolute paths or CDUP)");
        parts.pop();
        continue;
      }
      parts.push(p);
    }
    const client = `/${parts.join('/')}`;
    if (parts.length === 0) return { client, rel: '' };
    const [task, ...rest] = parts as [string, ...string[]];
    // The same answer for a task that does not exist and one the user may not see.
    if (!this.#visible(task)) throw new FtpRefusal(`No such file or directory: ${client}`);
    const rel = rest.join('/');
    try {
      if (rel) splitRelativePath(rel, 'path');
    } catch (e) {
      if (e instanceof UnsafePathError) throw new FtpRefusal(`Unsafe path: ${e.message}`);
      throw e;
    }
    return { client, task, rel };
  }

  async #files<T>(r: Resolved, fn: (files: WorkspaceFiles, task: string) => Promise<T>): Promise<T> {
    try {
      return await fn(this.#deps.files, r.task!);
    } catch (e) {
      throw refusalOf(e, r.rel);
    }
  }

  #writable(): void {
    if (this.#user.readOnly) throw new FtpRefusal(`User '${this.#user.name}' is read-only`);
  }

  /** Idle data connections are cut (ftp-srv sets no timeout on them). Returns the data socket. */
  #guardData(): Socket | undefined {
    const s = this.#conn.connector.socket;
    if (!s || s.destroyed) return undefined;
    s.setTimeout(this.#idleMs, () => s.destroy(new AgentError('ERR_FTP_IDLE', `Data connection idle for ${this.#idleMs} ms`, { status: 421 })));
    return s;
  }

  currentDirectory(): string {
    return this.cwd;
  }

  async get(name?: string | null): Promise<FtpStat> {
    const r = this.#resolve(name);
    const base = r.client.split('/').pop() || '/';
    if (!r.task) return statOf('/', 'directory', 0, new Date(0));
    if (!r.rel) {
      const t = this.#deps.queue.get(r.task);
      return statOf(base, 'directory', 0, new Date(t?.timings.createdAt ?? 0));
    }
    const st = await this.#files(r, (f, id) => f.stat(id, r.rel));
    if (st) return statOf(base, st.kind, st.size, st.mtime);
    const pending = r.rel === INPUTS_DIR ? this.#pendingInputs(r.task) : undefined;
    if (pending) return pending;
    throw new FtpRefusal(`No such file or directory: ${r.client}`);
  }

  /**
   * A held task waits for its inputs: its `inputs/` folder is there to enter, list and upload
   * into before the first upload creates it on disk (clients such as curl CWD into each part
   * of the path before their STOR). The folder's entry while it is not on disk; `undefined`
   * for a task that is not held.
   */
  #pendingInputs(task: string): FtpStat | undefined {
    const t = this.#deps.queue.get(task);
    return t?.state === 'created' && t.held === true ? statOf(INPUTS_DIR, 'directory', 0, new Date(t.timings.createdAt)) : undefined;
  }

  async list(path?: string | null): Promise<FtpStat[]> {
    const r = this.#resolve(path);
    if (!r.task) {
      const u = this.#user.tasks;
      const tasks = u === '*' ? this.#deps.queue.list() : [...u].map((id) => this.#visible(id)).filter((t) => t !== undefined);
      return tasks.map((t) => statOf(t.id, 'directory', 0, new Date(t.timings.createdAt))).sort((a, b) => (a.name < b.name ? -1 : 1));
    }
    const pending = this.#pendingInputs(r.task);
    if ((!r.rel || r.rel === INPUTS_DIR) && !(await this.#files(r, (f, id) => f.stat(id, r.rel)))) {
      // Not on disk yet: no workspace (its root lists the pending inputs/), or no inputs/.
      if (!r.rel) return pending ? [pending] : [];
      if (pending) return [];
      throw new FtpRefusal(`No such file or directory: ${r.client}`);
    }
    const entries = await this.#files(r, (f, id) => f.list(id, r.rel));
    const out = entries.map((e) => statOf(e.name, e.type, e.size, new Date(e.mtimeMs)));
    if (r.rel || !pending || entries.some((e) => e.name === INPUTS_DIR)) return out;
    return [...out, pending].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async chdir(path?: string | null): Promise<string> {
    const r = this.#resolve(path, true);
    const st = await this.get(r.client);
    if (!st.isDirectory()) throw new FtpRefusal(`Not a directory: ${r.client}`);
    this.cwd = r.client;
    return this.cwd;
  }

  async write(name: string, options: { append?: boolean; start?: number } = {}): Promise<{ stream: Writable; clientPath: string }> {
    this.#writable();
    if (options.append || (options.start ?? 0) > 0) throw new FtpRefusal('Appending and restarted uploads are not supported: upload the whole file');
    const r = this.#resolve(name);
    if (!r.task || !r.rel) throw new FtpRefusal(`Not a file path: ${r.client}`);
    const task = r.task;
    const held = () => {
      const t = this.#deps.queue.get(task);
      if (!t || t.state !== 'created' || !t.held) {
        throw new FtpRefusal(`Task '${task}' is ${t?.state ?? 'gone'}: uploads are accepted while it waits for its inputs (submitted with hold, not started)`);
      }
    };
    held();
    const parts = r.rel.split('/');
    if (parts.length < 2 || parts[0] !== INPUTS_DIR) throw new FtpRefusal(`Uploads go under /${task}/${INPUTS_DIR}/ (got ${r.client})`);
    const data = this.#guardData();
    const stream = uploadSink(
      (source) => this.#deps.files.write(task, r.rel, source).catch((e: unknown) => Promise.reject(refusalOf(e, r.rel))),
      () => {
        if (this.#conn.commandSocket?.destroyed) throw new FtpRefusal('The control connection closed during the upload; nothing was kept');
        held();
      },
    );
    // A data connection that goes away without ending the upload (the control connection closed,
    // ftp-srv tore it down) aborts it: nothing is kept.
    data?.once('close', () => {
      if (!stream.writableEnded && !stream.destroyed) stream.destroy(new FtpRefusal('The data connection closed before the upload ended; nothing was kept'));
    });
    return { stream, clientPath: r.client };
  }

  async read(name: string, options: { start?: number } = {}): Promise<{ stream: Readable; clientPath: string }> {
    const r = this.#resolve(name);
    if (!r.task || !r.rel) throw new FtpRefusal(`Not a file: ${r.client}`);
    const f = await this.#files(r, (files, id) => files.openRead(id, r.rel));
    const stream = f.handle.createReadStream({ start: Math.max(0, options.start ?? 0), autoClose: true, highWaterMark: 1024 * 1024 });
    stream.once('close', () => void f.close());
    // Whatever happens to the transfer, the file and the workspace descriptor are released.
    this.#guardData()?.once('close', () => stream.destroy());
    return { stream, clientPath: r.client };
  }

  async delete(path: string): Promise<void> {
    this.#writable();
    const r = this.#resolve(path);
    if (!r.task || !r.rel) throw new FtpRefusal(`A workspace itself cannot be removed: ${r.client}`);
    const t = this.#deps.queue.get(r.task);
    if (!t || (!(t.state === 'created' && t.held) && !isFinished(t.state))) {
      throw new FtpRefusal(`Task '${r.task}' is ${t?.state ?? 'gone'}: files can be removed while it waits for its inputs or once it has finished`);
    }
    if (!(await this.#files(r, (f, id) => f.remove(id, r.rel)))) throw new FtpRefusal(`No such file or directory: ${r.client}`);
  }

  async mkdir(path: string): Promise<string> {
    this.#writable();
    const r = this.#resolve(path);
    if (!r.task || !r.rel) throw new FtpRefusal(`Folders are created under /<task>/${INPUTS_DIR}/`);
    const t = this.#deps.queue.get(r.task);
    if (!t || t.state !== 'created' || !t.held) throw new FtpRefusal(`Task '${r.task}' is ${t?.state ?? 'gone'}: folders can be created while it waits for its inputs`);
    await this.#files(r, (f, id) => f.mkdir(id, r.rel));
    return r.client;
  }

  async rename(): Promise<never> {
    throw new FtpRefusal('Renaming is not supported', 502);
  }

  async chmod(): Promise<never> {
    throw new FtpRefusal('Changing modes is not supported', 502);
  }

  getUniqueName(): never {
    throw new FtpRefusal('STOU is not supported', 502);
  }
}

/**
 * The writable `ftp-srv` pipes a STOR into: the bytes go to `start(source)` (a
 * {@link WorkspaceFiles.write}), and `finish` (after which `ftp-srv` answers 226) comes only
 * once the file is committed. A destroyed sink (cut data connection) aborts the write, so
 * nothing is left.
 */
function uploadSink(start: (source: Readable) => Promise<unknown>, beforeCommit: () => void): Writable {
  const pass = new PassThrough();
  // The writer sees errors through its iterator; this keeps an unconsumed pass from throwing.
  pass.on('error', () => undefined);
  const done = start(pass);
  const settle = (cb: (e?: Error | null) => void, err?: Error | null) => void done.then(() => cb(err), (e: unknown) => cb(err ?? (e as Error)));
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (pass.write(chunk)) cb();
      else pass.once('drain', () => cb());
    },
    final(cb) {
      try {
        beforeCommit();
      } catch (e) {
        pass.destroy(e as Error);
        settle(cb, e as Error);
        return;
      }
      pass.end();
      settle(cb);
    },
    destroy(err, cb) {
      if (!pass.destroyed) pass.destroy(err ?? new FtpRefusal('The upload was aborted; nothing was kept'));
      settle(cb, err);
    },
  });
  done.catch((e: unknown) => {
    if (!sink.destroyed) sink.destroy(e as Error);
  });
  // ftp-srv ends an upload by emitting 'close' on the stream (its own fs streams end on it).
  sink.on('close', () => {
    if (!sink.writableEnded && !sink.destroyed) sink.end();
  });
  return sink;
}

/** The parts of `ftp-srv`'s server and connection objects this module touches. */
interface SrvConnection extends FtpConnectionLike {
  id: string;
  ip?: string;
  commandSocket: Socket;
  authenticated?: boolean;
  fs?: unknown;
  commands: { handle(message: unknown): unknown; parse(message: string): { directive: string; arg: string | null } };
  reply(code: number, message?: string): Promise<unknown>;
  close(code?: number, message?: string): Promise<unknown>;
}
interface Srv {
  server: { maxConnections: number; address(): { port: number; address: string } | string | null };
  connections: Record<string, unknown>;
  on(event: string, listener: (...args: any[]) => void): unknown;
  listen(): Promise<unknown>;
  close(): Promise<unknown>;
}

/**
 * Starts an FTP server over the task workspaces of `deps.files`: `/` lists the tasks each
 * user may see (`users[].tasks`), `/<taskId>/…` is that task's workspace through the
 * workspace path policy (no `..`, links never followed, FIFOs never opened). Uploads (STOR)
 * go only under `inputs/` of a task held for its inputs and are atomic (a cut upload leaves
 * nothing); DELE/RMD while held or finished; MKD under `inputs/` while held. `Agent.listen()`
 * calls this when `ftp.enabled`; it can also run alone.
 *
 * @example
 * ```ts
 * const ftp = await startFtpServer({ files: agent.files, queue: agent.queue }, {
 *   port: 0,
 *   users: [{ name: 'ci', passwordSha256: hashToken(process.env.FTP_PASSWORD!), tasks: ['build-1'] }],
 * });
 * console.log(ftp.url);
 * await ftp.close();
 * ```
 * @throws {@link ConfigError} for an invalid configuration; the listen error when the port is taken.
 */
export async function startFtpServer(deps: FtpDeps, config: FtpConfigInput): Promise<FtpServerHandle> {
  const c: FtpConfig = validate(FtpConfigSchema, config, 'ftp config');
  const log = deps.log ?? silentFtpLogger;
  const tls = c.tls ? { cert: await readFile(c.tls.certFile), key: await readFile(c.tls.keyFile), minVersion: 'TLSv1.2' as const } : false;
  const users: FtpUser[] = c.users.map((u) => ({
    name: u.name,
    hash: Buffer.from(u.passwordSha256, 'hex'),
    tasks: u.tasks === '*' ? '*' : new Set(u.tasks),
    readOnly: u.readOnly,
  }));
  const dummy = Buffer.alloc(32);
  const pasvAddress = c.pasvUrl ?? (isIP(c.host) === 4 && c.host !== '0.0.0.0' ? c.host : undefined);
  const urlHost = c.host.includes(':') ? `[${c.host}]` : c.host;

  const { default: FtpSrv } = await import('ftp-srv');
  const before = new Map(SIGNALS.map((s) => [s, new Set(process.listeners(s))]));
  let srv: Srv;
  try {
    srv = new FtpSrv({
      url: `ftp://${urlHost}:${c.port}`,
      pasv_min: c.passivePorts.min,
      pasv_max: c.passivePorts.max,
      // A resolver, so ftp-srv never substitutes the client's address; absent: PASV answers 502 (EPSV works).
      ...(pasvAddress ? { pasv_url: (() => pasvAddress) as unknown as string } : {}),
      anonymous: false,
      blacklist: [...FTP_BLACKLIST],
      tls,
      log,
      // Idle connections are handled below (ftp-srv's own timeout would also cut long transfers).
      timeout: 0,
      file_format: formatEntry as unknown as (s: unknown) => string,
      greeting: ['smoothtask workspaces'],
    } as ConstructorParameters<typeof FtpSrv>[0]) as unknown as Srv;
  } finally {
    // ftp-srv's constructor adds listeners that call process.exit(0): the host owns its signals.
    for (const s of SIGNALS) for (const l of process.listeners(s)) if (!before.get(s)!.has(l)) process.off(s, l);
  }
  srv.server.maxConnections = c.maxConnections;

  const failures = new WeakMap<object, number>();
  srv.on('login', (data: { connection: SrvConnection; username: string; password: string }, resolve: (r: unknown) => void, reject: (e: Error) => void) => {
    const { connection, username, password } = data;
    if (tls && !connection.secure) return reject(new FtpRefusal('TLS required: send AUTH TLS before logging in', 530));
    const presented = createHash('sha256').update(String(password), 'utf8').digest();
    let found: FtpUser | undefined;
    for (const u of users) {
      // Every hash is compared, whichever user matches: the time does not tell which name exists.
      const ok = timingSafeEqual(presented, u.hash);
      if (ok && u.name === username && !found) found = u;
    }
    if (users.length === 0) timingSafeEqual(presented, dummy);
    if (!found) {
      const n = (failures.get(connection) ?? 0) + 1;
      failures.set(connection, n);
      if (n >= MAX_LOGIN_FAILURES) setImmediate(() => void connection.close(421, 'Too many failed logins'));
      return reject(new FtpRefusal('Authentication failed', 530));
    }
    resolve({ fs: new WorkspaceFtpFileSystem(deps, found, connection, c.idleTimeoutMs), blacklist: [] });
  });

  srv.on('connect', ({ connection }: { connection: SrvConnection }) => {
    const raw = connection.commandSocket;
    // Idle control connections close; not while a data transfer is under way (the data socket has its own timer).
    raw.setTimeout(c.idleTimeoutMs);
    raw.on('timeout', () => {
      const data = connection.connector?.socket;
      if (data && !data.destroyed) raw.setTimeout(c.idleTimeoutMs);
      else void connection.close(421, 'Idle timeout: closing the connection');
    });
    const cmds = connection.commands;
    const handle = cmds.handle.bind(cmds);
    cmds.handle = (message: unknown) => {
      const cmd = typeof message === 'string' ? cmds.parse(message) : (message as { directive: string; arg: string | null });
      if (tls && !connection.secure && (cmd.directive === 'USER' || cmd.directive === 'PASS')) {
        return connection.reply(530, 'TLS required: send AUTH TLS before USER (plaintext logins are refused)');
      }
      // ftp-srv answers SIZE of a 0-byte entry without the number, and of links and folders too.
      if (cmd.directive === 'SIZE' && connection.authenticated && connection.fs instanceof WorkspaceFtpFileSystem) {
        return connection.fs.get(cmd.arg).then(
          (st) => (st.kind === 'file' ? connection.reply(213, String(st.size)) : connection.reply(550, `Not a regular file: ${clean(cmd.arg ?? '')}`)),
          (e: unknown) => connection.reply(550, e instanceof FtpRefusal ? e.message : 'Requested action not taken'),
        );
      }
      return handle(cmd);
    };
  });
  srv.on('client-error', ({ error, context }: { error: Error; context: string }) => log.debug({ err: error, context }, 'client error'));

  await srv.listen();
  const addr = srv.server.address();
  const port = addr && typeof addr === 'object' ? addr.port : c.port;
  let closing: Promise<void> | undefined;
  return {
    url: `ftp://${urlHost}:${port}`,
    host: c.host,
    port,
    connections: () => Object.keys(srv.connections).length,
    close: () => (closing ??= Promise.resolve(srv.close()).then(() => undefined)),
  };
}
