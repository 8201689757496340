/**
 * What a runbook body says about how it is scored: the Final Checklist's verification script, the
 * rubric table `| # | Criterion | 5 | 3 | 1 |`, the pass threshold ("average >= 4.0, no criterion
 * below 3") and the Objective. Read from the templated body, so `{{results_dir}}` is already a
 * path. Like the other runbook rules, it reads what an author sees, not a full markdown tree.
 */
import { headingOf, isSeparatorRow, markdownLines, tableCells } from '../runbook/markdown.js';
import { DEFAULT_THRESHOLD, type PassThreshold, type RubricCriterion } from './types.js';

const FENCE_OPEN_RE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)/;
const SHELL_LANGUAGES = new Set(['', 'bash', 'sh', 'shell', 'zsh', 'console']);
const MARKER_RE = /FINAL OUTPUT VERIFICATION/i;
const CHECKLIST_RE = /final\s+checklist/i;
const SCRIPT_HEADING_RE = /verification\s+script/i;

interface FencedBlock {
  language: string;
  content: string;
  /** The headings above the block, outermost first. */
  headings: string[];
}

/** Every fenced block with the headings it sits under. */
function fencedBlocks(body: string): FencedBlock[] {
  const blocks: FencedBlock[] = [];
  const stack: { level: number; title: string }[] = [];
  let open: { fence: string; language: string; lines: string[] } | null = null;
  for (const line of body.split(/\r?\n/)) {
    if (open) {
      const close = FENCE_OPEN_RE.exec(line);
      if (close && close[1]![0] === open.fence[0] && close[1]!.length >= open.fence.length && !close[2]) {
        blocks.push({
          language: open.language,
          content: open.lines.join('\n'),
          headings: stack.map((h) => h.title),
        });
        open = null;
      } else {
        open.lines.push(line);
      }
      continue;
    }
    const fence = FENCE_OPEN_RE.exec(line);
    if (fence) {
      open = { fence: fence[1]!, language: (fence[2] ?? '').toLowerCase(), lines: [] };
      continue;
    }
    const h = headingOf(line);
    if (h) {
      while (stack.length > 0 && stack[stack.length - 1]!.level >= h.level) stack.pop();
      stack.push(h);
    }
  }
  return blocks;
}

/**
 * The runbook's verification script: the shell block that prints `=== FINAL OUTPUT VERIFICATION
 * ===` (Jetty's template), else the first shell block under a "Verification Script" heading, else
 * the first shell block of the "Final Checklist" section. null when there is none.
 */
export function verificationScript(body: string): string | null {
  const shell = fencedBlocks(body).filter((b) => SHELL_LANGUAGES.has(b.language) && b.content.trim());
  const marked = shell.find((b) => MARKER_RE.test(b.content));
  const titled = shell.find((b) => b.headings.some((t) => SCRIPT_HEADING_RE.test(t)));
  const checklist = shell.find((b) => b.headings.some((t) => CHECKLIST_RE.test(t)));
  return (marked ?? titled ?? checklist)?.content ?? null;
}

/** `Clarity & tone` → `clarity-tone`: the key of a criterion in rubric_scores. */
export function criterionKey(name: string): string {
  return (
    name
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'criterion'
  );
}

