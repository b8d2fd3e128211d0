/**
 * A test client that knows the agent only through its served `GET /openapi.json`.
 *
 * Every operation is resolved from the document (by `operationId`, or by `"METHOD /path"` with
 * `{param}` templates), and every response is checked against it: the status code must be
 * documented for the operation (exactly, as `4XX`-style range, or `default`), and a JSON body
 * must validate against the documented schema for that status (ajv, JSON Schema 2020-12, the
 * dialect of OpenAPI 3.1). A mismatch throws {@link OpenApiMismatch}, which fails the test.
 */
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

/** What the client read from the document about one operation. */
export interface Operation {
  /** `operationId`, when the document gives one. */
  operationId: string | undefined;
  /** Upper-case HTTP method. */
  method: string;
  /** Path template as documented (`/v1/tasks/{id}`). */
  path: string;
  /** Documented status keys (`200`, `4XX`, `default`) -> content types documented for it. */
  responses: Map<string, string[]>;
}

/** A response that checked out against the document. */
export interface ApiResponse<T = any> {
  /** HTTP status. */
  status: number;
  /** Response headers. */
  headers: Headers;
  /** Parsed JSON for JSON bodies; the text for other bodies (unless `raw`); `undefined` when empty. */
  body: T;
  /** The fetch response (its body is consumed unless the call asked for `raw`). */
  response: Response;
  /** The operation the call resolved to. */
  operation: Operation;
}

/** Options of {@link OpenApiClient.call}. */
export interface CallOptions {
  /** Path parameters (`{id}`), encoded with encodeURIComponent. */
  params?: Record<string, string | number>;
  /** Query string values (`undefined` skipped). */
  query?: Record<string, string | number | boolean | undefined>;
  /** JSON body (serialized), or a string/Buffer sent as is with `contentType`. */
  body?: unknown;
  /** Content type of a string/Buffer body (default application/json). */
  contentType?: string;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** Bearer token for this call (overrides the client's; `null` sends none). */
  token?: string | null;
  /** Return without reading the body (streams: logs follow, artifacts); status is still checked. */
  raw?: boolean;
  /** Abort the request. */
  signal?: AbortSignal;
}

/** The document and a response disagree (or the operation is not documented). */
export class OpenApiMismatch extends Error {
  override name = 'OpenApiMismatch';
}

type Json = any;

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

/** JSON pointer escaping of one token. */
const ptr = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

/** Whether a content type is JSON (`application/json`, `application/problem+json`, ...). */
const isJsonType = (ct: string) => /^application\/([\w.+-]*\+)?json\b/i.test(ct.trim());

/** A client of the agent, built only from `GET <baseUrl>/openapi.json`. */
export class OpenApiClient {
  /** The served document. */
  readonly doc: Json;
  /** Operations by `operationId` and by `"METHOD /path"`. */
  readonly operations = new Map<string, Operation>();
  readonly #ajv: Ajv2020;
  readonly #validators = new Map<string, ValidateFunction | null>();
  /** Calls per operation key `"METHOD /path status"` (coverage of a test run). */
  readonly seen = new Map<string, number>();

  private constructor(
    readonly baseUrl: string,
    doc: Json,
    public token: string | undefined,
  ) {
    this.doc = doc;
    this.#ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false, validateFormats: true });
    addFormats.default ? (addFormats as any).default(this.#ajv) : (addFormats as any)(this.#ajv);
    // The whole document is one schema resource: `#/components/schemas/X` refs resolve in it.
    this.#ajv.addSchema({ ...doc, $id: 'openapi.json' } as object, undefined, undefined, false);
    for (const [path, item] of Object.entries<Json>(doc.paths ?? {})) {
      for (const m of METHODS) {
        const op = item?.[m];
        if (!op) continue;
        const responses = new Map<string, string[]>();
        for (const [code, r] of Object.entries<Json>(op.responses ?? {})) {
          const resolved = r?.$ref ? this.#deref(r.$ref) : r;
          responses.set(code, Object.keys(resolved?.content ?? {}));
        }
        const o: Operation = { operationId: op.operationId, method: m.toUpperCase(), path, responses };
        this.operations.set(`${o.method} ${path}`, o);
        if (op.operationId) this.operations.set(op.operationId, o);
      }
    }
  }

  /** Fetches the document from the agent and builds the client. */
  static async connect(baseUrl: string, token?: string): Promise<OpenApiClient> {
    const res = await fetch(new URL('/openapi.json', baseUrl));
    if (res.status !== 200) throw new OpenApiMismatch(`GET /openapi.json answered ${res.status}: ${(await res.text()).slice(0, 500)}`);
    const doc = (await res.json()) as Json;
    if (typeof doc.openapi !== 'string' || !doc.openapi.startsWith('3.1')) throw new OpenApiMismatch(`not an OpenAPI 3.1 document: openapi=${doc.openapi}`);
    return new OpenApiClient(baseUrl, doc, token);
  }

  #deref(ref: string): Json {
    if (!ref.startsWith('#/')) throw new OpenApiMismatch(`external $ref not supported: ${ref}`);
    let v: Json = this.doc;
    for (const t of ref.slice(2).split('/')) v = v?.[t.replace(/~1/g, '/').replace(/~0/g, '~')];
    return v;
  }

  /** The operation for an `operationId` or `"METHOD /path"`; throws when the document lacks it. */
  operation(key: string): Operation {
    const op = this.operations.get(key) ?? this.operations.get(key.replace(/^(\w+)\s+/, (_, m: string) => `${m.toUpperCase()} `));
    if (!op) throw new OpenApiMismatch(`the document has no operation ${key} (has: ${[...this.operations.keys()].filter((k) => k.includes(' ')).join(', ')})`);
    return op;
  }

