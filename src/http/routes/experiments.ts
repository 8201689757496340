/**
 * A/B experiments (docs/evaluation.md): the same runbook on several variants (agent, model,
 * provider, jetty fields) × repeats, every run graded by the same grader, and per-variant figures
 * computed from the runs' records. Collection-scoped like runs.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { notFound } from '../../errors.js';
import type { SseStream } from '../../events/sse.js';
import { TERMINAL_STATUSES } from '../../events/types.js';
import { type RunFacts, type VariantFigures, variantFigures } from '../../experiments/figures.js';
import { resolveAssets } from '../../jetty/assets.js';
import { asInitParamsError, chatRequestOf, mergeInitParams } from '../../jetty/workflow.js';
import { type ExperimentRecord, type NewExperiment, newExperimentId } from '../../queue/experiment-store.js';
import { collectionOf } from '../auth.js';
import type { AppDeps } from '../deps.js';
import {
  checkExperimentSize,
  type ExperimentRequest,
  experimentRequestSchema,
  type PlannedExperiment,
  planExperiment,
  runbookBase,
} from '../experiment-plan.js';
import { collectionContext } from '../preflight.js';
import { type ChatRequest, errorEnvelopeSchema } from '../schemas.js';
import type { OpenStreams } from '../streams.js';

const DEFAULT_BOUNDS = { maxRuns: 60, maxVariants: 10 };
/** How often the progress stream looks at the runs again. */
const PROGRESS_POLL_MS = 1000;

const idParams = z.object({ id: z.string().max(64) });

const variantFiguresSchema = z.looseObject({
  name: z.string(),
  agent: z.string(),
  model: z.string(),
  provider: z.string(),
  runs: z.number(),
  completed: z.number(),
  ended: z.number(),
  passed: z.number(),
  pass_rate: z.number().nullable(),
  pass_rate_ci: z.tuple([z.number(), z.number()]).nullable(),
  mean_score: z.number().nullable(),
  median_duration_ms: z.number().nullable(),
  mean_cost_usd: z.number().nullable(),
  tokens: z.number(),
  mean_tokens: z.number().nullable(),
  run_ids: z.array(z.string()),
});

const experimentViewSchema = z.looseObject({
  id: z.string(),
  object: z.literal('experiment'),
  status: z.enum(['running', 'completed', 'cancelled']),
  created_at: z.string(),
  repeats: z.number(),
  grader: z.looseObject({
    kind: z.string().nullable(),
    judge_model: z.string().nullable(),
    judge_provider: z.string().nullable(),
  }),
  variants: z.array(variantFiguresSchema),
});

type ExperimentView = z.infer<typeof experimentViewSchema>;

export function experimentRoutes(app: FastifyInstance, deps: AppDeps, streams: OpenStreams): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const bounds = deps.defaults.experiments ?? DEFAULT_BOUNDS;

  r.post(
    '/v1/experiments',
    {
      schema: {
        summary: 'Start an A/B experiment: a runbook on each variant × repeats, graded by one grader',
        tags: ['experiments'],
        body: experimentRequestSchema,
        response: { 201: experimentViewSchema, 400: errorEnvelopeSchema, 404: errorEnvelopeSchema },
      },
    },
    async (req, reply) => {
      const { exp, queued } = await startExperiment(deps, req.body, collectionOf(req), bounds);
      req.log.info({ experiment: exp.id, runs: queued }, 'experiment queued');
      reply.code(201);
      return view(deps, (await deps.runs.experiments.get(exp.id, exp.collection))!);
    },
  );

  r.get(
    '/v1/experiments/:id',
    {
      schema: {
        summary: "An experiment's figures per variant, computed from its runs' records",
        tags: ['experiments'],
        params: idParams,
        response: { 200: experimentViewSchema, 404: errorEnvelopeSchema },
      },
    },
    async (req) => view(deps, await requireExperiment(deps, req.params.id, collectionOf(req))),
  );

  r.post(
    '/v1/experiments/:id/cancel',
    {
      schema: {
        summary: 'Cancel what is left of an experiment: its runs not yet ended are cancelled',
        tags: ['experiments'],
        params: idParams,
        response: { 200: experimentViewSchema, 404: errorEnvelopeSchema },
      },
    },
    async (req) => {
      const found = await requireExperiment(deps, req.params.id, collectionOf(req));
      // Flag first, then read the runs: a run queued after this read sees the flag (queueRuns).
      await deps.runs.experiments.cancel(found.id);
      const exp = (await deps.runs.experiments.get(found.id, found.collection))!;
      for (const { id } of exp.runs) await cancelIfRunning(deps, id, exp.collection);
      return view(deps, exp);
    },
  );

  r.get(
    '/v1/experiments/:id/events',
    {
      schema: {
        summary: 'Server-sent progress of an experiment: an `experiment` event each time a figure changes',
        description:
          'Each event is the whole GET /v1/experiments/{id} answer. The stream ends after the one whose status is completed or cancelled.',
        tags: ['experiments'],
        params: idParams,
        response: { 404: errorEnvelopeSchema },
      },
    },
    async (req, reply) => {
      const exp = await requireExperiment(deps, req.params.id, collectionOf(req));
      const sse = streams.start(reply, 200, { 'x-request-id': String(req.id) });
      try {
        await streamProgress(deps, exp, sse);
      } catch (err) {
        req.log.error({ err, experiment: exp.id }, 'experiment stream failed');
      } finally {
        sse.end();
      }
    },
  );
}

