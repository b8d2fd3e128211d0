/**
 * The agent's configuration: one zod schema ({@link AgentConfigSchema}, strict objects
 * everywhere), the token hash helper and the loopback rule for anonymous access.
 * @module
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { z } from 'zod';
import { ClassNameSchema, PrefixSchema } from '../fleet/protocol.js';
import { RedisConfigSchema } from '../fleet/redis.js';
import { NetworkPolicySchema } from '../webhook/ssrf.js';
import { RuleSchema } from '../notify/schema.js';

/** The scopes a token (or anonymous access) can hold: `read` (every GET), `submit` (POST tasks, cancel), `admin` (everything). */
export const SCOPES = ['read', 'submit', 'admin'] as const;
/** One of {@link SCOPES}. */
export type Scope = (typeof SCOPES)[number];

/**
 * The SHA-256 of a bearer token, as 64 lowercase hex digits: what `auth.tokens[].sha256`
 * holds (the agent never stores the token itself).
 *
 * @example
 * ```ts
 * const token = randomBytes(32).toString('base64url');
 * const entry = { name: 'ci', sha256: hashToken(token), scopes: ['read', 'submit'] };
 * ```
 */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * Whether `host` is a loopback address or name (`127.0.0.0/8`, `::1`, `localhost`,
 * IPv4-mapped loopback): the only hosts where anonymous access may be configured.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
    const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    return m !== null && m[1]!.startsWith('127.');
  }
  return false;
}

const ScopeSchema = z.enum(SCOPES);

/** One bearer token: a name (for logs), the SHA-256 of the token and its scopes. */
export const TokenEntrySchema = z
  .object({
    /** Who holds it (appears in logs, never the token). */
    name: z.string().min(1).max(100),
    /** 64 hex digits: `hashToken(token)`. */
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits (sha256 of the token, see hashToken)')
      .transform((s) => s.toLowerCase())
      .meta({ secret: true }),
    /** Scopes granted. */
    scopes: z.array(ScopeSchema).min(1),
  })
  .strict();

const ListenSchema = z
  .object({
    /** Address to bind (default 127.0.0.1). */
    host: z.string().min(1).default('127.0.0.1'),
    /** Port; 0 = ephemeral. */
    port: z.number().int().min(0).max(65535).default(7700),
  })
  .strict();

const AuthSchema = z
  .object({
    /** Accepted bearer tokens, stored as hashes. */
    tokens: z.array(TokenEntrySchema).default([]),
    /** Scopes for requests without a token; only allowed when `listen.host` is loopback. `null` = none. */
    anonymous: z.array(ScopeSchema).nullable().default(null),
  })
  .strict();

const HttpSchema = z
  .object({
    /** Largest request body (bytes). */
    bodyLimitBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
    /** Time limit to receive a whole request (headers and body), ms. Never 0. */
    requestTimeoutMs: z.number().int().min(100).default(30_000),
    /** Time limit to receive the request headers, ms. */
    headersTimeoutMs: z.number().int().min(100).default(10_000),
    /** Idle keep-alive time, ms. */
    keepAliveTimeoutMs: z.number().int().min(0).default(5000),
    /** Cross-origin access: none by default. */
    cors: z.object({ origins: z.array(z.string().min(1)).default([]) }).strict().default({ origins: [] }),
    /** `GET /status` without authentication. */
    publicStatus: z.boolean().default(true),
    /** `GET /metrics` without authentication. */
    publicMetrics: z.boolean().default(false),
  })
  .strict();

const QueueSchema = z
  .object({
    /** Tasks running at once. */
    concurrency: z.number().int().min(1).max(10_000).default(4),
    /** Most tasks waiting (queued/retrying); past it submit answers 429 with Retry-After. */
    maxQueued: z.number().int().min(1).default(1000),
    /** Time limit of tasks that set none, ms. */
    defaultTimeoutMs: z.number().int().positive().default(3_600_000),
    /** Grace between SIGTERM and SIGKILL, ms. */
    killAfterMs: z.number().int().min(0).default(5000),
    /** Most log bytes kept per task. */
    maxLogBytes: z.number().int().min(0).default(64 * 1024 * 1024),
    /** Tasks found running at start: fail them or run them again. */
    recovery: z.enum(['fail', 'requeue']).default('fail'),
  })
  .strict();

