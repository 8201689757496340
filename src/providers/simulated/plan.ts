/**
 * The turn plan: what the simulated model answers in each turn, independent of the wire protocol.
 *
 * A turn is one model request of the agent's loop. Turn N is the request that already carries N
 * tool results since the last user message, so the provider needs no memory: a retried request
 * replays the same turn. A conversation (a follow-up that resumes the CLI's session) resends the
 * earlier user messages too: the Kth user message of the request is answered by the Kth section
 * of the script (sections are separated by `await_user`).
 */
import type { SimStep } from './script.js';

export type TurnItem =
  /** Assistant text, one content block. */
  | { kind: 'text'; text: string }
  /** A call of the client's shell tool; always the last content item of its turn. */
  | { kind: 'tool'; command: string }
  /** A pause between two pieces of content (or after the last one). */
  | { kind: 'pause'; ms: number };

export interface Turn {
  index: number;
  /** Wait this long before answering at all: before the response starts, and before a failure. */
  delayMs: number;
  /** Content and pauses in order; at most one `tool`, and nothing but pauses after it. */
  items: TurnItem[];
  /** Answer with this HTTP error status instead of content. */
  failStatus: number | null;
}

/** A turn as answered: the turn and where it is in the script. */
export interface PlacedTurn extends Turn {
  /**
   * Names the turn in the ids of what it answers (message, tool call): the index in the first
   * section, `<section>_<index>` after it. A resumed session holds every section's answers, and
   * claude-code merges blocks that share a message id.
   */
  key: string;
}

export interface TurnPlan {
  /** The turns answering the first user message. */
  turns: Turn[];
  /** The turns answering each later user message of a conversation, in order (`await_user`). */
  followUps: Turn[][];
}

/** Where a request is: which user message of the conversation, and how many tool results since it. */
export interface TurnPosition {
  /** 0 for the first user message, 1 for the next one, … */
  message: number;
  toolResults: number;
}

/** What the script's last turn says when the script itself ends on a `run`. */
export const CLOSING_TEXT = 'Done.';

/**
 * Steps run in order; a `run` ends its turn, and whatever follows waits for its result. An
 * `await_user` ends the answer to one user message: the steps after it answer the next one.
 */
export function compileTurns(steps: readonly SimStep[]): TurnPlan {
  const sections: SimStep[][] = [[]];
  for (const step of steps) {
    if (step.kind === 'await_user') sections.push([]);
    else sections[sections.length - 1]!.push(step);
  }
  const [first = [], ...rest] = sections.map(compileSection);
  return { turns: first, followUps: rest };
}

function compileSection(steps: readonly SimStep[]): Turn[] {
  const turns: Turn[] = [];
  let current = newTurn(0);
  for (const step of steps) {
    switch (step.kind) {
      case 'say':
        current.items.push({ kind: 'text', text: step.text });
        break;
      case 'sleep':
        addPause(current, step.ms);
        break;
      case 'fail':
        current.failStatus = step.status;
        break;
      case 'run':
        current.items.push({ kind: 'tool', command: step.command });
        turns.push(current);
        current = newTurn(turns.length);
        break;
      case 'await_user':
        break;
    }
  }
  // The last turn must end the agent's loop with words, never silence or a tool call.
  if (current.failStatus === null && !current.items.some((item) => item.kind === 'text')) {
    current.items.push({ kind: 'text', text: CLOSING_TEXT });
  }
  turns.push(current);
  return turns;
}

function newTurn(index: number): Turn {
  return { index, delayMs: 0, items: [], failStatus: null };
}

function addPause(turn: Turn, ms: number): void {
  if (ms <= 0) return;
  // Before any content, a pause delays the whole answer (and a failure); after, it sits between blocks.
  if (turn.items.length === 0) {
    turn.delayMs += ms;
    return;
  }
  const last = turn.items[turn.items.length - 1];
  if (last?.kind === 'pause') last.ms += ms;
  else turn.items.push({ kind: 'pause', ms });
}

/**
 * The turn a request is in, given which user message it answers and how many tool results it
 * carries since. Past the end of the plan (the agent ran more tools than the script has, e.g. on
 * its own initiative, or the user wrote more messages than it answers) it says so and stops.
 */
