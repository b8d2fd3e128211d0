/**
 * Loading the agent's configuration the way the `smoothtask agent` command does: a JSON file,
 * an optional per-environment file merged over it, `SMOOTHTASK_AGENT__*` environment variables
 * and command-line flags, validated by {@link AgentConfigSchema}; and printing it with its
 * secrets redacted.
 *
 * Precedence, lowest first: schema defaults < `agent.json` < `agent.<env>.json` <
 * `SMOOTHTASK_AGENT__*` variables < command-line flags.
 * @module
 */
import { constants as C, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors/index.js';
import { AgentConfigSchema, type AgentConfig, type AgentConfigInput } from './config.js';

/** Largest configuration file read, in bytes (1 MiB): a larger file is an error, never a long read. */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

/** Deepest nesting accepted in a configuration file or variable value (the schema needs about 5). */
export const MAX_CONFIG_DEPTH = 64;

/** Prefix of the environment variables that override configuration keys (`SMOOTHTASK_AGENT__LISTEN__PORT=8080`). */
export const ENV_OVERRIDE_PREFIX = 'SMOOTHTASK_AGENT__';

/** The environment variable naming the environment when no `env` option is given (`SMOOTHTASK_ENV=production`). */
export const ENV_NAME_VARIABLE = 'SMOOTHTASK_ENV';

/** What replaces a secret value in {@link redactConfig}'s output. */
export const REDACTED = '[redacted]';

/** Options of {@link loadAgentConfig}. */
export interface AgentConfigLoadOptions {
  /** The main configuration file (JSON). Relative paths inside it resolve against its folder. */
  configPath: string;
  /**
   * Environment name: `agent.<env>.json` next to the main file is merged over it and must exist.
   * Default: the `SMOOTHTASK_ENV` variable of `environ`; none when unset or empty.
   */
  env?: string | undefined;
  /** The environment variables read for `SMOOTHTASK_ENV` and `SMOOTHTASK_AGENT__*` overrides (default `process.env`). */
  environ?: NodeJS.ProcessEnv | undefined;
  /**
   * Highest-precedence overrides (the command line's `--port`, `--host`, `--data-dir`), as a
   * partial configuration object. Relative paths in it resolve against `cwd`.
   */
  overrides?: Record<string, unknown> | undefined;
  /** Folder that relative paths from variables and overrides resolve against (default `process.cwd()`). */
  cwd?: string | undefined;
}

/** One layer that contributed to the effective configuration, lowest precedence first. */
export interface ConfigSource {
  /** `file`, `env-file`, `env` (variables) or `flags`. */
  kind: 'file' | 'env-file' | 'env' | 'flags';
  /** The file path, or the variable names / flag names the layer came from. */
  name: string;
}

/** The result of {@link loadAgentConfig}. */
export interface LoadedAgentConfig {
  /** The effective configuration, parsed (defaults filled). */
  config: AgentConfig;
  /** The merged input before parsing (paths resolved): what to hand to `createAgent`. */
  input: AgentConfigInput;
  /** The layers merged, lowest precedence first. */
  sources: ConfigSource[];
  /** The environment name used, if any. */
  env: string | undefined;
}

type Obj = Record<string, unknown>;

/**
 * Whether `value` nests deeper than {@link MAX_CONFIG_DEPTH}, checked without recursion:
 * JSON.parse accepts any depth, but everything after it (merge, zod) recurses.
 */
function tooDeep(value: unknown): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (d >= MAX_CONFIG_DEPTH) return true;
    for (const x of Array.isArray(v) ? v : Object.values(v)) if (x !== null && typeof x === 'object') stack.push([x, d + 1]);
  }
  return false;
}
const TOO_DEEP = `nested deeper than ${MAX_CONFIG_DEPTH} levels`;
type Path = readonly (string | number)[];

