/**
 * How a chat client's next message is recognised as continuing a run. Chat clients (Open WebUI,
 * LibreChat, IDE assistants) can set a base URL, a key and a model, and nothing per request; what
 * they do send is the whole history, assistant answers included, as they received them. So an
 * answer ends with a marker naming its run, in a form every markdown renderer hides: a link
 * reference definition (`[//]: # (…)`, CommonMark's "comment"), which renders as nothing and is
 * kept, unchanged, in the history the client sends back.
 */

const RUN_ID = '[A-Za-z0-9_-]{1,64}';
const MARKER = new RegExp(`^\\[//\\]: # \\(jetty:run:(${RUN_ID})\\)[ \\t]*$`, 'gm');

/** The marker that ends an answer of run `runId` (preceded by a blank line, as CommonMark needs). */
export function conversationMarker(runId: string): string {
  return `\n\n[//]: # (jetty:run:${runId})`;
}

/** The run the text's last marker names, if it has one. */
export function markedRun(text: string): string | undefined {
  let last: string | undefined;
  for (const m of text.matchAll(MARKER)) last = m[1];
  return last;
}

/** The text without its markers, as the user saw it. */
export function withoutMarkers(text: string): string {
  return text.replace(MARKER, '').trimEnd();
}

/** A chat message as far as recognising a follow-up goes: its role and its text. */
export interface ChatTurnMessage {
  role: string;
  text: string;
}

/**
 * The latest assistant answer that carries a marker, and the user's messages after it (the new
 * input of the follow-up). Undefined when no answer carries one: the request starts a conversation.
 */
export function followUpOf(
  messages: readonly ChatTurnMessage[],
): { runId: string; answerIndex: number; input: string } | undefined {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.role !== 'assistant') continue;
    const runId = markedRun(m.text);
    if (runId === undefined) continue;
    return { runId, answerIndex: i, input: userTextAfter(messages, i) };
  }
  return undefined;
}

/** The user's messages after index `i` (all of them with -1), joined: a turn's new input. */
export function userTextAfter(messages: readonly ChatTurnMessage[], i: number): string {
  return messages
    .slice(i + 1)
    .filter((m) => m.role === 'user')
    .map((m) => m.text.trim())
    .filter((t) => t !== '')
    .join('\n\n');
}

/** Index of the last assistant message, -1 when there is none. */
export function lastAnswerIndex(messages: readonly ChatTurnMessage[]): number {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]!.role === 'assistant') return i;
  return -1;
}
