import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { SimulatedProvider } from '../../src/providers/simulated/index.js';
import { createSimulatedProvider } from '../../src/providers/simulated/index.js';

const BASE = 'http://127.0.0.1:4100';
const MODEL = 'claude-sonnet-4-6';

/** The tools the claude CLI offers, trimmed to what matters here. */
const CLAUDE_TOOLS = [
  {
    name: 'Bash',
    description: 'Executes a bash command',
    input_schema: {
      type: 'object',
      properties: {
        command: { type: 'string' },
        timeout: { type: 'number' },
        description: { type: 'string' },
      },
      required: ['command'],
    },
  },
  {
    name: 'Write',
    description: 'Writes a file',
    input_schema: {
      type: 'object',
      properties: { file_path: { type: 'string' }, content: { type: 'string' } },
      required: ['file_path', 'content'],
    },
  },
];

interface Message {
  role: 'user' | 'assistant';
  content: string | Array<Record<string, unknown>>;
}

function messagesBody(messages: Message[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: MODEL,
    max_tokens: 64000,
    stream: true,
    system: [{ type: 'text', text: 'You are Claude Code.' }],
    messages,
    tools: CLAUDE_TOOLS,
    ...extra,
  };
}

function post(path: string, body: unknown, signal?: AbortSignal): Request {
  return new Request(`${BASE}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-api-key': 'run-token',
      'anthropic-version': '2023-06-01',
    },
    body: JSON.stringify(body),
    ...(signal === undefined ? {} : { signal }),
  });
}

const FIRST_USER: Message = { role: 'user', content: [{ type: 'text', text: 'Execute the runbook.' }] };

/** The conversation after `n` tool calls, as the CLI would send it. */
function conversation(n: number): Message[] {
  const messages: Message[] = [FIRST_USER];
  for (let i = 0; i < n; i++) {
    messages.push({
      role: 'assistant',
      content: [{ type: 'tool_use', id: `toolu_sim_${i}`, name: 'Bash', input: { command: 'true' } }],
    });
    messages.push({
      role: 'user',
      content: [{ type: 'tool_result', tool_use_id: `toolu_sim_${i}`, content: 'ok', is_error: false }],
    });
  }
  return messages;
}

function provider(script: string | null, requiredOutputs: string[] = []): SimulatedProvider {
  const runbook = script === null ? '# Runbook\n' : `# Runbook\n\n\`\`\`simulate\n${script}\n\`\`\`\n`;
  return createSimulatedProvider({ runbook, requiredOutputs, resultsDir: '/app/results', workdir: '/app' });
}

interface SseEvent {
  event: string | null;
  data: string;
}

/** A small parser for the SSE framing (WHATWG): blank lines end events, `data:` lines are joined. */
function parseSse(text: string): SseEvent[] {
  const events: SseEvent[] = [];
  let event: string | null = null;
  let data: string[] = [];
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line === '') {
      if (data.length > 0) events.push({ event, data: data.join('\n') });
      event = null;
      data = [];
      continue;
    }
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  return events;
}

type Json = Record<string, unknown>;
type Block = { type: 'text'; text: string } | { type: 'tool_use'; id: string; name: string; input: Json };

interface StreamedMessage {
  events: Array<{ event: string | null; data: Json }>;
  message: Json;
  content: Block[];
  stopReason: unknown;
  outputTokens: unknown;
  textDeltas: number;
}

/**
 * Rebuilds the message from the stream the way the claude CLI does, and fails on anything it would
 * choke on: events out of order, `event:` names that differ from the payload's type, block indices
 * that skip, tool input that is not JSON once its deltas are joined.
 */
