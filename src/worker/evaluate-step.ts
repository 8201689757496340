/**
 * The worker's evaluation step: wires src/evaluation/evaluate.ts to this worker's sandbox (the
 * verification script runs in it, as the sandbox user, with a time limit), its blob store (the
 * stored artifacts, read through the object store like any reader's) and its provider gateway (the
 * judge is called through it on a token of its own, and its usage is counted as `judge`). Used when
 * a run ends and by re-grades.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { AppError } from '../errors.js';
import { type EvaluationContext, evaluate, type StoredArtifact } from '../evaluation/evaluate.js';
import { callJudge, JudgeCallError } from '../evaluation/judge-client.js';
import type { JudgeFn } from '../evaluation/judge-step.js';
import type { Evaluation, EvaluationSpec, VerificationRun } from '../evaluation/types.js';
import { emptyUsage, type UsageData, type UsageTotals } from '../events/types.js';
import type { GatewayRoute, ProviderGateway } from '../gateway/gateway.js';
import { estimateCost } from '../providers/prices.js';
import { createSimulatedJudge } from '../providers/simulated/judge.js';
import { isRealProvider, keyEnvOf, type RealProvider, UPSTREAMS } from '../providers/upstreams.js';
import type { ProviderName } from '../runtimes/types.js';
import type { RunningSandbox } from '../sandbox/driver.js';
import type { BlobStore } from '../storage/blob-store.js';
import { providerKeyFor } from '../tenancy/provider-keys.js';
import type { Redactor } from '../tenancy/redact.js';
import type { TenancyStore } from '../tenancy/store.js';

/** The evaluation's bounds (each an EVALUATION_* or JUDGE_* setting). */
export interface EvaluationSettings {
  /** The verification script's time limit. */
  scriptTimeoutMs: number;
  /** Bytes of the script's stdout and of its stderr kept. */
  maxOutputBytes: number;
  /** validation_report.json is not read past this. */
  maxReportBytes: number;
  /** One judge call's time limit. */
  judgeTimeoutMs: number;
  /** Bytes of output files shown to the judge, all together. */
  judgeMaxInputBytes: number;
  /** Evaluations kept per run (the first and the newest ones). */
  maxHistory: number;
}

export const DEFAULT_EVALUATION_SETTINGS: EvaluationSettings = {
  scriptTimeoutMs: 60_000,
  maxOutputBytes: 16 * 1024,
  maxReportBytes: 1024 * 1024,
  judgeTimeoutMs: 120_000,
  judgeMaxInputBytes: 200 * 1024,
  maxHistory: 20,
};

export interface EvaluateStepDeps {
  gateway: ProviderGateway;
  blobs: BlobStore;
  tenancy: TenancyStore;
  serverProviderKeys: Partial<Record<RealProvider, string>>;
  simulatedProvider: boolean;
  upstreams: Partial<Record<ProviderName, string>>;
  settings: EvaluationSettings;
  logger: Logger;
}

export interface EvaluateStepInput {
  runId: string;
  collection: string;
  spec: EvaluationSpec;
  /** The templated runbook: the simulated judge reads its simulate-judge block. */
  runbook: string;
  artifacts: StoredArtifact[];
  /** The run's sandbox, still there; null on a re-grade. */
  sandbox: RunningSandbox | null;
  previous: Evaluation | null;
  number: number;
  trigger: Evaluation['trigger'];
  redactor: Redactor;
  /** Each judge call's usage, as the gateway measured it (source `judge`). */
  onUsage: (usage: UsageData) => void;
  signal: AbortSignal;
}

export async function runEvaluation(deps: EvaluateStepDeps, input: EvaluateStepInput): Promise<Evaluation> {
  const judgeUsage = emptyUsage();
  let judged = false;
  const onUsage = (u: UsageData) => {
    judged = true;
    addUsage(judgeUsage, u);
    input.onUsage(u);
  };
  const judge = input.spec.judge ? await judgeFn(deps, input, onUsage).catch(unavailableJudge) : null;
  const ctx: EvaluationContext = {
    spec: input.spec,
    artifacts: input.artifacts,
    readArtifact: (rel, max) => readStored(deps.blobs, input.runId, rel, max),
    runScript: input.sandbox ? scriptRunner(deps.settings, input) : null,
    judge: judge?.call ?? null,
    previous: input.previous,
    limits: {
      maxReportBytes: deps.settings.maxReportBytes,
      judgeMaxInputBytes: deps.settings.judgeMaxInputBytes,
    },
    number: input.number,
    trigger: input.trigger,
  };
  try {
    const result = await evaluate(ctx);
    return { ...result, judge_usage: judged ? judgeUsage : null };
  } finally {
    judge?.release();
  }
}

