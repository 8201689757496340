/**
 * The `simulate` script: a fenced block in the runbook holding a YAML list of steps.
 *
 * The parser reads a strict subset of YAML, and what it accepts means the same as it would to a
 * full YAML parser: one `key: value` per list item, values plain, single-quoted, double-quoted or a
 * literal block scalar (`|`). Anything outside that subset is rejected with the line it is on and
 * how to write it instead, so a runbook author finds out before the run is queued.
 */
import { AppError } from '../../errors.js';

export type SimStep =
  | { kind: 'run'; command: string; line: number }
  | { kind: 'say'; text: string; line: number }
  | { kind: 'sleep'; ms: number; line: number }
  | { kind: 'fail'; status: number; line: number }
  /**
   * The answer to this user message ends here; the steps after it answer the conversation's next
   * user message (a follow-up turn that resumes the CLI's session). The value is a note for readers.
   */
  | { kind: 'await_user'; note: string; line: number };

/** Longest allowed `sleep_ms`: the CLIs give up on a request after about 10 minutes and retry it. */
export const MAX_SLEEP_MS = 300_000;

const STEP_KEYS = ['run', 'say', 'sleep_ms', 'fail', 'await_user'] as const;
type StepKey = (typeof STEP_KEYS)[number];

/** A script that cannot run. 422: the request is well formed but its runbook is not runnable. */
export class SimulateScriptError extends AppError {
  /** 1-based line in the runbook text. */
  readonly line: number;

  constructor(line: number, problem: string) {
    super(`Invalid \`simulate\` block in the runbook, line ${line}: ${problem}`, {
      status: 422,
      type: 'invalid_request_error',
      code: 'invalid_simulate_script',
      param: 'runbook',
    });
    this.name = 'SimulateScriptError';
    this.line = line;
  }
}

export type SimulateScriptValidation = { ok: true; steps: SimStep[] | null } | { ok: false; message: string };

/** Checks the runbook's script without throwing. `steps: null` means there is no script block. */
export function validateSimulateScript(runbook: string): SimulateScriptValidation {
  try {
    return { ok: true, steps: parseSimulateScript(runbook) };
  } catch (err) {
    if (err instanceof SimulateScriptError) return { ok: false, message: err.message };
    throw err;
  }
}

/**
 * The steps of the runbook's `simulate` block, or null when it has none.
 * Throws SimulateScriptError naming the line of the first problem.
 */
export function parseSimulateScript(runbook: string): SimStep[] | null {
  const block = findSimulateBlock(runbook);
  if (block === null) return null;
  const steps = parseSteps(block.lines);
  if (steps.length === 0) {
    throw new SimulateScriptError(
      block.openLine,
      'the block has no steps. Add steps such as `- say: hello`, or remove the block to get the default dry run.',
    );
  }
  checkReachable(steps);
  return steps;
}

interface Line {
  no: number;
  text: string;
}

interface FencedBlock {
  openLine: number;
  lines: Line[];
}

const FENCE_OPEN = /^( {0,3})(`{3,}|~{3,})(.*)$/;

/** Finds the one fenced block whose info string is `simulate`, skipping fences nested in other blocks. */
function findSimulateBlock(markdown: string): FencedBlock | null {
  const lines = markdown.split(/\r?\n|\r/);
  let found: FencedBlock | null = null;
  let i = 0;
  while (i < lines.length) {
    const open = FENCE_OPEN.exec(lines[i] ?? '');
    if (open === null) {
      i++;
      continue;
    }
    const indent = open[1]!.length;
    const fence = open[2]!;
    const info = open[3]!.trim();
    // A backtick fence's info string may not contain backticks (CommonMark): that is inline code.
    if (fence[0] === '`' && info.includes('`')) {
      i++;
      continue;
    }
    const openLine = i + 1;
    const close = new RegExp(`^ {0,3}${fence[0] === '`' ? '`' : '~'}{${fence.length},}[ \\t]*$`);
    const body: Line[] = [];
    let closed = false;
    i++;
    for (; i < lines.length; i++) {
      const text = lines[i]!;
      if (close.test(text)) {
        closed = true;
        i++;
        break;
      }
      // Content lines lose up to the opening fence's indentation (CommonMark).
      const strip = Math.min(indent, text.length - text.trimStart().length);
      body.push({ no: i + 1, text: text.slice(strip) });
    }
    if (info.split(/\s+/)[0] !== 'simulate') continue;
    if (!closed) {
      throw new SimulateScriptError(
        openLine,
        'the block is never closed. End it with a line holding only ```.',
      );
    }
    if (found !== null) {
      throw new SimulateScriptError(
        openLine,
        `a second \`simulate\` block (the first starts on line ${found.openLine}). Keep one.`,
      );
    }
    found = { openLine, lines: body };
  }
  return found;
}

