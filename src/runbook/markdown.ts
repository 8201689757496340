/**
 * The few pieces of markdown structure the runbook rules need: which lines sit inside fenced code,
 * headings, and table rows. Not a markdown parser: runbooks are written for agents to read, and
 * these rules only have to agree with what an author sees.
 */

const FENCE_RE = /^ {0,3}(`{3,}|~{3,})/;
const HEADING_RE = /^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$/;
const SEPARATOR_CELL_RE = /^\s*:?-+:?\s*$/;

export interface MarkdownLine {
  text: string;
  /** Inside a fenced code block, or one of its fences. */
  inFence: boolean;
}

/** Every line, marked when it belongs to fenced code (an unclosed fence runs to the end). */
export function markdownLines(markdown: string): MarkdownLine[] {
  const out: MarkdownLine[] = [];
  let fence: string | null = null;
  for (const text of markdown.split(/\r?\n/)) {
    const m = FENCE_RE.exec(text)?.[1];
    if (fence !== null) {
      out.push({ text, inFence: true });
      if (m && m[0] === fence[0] && m.length >= fence.length) fence = null;
      continue;
    }
    if (m) {
      fence = m;
      out.push({ text, inFence: true });
      continue;
    }
    out.push({ text, inFence: false });
  }
  return out;
}

/** The text with fenced code blocks left out (line breaks kept, so nothing joins up). */
export function withoutFencedCode(markdown: string): string {
  return markdownLines(markdown)
    .map((l) => (l.inFence ? '' : l.text))
    .join('\n');
}

/** `{level, title}` for a heading line, else null. */
export function headingOf(line: string): { level: number; title: string } | null {
  const m = HEADING_RE.exec(line);
  return m ? { level: m[1]?.length ?? 1, title: m[2] ?? '' } : null;
}

/** The cells of a `| a | b |` row, trimmed; `\|` stays inside its cell (as `|`). */
export function tableCells(row: string): string[] {
  const inner = row
    .trim()
    .replace(/^\|/, '')
    .replace(/(?<!\\)\|$/, '');
  return inner.split(/(?<!\\)\|/).map((c) => c.trim().replaceAll('\\|', '|'));
}

export function isSeparatorRow(cells: readonly string[]): boolean {
  return cells.length > 0 && cells.every((c) => SEPARATOR_CELL_RE.test(c));
}
