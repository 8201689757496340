/**
 * `{{ name }}` placeholders, filled from `jetty.template_variables` before the agent sees the
 * runbook. Placeholders inside code fences are filled too: runbooks put `{{results_dir}}` in
 * their bash blocks and expect a real path there.
 *
 * Left alone:
 * - `{{secrets.NAME}}`: never filled with a value (secrets must not reach the prompt or the
 *   trajectory); `renderSecretReferences` turns them into environment variable references.
 * - `${{ ... }}`: GitHub Actions expressions, which runbooks that write CI workflows contain.
 */
import { z } from 'zod';
import { badRequest, unprocessable } from '../errors.js';
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

/**
 * Throws one 422 naming every variable that `texts` use and `vars` lacks, so the caller fixes
 * them all in one go.
 */
export function assertTemplateVariables(
  texts: readonly string[],
  vars: Readonly<Record<string, string>>,
): void {
  const all = withBuiltinVariables(vars);
  const missing = unique(texts.flatMap(templateVariablesIn)).filter((name) => !Object.hasOwn(all, name));
  if (missing.length === 0) return;
  const listed = missing.map((n) => `\`${n}\``).join(', ');
  const example = JSON.stringify(Object.fromEntries(missing.map((n) => [n, '...'])));
  throw unprocessable(
    `The runbook uses ${missing.length === 1 ? 'a template variable that was' : 'template variables that were'} ` +
      `not given: ${listed}. Pass ${missing.length === 1 ? 'it' : 'each'} as a string in \`jetty.template_variables\`, ` +
      `e.g. "template_variables": ${example}, or remove the placeholder from the runbook.`,
    TEMPLATE_VARIABLES_PARAM,
    'missing_template_variables',
  );
}

/**
 * Fills every `{{ name }}` from `vars` (plus `results_dir`, default `/app/results`). A name with
 * no value is a 422 (param `jetty.template_variables`). Single pass: a value that itself contains
 * `{{x}}` is not expanded again.
 */
export function renderTemplate(text: string, vars: Readonly<Record<string, string>>): string {
  assertTemplateVariables([text], vars);
  const all = withBuiltinVariables(vars);
  return text.replace(PLACEHOLDER_RE, (whole, dollar: string, name: string) => {
    if (dollar === '$' || name.startsWith(SECRET_PREFIX)) return whole;
    return all[name] ?? whole;
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
      `\`${param}.${name}\` must be a string; got ${JSON.stringify(v) ?? String(v)} (${kindOf(v)})`;
    const hint =
      typeof first[1] === 'object' ? '' : ` Send it quoted, e.g. "${first[0]}": "${String(first[1])}".`;
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
