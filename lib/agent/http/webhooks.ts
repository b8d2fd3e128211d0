/**
 * Webhook listener routes: register (secret answered once; the address policy applies), list,
 * remove, and the recent delivery attempts of an endpoint.
 * @module
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createAddressGuard } from '../../webhook/ssrf.js';
import type { DeliveryEvent, Endpoint, WebhookDispatcher } from '../../webhook/dispatcher.js';
import { AgentError, PolicyViolationError } from '../errors.js';
import { ErrorBodySchema } from './errors.js';
import type { AgentRuntime } from './routes.js';

const E = ErrorBodySchema;
const EndpointId = z.string().min(1).max(100).regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, . _ - (starting with a letter or digit)');

/** @internal Recent delivery attempts per endpoint (a bounded ring each, in memory). */
export class DeliveryLog {
  readonly #byEndpoint = new Map<string, DeliveryEvent[]>();
  readonly #max: number;
  readonly #off: () => void;
  /** Listens to `dispatcher`'s deliveries, keeping the last `max` per endpoint. */
  constructor(dispatcher: WebhookDispatcher, max = 100) {
    this.#max = max;
    this.#off = dispatcher.onDelivery((e) => {
      const list = this.#byEndpoint.get(e.endpointId) ?? [];
      list.push(e);
      if (list.length > this.#max) list.splice(0, list.length - this.#max);
      this.#byEndpoint.set(e.endpointId, list);
    });
  }
  /** Recent attempts of an endpoint, newest last. */
  of(endpointId: string): DeliveryEvent[] {
    return [...(this.#byEndpoint.get(endpointId) ?? [])];
  }
  /** Forgets an endpoint's attempts. */
  forget(endpointId: string): void {
    this.#byEndpoint.delete(endpointId);
  }
  /** Stops listening. */
  close(): void {
    this.#off();
  }
}

const EndpointOut = z
  .object({
    id: z.string(),
    url: z.string(),
    types: z.array(z.string()).optional(),
    subjects: z.array(z.string()).optional(),
    disabled: z.object({ at: z.number(), reason: z.string() }).optional(),
    createdAt: z.number(),
  })
  .meta({ id: 'WebhookEndpoint', description: 'A registered endpoint (its secret is answered only when it is created).' });

const DeliveryOut = z
  .object({
    endpointId: z.string(),
    msgId: z.string(),
    type: z.string(),
    orderingKey: z.string(),
    attempt: z.number(),
    ok: z.boolean(),
    status: z.number().optional(),
    error: z.string().optional(),
    nextAttemptAt: z.number().optional(),
    permanent: z.literal(true).optional(),
    durationMs: z.number(),
  })
  .meta({ id: 'WebhookDelivery' });

const publicEndpoint = (e: Endpoint): z.infer<typeof EndpointOut> => ({
  id: e.id,
  url: e.url,
  ...(e.types ? { types: e.types } : {}),
  ...(e.subjects ? { subjects: e.subjects } : {}),
  ...(e.disabled ? { disabled: e.disabled } : {}),
  createdAt: e.createdAt,
});

/** @internal Registers the webhook routes. */
export function webhookRoutes(app: FastifyInstance, rt: AgentRuntime): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const security = [{ bearer: [] }];
  const guard = createAddressGuard(rt.config.webhooks.network);

  /** Refuses (403, rule `webhooks.network`) a URL whose host is, or now resolves to, an address the policy refuses. */
  async function checkAddress(url: URL): Promise<void> {
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    let addresses: string[];
    if (isIP(host)) addresses = [host];
    else {
      try {
        addresses = (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
      } catch {
        return; // not resolvable now: checked again at each connect
      }
    }
    const bad = addresses.find((a) => !guard.allowed(a));
    if (bad !== undefined) {
      throw new PolicyViolationError('webhooks.network', `webhook URL host ${url.hostname} resolves to ${bad}, which the webhook network policy refuses`);
    }
  }

  r.post(
    '/v1/webhooks',
    {
      config: { scope: 'admin' },
      bodyLimit: 16 * 1024,
      schema: {
        summary: 'Register a webhook listener',
        description: 'Answers the signing secret (Standard Webhooks `whsec_...`) once. 403 ERR_POLICY (rule webhooks.network) when the address policy refuses the host.',
        tags: ['webhooks'],
        security,
        body: z
          .object({
            url: z.url({ protocol: /^https?$/ }).max(2048),
            types: z.array(z.string().min(1).max(100)).max(50).optional().describe('Event types; a trailing * matches a prefix (task.*)'),
            id: EndpointId.optional(),
          })
          .strict(),
        response: { 201: z.object({ endpoint: EndpointOut, secret: z.string() }), 400: E, 401: E, 403: E, 409: E, 413: E, 415: E },
      },
    },
    async (request, reply) => {
      const b = request.body;
      if (b.id !== undefined && rt.webhooks.endpoints().some((e) => e.id === b.id)) {
        throw new AgentError('ERR_WEBHOOK_EXISTS', `A webhook endpoint with id '${b.id}' already exists`, { status: 409 });
      }
      await checkAddress(new URL(b.url));
      const ep = await rt.webhooks.addEndpoint({ url: b.url, ...(b.types ? { types: b.types } : {}), ...(b.id ? { id: b.id } : {}) });
      return reply.code(201).header('location', `${app.prefix}/v1/webhooks/${ep.id}`).send({ endpoint: publicEndpoint(ep), secret: ep.secret });
    },
  );

  r.get(
    '/v1/webhooks',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'List webhook listeners (without secrets)',
        tags: ['webhooks'],
        security,
        response: { 200: z.object({ items: z.array(EndpointOut), pending: z.record(z.string(), z.number()) }), 401: E, 403: E },
      },
    },
    async () => ({ items: rt.webhooks.endpoints().map(publicEndpoint), pending: rt.webhooks.pending() }),
  );

  const Params = z.object({ id: EndpointId }).strict();
  const known = (id: string) => {
    if (!rt.webhooks.endpoints().some((e) => e.id === id)) throw new AgentError('ERR_WEBHOOK_NOT_FOUND', `No webhook endpoint with id '${id}'`, { status: 404 });
  };

  r.delete(
    '/v1/webhooks/:id',
    {
      config: { scope: 'admin' },
      schema: { summary: 'Remove a webhook listener (its undelivered messages are dropped)', tags: ['webhooks'], security, params: Params, response: { 204: z.null().describe('Removed (no body)'), 400: E, 401: E, 403: E, 404: E } },
    },
    async (request, reply) => {
      known(request.params.id);
      await rt.webhooks.removeEndpoint(request.params.id);
      rt.deliveries.forget(request.params.id);
      return reply.code(204).send(null);
    },
  );

  r.get(
    '/v1/webhooks/:id/deliveries',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'Recent delivery attempts of a listener (last 100, newest last)',
        tags: ['webhooks'],
        security,
        params: Params,
        response: { 200: z.object({ items: z.array(DeliveryOut), pending: z.number() }), 400: E, 401: E, 403: E, 404: E },
      },
    },
    async (request) => {
      known(request.params.id);
      return { items: rt.deliveries.of(request.params.id), pending: rt.webhooks.pending()[request.params.id] ?? 0 };
    },
  );
}
