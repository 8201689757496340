/**
 * `{{ name }}` placeholders, filled from `jetty.template_variables` (or /api/v1's `init_params.vars`)
 * and the runbook's Parameters table before the agent sees the runbook. Placeholders inside code
 * fences are filled too: runbooks put `{{results_dir}}` in their bash blocks and expect a real
 * path there.
 *
 * Left alone:
 * - `{{secrets.NAME}}`: never filled with a value (secrets must not reach the prompt or the
 *   trajectory); `renderSecretReferences` turns them into environment variable references.
 * - `${{ ... }}`: GitHub Actions expressions, which runbooks that write CI workflows contain.
 */
import { z } from 'zod';
import { badRequest, quoted, unprocessable } from '../errors.js';
import { withoutFencedCode } from './markdown.js';
import type { ParameterKind, ParameterSpec } from './parameters.js';
import { ENV_NAME_RE } from './schema.js';

export const DEFAULT_RESULTS_DIR = '/app/results';
export const TEMPLATE_VARIABLES_PARAM = 'jetty.template_variables';

/** The shape the HTTP layer can document; `validateTemplateVariables` gives the friendlier errors. */
export const templateVariablesSchema = z.record(z.string(), z.string());

const PLACEHOLDER_RE = /(\$?)\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}/g;
const SECRET_PREFIX = 'secrets.';

interface Placeholder {
  name: string;
  secret: boolean;
}

function placeholders(text: string): Placeholder[] {
  const found: Placeholder[] = [];
  for (const m of text.matchAll(PLACEHOLDER_RE)) {
    if (m[1] === '$') continue;
    const name = m[2] ?? '';
    found.push({ name, secret: name.startsWith(SECRET_PREFIX) });
  }
  return found;
}

/** Names of the template variables a text uses (not secrets), each once, in order of appearance. */
export function templateVariablesIn(text: string): string[] {
  return unique(placeholders(text).flatMap((p) => (p.secret ? [] : [p.name])));
}

/** Names of the secrets a text references as `{{secrets.NAME}}`, each once, in order. */
export function secretReferencesIn(text: string): string[] {
  return unique(placeholders(text).flatMap((p) => (p.secret ? [p.name.slice(SECRET_PREFIX.length)] : [])));
}

/** The variables every runbook has, overridden by what the caller gives. */
export function withBuiltinVariables(vars: Readonly<Record<string, string>>): Record<string, string> {
  return { results_dir: DEFAULT_RESULTS_DIR, ...vars };
}

/** Where the caller gives template variables: the chat surface's field, or /api/v1's. */
export type VariablesField = typeof TEMPLATE_VARIABLES_PARAM | 'init_params.vars' | 'messages.vars';

/** Why a placeholder was left as written. */
export type UnfilledReason = Exclude<ParameterKind, 'value' | 'required'> | 'undeclared';

export interface VariablePlan {
  /** Every value the run uses: the caller's, then the Parameters table's defaults, and results_dir. */
  values: Record<string, string>;
  /** Names whose value is the table's default. */
  defaulted: string[];
  /** Placeholders left in the text as written, in order, with the reason. */
  unfilled: Array<{ name: string; why: UnfilledReason }>;
}

/** At most this many names are spelled out in a 422 or a warning; the rest are counted. */
const MAX_NAMES_LISTED = 20;
const MAX_DESCRIPTION_CHARS = 120;

/**
 * Jetty's rules for template variables. A variable the caller gives is used. Else the Parameters
 * table's default. A variable the table marks *(required)* and the caller did not give is a 422
 * naming each with its description. Anything else (marked optional, empty or inferred, no default,
 * or declared nowhere) is left in the text as written, for the runbook's own checks of the raw
 * `{{...}}`; it is reported in `unfilled`, except an undeclared one that appears only in fenced
 * code (an escaped brace of a Python f-string, a Jinja template), which is code, not a variable.
 */
export function planTemplateVariables(opts: {
  /** The body first, then other texts that may hold placeholders (primary_outputs). */
  texts: readonly string[];
  given: Readonly<Record<string, string>>;
  table: readonly ParameterSpec[];
  field?: VariablesField;
}): VariablePlan {
  const given = withBuiltinVariables(opts.given);
  const values: Record<string, string> = { ...given };
  const defaulted: string[] = [];
  const missing: ParameterSpec[] = [];
  const unfilled: VariablePlan['unfilled'] = [];
  const declared = new Map(opts.table.map((p) => [p.name, p]));
  for (const spec of opts.table) {
    if (Object.hasOwn(given, spec.name)) continue;
    if (spec.kind === 'value') {
      // A default may build on other variables (`{{results_dir}}/report.md`).
      values[spec.name] = fillTemplate(spec.default ?? '', given);
      defaulted.push(spec.name);
    } else if (spec.kind === 'required') missing.push(spec);
    else unfilled.push({ name: spec.name, why: spec.kind });
  }
  if (missing.length > 0) throw missingRequired(missing, opts.field ?? TEMPLATE_VARIABLES_PARAM);
  const outsideCode = unique(opts.texts.flatMap((t) => templateVariablesIn(withoutFencedCode(t))));
  for (const name of outsideCode) {
    if (!Object.hasOwn(values, name) && !declared.has(name)) unfilled.push({ name, why: 'undeclared' });
  }
  return { values, defaulted, unfilled };
}