const ExecutorsSchema = z
  .object({
    /** The `process` executor. */
    process: z.boolean().default(true),
    /** The `container` executor (needs dockerd). */
    docker: z.boolean().default(false),
    /** The `compose` executor (needs dockerd and the compose CLI). */
    compose: z.boolean().default(false),
  })
  .strict();

const PolicySchema = z
  .object({
    process: z
      .object({
        /** Allowed `command` values (exact absolute paths or bare names); empty = no process tasks. */
        commands: z.array(z.string().min(1)).default([]),
      })
      .strict()
      .default({ commands: [] }),
    docker: z
      .object({
        /** Allowed images: exact references, or a prefix ending in `*` (`registry.local/*`). Empty = none. */
        images: z.array(z.string().min(1)).default([]),
        /** Absolute host directories under which bind mounts may live. Empty = no bind mounts. */
        mountRoots: z.array(z.string().startsWith('/', 'must be an absolute path').meta({ path: true })).default([]),
        /** Allow mounting the Docker socket (never by default). */
        allowDockerSocket: z.boolean().default(false),
        /** Allowed network modes. */
        networkModes: z.array(z.string().min(1)).default(['none', 'bridge']),
        /** Allow privileged containers. */
        privileged: z.boolean().default(false),
      })
      .strict()
      .default({ images: [], mountRoots: [], allowDockerSocket: false, networkModes: ['none', 'bridge'], privileged: false }),
    limits: z
      .object({
        /** Largest `timeoutMs` a task may ask for. */
        maxTimeoutMs: z.number().int().positive().default(86_400_000),
        /** Largest memory limit (bytes); `null` = no cap. */
        maxMemoryBytes: z.number().int().positive().nullable().default(null),
        /** Largest CPU limit; `null` = no cap. */
        maxCpus: z.number().positive().nullable().default(null),
        /** Largest pids limit; `null` = no cap. */
        maxPids: z.number().int().positive().nullable().default(null),
      })
      .strict()
      .default({ maxTimeoutMs: 86_400_000, maxMemoryBytes: null, maxCpus: null, maxPids: null }),
  })
  .strict();

const WebhooksSchema = z
  .object({
    /** Which addresses webhook endpoints may resolve to (SSRF guard). */
    network: NetworkPolicySchema.strict().default({ allowPrivate: false, allow: [], block: [] }),
  })
  .strict();

const MetricsSchema = z
  .object({
    /** Open a metric monitor. */
    enabled: z.boolean().default(true),
    /** `auto` (eBPF where permitted, else procfs), `ebpf` or `procfs`. */
    backend: z.enum(['auto', 'ebpf', 'procfs']).default('auto'),
    /** Families to open. */
    families: z.array(z.string().min(1)).min(1).default(['cpu', 'process', 'network', 'disk']),
    /** How often the snapshot is refreshed and alerts evaluated, ms. */
    intervalMs: z.number().int().min(100).default(5000),
  })
  .strict();

const AlertsSchema = z
  .object({
    /** Alert rules (the `smoothtask/notify` rule schema). */
    rules: z.array(RuleSchema).default([]),
  })
  .strict();

const GiB = 1024 ** 3;

