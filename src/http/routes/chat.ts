import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError } from '../../errors.js';
import { artifactUrl, ChunkMapper, completionId, toChatUsage } from '../../events/chunk-mapper.js';
import { emptyUsage, TERMINAL_STATUSES } from '../../events/types.js';
import { resolveAssets } from '../../jetty/assets.js';
import type { RunRecord } from '../../queue/run-store.js';
import { providerKeyFor } from '../../tenancy/provider-keys.js';
import { collectionOf } from '../auth.js';
import { checkDailyLimit } from '../budget-preflight.js';
import type { AppDeps } from '../deps.js';
import { forward, planPassthrough } from '../passthrough.js';
import { type CollectionContext, collectionContext, planRun } from '../preflight.js';
import { type ChatRequest, chatRequestSchema, errorEnvelopeSchema } from '../schemas.js';
import type { OpenStreams } from '../streams.js';

const jettyMetadata = z.looseObject({ trajectory_id: z.string(), status: z.string() });

export function chatRoutes(app: FastifyInstance, deps: AppDeps, streams: OpenStreams): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post(
    '/v1/chat/completions',
    {
      schema: {
        summary:
          'Run a runbook (with a `jetty` block), or pass a chat call through to its provider (without one)',
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
      const ctx = await collectionContext(deps, collectionOf(req));
      if (!req.body.jetty) return passthrough(req.body, String(req.id), reply, deps, ctx);
      const assets = await resolveAssets(req.body.jetty.file_paths ?? [], {
        collection: ctx.collection,
        runs: deps.runs,
        uploads: deps.uploads,
        param: 'jetty.file_paths',
      });
      const plan = planRun(req.body, deps, ctx, { assets });
      const { record } = await deps.runs.create(plan.job, {
        collection: plan.collection,
        task: plan.task,
        idempotencyKey: req.headers['idempotency-key'],
        initParams: plan.initParams,
        warnings: plan.warnings,
      });
      const runId = record.id;
      const created = Math.floor(Date.parse(record.created_at) / 1000);
      req.log.info({ runId, agent: plan.job.agent, provider: plan.job.provider }, 'run queued');

      if (plan.stream) {
        const sse = streams.start(reply, 200, {
          'x-request-id': String(req.id),
          'x-jetty-trajectory-id': runId,
        });
        const mapper = new ChunkMapper({
          runId,
          model: plan.job.model,
          created,
          primaryOutputs: record.primary_outputs,
        });
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

      // Until the run ends, the hint's deadline, or the client leaving.
      const left = new AbortController();
      reply.raw.on('close', () => left.abort());
      const rec = await deps.runs.waitForEnd(runId, plan.collection, plan.timeoutHintSec * 1000, left.signal);
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
    ...(rec.primary_outputs?.length ? { primary_outputs: rec.primary_outputs } : {}),
    ...(rec.warnings?.length ? { warnings: rec.warnings } : {}),
    ...(rec.network ? { network: rec.network } : {}),
    ...(rec.error ? { error: rec.error } : {}),
    ...(rec.evaluation ? { evaluation: rec.evaluation } : {}),
  };
}

/**
 * A request without a `jetty` block: passed to the provider its model names and answered as the
 * provider answered, recorded as a one-step run under the task `_chat`.
 */
async function passthrough(
  body: ChatRequest,
  requestId: string,
  reply: FastifyReply,
  deps: AppDeps,
  ctx: CollectionContext,
): Promise<void> {
  const target = planPassthrough(body.model, ctx);
  // A plain call spends like a run: a collection past its daily limit is refused before it.
  checkDailyLimit(ctx.budget, ctx.collection);
  const key = await providerKeyFor(deps.tenancy, ctx.collection, target.provider, {
    serverKeys: deps.serverProviderKeys,
    simulated: deps.simulatedProvider,
  });
  const rec = await deps.runs.recordPassthrough({
    collection: ctx.collection,
    model: target.model,
    provider: target.provider,
    task: '_chat',
    request: body as Record<string, unknown>,
  });
  reply.hijack();
  const res = reply.raw;
  res.setHeader('x-request-id', requestId);
  res.setHeader('x-jetty-trajectory-id', rec.id);
  const ctl = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) ctl.abort();
  });
  const started = Date.now();
  let outcome: Awaited<ReturnType<typeof forward>> | undefined;
  let failure: string | undefined;
  try {
    outcome = await forward(target, body, res, { key, url: deps.upstreamUrl }, ctl.signal);
  } catch (err) {
    failure = ctl.signal.aborted
      ? 'The client went away before the provider answered.'
      : `The provider could not be reached: ${(err as Error).message}`;
    if (!res.headersSent) {
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          error: { message: failure, type: 'server_error', param: null, code: 'provider_unreachable' },
        }),
      );
    } else {
      res.destroy();
    }
  }
  // The record, after the caller has its answer: a Redis hiccup here never costs them the call.
  const usage = { ...emptyUsage() };
  if (outcome?.usage) {
    usage.input_tokens = outcome.usage.input_tokens;
    usage.output_tokens = outcome.usage.output_tokens;
    usage.cache_read_tokens = outcome.usage.cache_read_tokens;
    usage.cache_write_tokens = outcome.usage.cache_write_tokens;
    usage.cost_usd = outcome.usage.cost_usd ?? null;
    usage.cost_estimated = outcome.usage.cost_estimated ?? false;
    await deps.runs.events.append(rec.id, { type: 'usage', data: outcome.usage });
    if (outcome.usage.cost_usd !== undefined)
      await deps.tenancy.addSpend(ctx.collection, outcome.usage.cost_usd);
  }
  if (outcome?.text)
    await deps.runs.events.append(rec.id, { type: 'agent.message', data: { text: outcome.text } });
  const duration_ms = Date.now() - started;
  const ok = outcome !== undefined && outcome.status < 400;
  const error = ok
    ? null
    : {
        code: outcome ? `provider_http_${outcome.status}` : 'provider_unreachable',
        message: outcome
          ? `The provider answered HTTP ${outcome.status}: ${outcome.error ?? ''}`.trim()
          : (failure ?? ''),
      };
  await deps.runs.store.transition(rec.id, ['running'], ok ? 'completed' : 'failed', {
    ended_at: new Date().toISOString(),
    duration_ms,
    usage,
    final_text: outcome?.text ?? null,
    error,
    timings: { queue_ms: 0, sandbox_start_ms: null, agent_ms: duration_ms, collect_ms: null },
  });
  await deps.runs.finish(
    rec.id,
    ok
      ? {
          type: 'run.completed',
          data: { final_text: outcome?.text ?? '', exit_code: null, usage, duration_ms },
        }
      : { type: 'run.failed', data: { error: error!, exit_code: null, usage, duration_ms } },
  );
}