function missingRequired(missing: readonly ParameterSpec[], field: VariablesField) {
  const describe = (p: ParameterSpec) => {
    const d = p.description.replace(/\s+/g, ' ').trim();
    const cut = d.length > MAX_DESCRIPTION_CHARS ? `${d.slice(0, MAX_DESCRIPTION_CHARS - 1)}…` : d;
    return cut ? `\`${p.name}\` (${cut})` : `\`${p.name}\``;
  };
  const example = JSON.stringify(Object.fromEntries(missing.slice(0, 3).map((p) => [p.name, '...'])));
  const how =
    field === TEMPLATE_VARIABLES_PARAM
      ? `"jetty": {"template_variables": ${example}}`
      : field === 'messages.vars'
        ? `a block in your message: \`\`\`vars\n${missing
            .slice(0, 3)
            .map((p) => `${p.name}: ...`)
            .join('\n')}\n\`\`\``
        : `init_params={"vars": ${example}}`;
  const one = missing.length === 1;
  return unprocessable(
    `The runbook's Parameters table marks ${one ? 'a variable' : `${missing.length} variables`} as required, ` +
      `and ${one ? 'it was' : 'they were'} not given: ${listNames(missing.map(describe))}. ` +
      (field === 'messages.vars'
        ? `Give ${one ? 'it' : 'each'} in ${how}.`
        : `Pass ${one ? 'it' : 'each'} as a string in \`${field}\`, e.g. ${how}.`),
    field,
    'missing_template_variables',
  );
}

/** `a, b, c and 4 more`: a list that never grows past MAX_NAMES_LISTED, and says what it left out. */
export function listNames(items: readonly string[]): string {
  const shown = items.slice(0, MAX_NAMES_LISTED).join(', ');
  const more = items.length - MAX_NAMES_LISTED;
  return more > 0 ? `${shown} and ${more} more` : shown;
}

/**
 * Fills each `{{ name }}` that `vars` has; any other placeholder stays as written. Single pass: a
 * value that itself contains `{{x}}` is not expanded again.
 */
export function fillTemplate(text: string, vars: Readonly<Record<string, string>>): string {
  return text.replace(PLACEHOLDER_RE, (whole, dollar: string, name: string) => {
    if (dollar === '$' || name.startsWith(SECRET_PREFIX)) return whole;
    return Object.hasOwn(vars, name) ? (vars[name] as string) : whole;
  });
}

/**
 * `{{secrets.NAME}}` → `$ENV`, where ENV is the `env` the frontmatter declares for NAME (NAME
 * itself when undeclared). The value is put in the sandbox's environment by the worker; the
 * prompt only ever holds the reference.
 */
export function renderSecretReferences(
  text: string,
  secrets: Readonly<Record<string, { env: string }>> | undefined,
): string {
  return text.replace(PLACEHOLDER_RE, (whole, dollar: string, name: string, offset: number, full: string) => {
    if (dollar === '$' || !name.startsWith(SECRET_PREFIX)) return whole;
    const secret = name.slice(SECRET_PREFIX.length);
    const env = (Object.hasOwn(secrets ?? {}, secret) ? secrets?.[secret]?.env : undefined) ?? secret;
    if (!ENV_NAME_RE.test(env)) return whole;
    // `${X}` only where a plain `$X` would run into the following characters.
    const next = full.charAt(offset + whole.length);
    return /[A-Za-z0-9_]/.test(next) ? `\${${env}}` : `$${env}`;
  });
}

/**
 * Checks `jetty.template_variables`: an object whose values are all strings. Nothing is
 * coerced (a number is more often a mistake than a wish): `{"n": 10}` is a 400 naming
 * `jetty.template_variables.n`. Absent or null means none.
 */
export function validateTemplateVariables(
  value: unknown,
  param = TEMPLATE_VARIABLES_PARAM,
): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw badRequest(
      `\`${param}\` must be an object mapping variable names to strings, e.g. {"results_dir": "/app/results"}; ` +
        `got ${Array.isArray(value) ? 'a list' : `a ${typeof value}`}.`,
      param,
    );
  }
  const bad = Object.entries(value).filter(([, v]) => typeof v !== 'string');
  const first = bad[0];
  if (first) {
    const describe = ([name, v]: [string, unknown]) =>
      `\`${param}.${name}\` must be a string; got ${quoted(v)} (${kindOf(v)})`;
    const hint =
      typeof first[1] === 'object'
        ? ''
        : ` Send it quoted, e.g. ${quoted(first[0])}: ${quoted(String(first[1]))}.`;
    throw badRequest(
      `${bad.map(describe).join('; ')}. Template variable values are not converted.${hint}`,
      `${param}.${first[0]}`,
    );
  }
  return { ...(value as Record<string, string>) };
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}

function unique(items: readonly string[]): string[] {
  return [...new Set(items)];
}
