/**
 * Turns a request's runbook (the system message) and its `jetty` block into what a run needs:
 * which agent, model, provider and timeout, and the text the agent will read.
 *
 * Precedence, for agent, model_provider and timeout: `jetty` field > frontmatter > server default.
 * Model: the request's top-level `model` > frontmatter `model` > server default, where a
 * placeholder request model (see `isModelPlaceholder`) counts as not given. An agent named
 * nowhere is inferred from the model when the request or frontmatter named one, else the
 * server's default agent.
 */
import type { z } from 'zod';
import { badRequest } from '../errors.js';
import type { AgentName, RunWarning } from '../events/types.js';
import type { ProviderName } from '../runtimes/types.js';
import { requiredOutputs } from './outputs.js';
import { parametersTable } from './parameters.js';
import { type ParsedRunbook, parseRunbook, runbookParam } from './parse.js';
import {
  agentNameSchema,
  got,
  KNOWN_EVALUATIONS,
  providerNameSchema,
  type RunbookFrontmatter,
} from './schema.js';
import {
  DEFAULT_RESULTS_DIR,
  fillTemplate,
  listNames,
  planTemplateVariables,
  renderSecretReferences,
  secretReferencesIn,
  TEMPLATE_VARIABLES_PARAM,
  type VariablePlan,
  type VariablesField,
  validateTemplateVariables,
} from './template.js';

/**
 * OpenAI clients must send a top-level `model`. These values (trimmed, any case), and an empty
 * string, mean "no model from the request: use the runbook's".
 */
export const MODEL_PLACEHOLDERS: readonly string[] = ['jetty', 'runbook', 'default'];

export function isModelPlaceholder(model: string | undefined | null): boolean {
  if (model === undefined || model === null) return true;
  const m = model.trim().toLowerCase();
  return m === '' || MODEL_PLACEHOLDERS.includes(m);
}

/** The agent a model slug implies (used only when no agent is named anywhere). */
export function inferAgentFromModel(model: string): AgentName {
  const m = model.trim().toLowerCase();
  if (m.startsWith('claude-') || m.startsWith('anthropic/')) return 'claude-code';
  if (
    m.startsWith('gpt-') ||
    m.startsWith('o1') ||
    m.startsWith('o3') ||
    m.startsWith('o4') ||
    m.startsWith('openai/') ||
    m.startsWith('codex')
  ) {
    return 'codex';
  }
  if (m.startsWith('gemini-') || m.startsWith('gemini/') || m.startsWith('google/')) return 'gemini-cli';
  return 'claude-code';
}

/** The runbook-related fields of the request's `jetty` block, as received (checked here). */
export interface JettyRunbookFields {
  agent?: unknown;
  model_provider?: unknown;
  template_variables?: unknown;
  timeout_sec?: unknown;
  [key: string]: unknown;
}

export interface RunbookDefaults {
  agent: AgentName;
  /** undefined: leave the choice to whoever knows the collection's keys. */
  provider: ProviderName | undefined;
  /** undefined: the chosen runtime's own default model. */
  model: string | undefined;
  timeoutSec: number;
  maxTimeoutSec: number;
}

export interface ResolveInput {
  runbookText: string;
  /** Index of the system message in `messages`, for error params. */
  systemMessageIndex: number;
  /** The request's top-level `model`. */
  requestModel?: string | undefined;
  jetty: JettyRunbookFields;
  defaults: RunbookDefaults;
  /** Where the caller put template variables, for the 422's example (chat by default). */
  variablesField?: VariablesField;
}

/**
 * Where a resolved value came from, so a later check (e.g. the provider pre-flight) can name
 * the field the user should change. `param` is null for server defaults.
 */
export interface ValueSource {
  from: 'jetty' | 'request' | 'frontmatter' | 'inferred' | 'default';
  param: string | null;
}

export interface ResolvedRunbook {
  agent: AgentName;
  /** undefined: nothing named a model and the server has no default; use the runtime's. */
  model: string | undefined;
  /** undefined: choose later (from the collection's keys and the runtime). */
  provider: ProviderName | undefined;
  timeoutSec: number;
  /** Absolute, without a trailing slash. */
  resultsDir: string;
  /** What the agent reads: a short header (see `runbookHeader`) and the rendered body. */
  renderedRunbook: string;
  /** The body with placeholders filled and secrets as `$ENV` references; no frontmatter, no header. */
  renderedBody: string;
  /** Absolute paths of the REQUIRED OUTPUT FILES entries (not primary_outputs: those are headlines). */
  requiredOutputs: string[];
  /** Absolute paths of `primary_outputs`, in order (headline deliverables). */
  primaryOutputs: string[];
  /** Every template variable value used (given, then Parameters defaults), including `results_dir`. */
  templateVariables: Record<string, string>;
  /** What the user should know before the run starts (left-over placeholders, unknown evaluation). */
  warnings: RunWarning[];
  /** Secret names the body references as `{{secrets.NAME}}`. */
  secretReferences: string[];
  /** Referenced secrets the frontmatter does not declare (they will not reach the sandbox). */
  undeclaredSecrets: string[];
  frontmatter: RunbookFrontmatter;
  sources: { agent: ValueSource; model: ValueSource; provider: ValueSource; timeoutSec: ValueSource };
}

