/**
 * Re-grades ended runs (POST /v1/runs/{id}/evaluate) from what they left: the stored artifacts and
 * the stored validation_report.json. It never re-runs the agent, and the sandbox is gone, so a
 * programmatic re-grade re-checks the REQUIRED OUTPUT FILES and carries the verification script's
 * run (made in the sandbox) over; a rubric re-grade asks the judge again, maybe another one, and
 * may apply another threshold.
 */
import { type Job, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { EvaluationSpec } from '../evaluation/types.js';
import { JOBS } from '../queue/catalog.js';
import { EVALUATE_QUEUE, type RedisKeys } from '../queue/keys.js';
import { closeRedis } from '../queue/redis-close.js';
import { isRedisConnectionError } from '../queue/redis-outage.js';
import type { RunService } from '../queue/run-service.js';
import { Redactor } from '../tenancy/redact.js';
import { type EvaluateStepDeps, runEvaluation } from './evaluate-step.js';
import { evaluationWarnings } from './evaluation-outcome.js';

export interface RegradeWorkerDeps extends EvaluateStepDeps {
  redis: Redis;
  keys: RedisKeys;
  runs: RunService;
  logger: Logger;
  concurrency?: number;
}

export class RegradeWorker {
  private worker: Worker | undefined;
  private connection: Redis | undefined;

  constructor(private readonly deps: RegradeWorkerDeps) {}

  async start(): Promise<void> {
    const { deps } = this;
    this.connection = deps.redis.duplicate({ maxRetriesPerRequest: null });
    this.connection.on('error', () => undefined);
    this.worker = new Worker(EVALUATE_QUEUE, (job) => this.process(job), {
      connection: this.connection,
      prefix: deps.keys.bullPrefix(),
      concurrency: deps.concurrency ?? 2,
    });
    this.worker.on('error', (err) => {
      if (!isRedisConnectionError(err)) deps.logger.error({ err }, 're-grade queue worker error');
    });
  }

  async stop(): Promise<void> {
    // Forced: with Redis gone a graceful close waits for ever. A re-grade cut short is stalled
    // and done again by the next worker (it checks whether its evaluation was recorded already).
    await this.worker?.close(true);
    if (this.connection) await closeRedis(this.connection);
  }

  private async process(job: Job): Promise<void> {
    const parsed = JOBS.evaluate.schema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`invalid evaluate job: ${parsed.error.message}`);
    const { runId, number, judge, threshold } = parsed.data;
    const { deps } = this;
    const log = deps.logger.child({ runId, evaluation: number });
    const [rec, input] = await Promise.all([deps.runs.get(runId), deps.runs.input(runId)]);
    const stored = input && 'resultsDir' in input ? input.evaluation : null;
    if (!rec || !input || !('runbook' in input) || !stored) {
      throw new UnrecoverableError(`run ${runId} has no evaluation to make again`);
    }
    // Made already (a job retried after recording it): nothing to do.
    if ((rec.evaluation?.number ?? 0) >= number) return;
    const spec: EvaluationSpec = {
      ...stored,
      ...(judge ? { judge } : {}),
      ...(threshold ? { threshold } : {}),
    };
    const evaluation = await runEvaluation(deps, {
      runId,
      collection: rec.collection,
      spec,
      runbook: input.runbook,
      artifacts: rec.artifacts,
      sandbox: null,
      previous: rec.evaluation,
      number,
      trigger: 'regrade',
      redactor: new Redactor({}),
      onUsage: () => undefined,
      signal: AbortSignal.timeout(deps.settings.judgeTimeoutMs + 30_000),
    });
    await deps.runs.recordEvaluation(runId, evaluation, deps.settings.maxHistory);
    log.info(
      {
        passed: evaluation.passed,
        status: evaluation.status,
        warnings: evaluationWarnings(evaluation).map((w) => w.code),
      },
      'run re-graded',
    );
  }
}
