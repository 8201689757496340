/**
 * The README's runnable examples. A code block is runnable when the line before its fence (blank
 * lines aside) is `<!-- runnable -->`; a ```text block right after it (blank lines aside) is the
 * output the README shows for it. Languages: sh/bash (run with bash), js (saved as a .mjs file, run
 * with node), python (run with python3).
 */

export type BlockLanguage = 'sh' | 'js' | 'python';

export interface ReadmeBlock {
  /** 1-based line of the opening fence, to name the block in a failure. */
  line: number;
  lang: BlockLanguage;
  code: string;
  /** The output the README shows for it, if any. */
  shown: string | undefined;
}

const MARKER = '<!-- runnable -->';
const LANGS: Record<string, BlockLanguage> = {
  sh: 'sh',
  bash: 'sh',
  shell: 'sh',
  js: 'js',
  python: 'python',
};

interface Fence {
  start: number;
  end: number;
  info: string;
  body: string;
}

/** Every fenced block of a markdown text (``` or ~~~, three or more, as CommonMark closes them). */
function fences(lines: string[]): Fence[] {
  const out: Fence[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)/.exec(lines[i]!);
    if (!open) continue;
    const mark = open[1]!;
    const close = new RegExp(`^ {0,3}${mark[0] === '`' ? '`' : '~'}{${mark.length},}\\s*$`);
    let j = i + 1;
    while (j < lines.length && !close.test(lines[j]!)) j++;
    out.push({ start: i, end: j, info: open[2]!.toLowerCase(), body: lines.slice(i + 1, j).join('\n') });
    i = j;
  }
  return out;
}

const nextNonBlank = (lines: string[], from: number): number => {
  let i = from;
  while (i < lines.length && lines[i]!.trim() === '') i++;
  return i;
};

export function runnableBlocks(markdown: string): ReadmeBlock[] {
  const lines = markdown.split('\n');
  const all = fences(lines);
  const byStart = new Map(all.map((f) => [f.start, f]));
  const blocks: ReadmeBlock[] = [];
  lines.forEach((text, i) => {
    if (text.trim() !== MARKER) return;
    const fence = byStart.get(nextNonBlank(lines, i + 1));
    if (!fence) throw new Error(`README line ${i + 1}: ${MARKER} is not followed by a code block`);
    const lang = LANGS[fence.info];
    if (!lang) throw new Error(`README line ${fence.start + 1}: cannot run a \`${fence.info}\` block`);
    const after = byStart.get(nextNonBlank(lines, fence.end + 1));
    blocks.push({
      line: fence.start + 1,
      lang,
      code: `${fence.body}\n`,
      shown: after?.info === 'text' ? after.body : undefined,
    });
  });
  return blocks;
}

/**
 * A shown output line as a pattern: what changes from run to run (ids, numbers, times, sizes,
 * versions: any run of hex digits holding a decimal digit) matches any such run, and `…` marks
 * text left out. A line that is only `…` stands for lines left out.
 */
export function linePattern(shown: string): RegExp {
  const parts = shown.trim().split(/(…|[0-9a-f]*[0-9][0-9a-f]*)/);
  const re = parts
    .map((p, k) => {
      if (k % 2 === 0) return p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      return p === '…' ? '.*' : '[0-9a-f]+';
    })
    .join('');
  return new RegExp(re);
}

/**
 * The shown lines the actual output lacks: each shown line must match an actual line, in the
 * order shown (the actual output may have more lines between them).
 */
export function missingShownLines(shown: string, actual: string): string[] {
  const want = shown.split('\n').filter((l) => l.trim() !== '' && l.trim() !== '…');
  const got = actual.split('\n');
  const missing: string[] = [];
  let at = 0;
  for (const line of want) {
    const re = linePattern(line);
    const found = got.findIndex((g, k) => k >= at && re.test(g));
    if (found < 0) missing.push(line);
    else at = found + 1;
  }
  return missing;
}