export function turnAt(plan: TurnPlan, at: TurnPosition): PlacedTurn {
  const section = at.message === 0 ? plan.turns : plan.followUps[at.message - 1];
  const turn = section?.[at.toolResults];
  if (turn !== undefined)
    return { ...turn, key: at.message === 0 ? String(turn.index) : `${at.message}_${turn.index}` };
  const text =
    section === undefined
      ? `The simulated script has no steps for message ${at.message + 1} of this conversation (add \`- await_user: ...\` and the steps that answer it).`
      : 'The simulated script has no more steps.';
  return {
    index: at.toolResults,
    key: `${at.message}_${at.toolResults}`,
    delayMs: 0,
    items: [{ kind: 'text', text }],
    failStatus: null,
  };
}

/**
 * Text the CLIs add to the conversation themselves, in a user message, wraps itself in a tag
 * (`<system-reminder>`, `<environment_context>`, `<session_context>`): it is not the user speaking.
 */
const INJECTED = /^\s*<([A-Za-z][\w-]*)>/;

/** Whether a text part is the user's own words rather than context the CLI injected. */
export function isUserText(text: unknown): boolean {
  return typeof text === 'string' && text.trim() !== '' && !INJECTED.test(text);
}

/**
 * The earlier turns a user message summarizes, for a runtime that cannot resume its session (the
 * server writes them into the prompt as `--- Turn N` blocks, src/conversations/history.ts): such a
 * message answers the turn after the last one it names, as a real model reading it would.
 */
export function summarizedTurns(text: unknown): number {
  if (typeof text !== 'string') return 0;
  let last = 0;
  for (const m of text.matchAll(/^--- Turn (\d+)$/gm)) last = Math.max(last, Number(m[1]));
  return last;
}

/** A user message (with the earlier turns it summarizes), a tool result, or something else. */
export type MessageKind = { user: number } | 'tool_result' | 'other';

/** The kind of a user message from its text parts: the user's own words, or only injected context. */
export function userKind(texts: readonly unknown[]): MessageKind {
  const own = texts.filter(isUserText);
  if (own.length === 0) return 'other';
  return { user: Math.max(0, ...own.map(summarizedTurns)) };
}

/**
 * The position of a request from its messages in order. Tool results count from the last user
 * message; the user messages (and the turns they summarize) say which message it answers.
 */
export function positionOf(kinds: Iterable<MessageKind>): TurnPosition {
  let users = 0;
  let toolResults = 0;
  for (const kind of kinds) {
    if (typeof kind === 'object') {
      users += 1 + kind.user;
      toolResults = 0;
    } else if (kind === 'tool_result') toolResults++;
  }
  return { message: Math.max(0, users - 1), toolResults };
}

/** Total pause of a turn, for protocols answered in one piece (non-streaming). */
export function totalPauseMs(turn: Turn): number {
  let ms = turn.delayMs;
  for (const item of turn.items) if (item.kind === 'pause') ms += item.ms;
  return ms;
}

/** A deterministic token estimate (about four characters a token), never zero. */
export function estimateTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

/**
 * Splits text into small deltas at word boundaries, so clients see it stream. Concatenating the
 * pieces gives back the text exactly.
 */
export function splitForStreaming(text: string, maxPieces = 32): string[] {
  if (text === '') return [''];
  const words = text.match(/\S+\s*|\s+/g) ?? [text];
  const target = Math.max(12, Math.ceil(text.length / maxPieces));
  const pieces: string[] = [];
  let piece = '';
  for (const word of words) {
    piece += word;
    if (piece.length >= target) {
      pieces.push(piece);
      piece = '';
    }
  }
  if (piece !== '') pieces.push(piece);
  return pieces;
}

/** What a turn scripted with `fail: N` says, in every protocol's error shape. */
export function scriptedFailMessage(turn: Turn): string {
  return `Simulated provider: turn ${turn.index} is scripted to fail with HTTP ${turn.failStatus} (\`fail: ${turn.failStatus}\` in the runbook's simulate block).`;
}