function accumulate(text: string): StreamedMessage {
  const events = parseSse(text).map((e) => ({ event: e.event, data: JSON.parse(e.data) as Json }));
  for (const e of events) expect(e.event).toBe(e.data.type);
  expect(events[0]?.event).toBe('message_start');
  expect(events.at(-1)?.event).toBe('message_stop');
  expect(events.at(-2)?.event).toBe('message_delta');
  const message = (events[0]!.data as { message: Json }).message;
  const content: Block[] = [];
  const partialJson: string[] = [];
  let open: number | null = null;
  let textDeltas = 0;
  for (const { event, data } of events.slice(1, -2)) {
    const index = data.index as number;
    if (event === 'content_block_start') {
      expect(open).toBeNull();
      expect(index).toBe(content.length);
      content.push(structuredClone(data.content_block) as Block);
      partialJson.push('');
      open = index;
    } else if (event === 'content_block_delta') {
      expect(index).toBe(open);
      const delta = data.delta as { type: string; text?: string; partial_json?: string };
      const block = content[index]!;
      if (delta.type === 'text_delta') {
        expect(block.type).toBe('text');
        if (block.type === 'text') block.text += delta.text ?? '';
        textDeltas++;
      } else {
        expect(delta.type).toBe('input_json_delta');
        partialJson[index] += delta.partial_json ?? '';
      }
    } else {
      expect(event).toBe('content_block_stop');
      expect(index).toBe(open);
      const block = content[index]!;
      if (block.type === 'tool_use') block.input = JSON.parse(partialJson[index]!) as Json;
      open = null;
    }
  }
  expect(open).toBeNull();
  const final = events.at(-2)!.data as { delta: { stop_reason: unknown }; usage: { output_tokens: unknown } };
  return {
    events,
    message,
    content,
    stopReason: final.delta.stop_reason,
    outputTokens: final.usage.output_tokens,
    textDeltas,
  };
}

async function streamTurn(p: SimulatedProvider, toolResults: number): Promise<StreamedMessage> {
  const res = await p.fetch(post('/v1/messages?beta=true', messagesBody(conversation(toolResults))));
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  return accumulate(await res.text());
}

