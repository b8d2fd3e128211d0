import { SmoothtaskError, type SmoothtaskErrorOptions } from '../errors/index.js';

/**
 * Thrown when the Docker Engine cannot be reached (daemon down, socket missing, permission
 * denied). `socketPath` names where the client looked.
 */
export class DockerUnavailableError extends SmoothtaskError {
  /** The socket path or URL the client tried. */
  readonly socketPath: string;
  /**
   * Creates the error.
   * @param socketPath where the client looked
   * @param options cause (the connection error)
   */
  constructor(socketPath: string, options: SmoothtaskErrorOptions = {}) {
    const why = options.cause instanceof Error ? `: ${options.cause.message}` : '';
    super('ERR_DOCKER_UNAVAILABLE', `Docker Engine is not reachable at ${socketPath}${why} (is dockerd running? scripts/docker-up.sh starts it)`, options);
    this.socketPath = socketPath;
  }
}

/** A Docker Engine API call failed for a reason other than the engine being down. */
export class DockerError extends SmoothtaskError {
  /** The HTTP status the engine answered with, when there was one. */
  readonly statusCode?: number;
  /**
   * Creates the error.
   * @param message what failed
   * @param options cause and the HTTP status
   */
  constructor(message: string, options: SmoothtaskErrorOptions & { statusCode?: number } = {}) {
    super('ERR_DOCKER', message, options);
    if (options.statusCode !== undefined) this.statusCode = options.statusCode;
  }
}

/** A Dockerfile failed to build. `log` holds the build output up to the failure. */
export class DockerBuildError extends SmoothtaskError {
  /** Build output (stream lines and the error detail), last 64 KiB. */
  readonly log: string;
  /**
   * Creates the error.
   * @param message what failed
   * @param log build output
   * @param options cause
   */
  constructor(message: string, log: string, options: SmoothtaskErrorOptions = {}) {
    super('ERR_DOCKER_BUILD', message, options);
    this.log = log;
  }
}

/** A compose file is invalid or `docker compose up` failed. `output` is what the CLI printed. */
export class ComposeError extends SmoothtaskError {
  /** The compose CLI's stderr/stdout, last 64 KiB. */
  readonly output: string;
  /** The CLI's exit code, when it ran. */
  readonly exitCode?: number;
  /**
   * Creates the error.
   * @param message what failed
   * @param output CLI output
   * @param options cause and exit code
   */
  constructor(message: string, output: string, options: SmoothtaskErrorOptions & { exitCode?: number } = {}) {
    super('ERR_COMPOSE', message, options);
    this.output = output;
    if (options.exitCode !== undefined) this.exitCode = options.exitCode;
  }
}

/** Neither `docker compose` (v2) nor `docker-compose` (v1) is installed. */
export class ComposeUnavailableError extends SmoothtaskError {
  /**
   * Creates the error.
   * @param options cause
   */
  constructor(options: SmoothtaskErrorOptions = {}) {
    super('ERR_COMPOSE_UNAVAILABLE', 'Neither `docker compose` (v2) nor `docker-compose` (v1) was found on PATH', options);
  }
}

/** A requested host port is held by another task or by a listening socket on the host. */
export class PortCollisionError extends SmoothtaskError {
  /** The host port asked for. */
  readonly port: number;
  /** Who holds it: `task <id>` or `process <pid> (<comm>)` or `socket inode <n>`. */
  readonly holder: string;
  /**
   * Creates the error.
   * @param port the host port
   * @param holder who holds it
   */
  constructor(port: number, holder: string) {
    super('ERR_PORT_COLLISION', `Host port ${port} is already in use by ${holder}`);
    this.port = port;
    this.holder = holder;
  }
}

/** The outputs of a task exceed the configured size cap; no archive is kept. */
export class OutputTooLargeError extends SmoothtaskError {
  /** The cap in bytes. */
  readonly limitBytes: number;
  /** Bytes seen when the cap was crossed (at least `limitBytes + 1`). */
  readonly seenBytes: number;
  /**
   * Creates the error.
   * @param limitBytes the cap
   * @param seenBytes bytes seen when the cap was crossed
   */
  constructor(limitBytes: number, seenBytes: number) {
    super('ERR_OUTPUT_TOO_LARGE', `Task outputs exceed the ${limitBytes}-byte cap (at least ${seenBytes} bytes)`);
    this.limitBytes = limitBytes;
    this.seenBytes = seenBytes;
  }
}

/** The owner id file of `persistentOwnerId` cannot be read or created, or holds no valid id. */
export class DockerOwnerIdError extends SmoothtaskError {
  /** The file. */
  readonly path: string;
  /**
   * Creates the error.
   * @param path the owner id file
   * @param why what is wrong
   * @param options cause and errno
   */
  constructor(path: string, why: string, options: SmoothtaskErrorOptions = {}) {
    super('ERR_DOCKER_OWNER_ID', `Owner id file ${path}: ${why}`, options);
    this.path = path;
  }
}

/** Cleanup of a task's resources (executor cleanup, cleanup trigger) left some behind. */
export class DockerCleanupError extends SmoothtaskError {
  /** The task id. */
  readonly taskId: string;
  /** Each removal that failed, as `kind id: message`. */
  readonly failures: string[];
  /**
   * Creates the error.
   * @param taskId the task
   * @param failures each removal that failed
   */
  constructor(taskId: string, failures: string[]) {
    super('ERR_DOCKER_CLEANUP', `Cleanup of task ${taskId} left resources behind: ${failures.join('; ')}`);
    this.taskId = taskId;
    this.failures = failures;
  }
}