function isBlankOrComment(text: string): boolean {
  const t = text.trim();
  return t === '' || t.startsWith('#');
}

function leadingSpaces(text: string): number {
  return text.length - text.replace(/^ +/, '').length;
}

function parseSteps(lines: Line[]): SimStep[] {
  const steps: SimStep[] = [];
  let listIndent: number | null = null;
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (isBlankOrComment(line.text)) {
      i++;
      continue;
    }
    const indent = leadingSpaces(line.text);
    if (line.text[indent] === '\t') {
      throw new SimulateScriptError(line.no, 'a tab in the indentation. YAML indents with spaces only.');
    }
    listIndent ??= indent;
    if (indent !== listIndent) {
      throw new SimulateScriptError(
        line.no,
        indent > listIndent
          ? 'an indented line that continues the step above. One step per line: quote the value, or use `|` for a command of several lines.'
          : 'this list item is not lined up with the first one. Start every `- ` in the same column.',
      );
    }
    const rest = line.text.slice(indent);
    if (rest !== '-' && !rest.startsWith('- ')) {
      throw new SimulateScriptError(
        line.no,
        `expected a list item such as \`- run: ls\`, got \`${rest.trim()}\`.`,
      );
    }
    const afterDash = rest.slice(1);
    const keyCol = indent + 1 + leadingSpaces(afterDash);
    const item = afterDash.trim();
    if (item === '' || item.startsWith('#')) {
      throw new SimulateScriptError(
        line.no,
        'an empty list item. Write the step after the dash, e.g. `- say: hello`.',
      );
    }
    const { step, next } = parseItem(lines, i, item, keyCol, listIndent);
    steps.push(step);
    i = next;
  }
  return steps;
}

