/**
 * A runbook's `## Parameters` table, Jetty's contract for its template variables:
 *
 * | Parameter | Template Variable | Default | Description |
 * |---|---|---|---|
 * | Topic | `{{topic}}` | *(required)* | What the report is about |
 * | Style | `{{style}}` | formal | How it reads |
 * | Notes | `{{notes}}` | *(optional)* | Extra guidance |
 *
 * A default is a value, or a marker: *(required)*, *(optional)*, *(empty)* or *(inferred)*. An
 * empty cell, `-` or `none` is no default. Columns are found by their header, so a table with
 * them in another order (or without the Parameter column) reads the same.
 */
import { headingOf, isSeparatorRow, markdownLines, tableCells } from './markdown.js';

export type ParameterKind = 'value' | 'required' | 'optional' | 'empty' | 'inferred' | 'none';

export interface ParameterSpec {
  /** The template variable: `topic` for `{{topic}}`. */
  name: string;
  kind: ParameterKind;
  /** The default value, when `kind` is `value`. */
  default?: string;
  /** The Description column (or the Parameter column when there is none), as written. */
  description: string;
}

const SECTION_RE = /\bparameters\b/i;
const PLACEHOLDER_RE = /\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}/;
const IDENT_RE = /^`?([A-Za-z_][A-Za-z0-9_]*)`?$/;
const MARKER_RE = /^\(?\s*(required|optional|empty|inferred)\s*\)?(?=$|[\s:,.;(-])/i;
const NO_DEFAULT_RE = /^(?:|-+|—|–|n\/a|none)$/i;

interface Columns {
  variable: number;
  default: number;
  description: number;
  label: number;
}

/** The variables the runbook's Parameters section declares, in table order, each once. */
export function parametersTable(markdown: string): ParameterSpec[] {
  const found = new Map<string, ParameterSpec>();
  let sectionLevel = 0;
  let rows: string[][] = [];
  const flush = () => {
    for (const spec of tableSpecs(rows)) if (!found.has(spec.name)) found.set(spec.name, spec);
    rows = [];
  };
  for (const line of markdownLines(markdown)) {
    if (line.inFence) {
      flush();
      continue;
    }
    const heading = headingOf(line.text);
    if (heading) {
      flush();
      if (SECTION_RE.test(heading.title)) sectionLevel = heading.level;
      else if (sectionLevel > 0 && heading.level <= sectionLevel) sectionLevel = 0;
      continue;
    }
    if (sectionLevel === 0) continue;
    if (line.text.trim().startsWith('|')) rows.push(tableCells(line.text));
    else flush();
  }
  flush();
  return [...found.values()];
}

/** One table's rows (header, separator, body) as parameter specs; nothing when it is not one. */
function tableSpecs(rows: string[][]): ParameterSpec[] {
  const header = rows[0];
  if (!header || !rows[1] || !isSeparatorRow(rows[1])) return [];
  const cols = columnsOf(header, rows.slice(2));
  if (!cols) return [];
  const out: ParameterSpec[] = [];
  for (const cells of rows.slice(2)) {
    const name = variableName(cells[cols.variable] ?? '');
    if (!name) continue;
    const described = cells[cols.description] ?? cells[cols.label] ?? '';
    out.push({
      name,
      ...classifyDefault(cols.default < 0 ? '' : (cells[cols.default] ?? '')),
      description: described,
    });
  }
  return out;
}

function columnsOf(header: string[], body: string[][]): Columns | null {
  const find = (re: RegExp) => header.findIndex((h) => re.test(h));
  let variable = find(/template|variable|placeholder/i);
  // No such header: the column whose cells hold the `{{...}}`.
  if (variable < 0) variable = header.findIndex((_, i) => body.some((r) => PLACEHOLDER_RE.test(r[i] ?? '')));
  if (variable < 0) return null;
  return {
    variable,
    default: find(/default/i),
    description: find(/description|meaning|purpose/i),
    label: Math.max(0, find(/parameter|name/i)),
  };
}

function variableName(cell: string): string | null {
  const placeholder = PLACEHOLDER_RE.exec(cell)?.[1];
  if (placeholder !== undefined) return placeholder.startsWith('secrets.') ? null : placeholder;
  return IDENT_RE.exec(cell.trim())?.[1] ?? null;
}

/** `*(required)*` → required; `` `/app/results` `` → the value `/app/results`; `-` → none. */
export function classifyDefault(cell: string): { kind: ParameterKind; default?: string } {
  const plain = cell.replace(/[*_`]/g, '').trim();
  const marker = MARKER_RE.exec(plain)?.[1];
  if (marker !== undefined) return { kind: marker.toLowerCase() as ParameterKind };
  if (NO_DEFAULT_RE.test(plain)) return { kind: 'none' };
  return { kind: 'value', default: unwrap(cell.trim()) };
}

/** A value written as code or in quotes is the text inside. */
function unwrap(s: string): string {
  const code = /^(`+)([^`]*)\1$/.exec(s);
  if (code) return code[2]!.trim();
  const quoted =
    /^"(.*)"$/.exec(s) ?? /^'(.*)'$/.exec(s) ?? /^(?:\*\*|__|\*|_)(.+?)(?:\*\*|__|\*|_)$/.exec(s);
  return quoted ? quoted[1]! : s;
}
