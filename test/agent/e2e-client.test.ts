// The OpenAPI client of the e2e tests can fail: against a small Fastify app whose document lies
// on purpose (a body that breaks its schema, an undocumented status, an undocumented content
// type, a dangling $ref), every call that disagrees with the document throws OpenApiMismatch,
// and the calls that agree pass.
import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import { serializerCompiler, validatorCompiler, jsonSchemaTransform, jsonSchemaTransformObject, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpenApiClient, OpenApiMismatch } from './openapi-client.js';

let app: FastifyInstance;
let url: string;
beforeAll(async () => {
  app = Fastify();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  await app.register(swagger, { openapi: { openapi: '3.1.0', info: { title: 'liar', version: '1' } }, transform: jsonSchemaTransform, transformObject: jsonSchemaTransformObject });
  const Item = z.object({ id: z.string(), n: z.number().int().nullable() }).meta({ id: 'Item' });
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get('/items/:id', { schema: { operationId: 'getItem', params: z.object({ id: z.string() }), response: { 200: z.object({ item: Item }), 404: z.object({ error: z.string() }) } } }, async (req, reply) => {
    const id = req.params.id;
    // What the document promises, for most ids.
    if (id === 'missing') return reply.code(404).send({ error: 'no such item' });
    // Lies: a body outside the schema (sent raw, past the serializer), a status the document lacks, a text body.
    if (id === 'bad-body') return reply.code(200).type('application/json').serializer((x) => JSON.stringify(x)).send({ item: { id: 7, n: 'x' } } as never);
    if (id === 'teapot') return (reply as unknown as { code(n: number): typeof reply }).code(418).send({ error: 'short and stout' } as never);
    if (id === 'text') return reply.code(200).type('text/plain').serializer(String).send('plain' as never);
    return { item: { id, n: id.length } };
  });
  app.get('/openapi.json', async () => app.swagger());
  await app.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
});
afterAll(async () => {
  await app.close();
});

describe('OpenApiClient (the e2e tests’ client) rejects what its document does not describe', () => {
  it('passes responses that match, by operationId and by METHOD /path', async () => {
    const api = await OpenApiClient.connect(url);
    expect((await api.expect(200, 'getItem', { params: { id: 'a/b' } })).body).toEqual({ item: { id: 'a/b', n: 3 } });
    expect((await api.expect(404, 'GET /items/{id}', { params: { id: 'missing' } })).body).toEqual({ error: 'no such item' });
  });

  it('throws on a body outside the schema, an undocumented status, an undocumented content type, an unknown operation', async () => {
    const api = await OpenApiClient.connect(url);
    await expect(api.call('getItem', { params: { id: 'bad-body' } })).rejects.toThrow(/does not match the documented schema/);
    await expect(api.call('getItem', { params: { id: 'teapot' } })).rejects.toThrow(/418: status not documented/);
    await expect(api.call('getItem', { params: { id: 'text' } })).rejects.toThrow(/content type text\/plain not documented/);
    await expect(api.call('expect', { params: { id: 'text' } }).catch((e: unknown) => e)).resolves.toBeInstanceOf(OpenApiMismatch);
    expect(() => api.operation('DELETE /items/{id}')).toThrow(OpenApiMismatch);
    // A wrong status is reported by expect() even when documented.
    await expect(api.expect(200, 'getItem', { params: { id: 'missing' } })).rejects.toThrow(/expected 200, got 404/);
  });

  it('throws when a documented $ref points nowhere', async () => {
    const api = await OpenApiClient.connect(url);
    delete (api.doc.components as { schemas: Record<string, unknown> }).schemas.Item;
    await expect(api.call('getItem', { params: { id: 'x' } })).rejects.toThrow(/can't resolve reference/);
  });
});