/** Plans every variant (nothing is queued when one is wrong), then queues the runs. */
async function startExperiment(
  deps: AppDeps,
  body: ExperimentRequest,
  collection: string,
  bounds: { maxRuns: number; maxVariants: number },
): Promise<{ exp: NewExperiment; queued: number }> {
  checkExperimentSize(body, bounds);
  const ctx = await collectionContext(deps, collection);
  const base = await baseRequest(deps, body, ctx.collection);
  const filePaths = (base.jetty?.file_paths as unknown[] | undefined) ?? [];
  const assets = await resolveAssets(filePaths, {
    collection: ctx.collection,
    runs: deps.runs,
    uploads: deps.uploads,
    param: 'file_paths',
  });
  const planned = planExperiment(base, body, deps, ctx, assets);
  const exp: NewExperiment = {
    id: newExperimentId(),
    object: 'experiment',
    collection: ctx.collection,
    created_at: new Date().toISOString(),
    repeats: body.repeats,
    variants: planned.variants.map(({ name, plan }) => ({
      name,
      agent: plan.job.agent,
      model: plan.job.model,
      provider: plan.job.provider,
    })),
    grader: planned.grader,
  };
  return { exp, queued: await queueRuns(deps, exp, planned) };
}

/** Sends the experiment each time it changes, until it is no longer running or the client leaves. */
async function streamProgress(deps: AppDeps, exp: ExperimentRecord, sse: SseStream): Promise<void> {
  let last = '';
  for (let n = 0; !sse.signal.aborted; n++) {
    const current = await deps.runs.experiments.get(exp.id, exp.collection);
    if (!current) return;
    const v = await view(deps, current);
    const text = JSON.stringify(v);
    if (text !== last) await sse.send({ id: String(n), event: 'experiment', data: text });
    last = text;
    if (v.status !== 'running') return;
    await sleep(PROGRESS_POLL_MS, sse.signal);
  }
}

/** The request every variant starts from: the runbook given, or the task's workflow (its runs are that task's). */
async function baseRequest(deps: AppDeps, body: ExperimentRequest, collection: string): Promise<ChatRequest> {
  if (body.runbook !== undefined) return runbookBase({ ...body, runbook: body.runbook });
  const task = await deps.tasks.get(collection, body.task!);
  const submitted = {
    ...(body.template_variables ? { vars: body.template_variables } : {}),
    ...(body.file_paths ? { file_paths: body.file_paths } : {}),
  };
  const init = mergeInitParams(task.workflow, submitted);
  try {
    return chatRequestOf(task.workflow, init, {
      collection,
      task: task.name,
    });
  } catch (err) {
    throw asInitParamsError(err);
  }
}

/**
 * Queues every run, repeat by repeat so the variants move forward together. A cancel arriving
 * meanwhile stops it: no more are queued, and one queued just as the cancel read the list is
 * cancelled here. Returns how many were queued.
 */
async function queueRuns(deps: AppDeps, exp: NewExperiment, planned: PlannedExperiment): Promise<number> {
  await deps.runs.experiments.create(exp);
  let queued = 0;
  for (let i = 0; i < exp.repeats; i++) {
    for (const { name, plan } of planned.variants) {
      if (await deps.runs.experiments.cancelledAt(exp.id)) return queued;
      const { record } = await deps.runs.create(
        { ...plan.job, labels: { ...plan.job.labels, experiment: exp.id, variant: name } },
        {
          collection: plan.collection,
          task: plan.task,
          initParams: plan.initParams,
          warnings: plan.warnings,
        },
      );
      await deps.runs.experiments.addRun(exp.id, { id: record.id, variant: name });
      queued++;
      if (await deps.runs.experiments.cancelledAt(exp.id))
        await cancelIfRunning(deps, record.id, exp.collection);
    }
  }
  return queued;
}

async function cancelIfRunning(deps: AppDeps, id: string, collection: string): Promise<void> {
  const rec = await deps.runs.get(id);
  if (rec && !TERMINAL_STATUSES.includes(rec.status)) await deps.runs.cancel(id, collection);
}

async function requireExperiment(deps: AppDeps, id: string, collection: string): Promise<ExperimentRecord> {
  const exp = await deps.runs.experiments.get(id, collection);
  if (!exp) throw notFound(`No experiment ${id} in this collection. POST /v1/experiments starts one.`);
  return exp;
}

/** The experiment with each variant's figures, from its runs' records as they are now. */
async function view(deps: AppDeps, exp: ExperimentRecord): Promise<ExperimentView> {
  const records = await Promise.all(exp.runs.map(async (r) => ({ ...r, rec: await deps.runs.get(r.id) })));
  const variants = exp.variants.map((v) => {
    const mine = records.filter((r) => r.variant === v.name);
    const facts: RunFacts[] = mine.flatMap((r) => (r.rec ? [r.rec as RunFacts] : []));
    const figures: VariantFigures = variantFigures(v.name, facts);
    // Runs still to be queued (a POST under way) count as runs too; once cancelled, only those queued.
    return {
      ...v,
      ...figures,
      runs: exp.cancelled_at ? mine.length : exp.repeats,
      run_ids: mine.map((r) => r.id),
    };
  });
  const allEnded =
    exp.runs.length === exp.variants.length * exp.repeats &&
    records.every((r) => r.rec && TERMINAL_STATUSES.includes(r.rec.status));
  return {
    id: exp.id,
    object: 'experiment',
    status: exp.cancelled_at ? 'cancelled' : allEnded ? 'completed' : 'running',
    created_at: exp.created_at,
    repeats: exp.repeats,
    grader: exp.grader,
    variants,
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((res) => {
    const t = setTimeout(res, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        res();
      },
      { once: true },
    );
  });
}
