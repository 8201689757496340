/**
 * The earlier turns of a conversation, written into the prompt of a turn whose runtime cannot
 * resume its CLI session (or whose session is gone). Bounded by CONVERSATION_HISTORY_MAX_BYTES:
 * the newest turns are kept first, each cut to a share of the budget, and what was left out is
 * said in the text itself.
 */
import { withoutMarkers } from './marker.js';

export interface EarlierTurn {
  turn: number;
  /** What the user wrote in that turn. */
  message: string;
  /** What the agent answered (its final text), or null when it ended without one. */
  answer: string | null;
  status: string;
}

export interface History {
  text: string;
  /** Turns given in full or cut, and turns left out for the budget. */
  included: number;
  omitted: number;
}

/** `turns` oldest first; `maxBytes` bounds the whole text (UTF-8). */
export function summarizeHistory(turns: readonly EarlierTurn[], maxBytes: number): History {
  const head =
    'This conversation continues. Earlier turns are below (the files they left in /app are still there); the new message follows them.';
  // A single turn may take at most half the budget, so the one before it is never crowded out.
  const perTurn = Math.max(256, Math.floor(maxBytes / 2));
  const blocks: string[] = [];
  let used = bytes(head) + 64;
  let omitted = 0;
  for (let i = turns.length - 1; i >= 0; i--) {
    const block = render(turns[i]!, perTurn);
    if (used + bytes(block) > maxBytes) {
      omitted = i + 1;
      break;
    }
    blocks.unshift(block);
    used += bytes(block);
  }
  const note = omitted > 0 ? [`(${omitted} earlier turn(s) left out: CONVERSATION_HISTORY_MAX_BYTES.)`] : [];
  const text = [head, ...note, ...blocks, '---', 'New message:'].join('\n\n');
  return { text, included: blocks.length, omitted };
}

function render(t: EarlierTurn, max: number): string {
  const answer =
    t.answer === null || t.answer.trim() === ''
      ? `(no answer: the turn ended ${t.status})`
      : withoutMarkers(t.answer);
  const half = Math.floor(max / 2);
  return `--- Turn ${t.turn}\n\nUser:\n${cut(t.message.trim(), half)}\n\nYou answered:\n${cut(answer.trim(), half)}`;
}

function cut(text: string, max: number): string {
  if (bytes(text) <= max) return text;
  let s = text.slice(0, max);
  while (bytes(s) > max - 16) s = s.slice(0, -64);
  return `${s}… (cut)`;
}

function bytes(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}