const KEY_VALUE = /^([^\s:#'"{[][^:]*?)[ \t]*:(?:[ \t]+|$)(.*)$/;

/** Parses the list item on lines[i] (`item` is the text after `- `); returns the step and the next line index. */
function parseItem(
  lines: Line[],
  i: number,
  item: string,
  keyCol: number,
  listIndent: number,
): { step: SimStep; next: number } {
  const line = lines[i]!;
  if (item.startsWith('{')) {
    throw new SimulateScriptError(
      line.no,
      'flow mappings (`{...}`) are not supported. Write `- run: <command>`.',
    );
  }
  const m = KEY_VALUE.exec(item);
  if (m === null) {
    throw new SimulateScriptError(
      line.no,
      `expected \`<step>: <value>\` (one of ${STEP_KEYS.join(', ')}), got \`${item}\`.`,
    );
  }
  const key = m[1]!;
  if (!(STEP_KEYS as readonly string[]).includes(key)) {
    throw new SimulateScriptError(line.no, `unknown step \`${key}\`. Use one of ${STEP_KEYS.join(', ')}.`);
  }
  const stepKey = key as StepKey;
  const valueText = m[2]!;
  let value: ScalarValue;
  let next = i + 1;
  if (valueText.startsWith('|')) {
    const block = readBlockScalar(lines, i, valueText, keyCol);
    value = { text: block.text, style: 'block' };
    next = block.next;
  } else {
    value = parseInlineScalar(valueText, line.no, stepKey);
  }
  // Whatever follows the item must start a new item or be a comment; a second key or a
  // continuation line would mean something this reader does not support.
  for (; next < lines.length; next++) {
    const follow = lines[next]!;
    if (isBlankOrComment(follow.text)) continue;
    const indent = leadingSpaces(follow.text);
    if (indent > listIndent) {
      const k = KEY_VALUE.exec(follow.text.trim());
      throw new SimulateScriptError(
        follow.no,
        k !== null && indent === keyCol
          ? `a second key \`${k[1]}\` in one list item. Each step is its own item: write \`- ${k[1]}: ...\`.`
          : 'an indented line that continues the step above. One step per line: quote the value, or use `|` for a command of several lines.',
      );
    }
    break;
  }
  return { step: toStep(stepKey, value, line.no), next };
}

interface ScalarValue {
  text: string;
  style: 'plain' | 'single' | 'double' | 'block';
}

function parseInlineScalar(valueText: string, lineNo: number, key: StepKey): ScalarValue {
  const first = valueText[0];
  if (first === "'" || first === '"') {
    const { text, end } =
      first === "'" ? readSingleQuoted(valueText, lineNo) : readDoubleQuoted(valueText, lineNo);
    const tail = valueText.slice(end);
    if (tail.trim() !== '' && !/^[ \t]+#/.test(tail)) {
      throw new SimulateScriptError(
        lineNo,
        `unexpected text after the closing quote: \`${tail.trim()}\`. Quote the whole value.`,
      );
    }
    return { text, style: first === "'" ? 'single' : 'double' };
  }
  if (first === '>') {
    throw new SimulateScriptError(lineNo, 'folded block scalars (`>`) are not supported. Use `|`.');
  }
  if (
    (first !== undefined && '&*!%@`{['.includes(first)) ||
    valueText === '?' ||
    valueText.startsWith('? ')
  ) {
    throw new SimulateScriptError(
      lineNo,
      `in YAML a value starting with \`${first}\` is not plain text. Wrap the value in single quotes.`,
    );
  }
  if (valueText === '-' || valueText.startsWith('- ')) {
    throw new SimulateScriptError(
      lineNo,
      `\`${key}\` takes one value, not a list. Quote it if the dash is text.`,
    );
  }
  // A plain scalar ends where a comment starts (whitespace then #).
  const hash = valueText.search(/(^|[ \t])#/);
  const text = (hash === -1 ? valueText : valueText.slice(0, hash)).trim();
  if (/:([ \t]|$)/.test(text)) {
    throw new SimulateScriptError(
      lineNo,
      "a plain value cannot contain `: ` in YAML. Wrap the value in single quotes (double any ' inside).",
    );
  }
  return { text, style: 'plain' };
}

function readSingleQuoted(s: string, lineNo: number): { text: string; end: number } {
  let out = '';
  for (let i = 1; i < s.length; i++) {
    const c = s[i]!;
    if (c === "'") {
      if (s[i + 1] === "'") {
        out += "'";
        i++;
        continue;
      }
      return { text: out, end: i + 1 };
    }
    out += c;
  }
  throw new SimulateScriptError(
    lineNo,
    "the single-quoted value is not closed on this line. Close it with ' (write '' for a quote inside), or use `|` for several lines.",
  );
}

const SIMPLE_ESCAPES: Record<string, string> = {
  '0': '\0',
  a: '\x07',
  b: '\b',
  t: '\t',
  '\t': '\t',
  n: '\n',
  v: '\v',
  f: '\f',
  r: '\r',
  e: '\x1b',
  ' ': ' ',
  '"': '"',
  '/': '/',
  '\\': '\\',
  N: '\u0085',
  _: '\u00a0',
  L: '\u2028',
  P: '\u2029',
};
const HEX_ESCAPES: Record<string, number> = { x: 2, u: 4, U: 8 };

function readDoubleQuoted(s: string, lineNo: number): { text: string; end: number } {
  let out = '';
  for (let i = 1; i < s.length; i++) {
    const c = s[i]!;
    if (c === '"') return { text: out, end: i + 1 };
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = s[i + 1];
    if (e === undefined) break;
    const simple = SIMPLE_ESCAPES[e];
    if (simple !== undefined) {
      out += simple;
      i++;
      continue;
    }
    const width = HEX_ESCAPES[e];
    const hex = width === undefined ? '' : s.slice(i + 2, i + 2 + width);
    if (width === undefined || !new RegExp(`^[0-9a-fA-F]{${width}}$`).test(hex)) {
      throw new SimulateScriptError(
        lineNo,
        `unknown escape \`\\${e}\` in a double-quoted value. Write \\\\ for a backslash, or use single quotes.`,
      );
    }
    const code = Number.parseInt(hex, 16);
    if (code > 0x10ffff) {
      throw new SimulateScriptError(lineNo, `the escape \`\\${e}${hex}\` is not a Unicode character.`);
    }
    out += String.fromCodePoint(code);
    i += 1 + width;
  }
  throw new SimulateScriptError(
    lineNo,
    'the double-quoted value is not closed on this line. Close it with ", or use `|` for several lines.',
  );
}

const BLOCK_HEADER = /^\|(?:([+-])([1-9])?|([1-9])([+-])?)?(?:[ \t]+#.*)?[ \t]*$/;

/** A literal block scalar (`|`, `|-`, `|+`, optionally with an indentation digit) after a key. */
function readBlockScalar(
  lines: Line[],
  i: number,
  header: string,
  keyCol: number,
): { text: string; next: number } {
  const lineNo = lines[i]!.no;
  const h = BLOCK_HEADER.exec(header);
  if (h === null) {
    throw new SimulateScriptError(
      lineNo,
      'after `|` only a chomping sign (`-` or `+`) and a comment may follow; the text goes on the next lines, indented.',
    );
  }
  const chomp = h[1] ?? h[4] ?? '';
  const digit = h[2] ?? h[3];
  // Block content must be indented past the key; an explicit digit is relative to the key's column.
  let contentIndent = digit === undefined ? null : keyCol + Number(digit);
  const body: string[] = [];
  let j = i + 1;
  for (; j < lines.length; j++) {
    const text = lines[j]!.text;
    if (text.trim() === '') {
      body.push(contentIndent === null ? '' : text.slice(contentIndent));
      continue;
    }
    const indent = leadingSpaces(text);
    if (contentIndent === null) {
      if (indent <= keyCol) break;
      contentIndent = indent;
    }
    if (indent < contentIndent) break;
    body.push(text.slice(contentIndent));
  }
  // Trailing empty lines are kept only by `|+`; `|` keeps one line break and `|-` none.
  let last = body.length - 1;
  while (last >= 0 && body[last]!.trim() === '') last--;
  if (last < 0) {
    throw new SimulateScriptError(lineNo, 'the block after `|` is empty. Indent its lines past the key.');
  }
  const content = body.slice(0, last + 1).join('\n');
  const trailing = body.length - 1 - last;
  const text = chomp === '-' ? content : chomp === '+' ? content + '\n'.repeat(trailing + 1) : `${content}\n`;
  return { text, next: j };
}

const NULLS = new Set(['', '~', 'null', 'Null', 'NULL']);

function toStep(key: StepKey, value: ScalarValue, line: number): SimStep {
  if (value.style === 'plain' && NULLS.has(value.text)) {
    throw new SimulateScriptError(
      line,
      `\`${key}\` has no value. Write it on the same line (\`- ${key}: ...\`), or use \`|\` for several lines.`,
    );
  }
  switch (key) {
    case 'run':
      if (value.text.trim() === '') throw new SimulateScriptError(line, '`run` needs a shell command.');
      return { kind: 'run', command: value.text, line };
    case 'say':
      return { kind: 'say', text: value.text, line };
    case 'await_user':
      return { kind: 'await_user', note: value.text, line };
    case 'sleep_ms': {
      const ms = wholeNumber(
        value,
        line,
        'sleep_ms',
        'a whole number of milliseconds, e.g. `- sleep_ms: 500`',
      );
      if (ms > MAX_SLEEP_MS) {
        throw new SimulateScriptError(
          line,
          `\`sleep_ms\` is at most ${MAX_SLEEP_MS} (5 minutes): longer pauses make the agent CLI time out and retry.`,
        );
      }
      return { kind: 'sleep', ms, line };
    }
    case 'fail': {
      const status = wholeNumber(
        value,
        line,
        'fail',
        'an HTTP error status from 400 to 599, e.g. `- fail: 500`',
      );
      if (status < 400 || status > 599) {
        throw new SimulateScriptError(
          line,
          `\`fail\` takes an HTTP error status from 400 to 599, got ${status}.`,
        );
      }
      return { kind: 'fail', status, line };
    }
  }
}

function wholeNumber(value: ScalarValue, line: number, key: string, wanted: string): number {
  if (value.style !== 'plain' || !/^[0-9]+$/.test(value.text)) {
    throw new SimulateScriptError(
      line,
      `\`${key}\` takes ${wanted}, got \`${value.style === 'plain' ? value.text : 'a quoted or block value'}\`.`,
    );
  }
  return Number.parseInt(value.text, 10);
}

/**
 * A failing turn fails on every retry (the provider is stateless), so nothing after a `fail` is ever
 * reached (until the next user message, `await_user`), and neither is a `say` in the same turn
 * before it: reject both rather than drop them.
 */
function checkReachable(steps: SimStep[]): void {
  let turnSay: SimStep | null = null;
  let failed: SimStep | null = null;
  for (const step of steps) {
    if (step.kind === 'await_user') {
      turnSay = null;
      failed = null;
      continue;
    }
    if (failed !== null) {
      throw new SimulateScriptError(
        step.line,
        `this step is never reached: the \`fail\` on line ${failed.line} fails its turn on every retry. Remove the steps after it, or start the answer to the next user message with \`- await_user: ...\`.`,
      );
    }
    if (step.kind === 'run') turnSay = null;
    else if (step.kind === 'say') turnSay ??= step;
    else if (step.kind === 'fail') {
      if (turnSay !== null) {
        throw new SimulateScriptError(
          step.line,
          `\`fail\` replaces the whole answer of its turn, so the \`say\` on line ${turnSay.line} would never be shown. Put a \`run\` between them or remove the \`say\`.`,
        );
      }
      failed = step;
    }
  }
}