const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Sets an own enumerable property, even `__proto__` (left for the strict schema to refuse). */
function put(o: Obj, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

/**
 * Merges `over` into `base`: plain objects merge key by key, everything else (arrays, scalars,
 * `null`) from `over` replaces. Neither argument is modified. `origins` records, per dotted path,
 * which source set the value last.
 * @internal
 */
export function deepMerge(base: unknown, over: unknown, origins?: Map<string, string>, source?: string, path: Path = []): unknown {
  if (!isObj(base) || !isObj(over)) {
    if (origins && source !== undefined) recordOrigins(over, origins, source, path);
    return over;
  }
  const out: Obj = {};
  for (const k of Object.keys(base)) put(out, k, base[k]);
  for (const k of Object.keys(over)) {
    put(out, k, Object.hasOwn(base, k) ? deepMerge(base[k], over[k], origins, source, [...path, k]) : over[k]);
    if (!Object.hasOwn(base, k) && origins && source !== undefined) recordOrigins(over[k], origins, source, [...path, k]);
  }
  return out;
}

/**
 * Records `source` for `path` and every key below it. Entries a later layer made stale are not
 * searched for (that would be quadratic in the number of keys): a replaced subtree no longer
 * holds those paths, so no issue is ever reported at them.
 */
function recordOrigins(v: unknown, origins: Map<string, string>, source: string, path: Path): void {
  origins.set(path.join('.'), source);
  if (isObj(v)) for (const k of Object.keys(v)) recordOrigins(v[k], origins, source, [...path, k]);
}

/**
 * Reads a JSON configuration file defensively: opened non-blocking (a FIFO cannot hang the
 * caller), refused when it is not a regular file or is larger than {@link MAX_CONFIG_FILE_BYTES},
 * and parsed as JSON (a leading BOM is ignored). The top level must be an object.
 * @throws {@link ConfigError} naming the file and the problem.
 */
export async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  const fail = (problem: string, cause?: unknown): ConfigError =>
    new ConfigError(`Cannot read the configuration file ${path}: ${problem}`, [`${path}: ${problem}`], cause === undefined ? {} : { cause });
  let fh;
  try {
    fh = await open(path, C.O_RDONLY | C.O_NONBLOCK | C.O_NOCTTY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw fail(code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : `cannot open (${code ?? String(e)})`, e);
  }
  try {
    let st: Stats;
    try {
      st = await fh.stat();
    } catch (e) {
      throw fail(`cannot stat (${(e as NodeJS.ErrnoException).code ?? String(e)})`, e);
    }
    if (st.isDirectory()) throw fail('is a directory, not a file');
    if (!st.isFile()) throw fail('is not a regular file (a FIFO, socket or device is refused)');
    if (st.size > MAX_CONFIG_FILE_BYTES) throw fail(`is ${st.size} bytes, larger than the ${MAX_CONFIG_FILE_BYTES}-byte limit`);
    // Read at most one byte past the cap, in case the file grows between stat and read.
    const buf = Buffer.alloc(MAX_CONFIG_FILE_BYTES + 1);
    let n = 0;
    for (;;) {
      let r;
      try {
        r = await fh.read(buf, n, buf.length - n, null);
      } catch (e) {
        throw fail(`cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`, e);
      }
      if (r.bytesRead === 0) break;
      n += r.bytesRead;
      if (n > MAX_CONFIG_FILE_BYTES) throw fail(`is larger than the ${MAX_CONFIG_FILE_BYTES}-byte limit`);
    }
    let text = buf.subarray(0, n).toString('utf8');
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw fail(`is not valid JSON (${(e as Error).message})`, e);
    }
    if (tooDeep(value)) throw fail(`is ${TOO_DEEP}`);
    if (!isObj(value)) throw fail(`must hold a JSON object at the top level, not ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`);
    return value;
  } finally {
    await fh.close().catch(() => {});
  }
}

/** The per-environment file next to `configPath`: `agent.json` + `production` → `agent.production.json`. */
export function envConfigPath(configPath: string, env: string): string {
  const ext = extname(configPath);
  const stem = basename(configPath, ext);
  return join(dirname(configPath), `${stem}.${env}${ext}`);
}

