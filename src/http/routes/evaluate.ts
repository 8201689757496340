/**
 * POST /v1/runs/{id}/evaluate: grades an ended run again from what it left (its stored artifacts
 * and validation_report.json), never re-running the agent; optionally with another judge or
 * threshold. A worker does it (the judge is behind its gateway); this answers once it is recorded,
 * or 202 when that takes longer than the wait asked for.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { badRequest, conflict } from '../../errors.js';
import { regradeJudge } from '../../evaluation/plan.js';
import { JUDGE_PROVIDERS, type JudgeSpec, thresholdSchema } from '../../evaluation/types.js';
import type { RunView } from '../../queue/run-service.js';
import type { ProviderName } from '../../runtimes/types.js';
import { collectionOf } from '../auth.js';
import type { AppDeps } from '../deps.js';
import { collectionContext } from '../preflight.js';
import { errorEnvelopeSchema, runIdParams, runRecordSchema } from '../schemas.js';

const MAX_WAIT_SEC = 600;
const POLL_MS = 250;

const regradeBodySchema = z
  .object({
    judge_model: z
      .string()
      .min(1)
      .max(200)
      .optional()
      .describe('Another judge for a rubric runbook (its provider must be usable by the collection)'),
    judge_provider: z
      .enum(JUDGE_PROVIDERS as [ProviderName, ...ProviderName[]])
      .optional()
      .describe(
        "The judge's provider; default: the run's own when it serves the model, else the model's own",
      ),
    threshold: thresholdSchema.optional().describe('Another pass threshold for a rubric runbook'),
    wait_sec: z
      .number()
      .int()
      .min(0)
      .max(MAX_WAIT_SEC)
      .optional()
      .describe('How long to wait for the new evaluation before answering 202 (default REGRADE_WAIT_SEC)'),
  })
  .strict();

type RegradeBody = z.infer<typeof regradeBodySchema>;

const acceptedSchema = z.object({
  id: z.string(),
  status: z.literal('queued'),
  evaluation_number: z.number().int(),
  message: z.string(),
});

export function evaluateRoutes(app: FastifyInstance, deps: AppDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.post(
    '/v1/runs/:id/evaluate',
    {
      schema: {
        summary: 'Grade an ended run again from its stored files (docs/evaluation.md)',
        tags: ['runs'],
        params: runIdParams,
        body: regradeBodySchema.optional(),
        response: {
          200: runRecordSchema,
          202: acceptedSchema,
          400: errorEnvelopeSchema,
          404: errorEnvelopeSchema,
          409: errorEnvelopeSchema,
        },
      },
    },
    async (req, reply) => {
      const collection = collectionOf(req);
      const body = req.body ?? {};
      const rec = await deps.runs.require(req.params.id, collection);
      const judge = await checkRegrade(deps, rec, body);
      const number = (rec.evaluation?.number ?? 0) + 1;
      await deps.runs.requestEvaluation({
        runId: rec.id,
        number,
        judge,
        threshold: body.threshold ?? null,
      });
      const waitSec = body.wait_sec ?? deps.defaults.evaluation?.regradeWaitSec ?? 60;
      const done = await waitForEvaluation(deps, rec.id, number, waitSec * 1000, () => reply.raw.destroyed);
      if (done) return done;
      reply.code(202);
      return {
        id: rec.id,
        status: 'queued' as const,
        evaluation_number: number,
        message: `The re-grade is queued; GET /v1/runs/${rec.id} shows it as evaluation ${number} once it is made.`,
      };
    },
  );
}

/** What makes a re-grade impossible, as a 409 or a 400 naming the field; else the judge to use (null: the stored one). */
async function checkRegrade(deps: AppDeps, rec: RunView, body: RegradeBody): Promise<JudgeSpec | null> {
  if (rec.status === 'pending' || rec.status === 'running') {
    throw conflict(
      `Run ${rec.id} is ${rec.status}; it is graded when it ends. Re-grade it after that.`,
      'run_not_ended',
    );
  }
  if (rec.status === 'cancelled') {
    throw conflict(`Run ${rec.id} was cancelled; a cancelled run is not graded.`, 'run_cancelled');
  }
  const input = await deps.runs.input(rec.id);
  const spec = input && 'resultsDir' in input ? input.evaluation : null;
  if (!spec) {
    throw badRequest(
      `Run ${rec.id}'s runbook declares no evaluation (frontmatter \`evaluation: programmatic\` or \`rubric\`), so there is nothing to grade.`,
      null,
      'no_evaluation',
    );
  }
  const asked = body.judge_model ?? body.judge_provider ?? body.threshold;
  if (asked !== undefined && spec.kind !== 'rubric') {
    const param = body.judge_model ? 'judge_model' : body.judge_provider ? 'judge_provider' : 'threshold';
    throw badRequest(
      `Run ${rec.id} is graded programmatically (its verification script or REQUIRED OUTPUT FILES); ${param} applies to rubric runbooks only. Leave it out.`,
      param,
      'not_rubric',
    );
  }
  if (!body.judge_model && !body.judge_provider) return null;
  const { providers } = await collectionContext(deps, rec.collection);
  return regradeJudge({
    model: body.judge_model ?? spec.judge?.model ?? rec.model,
    provider: body.judge_provider,
    runProvider: rec.provider,
    available: providers,
  });
}

/** The run once its evaluation `number` is recorded; null when that takes longer than `ms` or the caller left. */
async function waitForEvaluation(
  deps: AppDeps,
  id: string,
  number: number,
  ms: number,
  // The response, not the request: a request's stream is done (destroyed) once its body is read.
  gone: () => boolean,
): Promise<RunView | null> {
  const until = Date.now() + ms;
  for (;;) {
    const rec = await deps.runs.get(id);
    if (rec && (rec.evaluation?.number ?? 0) >= number) return rec;
    if (Date.now() >= until || gone()) return null;
    await new Promise((res) => setTimeout(res, Math.min(POLL_MS, Math.max(0, until - Date.now()))));
  }
}
