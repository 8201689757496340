/**
 * The files a runbook says it must produce: the paths listed under its `REQUIRED OUTPUT FILES`
 * heading (table rows, or bullet items), then its `primary_outputs`. Read from the templated
 * text, so `{{results_dir}}/summary.md` has already become a real path.
 */
import { posix } from 'node:path';
import type { ParsedRunbook } from './parse.js';

const HEADING_RE = /^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$/;
const SECTION_RE = /\brequired\s+output(?:\s+files?|s)\b/i;
const FENCE_RE = /^ {0,3}(`{3,}|~{3,})/;
const BULLET_RE = /^\s*(?:[-*+]|\d+[.)])\s+(?:\[[ xX]\]\s+)?(.*)$/;
const SEPARATOR_CELL_RE = /^\s*:?-+:?\s*$/;

/**
 * Absolute paths of the files the runbook requires, each once, in the order the runbook gives
 * them. Relative paths are taken relative to `resultsDir`; absolute ones are kept as written.
 * Only the first column of a table is read (later columns hold descriptions and formats).
 */
export function requiredOutputs(
  parsed: Pick<ParsedRunbook, 'body'> & { frontmatter: { primary_outputs?: readonly string[] | undefined } },
  resultsDir: string,
): string[] {
  const listed = listedOutputFiles(parsed.body);
  const primary = parsed.frontmatter.primary_outputs ?? [];
  const paths = [...listed, ...primary].map((p) => absoluteOutputPath(p, resultsDir));
  return [...new Set(paths)];
}

/** `p` as an absolute path: relative ones are inside `resultsDir`. */
export function absoluteOutputPath(p: string, resultsDir: string): string {
  return p.startsWith('/') ? posix.normalize(p) : posix.join(resultsDir, p);
}

/** The paths listed under REQUIRED OUTPUT FILES headings, as written. */
export function listedOutputFiles(markdown: string): string[] {
  const found: string[] = [];
  let fence: string | null = null;
  let sectionLevel = 0; // 0: outside a required-outputs section
  let table: string[][] = [];

  const flushTable = () => {
    // A header row is the one right above the |---| row: skip both.
    const rows =
      table.length >= 2 && table[1]?.every((c) => SEPARATOR_CELL_RE.test(c)) ? table.slice(2) : table;
    for (const cells of rows) {
      if (cells.every((c) => SEPARATOR_CELL_RE.test(c))) continue;
      const path = leadingPath(cells[0] ?? '');
      if (path) found.push(path);
    }
    table = [];
  };

  for (const line of markdown.split(/\r?\n/)) {
    const fenceMatch = FENCE_RE.exec(line);
    if (fence !== null) {
      const close = fenceMatch?.[1];
      if (close && close[0] === fence[0] && close.length >= fence.length) fence = null;
      continue;
    }
    if (fenceMatch) {
      flushTable();
      fence = fenceMatch[1] ?? '```';
      continue;
    }

    const heading = HEADING_RE.exec(line);
    if (heading) {
      flushTable();
      const level = heading[1]?.length ?? 1;
      if (SECTION_RE.test(heading[2] ?? '')) sectionLevel = level;
      else if (sectionLevel > 0 && level <= sectionLevel) sectionLevel = 0;
      continue;
    }
    if (sectionLevel === 0) continue;

    const trimmed = line.trim();
    if (trimmed.startsWith('|')) {
      table.push(splitRow(trimmed));
      continue;
    }
    flushTable();
    const bullet = BULLET_RE.exec(line);
    if (bullet) {
      const path = leadingPath(bullet[1] ?? '');
      if (path) found.push(path);
    }
  }
  flushTable();
  return found;
}

function splitRow(row: string): string[] {
  const inner = row.replace(/^\|/, '').replace(/(?<!\\)\|$/, '');
  return inner.split(/(?<!\\)\|/).map((c) => c.trim());
}

/**
 * The path a table cell or bullet item starts with, if it starts with one: `` `a/b.md` ``,
 * `**a/b.md**`, `[a/b.md](...)` or a bare `a/b.md`. Prose ("Every file must exist") and
 * paths mentioned later in a sentence are not taken.
 */
function leadingPath(text: string): string | null {
  const s = text.trim().replace(/^(?:\*\*|__|\*|_)/, '');
  let candidate: string | undefined;
  if (s.startsWith('`')) candidate = /^`+([^`]+)`+/.exec(s)?.[1];
  else if (s.startsWith('[')) candidate = /^\[([^\]]+)\]/.exec(s)?.[1]?.replace(/^`|`$/g, '');
  else candidate = s.split(/\s/)[0]?.replace(/(?:\*\*|__|\*)?[:;,.]*$/, '');
  candidate = candidate?.trim();
  return candidate && looksLikePath(candidate) ? candidate : null;
}

function looksLikePath(s: string): boolean {
  if (/\s/.test(s) || s.includes('://')) return false;
  // Globs and leftover placeholders do not name one concrete file.
  if (/[*?[\]{}<>]/.test(s)) return false;
  if (s.endsWith('/')) return false;
  return s.startsWith('/') || s.startsWith('./') || s.includes('/') || /\.[A-Za-z0-9]{1,12}$/.test(s);
}