function addUsage(t: UsageTotals, u: UsageData): void {
  t.input_tokens += u.input_tokens;
  t.output_tokens += u.output_tokens;
  t.cache_read_tokens += u.cache_read_tokens;
  t.cache_write_tokens += u.cache_write_tokens;
  if (u.cost_usd !== undefined) t.cost_usd = Math.round(((t.cost_usd ?? 0) + u.cost_usd) * 1e6) / 1e6;
  if (u.cost_estimated) t.cost_estimated = true;
}

/**
 * Read through the object store, as the API reads them: the artifacts committed by the collection
 * (on a re-grade, by another worker perhaps). A store that does not answer fails the evaluation,
 * with its message, rather than passing for a file that was never produced.
 */
function readStored(blobs: BlobStore, runId: string, rel: string, max: number): Promise<Buffer | null> {
  return blobs.readArtifactStart(runId, rel, max);
}

/** The script, under bash where the sandbox has it (Jetty's scripts are bash), else sh. */
const SCRIPT_ARGV = (script: string) => [
  'sh',
  '-c',
  'if command -v bash >/dev/null 2>&1; then exec bash -c "$1"; else exec sh -c "$1"; fi',
  'jetty-verify',
  script,
];

function scriptRunner(settings: EvaluationSettings, input: EvaluateStepInput) {
  const sandbox = input.sandbox!;
  return async (script: string): Promise<VerificationRun> => {
    const res = await sandbox.exec(SCRIPT_ARGV(script), {
      timeoutMs: settings.scriptTimeoutMs,
      maxOutput: settings.maxOutputBytes,
      env: { RESULTS_DIR: input.spec.resultsDir, HOME: '/home/agent' },
      workdir: '/app',
    });
    // Redacted before it is kept (it was already cut to maxOutput bytes when read).
    return {
      exit_code: res.exitCode,
      timed_out: res.timedOut,
      duration_ms: res.durationMs,
      output: input.redactor.text(res.stdout),
      stderr: input.redactor.text(res.stderr),
      truncated: res.truncated,
    };
  };
}

/** A gateway token routed to the judge's provider, and the function that calls it. */
async function judgeFn(
  deps: EvaluateStepDeps,
  input: EvaluateStepInput,
  onUsage: (u: UsageData) => void,
): Promise<{ call: JudgeFn; release: () => void }> {
  const judge = input.spec.judge!;
  const route = await judgeRoute(deps, input, judge.provider, (measured) => {
    const u: UsageData = { ...measured, source: 'judge' };
    const cost = estimateCost(u);
    onUsage(cost === undefined ? u : { ...u, cost_usd: cost, cost_estimated: true });
    if (cost !== undefined) {
      deps.tenancy
        .addSpend(input.collection, cost)
        .catch((err) => deps.logger.warn({ err }, 'recording the collection’s spend failed'));
    }
  });
  const token = `jrt_${randomBytes(24).toString('hex')}`;
  deps.gateway.register(token, route);
  return {
    call: (system, prompt) =>
      callJudge({
        socketPath: deps.gateway.socketPath,
        token,
        provider: judge.provider,
        model: judge.model,
        system,
        prompt,
        timeoutMs: deps.settings.judgeTimeoutMs,
        signal: input.signal,
      }),
    release: () => deps.gateway.unregister(token),
  };
}

async function judgeRoute(
  deps: EvaluateStepDeps,
  input: EvaluateStepInput,
  provider: ProviderName,
  onUsage: GatewayRoute['onUsage'],
): Promise<GatewayRoute> {
  const base = { runId: input.runId, provider, onUsage };
  if (provider === 'simulated') {
    if (!deps.simulatedProvider)
      throw judgeUnavailable('the simulated provider is switched off on this server');
    const upstream = createSimulatedJudge({ runbook: input.runbook, criteria: input.spec.criteria });
    return { ...base, baseUrl: 'http://simulated.invalid', upstream, auth: null };
  }
  const key = await providerKeyFor(deps.tenancy, input.collection, provider, {
    serverKeys: deps.serverProviderKeys,
    simulated: deps.simulatedProvider,
  });
  const baseUrl = deps.upstreams[provider];
  if (!isRealProvider(provider) || !key || !baseUrl) {
    throw judgeUnavailable(
      `collection ${input.collection} has no ${keyEnvOf(provider) ?? provider} for the judge's provider ${provider}`,
    );
  }
  return { ...base, baseUrl, upstream: (r) => fetch(r), auth: UPSTREAMS[provider].auth(key) };
}

/** A judge whose key went away since the run was accepted: the evaluation says so (status error). */
function unavailableJudge(err: unknown): { call: JudgeFn; release: () => void } {
  if (!(err instanceof AppError)) throw err;
  return {
    call: async () => {
      throw new JudgeCallError(err.message.replace(/\.$/, ''), null);
    },
    release: () => undefined,
  };
}

function judgeUnavailable(why: string): AppError {
  return new AppError(`The judge cannot be called: ${why}.`, {
    status: 400,
    type: 'invalid_request_error',
    code: 'judge_unavailable',
  });
}