const ENV_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** `MAX_QUEUED` → `maxQueued`; a segment with lowercase letters is used as written. */
function keyOfSegment(seg: string): string {
  if (/[a-z]/.test(seg)) return seg;
  return seg.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * The configuration overrides in environment variables: `SMOOTHTASK_AGENT__LISTEN__PORT=8080`
 * sets `listen.port` to `8080`. A double underscore separates levels; each level in
 * `UPPER_SNAKE` becomes `camelCase` (`QUEUE__MAX_QUEUED` → `queue.maxQueued`), a level with
 * lowercase letters is taken as written. Values are parsed as JSON when they parse
 * (`8080`, `true`, `null`, `["read"]`, `"0123"`), else taken as strings. Shallower variables
 * apply first, so `…__LISTEN__PORT` wins over a `port` inside `…__LISTEN`.
 * @returns the overrides as a partial configuration object and the variable names used.
 * @throws {@link ConfigError} for a variable with an empty level (`SMOOTHTASK_AGENT__A____B`).
 */
export function envOverrides(environ: NodeJS.ProcessEnv = process.env): { overrides: Record<string, unknown>; names: string[] } {
  let overrides: Obj = {};
  const layers = envLayers(environ);
  for (const l of layers) overrides = deepMerge(overrides, l.value) as Obj;
  return { overrides, names: layers.map((l) => l.name) };
}

/** One partial configuration object per `SMOOTHTASK_AGENT__*` variable, in the order they apply. */
function envLayers(environ: NodeJS.ProcessEnv): { name: string; value: Obj }[] {
  const vars = Object.keys(environ)
    .filter((k) => k.startsWith(ENV_OVERRIDE_PREFIX) && environ[k] !== undefined)
    .map((k) => ({ k, segs: k.slice(ENV_OVERRIDE_PREFIX.length).split('__') }))
    .sort((a, b) => a.segs.length - b.segs.length || (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
  const issues: string[] = [];
  const layers: { name: string; value: Obj }[] = [];
  for (const { k, segs } of vars) {
    if (segs.some((s) => s === '')) {
      issues.push(`${k}: empty key level (a double underscore goes only between keys)`);
      continue;
    }
    const raw = environ[k]!;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
    if (tooDeep(value)) {
      issues.push(`${k}: the value is ${TOO_DEEP}`);
      continue;
    }
    for (const seg of [...segs].reverse()) {
      const o: Obj = {};
      put(o, keyOfSegment(seg), value);
      value = o;
    }
    layers.push({ name: k, value: value as Obj });
  }
  if (issues.length) throw new ConfigError(`Invalid configuration variables:\n  ${issues.join('\n  ')}`, issues);
  return layers;
}

// ---- schema walking: secret and path markers -------------------------------------------------

type Marker = 'secret' | 'path';
type Pattern = (string | '*')[];

/** Walks a zod 4 schema, collecting the paths of fields whose metadata sets `marker: true`. */
function markedPaths(schema: z.ZodType, marker: Marker): Pattern[] {
  const found: Pattern[] = [];
  const walk = (s: z.ZodType, path: Pattern): void => {
    if (path.length > 32) return;
    const meta = z.globalRegistry.get(s) as Record<string, unknown> | undefined;
    if (meta?.[marker] === true) found.push(path);
    const def = (s as unknown as { _zod: { def: Record<string, unknown> } })._zod.def;
    switch (def.type) {
      case 'object':
        for (const [k, v] of Object.entries(def.shape as Record<string, z.ZodType>)) walk(v, [...path, k]);
        break;
      case 'array':
        walk(def.element as z.ZodType, [...path, '*']);
        break;
      case 'record':
        walk(def.valueType as z.ZodType, [...path, '*']);
        break;
      case 'union':
        for (const o of def.options as z.ZodType[]) walk(o, path);
        break;
      case 'intersection':
        walk(def.left as z.ZodType, path);
        walk(def.right as z.ZodType, path);
        break;
      case 'pipe':
        walk(def.in as z.ZodType, path);
        walk(def.out as z.ZodType, path);
        break;
      default:
        if (def.innerType) walk(def.innerType as z.ZodType, path);
    }
  };
  walk(schema, []);
  return found;
}

/** Fields resolved as paths when the schema marks none with `.meta({ path: true })`. */
const DEFAULT_PATH_FIELDS: Pattern[] = [['dataDir'], ['policy', 'docker', 'mountRoots', '*']];
/** Key names whose string values are always redacted, whatever the schema says. */
const URL_PASSWORD = /^([a-z][a-z0-9+.-]*:\/\/[^/@:\s]*:)[^/@\s]*@/i;
const SECRET_KEY = /^(sha256|secret|secrets|password|passphrase|token|apiKey|privateKey|authorization)$|secret|password/i;

let pathFields: Pattern[] | undefined;
function agentPathFields(): Pattern[] {
  if (!pathFields) {
    const marked = markedPaths(AgentConfigSchema, 'path');
    pathFields = marked.length ? marked : DEFAULT_PATH_FIELDS;
  }
  return pathFields;
}

/** Applies `fn` to the value at each path matching `pattern` (`*` = every array item or key), in place. */
function mapAt(v: unknown, pattern: Pattern, fn: (x: unknown) => unknown): void {
  const [head, ...rest] = pattern;
  if (head === undefined) return;
  if (head === '*') {
    if (Array.isArray(v)) v.forEach((x, i) => (rest.length ? mapAt(x, rest, fn) : (v[i] = fn(x))));
    else if (isObj(v)) for (const k of Object.keys(v)) rest.length ? mapAt(v[k], rest, fn) : put(v, k, fn(v[k]));
    return;
  }
  if (!isObj(v) || !Object.hasOwn(v, head)) return;
  if (rest.length) mapAt(v[head], rest, fn);
  else put(v, head, fn(v[head]));
}

/** A deep copy of plain JSON data (objects built with own properties only). */
function clone(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(clone);
  if (isObj(v)) {
    const o: Obj = {};
    for (const k of Object.keys(v)) put(o, k, clone(v[k]));
    return o;
  }
  return v;
}

function resolvePaths(layer: Obj, base: string): Obj {
  const copy = clone(layer) as Obj;
  for (const p of agentPathFields()) mapAt(copy, p, (x) => (typeof x === 'string' && x !== '' && !isAbsolute(x) ? resolve(base, x) : x));
  return copy;
}

/**
 * Returns a deep copy of `config` with every secret replaced by `"[redacted]"`: fields marked
 * `.meta({ secret: true })` in {@link AgentConfigSchema} (token hashes), and, as a backstop,
 * any value under a key named like a secret (`sha256`, `secret`, `password`, `token`, …).
 * `null` and empty values are kept, so the output still shows that no secret is set.
 */
export function redactConfig(config: unknown): unknown {
  const copy = clone(config);
  const hide = (x: unknown): unknown => (x === null || x === undefined || x === '' ? x : REDACTED);
  for (const p of markedPaths(AgentConfigSchema, 'secret')) mapAt(copy, p, hide);
  const byName = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(byName);
    else if (isObj(v))
      for (const k of Object.keys(v)) {
        const x = v[k];
        if (SECRET_KEY.test(k) && (typeof x === 'string' || typeof x === 'number' || Array.isArray(x))) put(v, k, hide(x));
        // A password inside a URL (`redis://user:pass@host`): the URL stays, its password goes.
        else if (typeof x === 'string' && URL_PASSWORD.test(x)) put(v, k, x.replace(URL_PASSWORD, `$1${REDACTED}@`));
        else byName(x);
      }
  };
  byName(copy);
  return copy;
}

/** `queue.concurrency: Too small…`; an unknown key is reported at its own path. */
function issueLines(error: z.ZodError, origins: Map<string, string>): string[] {
  const originOf = (path: Path): string | undefined => {
    for (let n = path.length; n >= 0; n--) {
      const o = origins.get(path.slice(0, n).join('.'));
      if (o !== undefined) return o;
    }
    return undefined;
  };
  const line = (path: Path, message: string): string => {
    const o = originOf(path);
    return `${path.length ? path.join('.') : '(root)'}: ${message}${o ? ` (from ${o})` : ''}`;
  };
  const out: string[] = [];
  for (const i of error.issues) {
    if (i.code === 'unrecognized_keys') for (const k of i.keys) out.push(line([...i.path.map((p) => p as string | number), k], 'Unknown key (not in the configuration schema)'));
    else out.push(line(i.path.map((p) => p as string | number), i.message));
  }
  return out;
}

/**
 * Loads the agent's configuration: reads `configPath`, merges `<name>.<env>.json` (when an
 * environment is named), then `SMOOTHTASK_AGENT__*` variables, then `overrides`; resolves
 * relative paths (from files: against the file's folder; from variables and flags: against
 * `cwd`); validates the result with {@link AgentConfigSchema}.
 *
 * @throws {@link ConfigError} whose `issues` list every problem as `path: message (from source)`.
 * @example
 * ```ts
 * const { config, input } = await loadAgentConfig({ configPath: 'agent.json', env: 'production' });
 * const agent = await createAgent(input);
 * ```
 */
export async function loadAgentConfig(options: AgentConfigLoadOptions): Promise<LoadedAgentConfig> {
  const environ = options.environ ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const configPath = resolve(cwd, options.configPath);
  const envVar = environ[ENV_NAME_VARIABLE];
  const env = options.env ?? (envVar === undefined || envVar === '' ? undefined : envVar);
  if (env !== undefined && !ENV_NAME.test(env)) {
    const why = `environment name '${env}' must be 1-64 letters, digits, '-' or '_' (from ${options.env !== undefined ? '--env' : ENV_NAME_VARIABLE})`;
    throw new ConfigError(`Invalid configuration: ${why}`, [why]);
  }
  const sources: ConfigSource[] = [];
  const origins = new Map<string, string>();
  let merged: unknown = {};
  const layer = (value: Obj, source: ConfigSource): void => {
    sources.push(source);
    merged = deepMerge(merged, value, origins, source.name);
  };
  layer(resolvePaths(await readConfigFile(configPath), dirname(configPath)), { kind: 'file', name: configPath });
  if (env !== undefined) {
    const p = envConfigPath(configPath, env);
    layer(resolvePaths(await readConfigFile(p), dirname(p)), { kind: 'env-file', name: p });
  }
  // Each variable is its own layer, so an error names the variable at fault.
  for (const v of envLayers(environ)) layer(resolvePaths(v.value, cwd), { kind: 'env', name: v.name });
  if (options.overrides && Object.keys(options.overrides).length) {
    layer(resolvePaths(options.overrides, cwd), { kind: 'flags', name: 'command-line flags' });
  }
  const r = AgentConfigSchema.safeParse(merged);
  if (!r.success) {
    const issues = issueLines(r.error, origins);
    throw new ConfigError(`Invalid agent configuration (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n  ${issues.join('\n  ')}`, issues);
  }
  return { config: r.data, input: merged as AgentConfigInput, sources, env };
}
