import { describe, expect, it } from 'vitest';
import { summarizeHistory } from '../../src/conversations/history.js';
import { conversationMarker, followUpOf, markedRun, withoutMarkers } from '../../src/conversations/marker.js';
import { varsFromMessage } from '../../src/conversations/vars.js';
import { isAppError } from '../../src/errors.js';
import { AGENT_HOME } from '../../src/runtimes/json-lines.js';
import { listRuntimes } from '../../src/runtimes/registry.js';

describe('the conversation marker', () => {
  it('ends an answer with a line every markdown renderer hides, naming the run', () => {
    const answer = `The report is ready.${conversationMarker('a1b2c3d4e5f60718')}`;
    expect(answer).toBe('The report is ready.\n\n[//]: # (jetty:run:a1b2c3d4e5f60718)');
    expect(markedRun(answer)).toBe('a1b2c3d4e5f60718');
    expect(withoutMarkers(answer)).toBe('The report is ready.');
  });

  it('finds the latest marked answer in a resent history, and the user messages after it', () => {
    const messages = [
      { role: 'system', text: 'You are helpful.' },
      { role: 'user', text: 'Write the report.' },
      { role: 'assistant', text: `Done.${conversationMarker('run1')}` },
      { role: 'user', text: 'Now shorten it.' },
      { role: 'assistant', text: `Shortened.${conversationMarker('run2')}` },
      { role: 'user', text: 'And add a title.' },
    ];
    expect(followUpOf(messages)).toEqual({ runId: 'run2', answerIndex: 4, input: 'And add a title.' });
  });

  it('is not fooled by a marker quoted inside a line of text', () => {
    const messages = [
      { role: 'user', text: 'hi' },
      { role: 'assistant', text: 'Markers look like `[//]: # (jetty:run:x)` in the source.' },
      { role: 'user', text: 'ok' },
    ];
    expect(followUpOf(messages)).toBeUndefined();
  });
});

describe('template variables in a chat message', () => {
  const known = new Set(['topic', 'style']);

  it('reads a ```vars block of name: value lines and keeps the rest as the instruction', () => {
    const msg = 'Please write it.\n\n```vars\ntopic: whales\nstyle: "casual"\n```\n';
    expect(varsFromMessage(msg, known)).toEqual({
      vars: { topic: 'whales', style: 'casual' },
      text: 'Please write it.',
    });
  });

  it('reads a ```vars block holding JSON', () => {
    const msg = '```vars\n{"topic": "whales", "count": 3}\n```';
    expect(varsFromMessage(msg, known)).toEqual({ vars: { topic: 'whales', count: '3' }, text: '' });
  });

  it('reads leading name: value lines only for names the runbook uses', () => {
    expect(varsFromMessage('topic: whales\nNote: keep it short', known)).toEqual({
      vars: { topic: 'whales' },
      text: 'Note: keep it short',
    });
    expect(varsFromMessage('Note: this is prose', known)).toEqual({ vars: {}, text: 'Note: this is prose' });
  });

  it('says which line of a vars block is wrong', () => {
    try {
      varsFromMessage('```vars\ntopic whales\n```', known);
      expect.unreachable();
    } catch (err) {
      expect(isAppError(err) && err.status).toBe(400);
      expect((err as Error).message).toMatch(/Line 1 of the `vars` block/);
    }
  });
});

describe('the summary of earlier turns', () => {
  const turns = [1, 2, 3].map((n) => ({
    turn: n,
    message: `question ${n}`,
    answer: `answer ${n}${conversationMarker(`r${n}`)}`,
    status: 'completed',
  }));

  it('gives every turn, oldest first, without markers', () => {
    const h = summarizeHistory(turns, 32 * 1024);
    expect(h).toMatchObject({ included: 3, omitted: 0 });
    expect(h.text.indexOf('question 1')).toBeLessThan(h.text.indexOf('question 3'));
    expect(h.text).toContain('You answered:\nanswer 2');
    expect(h.text).not.toContain('jetty:run');
  });

  it('keeps the newest turns within its budget and says how many it left out', () => {
    const long = [1, 2, 3, 4, 5, 6].map((n) => ({
      turn: n,
      message: `question ${n} ${'x'.repeat(600)}`,
      answer: `answer ${n}`,
      status: 'completed',
    }));
    const h = summarizeHistory(long, 1024);
    expect(h.omitted).toBeGreaterThan(0);
    expect(h.text).toContain('question 6');
    expect(h.text).not.toContain('question 1');
    expect(h.text).toMatch(/earlier turn\(s\) left out: CONVERSATION_HISTORY_MAX_BYTES/);
    expect(Buffer.byteLength(h.text)).toBeLessThanOrEqual(1024);
  });
});

describe('runtimes that resume', () => {
  // Without them, the next turn's sandbox lacks the session and the CLI cannot find it.
  it('name the directories that hold their session, under the agent home', () => {
    for (const rt of listRuntimes().filter((r) => r.capabilities.resume)) {
      expect(rt.sessionDirs?.length, rt.name).toBeGreaterThan(0);
      for (const dir of rt.sessionDirs ?? []) expect(dir, rt.name).toMatch(new RegExp(`^${AGENT_HOME}/`));
    }
  });
});
