/**
 * Splits a runbook into its YAML frontmatter and markdown body, and checks the frontmatter.
 * Errors are 400s whose `param` points at the field as the API caller sees it, e.g.
 * `messages[0].content.frontmatter.agent`.
 */
import matter from 'gray-matter';
import { badRequest } from '../errors.js';
import {
  describeFrontmatterIssues,
  FRONTMATTER_FORMS,
  frontmatterSchema,
  type RunbookFrontmatter,
} from './schema.js';

export interface ParsedRunbook {
  /** Validated and normalized; unknown keys are kept as YAML gave them. `{}` without frontmatter. */
  frontmatter: RunbookFrontmatter;
  /** The markdown after the closing `---` (the whole text when there is no frontmatter). */
  body: string;
  /** The text exactly as given. */
  raw: string;
  hasFrontmatter: boolean;
}

/**
 * Where the runbook came from, for error params: the index of the system message in
 * `messages` (param `messages[i].content`), or an explicit param such as `jetty.runbook_url`.
 */
export type RunbookSource = number | { param: string };

export function runbookParam(source: RunbookSource = 0): string {
  return typeof source === 'number' ? `messages[${source}].content` : source.param;
}

const OPEN = '---';
const ALLOWED_LANGUAGES = new Set(['', 'yaml', 'yml', 'json']);

function refuseLanguage(): never {
  // Reached only if a non-YAML engine slips past the language check below; never evaluate it.
  throw new Error('frontmatter language not supported');
}

/**
 * Always passed to gray-matter. Passing any options object also turns off gray-matter's
 * module-level cache, which otherwise hands back a shared (and, after a YAML error,
 * half-parsed) result for identical text.
 */
const MATTER_OPTIONS = {
  language: 'yaml',
  // gray-matter would `eval` a `---js` block: in a server that parses user input, that is remote
  // code execution. Replace the script engines outright.
  engines: { javascript: refuseLanguage, js: refuseLanguage, coffee: refuseLanguage, cson: refuseLanguage },
};

export function parseRunbook(text: string, source: RunbookSource = 0): ParsedRunbook {
  const where = runbookParam(source);
  // A pasted runbook often starts with blank lines; its frontmatter should still count.
  const unmarked = text.replace(/^\uFEFF/, '');
  const lead = /^(?:[ \t]*\r?\n)*/.exec(unmarked)?.[0] ?? '';
  const leadLines = lead.split('\n').length - 1;
  const trimmed = unmarked.slice(lead.length);

  if (!hasFrontmatter(trimmed)) {
    return { frontmatter: frontmatterSchema.parse({}), body: text, raw: text, hasFrontmatter: false };
  }

  const firstLine = trimmed.slice(0, trimmed.search(/\r?\n|$/));
  const language = firstLine.slice(OPEN.length).trim().toLowerCase();
  if (!ALLOWED_LANGUAGES.has(language)) {
    throw badRequest(
      `The runbook's frontmatter is marked as \`${language}\`; only YAML frontmatter is supported. ` +
        'Start the runbook with a line of just `---`, then YAML, then a closing `---` line.',
      where,
      'invalid_runbook',
    );
  }
  if (!/\r?\n---/.test(trimmed.slice(firstLine.length))) {
    throw badRequest(
      `The runbook starts a frontmatter block with \`---\` on line ${leadLines + 1} but never closes it. ` +
        'Add a line of just `---` after the YAML, or remove the opening `---` if the runbook has no frontmatter.',
      where,
      'invalid_runbook',
    );
  }

  let file: matter.GrayMatterFile<string>;
  try {
    file = matter(trimmed, MATTER_OPTIONS);
  } catch (err) {
    throw yamlError(err, where, leadLines);
  }

  const data: unknown = file.data ?? {};
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw badRequest(
      'The runbook frontmatter must be a YAML mapping of `key: value` lines (e.g. `agent: claude-code`); ' +
        `got a ${Array.isArray(data) ? 'list' : typeof data}.`,
      `${where}.frontmatter`,
      'invalid_runbook',
    );
  }

  const input = prepare(data as Record<string, unknown>, file.matter);
  const result = frontmatterSchema.safeParse(input);
  if (!result.success) {
    const problems = describeFrontmatterIssues(result.error, input);
    const first = problems[0];
    const path = first?.path ?? '';
    const message =
      problems.length > 1
        ? `${problems.map((p) => p.message).join('; ')}.`
        : `${first?.message ?? 'frontmatter is invalid'}.`;
    throw badRequest(
      message,
      path ? `${where}.frontmatter.${path}` : `${where}.frontmatter`,
      'invalid_runbook',
    );
  }
  return { frontmatter: result.data, body: file.content, raw: text, hasFrontmatter: true };
}

function hasFrontmatter(text: string): boolean {
  // `----` or a longer rule is a markdown horizontal rule, not a frontmatter fence.
  return text.startsWith(OPEN) && text.charAt(OPEN.length) !== '-';
}

/**
 * Before validation: an empty known key (`model:` with nothing after it) means "not set", and a
 * numeric `version` gets back its literal text (YAML reads `1.0` as the number 1).
 */
function prepare(data: Record<string, unknown>, yaml: string): Record<string, unknown> {
  const out: Record<string, unknown> = { ...data };
  for (const key of Object.keys(FRONTMATTER_FORMS)) {
    if (out[key] === null) delete out[key];
  }
  if (typeof out.version === 'number') {
    const literal = /^version[ \t]*:[ \t]*([0-9][0-9._eE+-]*)[ \t]*(?:#.*)?$/m.exec(yaml)?.[1];
    if (literal !== undefined && Number(literal) === out.version) out.version = literal;
  }
  return out;
}

interface YamlMark {
  line?: number;
  column?: number;
}

function yamlError(err: unknown, where: string, leadLines: number) {
  const e = err as { name?: string; reason?: string; message?: string; mark?: YamlMark };
  const reason = e.reason ?? e.message ?? String(err);
  let at = '';
  if (typeof e.mark?.line === 'number') {
    // js-yaml counts from 0 within the block, and the block starts on the `---` line itself.
    const line = e.mark.line + 1 + leadLines;
    const column = typeof e.mark.column === 'number' ? `, column ${e.mark.column + 1}` : '';
    at = ` at line ${line}${column} of the runbook`;
  }
  return badRequest(
    `The runbook's YAML frontmatter cannot be parsed${at}: ${reason}. ` +
      'Fix the YAML between the two `---` lines (quote values that contain `:` or start with `{`, `[`, `*` or `@`).',
    where,
    'invalid_runbook',
  );
}
