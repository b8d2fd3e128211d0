import { spawn } from 'node:child_process';
import { ComposeError, ComposeUnavailableError } from './errors.js';

/** Which compose CLI is in use. */
export interface ComposeCli {
  /** argv prefix: `['docker', 'compose']` or `['docker-compose']`. */
  argv: string[];
  /** `2` for the docker plugin, `1` for the Python docker-compose. */
  major: 1 | 2;
  /** Version string as printed. */
  version: string;
}

/** Output of one compose CLI run. */
export interface CliResult {
  /** Exit code (null when killed by a signal). */
  code: number | null;
  /** stdout and stderr interleaved, last 64 KiB. */
  output: string;
  /** stdout only. */
  stdout: string;
}

/** Runs a command, capturing output; aborting kills it. Rejects with {@link ComposeUnavailableError} when the program is missing, {@link ComposeError} when it cannot start. @internal */
export function runCli(argv: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; signal?: AbortSignal; onOutput?: (s: string) => void } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    const child = spawn(cmd!, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'], ...(opts.signal ? { signal: opts.signal } : {}) });
    let output = '';
    let stdout = '';
    const add = (s: string): void => {
      output = (output + s).slice(-65536);
      opts.onOutput?.(s);
    };
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      add(d.toString());
    });
    child.stderr.on('data', (d: Buffer) => add(d.toString()));
    child.on('error', (e) => {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') reject(new ComposeUnavailableError({ cause: e }));
      else if (e.name === 'AbortError') resolve({ code: null, output, stdout });
      else reject(new ComposeError(`${cmd} could not run: ${e.message}`, output, { cause: e }));
    });
    child.on('close', (code) => resolve({ code, output, stdout }));
  });
}

let detected: Promise<ComposeCli> | undefined;

/**
 * Detects the compose CLI: `docker compose` (v2 plugin) first, then `docker-compose` (v1).
 * The answer is cached for the process.
 *
 * @throws {@link ComposeUnavailableError} when neither works.
 */
export function detectCompose(): Promise<ComposeCli> {
  detected ??= (async () => {
    for (const argv of [['docker', 'compose'], ['docker-compose']]) {
      try {
        const r = await runCli([...argv, 'version', '--short']);
        if (r.code === 0) {
          const version = r.stdout.trim().replace(/^v/, '');
          return { argv, major: version.startsWith('1.') ? 1 : 2, version } as ComposeCli;
        }
      } catch {
        // Not installed: try the next one.
      }
    }
    detected = undefined;
    throw new ComposeUnavailableError();
  })();
  return detected;
}

/** The parts of a normalized `compose config` output this module needs. */
export interface ComposeModel {
  /** `version:` of the file, if any (an override file must repeat it for v1). */
  version?: string;
  /** Service names, and whether each has a `build:` section. */
  services: Map<string, { build: boolean }>;
  /** Networks declared in the file and whether they are external. */
  networks: Map<string, { external: boolean }>;
  /** Volumes declared in the file and whether they are external. */
  volumes: Map<string, { external: boolean }>;
}

/**
 * Reads the normalized YAML that `compose config` prints (2-space indentation, one key per
 * line) far enough to list services, networks and volumes. Not a general YAML parser: it only
 * looks at the first three indentation levels of the CLI's own canonical output.
 * @internal
 */
export function parseComposeConfig(yaml: string): ComposeModel {
  const model: ComposeModel = { services: new Map(), networks: new Map(), volumes: new Map() };
  let section = '';
  let entry = '';
  for (const raw of yaml.split('\n')) {
    const line = raw.replace(/\s+$/, '');
    if (!line || line.trimStart().startsWith('#')) continue;
    const indent = line.length - line.trimStart().length;
    const key = /^\s*([^:\s][^:]*):/.exec(line)?.[1]?.replace(/^['"]|['"]$/g, '');
    if (indent === 0) {
      section = key ?? '';
      entry = '';
      if (section === 'version') model.version = line.slice(line.indexOf(':') + 1).trim().replace(/^['"]|['"]$/g, '');
      continue;
    }
    if (indent === 2 && key) {
      entry = key;
      if (section === 'services') model.services.set(entry, { build: false });
      else if (section === 'networks') model.networks.set(entry, { external: /external:\s*true/.test(line) });
      else if (section === 'volumes') model.volumes.set(entry, { external: /external:\s*true/.test(line) });
      continue;
    }
    if (indent === 4 && key && entry) {
      if (section === 'services' && key === 'build') model.services.get(entry)!.build = true;
      if (key === 'external' && !/false/.test(line)) {
        if (section === 'networks') model.networks.get(entry)!.external = true;
        if (section === 'volumes') model.volumes.get(entry)!.external = true;
      }
    }
  }
  return model;
}

/**
 * An override file (JSON, which is YAML) that puts `labels` on every service, on the images
 * compose builds, and on every non-external network (the default one included) and volume.
 * @internal
 */
export function labelOverride(model: ComposeModel, labels: Record<string, string>): string {
  const services: Record<string, object> = {};
  for (const [name, s] of model.services) services[name] = s.build ? { labels, build: { labels } } : { labels };
  const networks: Record<string, object> = { default: { labels } };
  for (const [name, n] of model.networks) if (!n.external) networks[name] = { labels };
  const volumes: Record<string, object> = {};
  for (const [name, v] of model.volumes) if (!v.external) volumes[name] = { labels };
  const doc: Record<string, unknown> = { services, networks };
  if (Object.keys(volumes).length) doc.volumes = volumes;
  if (model.version) doc.version = model.version;
  return JSON.stringify(doc, null, 2) + '\n';
}

/** Throws a {@link ComposeError} for a failed CLI run. @internal */
export function composeFailed(what: string, r: CliResult): never {
  const lines = r.output.trim().split('\n');
  const tail = lines.slice(-6).join('\n');
  throw new ComposeError(`${what} (exit ${r.code}): ${tail}`, r.output, r.code !== null ? { exitCode: r.code } : {});
}