const FilesSchema = z
  .object({
    /** Largest single upload, bytes. */
    maxFileBytes: z.number().int().min(1).default(16 * GiB),
    /** Bytes the `inputs/` folder of one task's workspace may hold. */
    workspaceBytes: z.number().int().min(1).default(32 * GiB),
    /** Bytes the `inputs/` folders of all tasks may hold together. */
    agentBytes: z.number().int().min(1).default(256 * GiB),
    /** An upload that sends nothing for this long is cut (and nothing kept), ms. */
    uploadIdleTimeoutMs: z.number().int().min(100).default(60_000),
    /** Longest an upload may take in all, ms (the agent's own server waits this long for a request body on upload routes). */
    uploadTimeoutMs: z.number().int().min(1000).default(3_600_000),
    /** Largest folder (uncompressed) served as a ZIP download, bytes. */
    maxZipBytes: z.number().int().min(1).default(64 * GiB),
  })
  .strict();

const FtpUserSchema = z
  .object({
    /** Login name (printable ASCII, no spaces). `anonymous` and `ftp` are refused: there is no anonymous access. */
    name: z
      .string()
      .min(1)
      .max(100)
      .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces')
      .refine((n) => !['anonymous', 'ftp'].includes(n.toLowerCase()), 'anonymous FTP users are not allowed'),
    /** 64 hex digits: `hashToken(password)` (the agent never stores the password). */
    passwordSha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits (sha256 of the password, see hashToken)')
      .transform((s) => s.toLowerCase())
      .meta({ secret: true }),
    /** Task ids whose workspaces this user sees, or `'*'` for every task. */
    tasks: z.union([z.literal('*'), z.array(z.string().min(1).max(200))]),
    /** Listing and downloads only (no STOR, DELE, RMD, MKD). */
    readOnly: z.boolean().default(false),
  })
  .strict();

/**
 * FTP(S) access to task workspaces (an optional door beside the HTTP file routes; see
 * docs/ftp-section.md). Off by default. Plaintext FTP is refused on a non-loopback host: set
 * `tls` (explicit FTPS, `AUTH TLS`) to listen elsewhere; with `tls` set, logging in without
 * TLS is refused on every host.
 */
export const FtpConfigSchema = z
  .object({
    /** Start the FTP server with the agent's `listen()`. */
    enabled: z.boolean().default(false),
    /** Address to bind (default 127.0.0.1). */
    host: z.string().min(1).default('127.0.0.1'),
    /** Control port; 0 = ephemeral. */
    port: z.number().int().min(0).max(65535).default(2121),
    /** Ports for passive data connections (EPSV/PASV): keep the range narrow (at most 1000 ports). */
    passivePorts: z
      .object({ min: z.number().int().min(1024).max(65535), max: z.number().int().min(1024).max(65535) })
      .strict()
      .default({ min: 30000, max: 30049 }),
    /** IPv4 address announced in PASV answers (default `host` when it is a specific IPv4 address; otherwise PASV is refused and clients use EPSV). */
    pasvUrl: z
      .string()
      .refine((s) => isIP(s) === 4 && s !== '0.0.0.0', 'must be a specific IPv4 address')
      .optional(),
    /** Who may log in. */
    users: z.array(FtpUserSchema).default([]),
    /** Certificate and key (PEM files) for explicit FTPS (`AUTH TLS`). When set, plaintext logins are refused. */
    tls: z
      .object({
        certFile: z.string().min(1).meta({ path: true }),
        keyFile: z.string().min(1).meta({ path: true }),
      })
      .strict()
      .optional(),
    /** A connection (control and data) idle this long is closed, ms. */
    idleTimeoutMs: z.number().int().min(1000).default(300_000),
    /** Most control connections at once (more are refused). */
    maxConnections: z.number().int().min(1).max(10_000).default(32),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.passivePorts.min > c.passivePorts.max) ctx.addIssue({ code: 'custom', path: ['passivePorts', 'min'], message: 'must not exceed passivePorts.max' });
    else if (c.passivePorts.max - c.passivePorts.min >= 1000) ctx.addIssue({ code: 'custom', path: ['passivePorts'], message: 'keep the passive range narrow: at most 1000 ports' });
    if (c.enabled && c.users.length === 0) ctx.addIssue({ code: 'custom', path: ['users'], message: 'FTP is enabled but no user is configured (there is no anonymous access)' });
    if (!c.tls && !isLoopbackHost(c.host)) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: `plaintext FTP is allowed only on a loopback host; set ftp.tls (explicit FTPS) to listen on '${c.host}'` });
    }
    const names = new Set<string>();
    c.users.forEach((u, i) => {
      if (names.has(u.name)) ctx.addIssue({ code: 'custom', path: ['users', i, 'name'], message: `duplicate FTP user '${u.name}'` });
      names.add(u.name);
    });
  });

