import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { badRequest, notFound } from '../../errors.js';
import { artifactUrl } from '../../events/chunk-mapper.js';
import { isStreamId } from '../../events/stream-store.js';
import { collectionOf } from '../auth.js';
import type { AppDeps } from '../deps.js';
import { sendDownload } from '../ranged-download.js';
import { artifactSchema, errorEnvelopeSchema, runIdParams, runRecordSchema } from '../schemas.js';
import type { OpenStreams } from '../streams.js';

/** How long a follower's headers wait for its first event at most (a slow Redis), then go alone. */
const HEADERS_HOLD_MS = 250;

export function runRoutes(app: FastifyInstance, deps: AppDeps, streams: OpenStreams): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const runs = deps.runs;
  const metrics = deps.operations?.metrics;

  r.get(
    '/v1/runs',
    {
      schema: {
        summary: 'List runs, newest first',
        tags: ['runs'],
        querystring: z.object({
          limit: z.coerce.number().int().min(1).max(100).default(20),
          cursor: z.string().regex(/^\d+$/, 'must be the next_cursor of a previous page').optional(),
          status: z.enum(['pending', 'running', 'completed', 'failed', 'cancelled']).optional(),
          task: z.string().optional(),
          passed: z
            .enum(['true', 'false'], { error: 'must be true or false' })
            .optional()
            .describe(
              'true: runs whose evaluation passed; false: runs evaluated without passing (failed, missing or in error)',
            ),
          experiment: z.string().max(64).optional().describe("Only this experiment's runs"),
        }),
        response: {
          200: z.object({
            object: z.literal('list'),
            data: z.array(runRecordSchema),
            next_cursor: z.string().nullable(),
          }),
        },
      },
    },
    async (req) => {
      const page = await runs.list({
        collection: collectionOf(req),
        limit: req.query.limit,
        cursor: req.query.cursor === undefined ? undefined : Number(req.query.cursor),
        status: req.query.status,
        task: req.query.task,
        ...(req.query.passed ? { passed: req.query.passed === 'true' } : {}),
        ...(req.query.experiment ? { experiment: req.query.experiment } : {}),
      });
      return { object: 'list' as const, ...page };
    },
  );

  r.get(
    '/v1/runs/:id',
    {
      schema: {
        summary: 'The run record',
        tags: ['runs'],
        params: runIdParams,
        response: { 200: runRecordSchema, 404: errorEnvelopeSchema },
      },
    },
    async (req) => {
      const rec = await runs.require(req.params.id, collectionOf(req));
      // Labels added through /api/v1 (the latest value of each key).
      const labels = await runs.labels(rec.id);
      return {
        ...rec,
        labels: { ...rec.labels, ...Object.fromEntries(labels.map((l) => [l.key, l.value])) },
      };
    },
  );

  r.get(
    '/v1/runs/:id/trajectory',
    {
      schema: {
        summary: 'The whole recorded trajectory: the record, the input and every event',
        tags: ['runs'],
        params: runIdParams,
        response: {
          200: z.object({
            object: z.literal('trajectory'),
            run: runRecordSchema,
            input: z.unknown(),
            events: z.array(
              z.object({
                id: z.string(),
                type: z.string(),
                ts: z.number(),
                attempt: z.number().int().positive().optional(),
                data: z.unknown(),
              }),
            ),
          }),
          404: errorEnvelopeSchema,
        },
      },
    },
    async (req) => runs.trajectory(req.params.id, collectionOf(req)),
  );

  r.post(
    '/v1/runs/:id/cancel',
    {
      schema: {
        summary: 'Cancel a run; its sandbox is gone within seconds',
        tags: ['runs'],
        params: runIdParams,
        response: { 200: runRecordSchema, 404: errorEnvelopeSchema },
      },
    },
    async (req) => runs.cancel(req.params.id, collectionOf(req)),
  );

  r.get(
    '/v1/runs/:id/artifacts',
    {
      schema: {
        summary: 'List the files the agent left in results_dir',
        tags: ['runs'],
        params: runIdParams,
        response: {
          200: z.object({
            object: z.literal('list'),
            data: z.array(artifactSchema.extend({ url: z.string() })),
          }),
          404: errorEnvelopeSchema,
        },
      },
    },
    async (req) => {
      const rec = await runs.require(req.params.id, collectionOf(req));
      return {
        object: 'list' as const,
        data: rec.artifacts.map((a) => ({ ...a, url: artifactUrl(rec.id, a.path) })),
      };
    },
  );

  r.get(
    '/v1/runs/:id/artifacts/*',
    {
      schema: {
        summary: 'Download one artifact',
        tags: ['runs'],
        params: z.object({ id: z.string().min(1).max(64), '*': z.string() }),
      },
    },
    async (req, reply) => {
      const rec = await runs.require(req.params.id, collectionOf(req));
      const rel = req.params['*'];
      const art = rec.artifacts.find((a) => a.path === rel);
      const missing = () =>
        notFound(
          `Run ${rec.id} has no artifact "${rel}". GET /v1/runs/${rec.id}/artifacts lists them.`,
          'artifact_not_found',
        );
      if (!art) throw missing();
      const name = art.path.split('/').pop() ?? 'artifact';
      reply
        .header('content-type', art.content_type)
        .header('x-content-sha256', art.sha256)
        .header('content-disposition', `attachment; filename*=UTF-8''${encodeURIComponent(name)}`);
      // Streamed from the blob store; a Range request gets its bytes (206).
      const sent = await sendDownload(req, reply, {
        size: art.size,
        etag: art.sha256,
        open: (range) => deps.blobs.openArtifact(rec.id, art.path, range),
      });
      if (!sent) throw missing();
      return sent;
    },
  );

  r.get(
    '/v1/runs/:id/events',
    {
      schema: {
        summary: 'Server-sent events of the run; Last-Event-ID resumes exactly after that event',
        description:
          'Named events (`event:` is the event type, `id:` its stream id, `data:` the JSON event). Ends after the terminal event (run.completed, run.failed or run.cancelled).',
        tags: ['runs'],
        params: runIdParams,
        querystring: z.object({ after: z.string().optional() }),
        headers: z.looseObject({ 'last-event-id': z.string().optional() }),
        response: { 404: errorEnvelopeSchema, 503: errorEnvelopeSchema },
      },
    },
    async (req, reply) => {
      const id = req.params.id;
      await runs.requireVisible(id, collectionOf(req));
      const after = req.headers['last-event-id'] ?? req.query.after ?? '0';
      if (!isStreamId(after)) {
        throw badRequest(
          `Last-Event-ID "${after}" is not an event id of this stream. Use the id: of the last event you received.`,
          'Last-Event-ID',
        );
      }
      await runs.checkResumePoint(id, after);
      runs.assertFollowerRoom();
      // The headers go with the first event (one socket write, not two), or alone once there is
      // nothing to send yet.
      const sse = streams.start(reply, 200, { 'x-request-id': String(req.id) }, HEADERS_HOLD_MS);
      let first = true;
      try {
        for await (const ev of runs.follow(id, after, sse.signal, () => sse.flush())) {
          // Every follower of the run sends this same event: it is encoded once for all of them.
          await sse.sendShared(ev, () => ({ id: ev.id, event: ev.type, data: JSON.stringify(ev) }));
          if (first) {
            first = false;
            metrics?.eventStreamFirstEvent.observe(reply.elapsedTime / 1000);
          }
        }
      } catch (err) {
        req.log.error({ err, runId: id }, 'event stream failed');
      } finally {
        sse.end();
      }
    },
  );
}