function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('simulated provider, Anthropic Messages streaming', () => {
  it('streams the first turn as the claude CLI expects: text, then one Bash call', async () => {
    const p = provider(
      '- say: Creating the report now, then I will check it twice.\n- run: echo hi > /app/results/hello.txt',
    );
    const turn = await streamTurn(p, 0);

    expect(turn.message).toEqual({
      id: 'msg_sim_0',
      type: 'message',
      role: 'assistant',
      model: MODEL,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: {
        input_tokens: expect.any(Number),
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        output_tokens: 1,
      },
    });
    expect((turn.message.usage as Json).input_tokens).toBeGreaterThan(0);
    expect(turn.content).toEqual([
      { type: 'text', text: 'Creating the report now, then I will check it twice.' },
      {
        type: 'tool_use',
        id: 'toolu_sim_0',
        name: 'Bash',
        input: { command: 'echo hi > /app/results/hello.txt' },
      },
    ]);
    expect(turn.textDeltas).toBeGreaterThan(1);
    expect(turn.stopReason).toBe('tool_use');
    expect(turn.outputTokens).toBeGreaterThan(1);
    // Exactly one input_json_delta carrying the whole input, as the reference fake sent it.
    const jsonDeltas = turn.events.filter(
      (e) => (e.data.delta as Json | undefined)?.type === 'input_json_delta',
    );
    expect(jsonDeltas).toHaveLength(1);
  });

  it('frames events exactly like the reference bytes', async () => {
    const p = provider('- say: done');
    const res = await p.fetch(post('/v1/messages', messagesBody([FIRST_USER])));
    const text = await res.text();
    expect(
      text.startsWith('event: message_start\ndata: {"type":"message_start","message":{"id":"msg_sim_0"'),
    ).toBe(true);
    expect(text).toContain(
      'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
    );
    expect(text).toContain(
      'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"done"}}\n\n',
    );
    expect(text).toMatch(
      /event: message_delta\ndata: \{"type":"message_delta","delta":\{"stop_reason":"end_turn","stop_sequence":null\},"usage":\{"output_tokens":\d+\}\}\n\n/,
    );
    expect(text.endsWith('event: message_stop\ndata: {"type":"message_stop"}\n\n')).toBe(true);
    expect(res.headers.get('request-id')).toBe('req_sim_0');
  });

  it('picks the turn from the number of tool results, so a retry replays its turn', async () => {
    const p = provider('- run: step one\n- say: between\n- run: step two\n- say: all done');
    const t0 = await streamTurn(p, 0);
    const t1 = await streamTurn(p, 1);
    const t1again = await streamTurn(p, 1);
    const t2 = await streamTurn(p, 2);

    expect(t0.content).toEqual([
      { type: 'tool_use', id: 'toolu_sim_0', name: 'Bash', input: { command: 'step one' } },
    ]);
    expect(t1.content).toEqual([
      { type: 'text', text: 'between' },
      { type: 'tool_use', id: 'toolu_sim_1', name: 'Bash', input: { command: 'step two' } },
    ]);
    expect(t1again.events).toEqual(t1.events);
    expect(t2.content).toEqual([{ type: 'text', text: 'all done' }]);
    expect(t2.stopReason).toBe('end_turn');
    expect(t2.message.id).toBe('msg_sim_2');
  });

  it('ends with a closing text when the script ends on a run', async () => {
    const p = provider('- run: touch /tmp/x');
    const last = await streamTurn(p, 1);
    expect(last.content).toEqual([{ type: 'text', text: 'Done.' }]);
    expect(last.stopReason).toBe('end_turn');
  });

  it('answers a title-generation side call (no tools) with JSON matching its schema', async () => {
    const p = provider('- fail: 500');
    const body = {
      model: 'claude-haiku-4-5',
      stream: true,
      messages: [FIRST_USER],
      output_config: {
        format: {
          type: 'json_schema',
          schema: { type: 'object', properties: { title: { type: 'string' } }, required: ['title'] },
        },
      },
    };
    const res = await p.fetch(post('/v1/messages?beta=true', body));
    expect(res.status).toBe(200);
    const side = accumulate(await res.text());
    expect(side.message.model).toBe('claude-haiku-4-5');
    expect(side.content).toHaveLength(1);
    const block = side.content[0];
    expect(block?.type).toBe('text');
    if (block?.type === 'text') expect(JSON.parse(block.text)).toEqual({ title: expect.any(String) });
  });

  it('answers a plain side call with short text', async () => {
    const p = provider('- run: ls');
    const res = await p.fetch(post('/v1/messages', { model: MODEL, stream: false, messages: [FIRST_USER] }));
    const body = (await res.json()) as Json;
    expect(body.stop_reason).toBe('end_turn');
    expect(body.content).toEqual([{ type: 'text', text: expect.any(String) }]);
  });
});

describe('simulated provider, Anthropic Messages non-streaming', () => {
  it('returns the same message as one JSON object', async () => {
    const p = provider('- say: hello there\n- run: ls /app');
    const res = await p.fetch(post('/v1/messages', messagesBody([FIRST_USER], { stream: false })));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const streamed = await streamTurn(p, 0);
    expect(await res.json()).toEqual({
      id: 'msg_sim_0',
      type: 'message',
      role: 'assistant',
      model: MODEL,
      content: streamed.content,
      stop_reason: 'tool_use',
      stop_sequence: null,
      usage: {
        input_tokens: (streamed.message.usage as Json).input_tokens,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        output_tokens: streamed.outputTokens,
      },
    });
  });

  it('uses the tool input the offered shell tool asks for', async () => {
    const p = provider('- run: ls');
    const tools = [
      {
        name: 'bash',
        input_schema: {
          type: 'object',
          properties: { command: { type: 'string' }, description: { type: 'string' } },
          required: ['command', 'description'],
        },
      },
    ];
    const res = await p.fetch(post('/v1/messages', { model: MODEL, messages: [FIRST_USER], tools }));
    const body = (await res.json()) as { content: Block[] };
    expect(body.content[0]).toMatchObject({ type: 'tool_use', name: 'bash', input: { command: 'ls' } });
    expect(body.content[0]?.type === 'tool_use' && typeof body.content[0].input.description).toBe('string');
  });

  it('rejects, in the Anthropic error shape, a turn that must run a command when no shell tool is offered', async () => {
    const p = provider('- run: ls');
    const tools = [{ name: 'Read', input_schema: { type: 'object', properties: {} } }];
    const res = await p.fetch(post('/v1/messages', { model: MODEL, messages: [FIRST_USER], tools }));
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      type: 'error',
      error: { type: 'invalid_request_error', message: expect.stringMatching(/no shell tool.*Read/) },
    });
  });
});