/** The FTP configuration as written (defaults optional). */
export type FtpConfigInput = z.input<typeof FtpConfigSchema>;
/** The FTP configuration after parsing (defaults filled). */
export type FtpConfig = z.output<typeof FtpConfigSchema>;

const ShutdownSchema = z
  .object({
    /** How long `close()` lets running tasks finish, ms. */
    graceMs: z.number().int().min(0).default(30_000),
    /** What happens to tasks still running after the grace: cancel them, or record them queued again. */
    onTimeout: z.enum(['cancel', 'requeue']).default('cancel'),
  })
  .strict();

/** The agent as a node of a fleet (see docs/fleet.md): it takes jobs of its classes from Redis. */
export const FleetConfigSchema = z
  .object({
    /** Take fleet jobs (off by default). */
    enabled: z.boolean().default(false),
    /** Redis of the fleet: URL (`rediss://` for TLS), password, TLS CA. */
    redis: RedisConfigSchema.default({ url: 'redis://127.0.0.1:6379', connectTimeoutMs: 10_000 }),
    /** Key prefix shared by the fleet's producers and agents. */
    prefix: PrefixSchema.default('smoothtask'),
    /** Capability classes this node serves (one BullMQ queue each). */
    classes: z.array(ClassNameSchema).min(1).default(['default']),
    /** Fleet jobs taken at once per class (default `queue.concurrency`). */
    concurrency: z.number().int().min(1).max(1024).optional(),
    /** This node. */
    node: z
      .object({
        /** Unique name in the fleet (default the host name). */
        name: z.string().min(1).max(200).optional(),
        /** URL other parties reach this agent at (recorded with each task; default the listen URL). */
        url: z.string().url().optional(),
        /** Labels a job's placement may require. */
        labels: z.record(z.string().max(100), z.string().max(200)).default({}),
        /** GPUs this node offers to placement (default: the GPUs node status finds). */
        gpus: z.number().int().min(0).optional(),
      })
      .strict()
      .default({ labels: {} }),
    /** BullMQ lock of a running job; a node silent for longer is presumed dead and its jobs run elsewhere. */
    lockDurationMs: z.number().int().min(1000).default(30_000),
    /** How often stalled jobs are looked for. */
    stalledIntervalMs: z.number().int().min(500).default(30_000),
    /** How many times a job may stall and run again before it fails. */
    maxStalledCount: z.number().int().min(0).default(3),
    /** Publish log chunks of fleet tasks to producers (a Redis message per chunk). */
    forwardLogs: z.boolean().default(false),
    /** A running job's intermediate state is written to the fleet's record this long after it was reached (the newest only; 0: at once). */
    transitionDelayMs: z.number().int().min(0).max(60_000).default(50),
  })
  .strict();

/**
 * The agent's configuration (see docs/agent.md). Every object is strict: an unknown key is an
 * error. `auth.anonymous` is refused unless `listen.host` is a loopback address.
 */
