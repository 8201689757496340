/**
 * Template variables in a chat message, for a task run as a model (`task/<name>`), where the client
 * can send nothing but messages. Two forms:
 *
 * - a fenced block with the info string `vars`, holding a JSON object or `name: value` lines;
 * - `name: value` lines at the very start of the message, for names the runbook uses
 *   (`{{name}}`) or declares; the first other line ends them, so ordinary prose is never read as
 *   variables.
 *
 * What is left of the message (without the block or the lines) is the user's instruction.
 */
import { badRequest, quoted } from '../errors.js';
import { isPlainObject } from '../json.js';

/** Where a caller's variables came from, for error messages. */
export const MESSAGE_VARS_PARAM = 'messages.vars';

const FENCE = /^(`{3,}|~{3,})[ \t]*vars[ \t]*\r?\n([\s\S]*?)\r?\n\1[ \t]*$/m;
const LINE = /^[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*:[ \t]*(.*?)[ \t]*$/;

export interface MessageVars {
  vars: Record<string, string>;
  /** The message without the variables. */
  text: string;
}

/** The variables a message gives and the rest of it; `known` are the names the runbook uses. */
export function varsFromMessage(message: string, known: ReadonlySet<string>): MessageVars {
  const fence = FENCE.exec(message);
  if (fence) {
    const vars = parseBlock(fence[2] ?? '');
    const text = `${message.slice(0, fence.index)}${message.slice(fence.index + fence[0].length)}`.trim();
    return { vars, text };
  }
  return leadingLines(message, known);
}

function parseBlock(body: string): Record<string, string> {
  const trimmed = body.trim();
  if (trimmed.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch (err) {
      throw badRequest(
        `The \`vars\` block of your message is not valid JSON (${(err as Error).message}). Write a JSON object of strings, or one \`name: value\` per line.`,
        MESSAGE_VARS_PARAM,
      );
    }
    if (!isPlainObject(parsed)) {
      throw badRequest('The `vars` block of your message must hold one JSON object.', MESSAGE_VARS_PARAM);
    }
    // Numbers and booleans as the user typed them: a chat user does not think in JSON types.
    return Object.fromEntries(
      Object.entries(parsed).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
    );
  }
  const vars: Record<string, string> = {};
  for (const [i, line] of body.split(/\r?\n/).entries()) {
    if (line.trim() === '' || line.trim().startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) {
      throw badRequest(
        `Line ${i + 1} of the \`vars\` block of your message is not \`name: value\`: ${quoted(line, 80)}. Write one variable per line, e.g. \`topic: whales\`.`,
        MESSAGE_VARS_PARAM,
      );
    }
    vars[m[1]!] = unquote(m[2]!);
  }
  return vars;
}

function leadingLines(message: string, known: ReadonlySet<string>): MessageVars {
  const lines = message.split(/\r?\n/);
  const vars: Record<string, string> = {};
  let i = 0;
  for (; i < lines.length; i++) {
    const m = LINE.exec(lines[i]!);
    if (!m || !known.has(m[1]!)) break;
    vars[m[1]!] = unquote(m[2]!);
  }
  return { vars, text: lines.slice(i).join('\n').trim() };
}

function unquote(v: string): string {
  const q = v[0];
  return (q === '"' || q === "'") && v.length >= 2 && v.endsWith(q) ? v.slice(1, -1) : v;
}
