/**
 * Decides, before a run is queued, how it will be scored: which kind, from which script or table,
 * by which judge, and whether a failed score fails the run. A judge that cannot be called (no key
 * for its provider) is refused here, naming the field to change, rather than found out at the end.
 */
import { badRequest } from '../errors.js';
import type { RunWarning } from '../events/types.js';
import { formFor, providersOfForm } from '../providers/model-slugs.js';
import type { ProviderName } from '../runtimes/types.js';
import { objectiveOf, passThreshold, rubricCriteria, verificationScript } from './runbook.js';
import { type EvaluationSpec, JUDGE_PROVIDERS, type JudgeSpec } from './types.js';

/** The server's settings for judges (JUDGE_MODEL, JUDGE_PROVIDER). */
export interface JudgeDefaults {
  model: string;
  /** undefined: the judge model's own provider (or the run's, when that serves it). */
  provider: ProviderName | undefined;
}

export const DEFAULT_JUDGE: JudgeDefaults = { model: 'claude-sonnet-4-6', provider: undefined };

export interface EvaluationFields {
  judge_model?: unknown;
  judge_provider?: unknown;
  require_pass?: unknown;
}

export interface PlanEvaluationInput {
  /** Frontmatter `evaluation`, `judge_model`, `judge_provider`, `require_pass`. */
  frontmatter: { evaluation?: string | undefined } & EvaluationFields;
  /** The request's own (jetty block) fields; they win over the frontmatter's. */
  jetty: EvaluationFields;
  /** The templated body: the script, the rubric and the threshold are read from it. */
  body: string;
  resultsDir: string;
  requiredOutputs: string[];
  primaryOutputs: string[];
  /** The run's agent model and provider: the judge must not silently be the same model. */
  run: { model: string; provider: ProviderName };
  /** The providers the collection can use. */
  available: ReadonlySet<ProviderName>;
  defaults: JudgeDefaults;
  /** Where the frontmatter's fields are, for error params (`messages[0].content.frontmatter`). */
  frontmatterParam: string;
}

export interface PlannedEvaluation {
  spec: EvaluationSpec | null;
  warnings: RunWarning[];
}

export function planEvaluation(input: PlanEvaluationInput): PlannedEvaluation {
  const kind = input.frontmatter.evaluation;
  const requirePass = checkRequirePass(input);
  const warnings: RunWarning[] = [];
  if (kind !== 'programmatic' && kind !== 'rubric') {
    if (requirePass) {
      throw badRequest(
        '`require_pass` needs an evaluation to pass: give the runbook `evaluation: programmatic` (a verification script or REQUIRED OUTPUT FILES) or `evaluation: rubric` (a rubric table) in its frontmatter.',
        'jetty.require_pass',
      );
    }
    return { spec: null, warnings };
  }
  const judge = kind === 'rubric' ? resolveJudge(input, warnings) : null;
  if (
    kind === 'programmatic' &&
    (input.jetty.judge_model !== undefined || input.frontmatter.judge_model !== undefined)
  ) {
    warnings.push({
      code: 'judge_unused',
      message:
        'The runbook is evaluated programmatically (its verification script or REQUIRED OUTPUT FILES), so its judge_model is not used; a judge scores `evaluation: rubric` runbooks.',
    });
  }
  const judged =
    input.primaryOutputs.length > 0 ? input.primaryOutputs : input.requiredOutputs.filter(notReport);
  return {
    spec: {
      kind,
      verificationScript: verificationScript(input.body),
      requiredOutputs: input.requiredOutputs,
      judgedOutputs: judged,
      objective: objectiveOf(input.body),
      criteria: kind === 'rubric' ? rubricCriteria(input.body) : [],
      threshold: passThreshold(input.body),
      judge,
      requirePass,
      resultsDir: input.resultsDir,
    },
    warnings,
  };
}

/** summary.md and validation_report.json are about the work, not the work: the judge skips them. */
function notReport(p: string): boolean {
  return !/(?:^|\/)(?:summary\.md|validation_report\.json)$/.test(p);
}

function checkRequirePass(input: PlanEvaluationInput): boolean {
  const fromJetty = input.jetty.require_pass;
  if (fromJetty !== undefined && fromJetty !== null) {
    if (typeof fromJetty !== 'boolean')
      throw badRequest('`jetty.require_pass` must be true or false.', 'jetty.require_pass');
    return fromJetty;
  }
  const fm = input.frontmatter.require_pass;
  if (fm === undefined || fm === null) return false;
  if (typeof fm !== 'boolean') {
    throw badRequest(
      'frontmatter `require_pass` must be true or false.',
      `${input.frontmatterParam}.require_pass`,
    );
  }
  return fm;
}

