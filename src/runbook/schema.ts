/**
 * The runbook frontmatter: what each key may hold, and how a wrong value is explained to the
 * user. Keys we do not know (`origin`, provenance blocks, future keys) are kept as given.
 */
import { z } from 'zod';
import { runbookNetworkSchema } from '../egress/policy.js';
import { AGENT_NAMES } from '../events/types.js';
import { PROVIDER_NAMES } from '../runtimes/types.js';

/** A name usable as an environment variable (and as a `{{secrets.NAME}}` reference). */
export const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const agentNameSchema = z.enum(AGENT_NAMES);
export const providerNameSchema = z.enum(PROVIDER_NAMES);
/** The evaluations this server knows; others (Jetty's runbooks have `visual`) are kept, with a warning. */
export const KNOWN_EVALUATIONS: readonly string[] = ['programmatic', 'rubric'];
export const evaluationSchema = z.string().min(1);

const nonEmptyString = z.string().min(1);
/** Longer than any provider's model id; a longer one is refused rather than quoted into warnings. */
export const MAX_MODEL_CHARS = 200;
const modelSlug = nonEmptyString.max(MAX_MODEL_CHARS);

export const secretSpecSchema = z.looseObject({
  // Jetty's runbooks often leave it out: the secret's own name is then the variable.
  env: z.string().regex(ENV_NAME_RE).optional(),
  description: z.string().optional(),
  // A secret is declared because the runbook needs it: unless told otherwise, a run without it
  // should be refused before it starts rather than fail inside the sandbox.
  required: z.boolean().default(true),
});

export const frontmatterSchema = z.looseObject({
  // YAML reads `version: 1.0` as a number; the parser restores the literal text when it can.
  version: z
    .union([nonEmptyString, z.number()])
    .transform((v) => (typeof v === 'number' ? String(v) : v))
    .optional(),
  evaluation: evaluationSchema.optional(),
  agent: agentNameSchema.optional(),
  model: modelSlug.optional(),
  model_provider: providerNameSchema.optional(),
  snapshot: nonEmptyString.optional(),
  image: nonEmptyString.optional(),
  primary_outputs: z
    .union([nonEmptyString, z.array(nonEmptyString)])
    .transform((v) => (typeof v === 'string' ? [v] : v))
    .optional(),
  secrets: z
    .record(z.string().regex(ENV_NAME_RE), secretSpecSchema)
    .transform((all) =>
      Object.fromEntries(
        Object.entries(all).map(([name, spec]) => [name, { ...spec, env: spec.env ?? name }]),
      ),
    )
    .optional(),
  timeout_sec: z.int().positive().optional(),
  /** Hosts the run may reach through the egress proxy; it narrows the collection's policy. */
  network: runbookNetworkSchema.optional(),
  // The sandbox's resources, as in `jetty` (which wins); checked against the server's maxima.
  cpus: z.number().positive().optional(),
  memory: z.union([nonEmptyString, z.number().int().positive()]).optional(),
  disk: z.union([nonEmptyString, z.number().int().positive()]).optional(),
  // Who scores a rubric runbook, and whether a failed score fails the run (docs/evaluation.md).
  judge_model: modelSlug.optional(),
  judge_provider: providerNameSchema.optional(),
  require_pass: z.boolean().optional(),
});

export type RunbookFrontmatter = z.output<typeof frontmatterSchema>;
export type SecretSpec = z.output<typeof secretSpecSchema> & { env: string };

/** The keys this server gives a meaning to. */
export const KNOWN_FRONTMATTER_KEYS: readonly string[] = Object.keys(frontmatterSchema.shape);

const NAME_CHARS = 'letters, digits and underscores, not starting with a digit';
const ENV_NAME_FORM = `must be an environment variable name (${NAME_CHARS})`;

