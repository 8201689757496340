/**
 * A collection's own API keys, managed with one of them: list (never a key, only its prefix),
 * create (the key is in this answer and nowhere else, ever), revoke (at once; a revoked key is
 * never accepted again). Rotating a key needs no shell on the server.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { badRequest } from '../../errors.js';
import { collectionOf } from '../auth.js';
import type { AppDeps } from '../deps.js';

const keyInfo = z.object({
  id: z.string(),
  collection: z.string(),
  name: z.string(),
  prefix: z.string(),
  created_at: z.string(),
  last_used_at: z.string().nullable(),
});

export function keyRoutes(app: FastifyInstance, deps: AppDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/v1/keys',
    {
      schema: {
        summary: 'Your collection’s API keys (ids, names, prefixes, times; never a key)',
        tags: ['keys'],
        response: { 200: z.object({ object: z.literal('list'), data: z.array(keyInfo) }) },
      },
    },
    async (req) => ({ object: 'list' as const, data: await deps.tenancy.listApiKeys(collectionOf(req)) }),
  );

  r.post(
    '/v1/keys',
    {
      schema: {
        summary: 'Make another API key for your collection: the answer is the only time it is shown',
        tags: ['keys'],
        body: z.object({ name: z.string().max(100).optional() }).optional(),
        response: { 201: keyInfo.extend({ key: z.string() }) },
      },
    },
    async (req, reply) => {
      const made = await deps.tenancy.createApiKey(collectionOf(req), { name: req.body?.name });
      return reply.code(201).send(made);
    },
  );

  r.delete(
    '/v1/keys/:id',
    {
      schema: {
        summary: 'Revoke one of your collection’s keys, at once (the key in use may revoke itself)',
        tags: ['keys'],
        params: z.object({ id: z.string().max(64) }),
        response: { 200: z.object({ id: z.string(), revoked: z.literal(true) }) },
      },
    },
    async (req) => {
      const collection = collectionOf(req);
      const keys = await deps.tenancy.listApiKeys(collection);
      if (keys.length === 1 && keys[0]!.id === req.params.id) {
        throw badRequest(
          'This is the collection’s last key: revoking it would lock everyone out. Make another first (POST /v1/keys).',
          'id',
          'last_key',
        );
      }
      await deps.tenancy.revokeApiKey(collection, req.params.id);
      return { id: req.params.id, revoked: true as const };
    },
  );
}
