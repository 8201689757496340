import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError } from '../../errors.js';
import { artifactUrl, ChunkMapper, completionId, toChatUsage } from '../../events/chunk-mapper.js';
import { TERMINAL_STATUSES } from '../../events/types.js';
import type { RunRecord } from '../../queue/run-store.js';
import type { AppDeps } from '../deps.js';
import { planRun } from '../preflight.js';
import { chatRequestSchema, errorEnvelopeSchema } from '../schemas.js';
import type { OpenStreams } from '../streams.js';

const jettyMetadata = z.looseObject({ trajectory_id: z.string(), status: z.string() });

export function chatRoutes(app: FastifyInstance, deps: AppDeps, streams: OpenStreams): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post(
    '/v1/chat/completions',
    {
      schema: {
        summary: 'Run a runbook (OpenAI Chat Completions, with a `jetty` block)',
        description:
          "The runbook is the system message. `stream: true` answers `text/event-stream` of `chat.completion.chunk` objects (the first at once, carrying `jetty_metadata.trajectory_id`; the agent's words as `delta.content`; one line per tool call as `delta.reasoning_content`; a last chunk with `finish_reason`, `usage` and `jetty_metadata`; then `data: [DONE]`). `stream: false` waits up to `jetty.timeout_hint` seconds: 200 with a `chat.completion`, 202 while the run goes on, 424 when the run failed.",
        tags: ['chat'],
        headers: z.looseObject({ 'idempotency-key': z.string().max(256).optional() }),
        body: chatRequestSchema,
        response: {
          200: z.looseObject({ id: z.string(), object: z.string(), jetty_metadata: jettyMetadata }),
          202: z.looseObject({ id: z.string(), object: z.string(), jetty_metadata: jettyMetadata }),
          400: errorEnvelopeSchema,
          413: errorEnvelopeSchema,
          422: errorEnvelopeSchema,
          424: errorEnvelopeSchema.extend({ jetty_metadata: jettyMetadata }),
        },
      },
    },
    async (req, reply) => {
      const plan = planRun(req.body, deps);
      const { record } = await deps.runs.create(plan.job, {
        collection: plan.collection,
        task: plan.task,
        idempotencyKey: req.headers['idempotency-key'],
      });
      const runId = record.id;
      const created = Math.floor(Date.parse(record.created_at) / 1000);
      req.log.info({ runId, agent: plan.job.agent, provider: plan.job.provider }, 'run queued');

      if (plan.stream) {
        const sse = streams.start(reply, 200, {
          'x-request-id': String(req.id),
          'x-jetty-trajectory-id': runId,
        });
        const mapper = new ChunkMapper({ runId, model: plan.job.model, created });
        try {
          await sse.send({ data: JSON.stringify(mapper.first(record.status)) });
          // A disconnect aborts only this reader: the run goes on (cancel is explicit).
          for await (const ev of deps.runs.follow(runId, '0', sse.signal)) {
            const m = mapper.map(ev);
            for (const c of m.chunks) await sse.send({ data: JSON.stringify(c) });
            if (m.error) await sse.send({ data: JSON.stringify({ error: m.error }) });
            if (m.final) {
              await sse.send({ data: '[DONE]' });
              break;
            }
          }
        } catch (err) {
          req.log.error({ err, runId }, 'chat stream failed');
          const e = {
            message:
              'The server lost the run’s event stream; the run itself goes on. Follow it at /v1/runs/' +
              runId +
              '/events.',
            type: 'server_error',
            code: 'stream_failed',
            param: null,
          };
          await sse.send({ data: JSON.stringify({ error: e }) }).catch(() => undefined);
        } finally {
          sse.end();
        }
        return;
      }

      const rec = await waitForEnd(deps, runId, plan.timeoutHintSec, reply.raw);
      if (!TERMINAL_STATUSES.includes(rec.status)) {
        return reply.code(202).send({
          id: completionId(runId),
          object: 'chat.completion',
          created,
          model: rec.model,
          choices: [],
          jetty_metadata: {
            trajectory_id: runId,
            status: rec.status,
            events_url: `/v1/runs/${runId}/events`,
            run_url: `/v1/runs/${runId}`,
          },
        });
      }
      const meta = metadataOf(rec);
      if (rec.status !== 'completed') {
        const error = rec.error ?? { code: 'run_cancelled', message: 'The run was cancelled.' };
        throw new AppError(
          `The run ${rec.status === 'cancelled' ? 'was cancelled' : 'failed'}: ${error.message}`,
          {
            status: 424,
            type: 'server_error',
            code: error.code,
            details: { jetty_metadata: meta },
          },
        );
      }
      return reply.code(200).send({
        id: completionId(runId),
        object: 'chat.completion',
        created,
        model: rec.model,
        choices: [
          { index: 0, message: { role: 'assistant', content: rec.final_text ?? '' }, finish_reason: 'stop' },
        ],
        usage: toChatUsage(rec.usage),
        jetty_metadata: meta,
      });
    },
  );
}

function metadataOf(rec: RunRecord) {
  return {
    trajectory_id: rec.id,
    status: rec.status,
    artifacts: rec.artifacts.map((a) => ({ ...a, url: artifactUrl(rec.id, a.path) })),
    ...(rec.missing_outputs.length ? { missing_outputs: rec.missing_outputs } : {}),
    ...(rec.error ? { error: rec.error } : {}),
  };
}

/** Waits for the run's terminal event, the hint's deadline, or the client leaving. */
async function waitForEnd(
  deps: AppDeps,
  runId: string,
  hintSec: number,
  res: { on(ev: 'close', fn: () => void): unknown },
): Promise<RunRecord> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), hintSec * 1000);
  res.on('close', () => ctl.abort());
  try {
    for await (const ev of deps.runs.follow(runId, '0', ctl.signal)) {
      if (ev.type === 'run.completed' || ev.type === 'run.failed' || ev.type === 'run.cancelled') break;
    }
  } finally {
    clearTimeout(timer);
    ctl.abort();
  }
  return deps.runs.require(runId);
}
