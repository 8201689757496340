import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { DEFAULT_SNAPSHOT, SNAPSHOTS } from '../../environments/snapshots.js';
import { MODELS } from '../../providers/models.js';
import { listRuntimes } from '../../runtimes/registry.js';
import { collectionOf } from '../auth.js';
import type { AppDeps } from '../deps.js';
import { collectionContext } from '../preflight.js';

export function metaRoutes(app: FastifyInstance, deps: AppDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/healthz',
    {
      config: { auth: 'public' },
      schema: {
        summary: 'Liveness',
        tags: ['health'],
        response: { 200: z.object({ status: z.literal('ok') }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  r.get(
    '/readyz',
    {
      config: { auth: 'public' },
      schema: {
        summary: 'Readiness: Redis, and Docker on workers',
        tags: ['health'],
        response: {
          200: z.object({ status: z.literal('ready'), checks: z.record(z.string(), z.boolean()) }),
          503: z.object({ status: z.literal('not_ready'), checks: z.record(z.string(), z.boolean()) }),
        },
      },
    },
    async (_req, reply) => {
      const checks = await deps.readiness();
      const ok = Object.values(checks).every(Boolean);
      if (ok) return { status: 'ready' as const, checks };
      return reply.code(503).send({ status: 'not_ready' as const, checks });
    },
  );

  r.get(
    '/v1/runtimes',
    {
      schema: {
        summary: 'The runtimes this server runs: CLI version, providers, capabilities',
        tags: ['runtimes'],
        response: {
          200: z.object({
            object: z.literal('list'),
            data: z.array(
              z.object({
                id: z.string(),
                object: z.literal('runtime'),
                cli: z.object({ package: z.string(), version: z.string() }),
                image: z.string(),
                default_model: z.string(),
                providers: z.array(z.object({ id: z.string(), available: z.boolean() })),
                capabilities: z.object({
                  token_usage: z.boolean(),
                  cost: z.boolean(),
                  streaming: z.enum(['message', 'delta']),
                  mcp_servers: z.boolean(),
                  resume: z.boolean(),
                }),
              }),
            ),
          }),
        },
      },
    },
    async (req) => {
      const { providers } = await collectionContext(deps, collectionOf(req));
      return {
        object: 'list' as const,
        data: listRuntimes().map((rt) => ({
          id: rt.name,
          object: 'runtime' as const,
          cli: { package: rt.cliPackage, version: rt.cliVersion },
          image: rt.image,
          default_model: rt.defaultModel,
          providers: rt.providers.map((p) => ({ id: p, available: providers.has(p) })),
          capabilities: { ...rt.capabilities },
        })),
      };
    },
  );

  r.get(
    '/v1/snapshots',
    {
      schema: {
        summary:
          'The environments a run can name with `snapshot`: what each has, its size, the runtimes that run on it',
        tags: ['runtimes'],
        response: {
          200: z.object({
            object: z.literal('list'),
            data: z.array(
              z.object({
                id: z.string(),
                object: z.literal('snapshot'),
                default: z.boolean().describe('The environment of a run that names none'),
                description: z.string(),
                image: z.string(),
                available: z
                  .boolean()
                  .describe("Whether a worker's engine has the image (false: no worker has reported it)"),
                python: z
                  .string()
                  .nullable()
                  .describe('Its Python version, as the image records it; null: none'),
                size_bytes: z.number().nullable(),
                runtimes: z
                  .array(z.string())
                  .describe('Runtimes a worker has checked on this image and found able to run there'),
                reported_at: z.string().nullable(),
              }),
            ),
          }),
        },
      },
    },
    async () => {
      const known = (await deps.environments?.listSnapshots()) ?? new Map();
      return {
        object: 'list' as const,
        data: SNAPSHOTS.filter((s) => deps.defaults.sandbox.snapshots.includes(s.name)).map((s) => {
          const info = known.get(s.name);
          const python = info?.labels.python;
          return {
            id: s.name,
            object: 'snapshot' as const,
            default: s.name === DEFAULT_SNAPSHOT,
            description: info?.labels.description ?? s.description,
            image: s.image,
            available: info?.imageId != null,
            python: python && python !== 'none' ? python : null,
            size_bytes: info?.sizeBytes ?? null,
            runtimes: info?.runtimes ?? [],
            reported_at: info?.reportedAt ?? null,
          };
        }),
      };
    },
  );

  r.get(
    '/v1/models',
    {
      schema: {
        summary: 'Models, OpenAI-style: slugs per provider, with the runtimes that can use each',
        tags: ['runtimes'],
        response: {
          200: z.object({
            object: z.literal('list'),
            data: z.array(
              z.object({
                id: z.string(),
                object: z.literal('model'),
                created: z.number(),
                owned_by: z.string(),
                runtimes: z.array(z.string()),
                available: z.boolean(),
              }),
            ),
          }),
        },
      },
    },
    async (req) => {
      const { providers } = await collectionContext(deps, collectionOf(req));
      const runtimes = listRuntimes();
      const data = [];
      const seen = new Set<string>();
      const entries = [
        ...MODELS,
        // Each runtime's default, under the provider it uses when nothing names one.
        ...runtimes.map((rt) => ({ id: rt.defaultModel, provider: rt.providers[0]! })),
      ];
      for (const m of entries) {
        const key = `${m.provider}:${m.id}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const users = runtimes.filter((rt) => rt.providers.includes(m.provider)).map((rt) => rt.name);
        if (users.length === 0) continue;
        data.push({
          id: m.id,
          object: 'model' as const,
          created: 0,
          owned_by: m.provider,
          runtimes: users,
          available: providers.has(m.provider),
        });
      }
      return { object: 'list' as const, data };
    },
  );
}
