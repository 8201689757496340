/**
 * The turn plan: what the simulated model answers in each turn, independent of the wire protocol.
 *
 * A turn is one model request of the agent's loop. Turn N is the request that already carries N
 * tool results, so the provider needs no memory: a retried request replays the same turn.
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

export interface TurnPlan {
  turns: Turn[];
}

/** What the script's last turn says when the script itself ends on a `run`. */
export const CLOSING_TEXT = 'Done.';

/** Steps run in order; a `run` ends its turn, and whatever follows waits for its result. */
export function compileTurns(steps: readonly SimStep[]): TurnPlan {
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
    }
  }
  // The last turn must end the agent's loop with words, never silence or a tool call.
  if (current.failStatus === null && !current.items.some((item) => item.kind === 'text')) {
    current.items.push({ kind: 'text', text: CLOSING_TEXT });
  }
  turns.push(current);
  return { turns };
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
 * The turn a request is in, given how many tool results it carries. Past the end of the plan (the
 * agent ran more tools than the script has, e.g. on its own initiative) it says so and stops.
 */
export function turnAt(plan: TurnPlan, toolResults: number): Turn {
  const turn = plan.turns[toolResults];
  if (turn !== undefined) return turn;
  return {
    index: toolResults,
    delayMs: 0,
    items: [{ kind: 'text', text: 'The simulated script has no more steps.' }],
    failStatus: null,
  };
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
