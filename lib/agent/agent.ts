/**
 * `createAgent(config)`: the task queue, the executors, the JSON store, the webhook
 * dispatcher, alerts, metrics and node status composed into one service with an HTTP API.
 * @module
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { validate } from '../errors/validate.js';
import { JsonStore } from '../store/store.js';
import { StoreTaskPersistence } from '../store/task-persistence.js';
import { TaskQueue } from '../task/queue.js';
import type { TaskTrigger } from '../task/types.js';
import { ProcessExecutor } from '../process/executor.js';
import { WebhookDispatcher } from '../webhook/dispatcher.js';
import { forwardTaskEvents } from '../webhook/task-events.js';
import { webhookNotifier } from '../notify/notifiers.js';
import { AgentConfigSchema, type AgentConfig, type AgentConfigInput } from './config.js';
import { WorkspaceFiles } from './files.js';
import { startFtpServer, type FtpServerHandle } from './ftp.js';
import { AgentClosedError } from './errors.js';
import { agentRoutes, type AgentRuntime, type RegisterOptions } from './http/routes.js';
import { StreamRegistry } from './http/streams.js';
import { ArtifactCache } from './http/artifacts.js';
import { DeliveryLog } from './http/webhooks.js';
import { NodeServices } from './node.js';
import { within } from '../util/within.js';
import { importPeer } from '../util/peer.js';
import { DashboardFeed } from './dashboard.js';
import { admitTask } from './admission.js';
import type { FleetWorker } from '../fleet/worker.js';
import { hostname } from 'node:os';

/** The agent's name as a node (in a fleet and in the webhooks it sends): `fleet.node.name`, else the host name. */
const nodeName = (c: AgentConfig): string => c.fleet.node.name ?? hostname();

/** Where `listen()` bound. */
export interface ListenInfo {
  /** `http://host:port` (IPv6 hosts in brackets). */
  url: string;
  /** The bound port (the real one when `listen.port` was 0). */
  port: number;
}

/** Options of {@link Agent.close}. */
export interface CloseOptions {
  /** How long running tasks may finish before they are cancelled or requeued (default `config.shutdown.graceMs`). */
  graceMs?: number;
}

/**
 * A running agent. Create it with {@link createAgent}; serve it with {@link Agent.listen}
 * (it owns a Fastify server) or mount it into your own Fastify 5 app with
 * {@link Agent.register}; stop it with {@link Agent.close} (or `await using`).
 */
export class Agent {
  /** The parsed configuration (defaults filled). */
  readonly config: AgentConfig;
  /** The task queue (use it read-only: the HTTP API is the way in for remote callers). */
  readonly queue: TaskQueue;
  /** The JSON store (tasks, webhooks). */
  readonly store: JsonStore;
  /** The webhook dispatcher (endpoints and outbox). */
  readonly webhooks: WebhookDispatcher;
  /** Metrics, alerts, status and program cache of the node. */
  readonly node: NodeServices;
  /** The task workspaces as files (what the file routes serve), with the upload quotas of `config.files`. */
  readonly files: WorkspaceFiles;
  readonly #runtime: AgentRuntime;
  readonly #streams = new StreamRegistry();
  readonly #offForward: () => void;
  readonly #deliveries: DeliveryLog;
  readonly #closers: Array<() => Promise<void> | void>;
  #app: FastifyInstance | undefined;
  #ftp: FtpServerHandle | undefined;
  #fleet: FleetWorker | undefined;
  #url: string | undefined;
  #closing: Promise<void> | undefined;

