/**
 * The pre-flight's part for evaluation: how the run will be scored (src/evaluation/plan.ts), and,
 * when the simulated provider plays the judge, that its simulate-judge block is well formed.
 */
import { badRequest } from '../errors.js';
import {
  DEFAULT_JUDGE,
  type JudgeDefaults,
  type PlannedEvaluation,
  planEvaluation,
} from '../evaluation/plan.js';
import { validateJudgeScript } from '../providers/simulated/judge.js';
import type { ResolvedRunbook } from '../runbook/resolve.js';
import type { ProviderName } from '../runtimes/types.js';
import type { ChatRequest } from './schemas.js';

export function planRunEvaluation(opts: {
  resolved: ResolvedRunbook;
  jetty: NonNullable<ChatRequest['jetty']>;
  run: { model: string; provider: ProviderName };
  available: ReadonlySet<ProviderName>;
  judge: JudgeDefaults | undefined;
  sysIndex: number;
}): PlannedEvaluation {
  const { resolved } = opts;
  const planned = planEvaluation({
    frontmatter: resolved.frontmatter,
    jetty: opts.jetty,
    body: resolved.renderedBody,
    resultsDir: resolved.resultsDir,
    requiredOutputs: resolved.requiredOutputs,
    primaryOutputs: resolved.primaryOutputs,
    run: opts.run,
    available: opts.available,
    defaults: opts.judge ?? DEFAULT_JUDGE,
    frontmatterParam: `messages[${opts.sysIndex}].content.frontmatter`,
  });
  if (planned.spec?.judge?.provider === 'simulated') {
    const script = validateJudgeScript(resolved.renderedRunbook);
    if (!script.ok)
      throw badRequest(script.message, `messages[${opts.sysIndex}].content`, 'invalid_simulate_script');
  }
  return planned;
}