/** For each key, what a valid value looks like, phrased to follow "frontmatter `key` ". */
export const FRONTMATTER_FORMS: Readonly<Record<string, string>> = {
  version: 'must be a version string such as "1.0.0" (a number such as 1.0 is also accepted)',
  evaluation: 'must be a non-empty string such as programmatic or rubric',
  agent: `must be one of ${AGENT_NAMES.join(', ')}`,
  model: `must be a model slug of 1 to ${MAX_MODEL_CHARS} characters such as "claude-sonnet-4-6" or "anthropic/claude-sonnet-4.6"`,
  model_provider: `must be one of ${PROVIDER_NAMES.join(', ')}`,
  snapshot: 'must be a non-empty string such as "python312-uv"',
  image: 'must be a non-empty container image reference such as "ghcr.io/acme/runner:1.2"',
  primary_outputs: 'must be a path relative to results_dir, or a list of such paths (non-empty strings)',
  secrets:
    'must be a mapping of NAME: {env: ENV_VAR_NAME (default NAME), description: "...", required: true}',
  timeout_sec: 'must be a positive whole number of seconds',
  network:
    'must be none, open, true, or a list of host patterns such as ["pypi.org", "*.pythonhosted.org"] (a name, *.name for the names under it, or an IP address)',
  cpus: 'must be a positive number of CPUs such as 2',
  memory: 'must be a size such as "4g" or "512m", or a number of bytes',
  disk: 'must be a size such as "2g" or "512m", or a number of bytes',
  judge_model: `must be a model slug of 1 to ${MAX_MODEL_CHARS} characters such as "claude-sonnet-4-6": the model that scores a rubric runbook`,
  judge_provider: `must be one of ${PROVIDER_NAMES.join(', ')}`,
  require_pass: 'must be true or false',
};

const SECRET_FIELD_FORMS: Readonly<Record<string, string>> = {
  env: ENV_NAME_FORM,
  description: 'must be a string',
  required: 'must be true or false',
};

export interface FrontmatterProblem {
  /** Dotted path inside the frontmatter, e.g. `agent` or `secrets.API_KEY.env`. */
  path: string;
  /** A whole sentence: the key, the accepted form, and what was given. */
  message: string;
}

/** Turns schema issues into messages a runbook author can act on. */
export function describeFrontmatterIssues(error: z.ZodError, data: unknown): FrontmatterProblem[] {
  const seen = new Set<string>();
  const problems: FrontmatterProblem[] = [];
  for (const issue of error.issues) {
    const problem = describeIssue(issue, data);
    if (seen.has(problem.path)) continue;
    seen.add(problem.path);
    problems.push(problem);
  }
  // Report in the order the author wrote the keys, not the schema's order.
  const order = data !== null && typeof data === 'object' ? Object.keys(data) : [];
  const rank = (p: FrontmatterProblem) => {
    const i = order.indexOf(p.path.split('.')[0] ?? '');
    return i === -1 ? order.length : i;
  };
  return problems.sort((a, b) => rank(a) - rank(b));
}

function describeIssue(issue: z.core.$ZodIssue, data: unknown): FrontmatterProblem {
  const keys = issue.path.map(String);
  const top = keys[0] ?? '';
  if (top === 'secrets' && keys.length >= 2) {
    const name = keys[1] ?? '';
    if (issue.code === 'invalid_key') {
      return {
        path: `secrets.${name}`,
        message: `frontmatter \`secrets\` has a secret named ${quote(name)}; secret names must be ${NAME_CHARS}`,
      };
    }
    if (keys.length >= 3) {
      const field = keys[2] ?? '';
      const path = `secrets.${name}.${field}`;
      const form = SECRET_FIELD_FORMS[field] ?? 'has the wrong type';
      return { path, message: `frontmatter \`${path}\` ${form}; ${got(valueAt(data, keys.slice(0, 3)))}` };
    }
    const path = `secrets.${name}`;
    return {
      path,
      message: `frontmatter \`${path}\` must be a mapping {env: ENV_VAR_NAME, description?: string, required?: boolean}; ${got(valueAt(data, keys.slice(0, 2)))}`,
    };
  }
  const form = FRONTMATTER_FORMS[top] ?? `is invalid (${issue.message})`;
  return { path: top, message: `frontmatter \`${top}\` ${form}; ${got(valueAt(data, [top]))}` };
}

function valueAt(data: unknown, keys: string[]): unknown {
  let cur: unknown = data;
  for (const k of keys) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

function quote(s: string): string {
  return JSON.stringify(s);
}

/** "got ..." with the value as the user would have written it, kept short. */
export function got(value: unknown): string {
  if (value === undefined) return 'it is missing';
  let shown: string;
  if (value instanceof Date) shown = `${value.toISOString()} (a date)`;
  else {
    try {
      shown = JSON.stringify(value) ?? String(value);
    } catch {
      shown = String(value);
    }
  }
  if (shown.length > 80) shown = `${shown.slice(0, 77)}...`;
  return `got ${shown}`;
}