describe('simulated provider, scripted failures', () => {
  it.each([
    [401, 'authentication_error'],
    [403, 'permission_error'],
    [404, 'not_found_error'],
    [429, 'rate_limit_error'],
    [500, 'api_error'],
    [529, 'overloaded_error'],
  ])('fail: %i answers with the Anthropic error body', async (status, type) => {
    const p = provider(`- run: ls\n- fail: ${status}`);
    // Turn 0 is fine; the failure belongs to the turn after the run, and every retry of it fails.
    expect((await streamTurn(p, 0)).stopReason).toBe('tool_use');
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await p.fetch(post('/v1/messages?beta=true', messagesBody(conversation(1))));
      expect(res.status).toBe(status);
      expect(res.headers.get('content-type')).toBe('application/json');
      const body = (await res.json()) as { type: string; error: { type: string; message: string } };
      expect(body).toEqual({ type: 'error', error: { type, message: expect.any(String) } });
      expect(body.error.message).toMatch(/simulated/i);
      expect(body.error.message).toContain(String(status));
    }
  });
});

describe('simulated provider, pauses', () => {
  it('delays the turn after a run, not the run itself', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const p = provider('- run: A\n- sleep_ms: 500\n- say: X');

    let first: Response | undefined;
    void p.fetch(post('/v1/messages', messagesBody([FIRST_USER], { stream: false }))).then((r) => {
      first = r;
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(first?.status).toBe(200);

    let second: Response | undefined;
    void p.fetch(post('/v1/messages', messagesBody(conversation(1), { stream: false }))).then((r) => {
      second = r;
    });
    await vi.advanceTimersByTimeAsync(499);
    expect(second).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(second?.status).toBe(200);
    expect(((await second!.json()) as { content: Block[] }).content).toEqual([{ type: 'text', text: 'X' }]);
  });

  it('pauses mid-stream between two blocks of one turn', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const p = provider('- say: first\n- sleep_ms: 300\n- say: second');
    const res = await p.fetch(post('/v1/messages', messagesBody([FIRST_USER])));
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let seen = '';
    const pump = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        seen += decoder.decode(value);
      }
    })();
    await vi.advanceTimersByTimeAsync(0);
    expect(seen).toContain('"text":"first"');
    expect(seen).not.toContain('second');
    await vi.advanceTimersByTimeAsync(300);
    await pump;
    expect(accumulate(seen).content).toEqual([
      { type: 'text', text: 'first' },
      { type: 'text', text: 'second' },
    ]);
  });

  it('stops waiting when the request is aborted, leaving no timer behind', async () => {
    const p = provider('- sleep_ms: 60000\n- say: too late');
    const before = activeTimers();
    const controller = new AbortController();
    const pending = p.fetch(post('/v1/messages', messagesBody([FIRST_USER]), controller.signal));
    await new Promise((resolve) => setImmediate(resolve));
    expect(activeTimers()).toBe(before + 1);
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    expect(activeTimers()).toBe(before);
  });

  it('ends a stream paused mid-answer when the request is aborted or the reader cancels', async () => {
    const p = provider('- say: first\n- sleep_ms: 60000\n- say: second');
    const before = activeTimers();

    const controller = new AbortController();
    const res = await p.fetch(post('/v1/messages', messagesBody([FIRST_USER]), controller.signal));
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('content_block_stop'))
      text += new TextDecoder().decode((await reader.read()).value);
    await new Promise((resolve) => setImmediate(resolve));
    expect(activeTimers()).toBe(before + 1);
    controller.abort();
    await expect(reader.read()).rejects.toMatchObject({ name: 'AbortError' });
    expect(activeTimers()).toBe(before);

    const res2 = await p.fetch(post('/v1/messages', messagesBody([FIRST_USER])));
    const reader2 = res2.body!.getReader();
    let text2 = '';
    while (!text2.includes('content_block_stop'))
      text2 += new TextDecoder().decode((await reader2.read()).value);
    await new Promise((resolve) => setImmediate(resolve));
    expect(activeTimers()).toBe(before + 1);
    await reader2.cancel();
    await new Promise((resolve) => setImmediate(resolve));
    expect(activeTimers()).toBe(before);
  });
});