function plain(cell: string): string {
  return cell
    .replace(/\*\*|__|`/g, '')
    .replace(/^[*_]|[*_]$/g, '')
    .trim();
}

/**
 * The criteria of the rubric table: the first table whose header has a Criterion column and
 * columns starting with 5, 3 and 1. Empty when the body has none.
 */
export function rubricCriteria(body: string, maxCriteria = 50): RubricCriterion[] {
  const lines = markdownLines(body);
  for (let i = 0; i + 1 < lines.length; i++) {
    const header = lines[i]!;
    if (header.inFence || !header.text.trim().startsWith('|')) continue;
    const cols = tableCells(header.text).map((c) => plain(c).toLowerCase());
    const sep = lines[i + 1]!;
    if (!sep.text.trim().startsWith('|') || !isSeparatorRow(tableCells(sep.text))) continue;
    const at = {
      number: cols.findIndex((c) => c === '#' || c === 'no' || c === 'no.'),
      name: cols.findIndex((c) => c.startsWith('criterion') || c.startsWith('criteria')),
      excellent: cols.findIndex((c) => /^5\b/.test(c)),
      acceptable: cols.findIndex((c) => /^3\b/.test(c)),
      poor: cols.findIndex((c) => /^1\b/.test(c)),
    };
    if (at.name < 0 || at.excellent < 0 || at.acceptable < 0 || at.poor < 0) continue;
    return criteriaRows(lines.slice(i + 2), at, maxCriteria);
  }
  return [];
}

function criteriaRows(
  rows: { text: string; inFence: boolean }[],
  at: { number: number; name: number; excellent: number; acceptable: number; poor: number },
  max: number,
): RubricCriterion[] {
  const out: RubricCriterion[] = [];
  const seen = new Set<string>();
  for (const row of rows) {
    if (row.inFence || !row.text.trim().startsWith('|') || out.length >= max) break;
    const cells = tableCells(row.text);
    const name = plain(cells[at.name] ?? '');
    if (!name) continue;
    const n = Number.parseInt(plain(cells[at.number] ?? ''), 10);
    let key = criterionKey(name);
    // Two criteria of one name still get a key each.
    for (let k = 2; seen.has(key); k++) key = `${criterionKey(name)}-${k}`;
    seen.add(key);
    out.push({
      number: Number.isInteger(n) && n > 0 ? n : out.length + 1,
      name,
      key,
      levels: {
        excellent: plain(cells[at.excellent] ?? ''),
        acceptable: plain(cells[at.acceptable] ?? ''),
        poor: plain(cells[at.poor] ?? ''),
      },
    });
  }
  return out;
}

const AVERAGE_RE =
  /(?:average|mean|overall\s+score)\s*(?:score\s*)?(?:>=|≥|=>|of\s+at\s+least|at\s+least|must\s+be\s+at\s+least|is\s+at\s+least)\s*(\d(?:\.\d+)?)/i;
const PASS_RE = /\bpass(?:\s+threshold)?\s*:?\s*(?:>=|≥)\s*(\d(?:\.\d+)?)/i;
const MIN_RE =
  /(?:no|none|not\s+any)\s+(?:individual\s+|single\s+)?(?:criterion|criteria|score)\s+(?:is\s+|may\s+be\s+|scored\s+)?below\s+(\d)/i;

/** The rubric's pass threshold as the runbook states it; Jetty's template's where it says nothing. */
export function passThreshold(body: string): PassThreshold {
  const text = body.replace(/\*\*|__/g, '');
  const avg = AVERAGE_RE.exec(text)?.[1] ?? PASS_RE.exec(text)?.[1];
  const min = MIN_RE.exec(text)?.[1];
  const average = avg === undefined ? DEFAULT_THRESHOLD.average : Number(avg);
  const minCriterion = min === undefined ? DEFAULT_THRESHOLD.min_criterion : Number(min);
  return {
    average: average >= 1 && average <= 5 ? average : DEFAULT_THRESHOLD.average,
    min_criterion: minCriterion >= 1 && minCriterion <= 5 ? minCriterion : DEFAULT_THRESHOLD.min_criterion,
  };
}

/** The text of the `Objective` section (fenced code left in), cut to `max` characters. */
export function objectiveOf(body: string, max = 4000): string {
  const lines = body.split(/\r?\n/);
  const out: string[] = [];
  let level = 0;
  for (const line of lines) {
    const h = headingOf(line);
    if (h) {
      if (level > 0 && h.level <= level) break;
      if (level === 0 && /^objective\b/i.test(h.title)) {
        level = h.level;
        continue;
      }
    }
    if (level > 0) out.push(line);
  }
  const text = out.join('\n').trim();
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