  /** @internal Use {@link createAgent}. */
  constructor(parts: {
    config: AgentConfig;
    queue: TaskQueue;
    store: JsonStore;
    webhooks: WebhookDispatcher;
    node: NodeServices;
    closers: Array<() => Promise<void> | void>;
  }) {
    this.config = parts.config;
    this.queue = parts.queue;
    this.store = parts.store;
    this.webhooks = parts.webhooks;
    this.node = parts.node;
    this.#closers = parts.closers;
    this.#offForward = forwardTaskEvents(this.queue, this.webhooks, { source: nodeName(this.config) });
    this.#deliveries = new DeliveryLog(this.webhooks);
    const f = this.config.files;
    // Container and compose tasks see `<workspace>/work` as /work (dockerTaskLayout); process tasks the workspace itself.
    this.files = new WorkspaceFiles(join(this.config.dataDir, 'workspaces'), { maxFileBytes: f.maxFileBytes, workspaceBytes: f.workspaceBytes, agentBytes: f.agentBytes }, (id) => {
      const kind = this.queue.get(id)?.kind;
      return kind === 'container' || kind === 'compose' ? 'work' : undefined;
    });
    this.#runtime = {
      config: this.config,
      queue: this.queue,
      store: this.store,
      webhooks: this.webhooks,
      node: this.node,
      streams: this.#streams,
      artifacts: new ArtifactCache(),
      deliveries: this.#deliveries,
      workspaces: join(this.config.dataDir, 'workspaces'),
      files: this.files,
      dashboard: new DashboardFeed(this.node, this.queue),
      closing: () => this.#closing !== undefined,
    };
  }

  /** `http://host:port` once {@link Agent.listen} resolved; `undefined` before. */
  get url(): string | undefined {
    return this.#url;
  }

  /** The FTP(S) server `listen()` started when `config.ftp.enabled` (`undefined` otherwise). */
  get ftp(): FtpServerHandle | undefined {
    return this.#ftp;
  }

  /** The fleet worker when `config.fleet.enabled` (started by `listen()` or `register()`). */
  get fleet(): FleetWorker | undefined {
    return this.#fleet;
  }

  /** Starts taking fleet jobs (once): the same admission as the HTTP API, node facts from node status. */
  async #startFleet(url: string | undefined): Promise<void> {
    const f = this.config.fleet;
    if (!f.enabled || this.#fleet) return;
    // bullmq and ioredis are optional peers: absent, this rejects with a typed MissingPeerError.
    const { FleetWorker } = await importPeer('the agent\'s fleet (config fleet.enabled)', ['bullmq', 'ioredis'], () => import('../fleet/worker.js'));
    const status = this.node.status;
    const gpus = f.node.gpus ?? ((await status.get().catch(() => undefined))?.gpus?.length ?? 0);
    const worker = new FleetWorker(
      this.queue,
      {
        redis: f.redis,
        prefix: f.prefix,
        classes: f.classes,
        concurrency: f.concurrency ?? this.config.queue.concurrency,
        lockDurationMs: f.lockDurationMs,
        stalledIntervalMs: f.stalledIntervalMs,
        maxStalledCount: f.maxStalledCount,
        forwardLogs: f.forwardLogs,
        transitionDelayMs: f.transitionDelayMs,
      },
      {
        name: nodeName(this.config),
        url: f.node.url ?? url,
        labels: f.node.labels,
        gpus,
        free: async () => {
          const s = await status.get();
          return { memoryBytes: s.memory.availableBytes, cpus: s.cpu.cores * (1 - (s.cpu.utilisation ?? 0)) };
        },
      },
      (t) => {
        const a = admitTask(this.config, this.queue, t);
        return { ...t, spec: a.spec, timeoutMs: a.timeoutMs };
      },
    );
    this.#fleet = worker;
    try {
      await worker.start();
    } catch (e) {
      this.#fleet = undefined;
      await worker.close().catch(() => undefined);
      throw e;
    }
  }

  /** The Fastify instance `listen()` created (`undefined` before, or in embedded mode). */
  get server(): FastifyInstance | undefined {
    return this.#app;
  }

  /**
   * Starts a Fastify server owned by the agent on `config.listen` (body limit, request and
   * header timeouts from `config.http`) and, when `config.ftp.enabled`, the FTP(S) server
   * ({@link Agent.ftp}); resolves with the HTTP URL. Call once.
   */
  async listen(): Promise<ListenInfo> {
    if (this.#closing) throw new AgentClosedError();
    if (this.#app) return { url: this.#url!, port: this.#port() };
    const h = this.config.http;
    // Node's request timeout is per server: it is the upload limit here, and the routes hold
    // every other request to `http.requestTimeoutMs` themselves (see agentRoutes).
    const requestTimeout = Math.max(h.requestTimeoutMs, this.config.files.uploadTimeoutMs);
    const app = Fastify({
      logger: false,
      bodyLimit: h.bodyLimitBytes,
      requestTimeout,
      keepAliveTimeout: h.keepAliveTimeoutMs,
      // Idle sockets go; longer than the 15 s SSE heartbeat so a quiet follow stream stays.
      connectionTimeout: Math.max(60_000, h.requestTimeoutMs),
      return503OnClosing: true,
      forceCloseConnections: 'idle',
      // The agent answers its own 404s inside its plugin; reject odd paths early.
      routerOptions: { maxParamLength: 500 },
      // Node checks these timeouts every connectionsCheckingInterval (30 s by default): check often enough to honour them.
      http: {
        headersTimeout: h.headersTimeoutMs,
        requestTimeout,
        connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(h.headersTimeoutMs / 2))),
      },
    });
    this.#app = app;
    await app.register(agentRoutes, { runtime: this.#runtime, prefix: '', ownServer: true });
    await app.listen({ host: this.config.listen.host, port: this.config.listen.port });
    if (this.config.ftp.enabled) {
      try {
        this.#ftp = await startFtpServer({ files: this.files, queue: this.queue }, this.config.ftp);
      } catch (e) {
        this.#app = undefined;
        await app.close();
        throw e;
      }
    }
    const port = this.#port();
    const host = this.config.listen.host.includes(':') ? `[${this.config.listen.host}]` : this.config.listen.host;
    this.#url = `http://${host}:${port}`;
    await this.#startFleet(this.#url);
    return { url: this.#url, port };
  }

  /**
   * Mounts the agent's routes (public `/health`, `/status`, `/metrics`, `/openapi.json`,
   * `/docs`, and the authenticated `/v1` API) into your own Fastify 5 app, under `prefix`.
   * The routes carry their own body limits; set `requestTimeout` on your server yourself.
   */
  async register(app: FastifyInstance, options: RegisterOptions = {}): Promise<void> {
    if (this.#closing) throw new AgentClosedError();
    await app.register(agentRoutes, { runtime: this.#runtime, prefix: options.prefix ?? '' });
    await this.#startFleet(undefined);
  }

  /**
   * Stops the agent: the FTP server (if any) disconnects its clients and closes; new requests get 503; tasks running now may finish for `graceMs`
   * (default `config.shutdown.graceMs`), then the queue closes (still-running tasks are
   * cancelled, or recorded queued again with `shutdown.onTimeout: 'requeue'`); follow streams
   * end; the server closes (when the agent owns it); the webhook outbox is drained briefly
   * and closed (undelivered messages stay in the store); the store closes. Idempotent.
   */
  close(options: CloseOptions = {}): Promise<void> {
    this.#closing ??= this.#close(options.graceMs ?? this.config.shutdown.graceMs);
    return this.#closing;
  }

  /** Same as `close()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #close(graceMs: number): Promise<void> {
    // FTP clients go first: no new uploads or downloads while the agent winds down.
    await this.#ftp?.close().catch(() => undefined);
    // Fleet jobs: none taken from now; those still running after the grace go back to the fleet.
    const fleetClosed = this.#fleet?.close(graceMs).catch(() => undefined);
    const running = this.queue.list({ state: ['starting', 'running'] }).map((t) => this.queue.wait(t.id).catch(() => undefined));
    if (running.length && graceMs > 0) await within(Promise.allSettled(running), graceMs);
    await fleetClosed;
    await this.queue.close();
    // Streams of tasks that just finished send their rest and end line; the others end now.
    await this.#streams.settle(2000);
    this.#streams.endAll();
    this.#runtime.dashboard.close();
    if (this.#app) await this.#app.close();
    this.#offForward();
    this.#deliveries.close();
    for (const c of this.#closers) await Promise.resolve().then(c).catch(() => {});
    await this.webhooks.drain(2000).catch(() => false);
    await this.webhooks.close();
    this.store.close();
  }

  #port(): number {
    const a = this.#app?.server.address();
    return a && typeof a === 'object' ? a.port : 0;
  }
}

/**
 * Creates an agent: validates `config` (a `ConfigError` lists every problem with its path),
 * opens the store under `dataDir`, the queue (recovering recorded tasks), the executors, the
 * webhook dispatcher, the metric monitor and alert engine. Serve it with `listen()` or
 * `register(app)`.
 *
 * @example
 * ```ts
 * await using agent = await createAgent({
 *   dataDir: '/var/lib/smoothtask',
 *   listen: { host: '127.0.0.1', port: 7700 },
 *   auth: { tokens: [{ name: 'ci', sha256: hashToken(process.env.TOKEN!), scopes: ['read', 'submit'] }] },
 *   policy: { process: { commands: ['/usr/bin/make'] } },
 * });
 * const { url } = await agent.listen();
 * ```
 */
export async function createAgent(config: AgentConfigInput): Promise<Agent> {
  const c = validate(AgentConfigSchema, config, 'agent config');
  await mkdir(c.dataDir, { recursive: true, mode: 0o700 });
  const workspaces = join(c.dataDir, 'workspaces');
  await mkdir(workspaces, { recursive: true, mode: 0o700 });
  const store = await JsonStore.open({ dir: join(c.dataDir, 'store') });
  const closers: Array<() => Promise<void> | void> = [];
  try {
    const triggers: TaskTrigger[] = [];
    let docker: { register: (q: TaskQueue) => void } | undefined;
    if (c.executors.docker || c.executors.compose) {
      // dockerode is an optional peer: connectDocker rejects with a typed MissingPeerError without it.
      const d = await importPeer('the agent\'s docker/compose executors', ['dockerode'], () => import('../docker/index.js'));
      const engine = await d.connectDocker({ ownerId: await d.persistentOwnerId(c.dataDir) });
      triggers.push(d.dockerCleanupTrigger(engine));
      docker = {
        register: (q) => {
          const ex = d.createDockerExecutors({ engine });
          if (c.executors.docker) q.registerExecutor('container', ex.container);
          if (c.executors.compose) q.registerExecutor('compose', ex.compose);
        },
      };
    }
    const queue = new TaskQueue({
      concurrency: c.queue.concurrency,
      dataDir: workspaces,
      defaultTimeoutMs: c.queue.defaultTimeoutMs,
      killAfterMs: c.queue.killAfterMs,
      recovery: c.queue.recovery,
      onClose: c.shutdown.onTimeout,
      maxLogBytes: c.queue.maxLogBytes,
      persistence: new StoreTaskPersistence(store),
      triggers,
    });
    closers.push(() => queue.close());
    if (c.executors.process) queue.registerExecutor('process', new ProcessExecutor());
    docker?.register(queue);
    await queue.ready;
    const webhooks = await WebhookDispatcher.open({ store, network: c.webhooks.network });
    closers.push(() => webhooks.close());
    const node = await NodeServices.open(c, queue);
    // Alerts go to the webhook endpoints too (`alert.firing` / `alert.resolved`, subject `alerts`),
    // with ids stable for this node: a fleet's receivers know which node sent what.
    node.alerts.addNotifier(webhookNotifier({ dispatcher: webhooks, source: nodeName(c) }));
    // On success the agent closes these in its own order (close()); only the node services stay in its list.
    return new Agent({ config: c, queue, store, webhooks, node, closers: [() => node.close()] });
  } catch (e) {
    for (const fn of closers.reverse()) await Promise.resolve().then(fn).catch(() => {});
    store.close();
    throw e;
  }
}