  /** The documented status key that covers `status` (`201`, `2XX`, `default`), or undefined. */
  static statusKey(op: Operation, status: number): string | undefined {
    const s = String(status);
    if (op.responses.has(s)) return s;
    const range = `${s[0]}XX`;
    for (const k of op.responses.keys()) if (k.toUpperCase() === range) return k;
    return op.responses.has('default') ? 'default' : undefined;
  }

  /** Validator of the JSON body documented for (operation, status key, content type); null when none. */
  #validator(op: Operation, key: string, ct: string): ValidateFunction | null {
    const id = `${op.method} ${op.path} ${key} ${ct}`;
    if (this.#validators.has(id)) return this.#validators.get(id)!;
    const resp = this.doc.paths[op.path][op.method.toLowerCase()].responses[key];
    let pointer = `openapi.json#/paths/${ptr(op.path)}/${op.method.toLowerCase()}/responses/${ptr(key)}`;
    let r = resp;
    if (resp?.$ref) {
      pointer = `openapi.json${resp.$ref}`;
      r = this.#deref(resp.$ref);
    }
    const v = r?.content?.[ct]?.schema ? this.#ajv.compile({ $ref: `${pointer}/content/${ptr(ct)}/schema` }) : null;
    this.#validators.set(id, v);
    return v;
  }

  /** The request URL for an operation. */
  url(op: Operation, params: Record<string, string | number> = {}, query: CallOptions['query'] = {}): URL {
    const path = op.path.replace(/\{([^}]+)\}/g, (_, name: string) => {
      const v = params[name];
      if (v === undefined) throw new OpenApiMismatch(`missing path parameter ${name} of ${op.method} ${op.path}`);
      return encodeURIComponent(String(v));
    });
    const u = new URL(path, this.baseUrl);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    return u;
  }

  /**
   * Calls an operation and checks the response against the document. Throws
   * {@link OpenApiMismatch} on an undocumented status, an undocumented content type or a JSON
   * body that does not validate.
   */
  async call<T = any>(key: string, o: CallOptions = {}): Promise<ApiResponse<T>> {
    const op = this.operation(key);
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    const token = o.token === undefined ? this.token : o.token;
    if (token) headers.authorization ??= `Bearer ${token}`;
    let body: string | Buffer | undefined;
    if (o.body !== undefined) {
      if (typeof o.body === 'string' || Buffer.isBuffer(o.body)) body = o.body;
      else body = JSON.stringify(o.body);
      headers['content-type'] ??= o.contentType ?? 'application/json';
    }
    const response = await fetch(this.url(op, o.params, o.query), { method: op.method, headers, body, signal: o.signal ?? null });
    const status = response.status;
    const key2 = OpenApiClient.statusKey(op, status);
    const where = `${op.method} ${op.path} -> ${status}`;
    if (!key2) {
      const text = await response.text().catch(() => '');
      throw new OpenApiMismatch(`${where}: status not documented (documented: ${[...op.responses.keys()].join(', ')}); body: ${text.slice(0, 500)}`);
    }
    this.seen.set(`${op.method} ${op.path} ${status}`, (this.seen.get(`${op.method} ${op.path} ${status}`) ?? 0) + 1);
    const ct = (response.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    const documented = op.responses.get(key2) ?? [];
    if (status !== 204 && status !== 304 && op.method !== 'HEAD') {
      if (documented.length && ct && !documented.some((d) => d.toLowerCase() === ct || d === '*/*' || (d.endsWith('/*') && ct.startsWith(d.slice(0, -1))))) {
        const text = o.raw ? '' : await response.text().catch(() => '');
        if (o.raw) await response.body?.cancel().catch(() => {});
        throw new OpenApiMismatch(`${where}: content type ${ct} not documented (documented: ${documented.join(', ')}); body: ${text.slice(0, 300)}`);
      }
    }
    if (o.raw) return { status, headers: response.headers, body: undefined as T, response, operation: op };
    const text = await response.text();
    let parsed: unknown = text === '' ? undefined : text;
    if (text !== '' && isJsonType(ct)) {
      try {
        parsed = JSON.parse(text);
      } catch (e) {
        throw new OpenApiMismatch(`${where}: content type ${ct} but the body is not JSON: ${text.slice(0, 300)}`);
      }
      const docCt = documented.find((d) => d.toLowerCase() === ct) ?? documented.find(isJsonType);
      const v = docCt ? this.#validator(op, key2, docCt) : null;
      if (!v && !documented.length) throw new OpenApiMismatch(`${where}: a JSON body but the document describes no body for ${key2}`);
      if (v && !v(parsed)) {
        throw new OpenApiMismatch(`${where}: body does not match the documented schema: ${this.#ajv.errorsText(v.errors, { separator: '; ' })}; body: ${text.slice(0, 500)}`);
      }
    } else if (text !== '' && status >= 400 && !documented.length) {
      throw new OpenApiMismatch(`${where}: an undocumented ${ct || 'untyped'} error body: ${text.slice(0, 300)}`);
    }
    return { status, headers: response.headers, body: parsed as T, response, operation: op };
  }

  /** Like {@link call}, but throws unless the status is `expected`. */
  async expect<T = any>(expected: number | number[], key: string, o: CallOptions = {}): Promise<ApiResponse<T>> {
    const r = await this.call<T>(key, o);
    const want = Array.isArray(expected) ? expected : [expected];
    if (!want.includes(r.status)) {
      if (o.raw) await r.response.body?.cancel().catch(() => {});
      throw new OpenApiMismatch(`${key}: expected ${want.join('/')}, got ${r.status}: ${typeof r.body === 'string' ? r.body : JSON.stringify(r.body)}`.slice(0, 800));
    }
    return r;
  }
}