export const AgentConfigSchema = z
  .object({
    /** Store (tasks, webhooks), workspaces and the owner id live here. */
    dataDir: z.string().min(1).meta({ path: true }),
    listen: ListenSchema.default({ host: '127.0.0.1', port: 7700 }),
    auth: AuthSchema.default({ tokens: [], anonymous: null }),
    http: HttpSchema.default({
      bodyLimitBytes: 1024 * 1024,
      requestTimeoutMs: 30_000,
      headersTimeoutMs: 10_000,
      keepAliveTimeoutMs: 5000,
      cors: { origins: [] },
      publicStatus: true,
      publicMetrics: false,
    }),
    queue: QueueSchema.default({
      concurrency: 4,
      maxQueued: 1000,
      defaultTimeoutMs: 3_600_000,
      killAfterMs: 5000,
      maxLogBytes: 64 * 1024 * 1024,
      recovery: 'fail',
    }),
    executors: ExecutorsSchema.default({ process: true, docker: false, compose: false }),
    policy: PolicySchema.default({
      process: { commands: [] },
      docker: { images: [], mountRoots: [], allowDockerSocket: false, networkModes: ['none', 'bridge'], privileged: false },
      limits: { maxTimeoutMs: 86_400_000, maxMemoryBytes: null, maxCpus: null, maxPids: null },
    }),
    webhooks: WebhooksSchema.default({ network: { allowPrivate: false, allow: [], block: [] } }),
    metrics: MetricsSchema.default({ enabled: true, backend: 'auto', families: ['cpu', 'process', 'network', 'disk'], intervalMs: 5000 }),
    alerts: AlertsSchema.default({ rules: [] }),
    shutdown: ShutdownSchema.default({ graceMs: 30_000, onTimeout: 'cancel' }),
    /** Workspace files over HTTP: upload limits and time limits. */
    files: FilesSchema.default({
      maxFileBytes: 16 * GiB,
      workspaceBytes: 32 * GiB,
      agentBytes: 256 * GiB,
      uploadIdleTimeoutMs: 60_000,
      uploadTimeoutMs: 3_600_000,
      maxZipBytes: 64 * GiB,
    }),
    /** Task workspaces over FTP(S) (off by default). */
    ftp: FtpConfigSchema.default({
      enabled: false,
      host: '127.0.0.1',
      port: 2121,
      passivePorts: { min: 30000, max: 30049 },
      users: [],
      idleTimeoutMs: 300_000,
      maxConnections: 32,
    }),
    /** Run fleet jobs from Redis (off by default). */
    fleet: FleetConfigSchema.default({
      enabled: false,
      redis: { url: 'redis://127.0.0.1:6379', connectTimeoutMs: 10_000 },
      prefix: 'smoothtask',
      classes: ['default'],
      node: { labels: {} },
      lockDurationMs: 30_000,
      stalledIntervalMs: 30_000,
      maxStalledCount: 3,
      forwardLogs: false,
      transitionDelayMs: 50,
    }),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.auth.anonymous !== null && !isLoopbackHost(c.listen.host)) {
      ctx.addIssue({
        code: 'custom',
        path: ['auth', 'anonymous'],
        message: `anonymous access is allowed only when listen.host is loopback (127.0.0.0/8, ::1), not '${c.listen.host}'`,
      });
    }
    if (c.files.maxFileBytes > c.files.workspaceBytes) {
      ctx.addIssue({ code: 'custom', path: ['files', 'maxFileBytes'], message: 'must not exceed files.workspaceBytes' });
    }
    if (c.files.workspaceBytes > c.files.agentBytes) {
      ctx.addIssue({ code: 'custom', path: ['files', 'workspaceBytes'], message: 'must not exceed files.agentBytes' });
    }
    if (c.http.headersTimeoutMs > c.http.requestTimeoutMs) {
      ctx.addIssue({ code: 'custom', path: ['http', 'headersTimeoutMs'], message: 'must not exceed http.requestTimeoutMs' });
    }
    const names = new Set<string>();
    c.auth.tokens.forEach((t, i) => {
      if (names.has(t.name)) ctx.addIssue({ code: 'custom', path: ['auth', 'tokens', i, 'name'], message: `duplicate token name '${t.name}'` });
      names.add(t.name);
    });
  });

/** The agent configuration as written (defaults optional). */
export type AgentConfigInput = z.input<typeof AgentConfigSchema>;
/** The agent configuration after parsing (defaults filled). */
export type AgentConfig = z.output<typeof AgentConfigSchema>;