function stringField(v: unknown, param: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || !v.trim() || v.length > 200) {
    throw badRequest(
      `\`${param}\` must be a model slug such as "claude-sonnet-4-6" (at most 200 characters).`,
      param,
    );
  }
  return v.trim();
}

function providerField(v: unknown, param: string): ProviderName | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || !JUDGE_PROVIDERS.includes(v as ProviderName)) {
    throw badRequest(
      `\`${param}\` must be one of ${JUDGE_PROVIDERS.join(', ')} (the providers a judge is called on).`,
      param,
    );
  }
  return v as ProviderName;
}

/**
 * The judge: jetty.judge_model > frontmatter judge_model > JUDGE_MODEL, on jetty.judge_provider >
 * frontmatter judge_provider > JUDGE_PROVIDER > (a simulated run: the simulated provider) > the
 * run's own provider when it serves that model > the model's own provider.
 */
function resolveJudge(input: PlanEvaluationInput, warnings: RunWarning[]): JudgeSpec {
  const fmParam = input.frontmatterParam;
  const jettyModel = stringField(input.jetty.judge_model, 'jetty.judge_model');
  const fmModel = stringField(input.frontmatter.judge_model, `${fmParam}.judge_model`);
  const model = jettyModel ?? fmModel ?? input.defaults.model;
  const from: JudgeSpec['from'] = jettyModel ? 'jetty' : fmModel ? 'frontmatter' : 'default';
  const modelParam = jettyModel ? 'jetty.judge_model' : fmModel ? `${fmParam}.judge_model` : 'JUDGE_MODEL';
  const named =
    providerField(input.jetty.judge_provider, 'jetty.judge_provider') ??
    providerField(input.frontmatter.judge_provider, `${fmParam}.judge_provider`) ??
    input.defaults.provider;
  const provider = chooseJudgeProvider(model, named, input.run.provider, input.available);
  if (!provider) throw judgeUnavailable(model, modelParam);
  const slug = formFor(model, provider) ?? model;
  if (sameModel(slug, input.run.model)) {
    warnings.push({
      code: 'judge_is_agent_model',
      message: `The judge (${slug}) is the same model as the agent under test; its scores are not independent. Name another with \`jetty.judge_model\` or frontmatter \`judge_model\`.`,
    });
  }
  return { model: slug, provider, from };
}

/**
 * The provider a judge model is called on: the one named, else (for a simulated run) the simulated
 * one, else the run's own when it serves the model, else the model's own. undefined: none of
 * those is one the collection can use.
 */
export function chooseJudgeProvider(
  model: string,
  named: ProviderName | undefined,
  runProvider: ProviderName,
  available: ReadonlySet<ProviderName>,
): ProviderName | undefined {
  const usable = (p: ProviderName) =>
    JUDGE_PROVIDERS.includes(p) && available.has(p) && formFor(model, p) !== null;
  if (named) return available.has(named) ? named : undefined;
  if (runProvider === 'simulated') return available.has('simulated') ? 'simulated' : undefined;
  if (usable(runProvider)) return runProvider;
  return providersOfForm(model).find(usable);
}

export function judgeUnavailable(model: string, param: string): Error {
  const wanted = providersOfForm(model)
    .filter((p) => JUDGE_PROVIDERS.includes(p))
    .join(' or ');
  return badRequest(
    `The runbook is scored by a judge model (evaluation: rubric), and its judge ${model} (from ${param}) needs a key for ${wanted || 'a provider that serves it'}, which this collection cannot use. Add that provider's key to the collection, or name a judge it can call with \`judge_model\` (and \`judge_provider\`).`,
    param === 'JUDGE_MODEL' ? 'jetty.judge_model' : param,
    'judge_unavailable',
  );
}

/** A judge for a re-grade: another model (and provider), checked as a run's judge is. */
export function regradeJudge(opts: {
  model: string;
  provider: ProviderName | undefined;
  runProvider: ProviderName;
  available: ReadonlySet<ProviderName>;
}): JudgeSpec {
  const provider = chooseJudgeProvider(opts.model, opts.provider, opts.runProvider, opts.available);
  if (!provider) throw judgeUnavailable(opts.model, 'judge_model');
  return { model: formFor(opts.model, provider) ?? opts.model, provider, from: 'regrade' };
}

function sameModel(a: string, b: string): boolean {
  const norm = (m: string) =>
    m
      .toLowerCase()
      .replace(/^[a-z0-9-]+\//, '')
      .replace(/\./g, '-');
  return norm(a) === norm(b);
}