export function resolveRunbook(input: ResolveInput): ResolvedRunbook {
  const parsed = parseRunbook(input.runbookText, input.systemMessageIndex);
  const fm = parsed.frontmatter;
  const fmParam = (key: string) => `${runbookParam(input.systemMessageIndex)}.frontmatter.${key}`;
  const { jetty, defaults } = input;

  const jettyAgent = checkJetty(jetty.agent, agentNameSchema, 'jetty.agent');
  const jettyProvider = checkJetty(jetty.model_provider, providerNameSchema, 'jetty.model_provider');
  const jettyTimeout = checkTimeout(jetty.timeout_sec);
  const vars = validateTemplateVariables(jetty.template_variables);

  // Model, then agent (which may depend on it).
  let model: string | undefined;
  let modelSource: ValueSource;
  if (!isModelPlaceholder(input.requestModel)) {
    model = input.requestModel?.trim();
    modelSource = { from: 'request', param: 'model' };
  } else if (fm.model !== undefined) {
    model = fm.model;
    modelSource = { from: 'frontmatter', param: fmParam('model') };
  } else {
    model = defaults.model;
    modelSource = { from: 'default', param: null };
  }

  let agent: AgentName;
  let agentSource: ValueSource;
  if (jettyAgent !== undefined) {
    agent = jettyAgent;
    agentSource = { from: 'jetty', param: 'jetty.agent' };
  } else if (fm.agent !== undefined) {
    agent = fm.agent;
    agentSource = { from: 'frontmatter', param: fmParam('agent') };
  } else if (model !== undefined && modelSource.from !== 'default') {
    agent = inferAgentFromModel(model);
    agentSource = { from: 'inferred', param: modelSource.param };
  } else {
    agent = defaults.agent;
    agentSource = { from: 'default', param: null };
  }

  let provider: ProviderName | undefined;
  let providerSource: ValueSource;
  if (jettyProvider !== undefined) {
    provider = jettyProvider;
    providerSource = { from: 'jetty', param: 'jetty.model_provider' };
  } else if (fm.model_provider !== undefined) {
    provider = fm.model_provider;
    providerSource = { from: 'frontmatter', param: fmParam('model_provider') };
  } else {
    provider = defaults.provider;
    providerSource = { from: 'default', param: null };
  }

  let timeoutSec: number;
  let timeoutSource: ValueSource;
  if (jettyTimeout !== undefined) {
    timeoutSec = jettyTimeout;
    timeoutSource = { from: 'jetty', param: 'jetty.timeout_sec' };
  } else if (fm.timeout_sec !== undefined) {
    timeoutSec = fm.timeout_sec;
    timeoutSource = { from: 'frontmatter', param: fmParam('timeout_sec') };
  } else {
    // A server default above the server maximum is a config slip; the maximum wins quietly.
    timeoutSec = Math.min(defaults.timeoutSec, defaults.maxTimeoutSec);
    timeoutSource = { from: 'default', param: null };
  }
  if (timeoutSec > defaults.maxTimeoutSec && timeoutSource.param !== null) {
    const fix =
      timeoutSource.from === 'jetty'
        ? `send at most ${defaults.maxTimeoutSec}`
        : `lower it in the runbook, or send \`jetty.timeout_sec\` of at most ${defaults.maxTimeoutSec}`;
    throw badRequest(
      `${timeoutSource.from === 'jetty' ? '`jetty.timeout_sec`' : 'frontmatter `timeout_sec`'} is ${timeoutSec} ` +
        `seconds, above this server's maximum of ${defaults.maxTimeoutSec}; ${fix}.`,
      timeoutSource.param,
    );
  }

  const resultsDir = checkResultsDir(vars.results_dir);
  const primaryRaw = fm.primary_outputs ?? [];
  const plan = planTemplateVariables({
    texts: [parsed.body, ...primaryRaw],
    given: { ...vars, results_dir: resultsDir },
    table: parametersTable(parsed.body),
    field: input.variablesField ?? TEMPLATE_VARIABLES_PARAM,
  });
  const filled = fillTemplate(parsed.body, plan.values);
  const primaryRelative = primaryRaw.map((p) => fillTemplate(p, plan.values));

  const secretReferences = secretReferencesIn(filled);
  const declared = fm.secrets ?? {};
  const undeclaredSecrets = secretReferences.filter((name) => !Object.hasOwn(declared, name));
  const renderedBody = renderSecretReferences(filled, declared);

  const outputs = requiredOutputs({ body: renderedBody, frontmatter: {} }, resultsDir);
  const primaryOutputs = requiredOutputs(
    { body: '', frontmatter: { primary_outputs: primaryRelative } },
    resultsDir,
  );

  return {
    agent,
    model,
    provider,
    timeoutSec,
    resultsDir,
    renderedRunbook: runbookHeader({ resultsDir, primaryOutputs, frontmatter: fm }) + renderedBody,
    renderedBody,
    requiredOutputs: outputs,
    primaryOutputs,
    templateVariables: plan.values,
    warnings: resolveWarnings(plan, fm, input.variablesField ?? TEMPLATE_VARIABLES_PARAM),
    secretReferences,
    undeclaredSecrets,
    frontmatter: fm,
    sources: { agent: agentSource, model: modelSource, provider: providerSource, timeoutSec: timeoutSource },
  };
}