describe('simulated provider, other endpoints', () => {
  it('answers the CLI probe HEAD / and GET / with an empty 200', async () => {
    const p = provider(null);
    for (const method of ['HEAD', 'GET']) {
      const res = await p.fetch(new Request(`${BASE}/`, { method }));
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('');
    }
  });

  it('counts tokens the same way it reports usage', async () => {
    const p = provider('- say: hi');
    const res = await p.fetch(post('/v1/messages/count_tokens?beta=true', messagesBody([FIRST_USER])));
    expect(res.status).toBe(200);
    const { input_tokens } = (await res.json()) as { input_tokens: number };
    const streamed = await streamTurn(p, 0);
    expect(input_tokens).toBe((streamed.message.usage as Json).input_tokens);
  });

  it('lists models', async () => {
    const res = await provider(null).fetch(new Request(`${BASE}/v1/models`));
    const body = (await res.json()) as { data: Array<{ type: string; id: string }>; has_more: boolean };
    expect(body.has_more).toBe(false);
    expect(body.data.length).toBeGreaterThan(0);
    for (const m of body.data) expect(m).toMatchObject({ type: 'model', id: expect.any(String) });
  });

  it('answers anything else with a 404 in the Anthropic error shape', async () => {
    const res = await provider(null).fetch(post('/v1/complete', {}));
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      type: 'error',
      error: { type: 'not_found_error', message: expect.stringContaining('/v1/complete') },
    });
  });

  it('rejects a body that is not a Messages request with a 400', async () => {
    const p = provider(null);
    const bad = await p.fetch(new Request(`${BASE}/v1/messages`, { method: 'POST', body: '{not json' }));
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
    const noMessages = await p.fetch(post('/v1/messages', { model: MODEL }));
    expect(noMessages.status).toBe(400);
    expect(((await noMessages.json()) as { error: { message: string } }).error.message).toContain('messages');
  });
});

describe('simulated provider, a whole agent loop with the default policy', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('runs like the CLI would: executes the Bash call, sends its result, and ends naming the files', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sim-loop-'));
    const resultsDir = join(dir, 'results');
    const required = [join(resultsDir, 'summary.md'), join(resultsDir, 'tables', 'totals.csv')];
    const p = createSimulatedProvider({
      runbook: '# Runbook\n',
      requiredOutputs: required,
      resultsDir,
      workdir: dir,
    });

    const messages: Message[] = [FIRST_USER];
    let finalText = '';
    for (let turn = 0; turn < 5; turn++) {
      const res = await p.fetch(post('/v1/messages?beta=true', messagesBody(messages)));
      const streamed = accumulate(await res.text());
      messages.push({ role: 'assistant', content: streamed.content });
      if (streamed.stopReason === 'end_turn') {
        finalText = streamed.content.map((b) => (b.type === 'text' ? b.text : '')).join('');
        break;
      }
      const results = streamed.content.flatMap((b) => {
        if (b.type !== 'tool_use') return [];
        const output = execFileSync('/bin/bash', ['-c', String(b.input.command)], {
          cwd: dir,
          encoding: 'utf8',
        });
        return [{ type: 'tool_result', tool_use_id: b.id, content: output }];
      });
      messages.push({ role: 'user', content: results });
    }

    expect(finalText).toContain(required[0]);
    expect(finalText).toContain(required[1]);
    for (const file of required) expect(readFileSync(file, 'utf8').length).toBeGreaterThan(0);
    expect(messages).toHaveLength(4);
  });
});