const UNFILLED_WHY: Record<VariablePlan['unfilled'][number]['why'], string> = {
  optional: 'optional',
  empty: 'empty',
  inferred: 'inferred',
  none: 'no default',
  undeclared: 'declared nowhere',
};

function resolveWarnings(plan: VariablePlan, fm: RunbookFrontmatter, field: VariablesField): RunWarning[] {
  const out: RunWarning[] = [];
  if (plan.unfilled.length > 0) {
    const listed = listNames(plan.unfilled.map((u) => `{{${u.name}}} (${UNFILLED_WHY[u.why]})`));
    const one = plan.unfilled.length === 1;
    out.push({
      code: 'template_variables_unfilled',
      message: `The runbook's placeholder${one ? '' : 's'} ${listed} ${one ? 'was' : 'were'} not given and ${one ? 'has' : 'have'} no default, so ${one ? 'it is' : 'they are'} left in the text as written. Pass ${one ? 'it' : 'them'} in \`${field}\` to fill ${one ? 'it' : 'them'}.`,
    });
  }
  if (fm.evaluation !== undefined && !KNOWN_EVALUATIONS.includes(fm.evaluation)) {
    out.push({
      code: 'evaluation_unknown',
      message: `The runbook's evaluation "${fm.evaluation}" is kept as written, but this server knows only ${KNOWN_EVALUATIONS.join(' and ')}: the agent follows the runbook's own checks.`,
    });
  }
  return out;
}

/**
 * The agent does not see the frontmatter (model, provider, snapshot, image are the server's
 * business, and raw YAML invites the agent to act on it). What it would lose and does need is
 * restated in a few lines above the body: where to write, the headline outputs, how it is
 * evaluated, and which environment variables hold its secrets (names only, never values).
 */
export function runbookHeader(opts: {
  resultsDir: string;
  primaryOutputs: readonly string[];
  frontmatter: Pick<ParsedRunbook['frontmatter'], 'evaluation' | 'secrets'>;
}): string {
  const lines = [`> Results directory: \`${opts.resultsDir}\`. Write every output file there.`];
  if (opts.primaryOutputs.length > 0) {
    lines.push(`> Primary outputs: ${opts.primaryOutputs.map((p) => `\`${p}\``).join(', ')}.`);
  }
  if (opts.frontmatter.evaluation !== undefined) lines.push(`> Evaluation: ${opts.frontmatter.evaluation}.`);
  const secrets = Object.entries(opts.frontmatter.secrets ?? {});
  if (secrets.length > 0) {
    const listed = secrets.map(([, s]) => `\`$${s.env}\`${s.description ? ` (${s.description})` : ''}`);
    lines.push(`> Secrets, as environment variables: ${listed.join('; ')}.`);
  }
  return `${lines.join('\n')}\n\n`;
}

function checkJetty<T>(value: unknown, schema: z.ZodType<T>, param: string): T | undefined {
  if (value === undefined || value === null) return undefined;
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const options = 'options' in schema && Array.isArray(schema.options) ? schema.options.join(', ') : '';
  throw badRequest(`\`${param}\` must be one of ${options}; ${got(value)}.`, param);
}

function checkTimeout(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw badRequest(
      `\`jetty.timeout_sec\` must be a positive whole number of seconds; ${got(value)}.`,
      'jetty.timeout_sec',
    );
  }
  return value;
}

/** Where results_dir may point: the sandbox's working tree, which the sandbox user owns. */
export const RESULTS_ROOT = '/app';

function checkResultsDir(value: string | undefined): string {
  if (value === undefined) return DEFAULT_RESULTS_DIR;
  const param = `${TEMPLATE_VARIABLES_PARAM}.results_dir`;
  const trimmed = value.trim().replace(/\/+$/, '');
  const segments = trimmed.split('/');
  if (
    !trimmed.startsWith(`${RESULTS_ROOT}/`) ||
    segments.includes('..') ||
    segments.includes('.') ||
    trimmed.includes('\0')
  ) {
    throw badRequest(
      `\`${param}\` must be a directory under ${RESULTS_ROOT} such as "${DEFAULT_RESULTS_DIR}" ` +
        `(absolute, no \`.\` or \`..\`; only ${RESULTS_ROOT} is the run's to write and collect); ${got(value)}. ` +
        `Leave it out to use ${DEFAULT_RESULTS_DIR}.`,
      param,
    );
  }
  return trimmed.replace(/\/{2,}/g, '/');
}
