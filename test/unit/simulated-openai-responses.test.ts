import { afterEach, describe, expect, it, vi } from 'vitest';
import type { SimulatedProvider } from '../../src/providers/simulated/index.js';
import { createSimulatedProvider } from '../../src/providers/simulated/index.js';
import { openaiErrorShape } from '../../src/providers/simulated/openai-errors.js';
import { countToolOutputs } from '../../src/providers/simulated/openai-responses.js';

const BASE = 'http://127.0.0.1:4100';
const MODEL = 'gpt-5.5';

type Json = Record<string, unknown>;

/** The tools codex 0.169.0 offers with gpt-5.5, trimmed to what matters here (names and shapes as sent). */
const CODEX_TOOLS: Json[] = [
  {
    type: 'function',
    name: 'exec_command',
    description: 'Runs a command in a PTY, returning output or a session ID for ongoing interaction.',
    strict: false,
    parameters: {
      type: 'object',
      properties: {
        cmd: { type: 'string', description: 'Shell command to execute.' },
        workdir: { type: 'string' },
        yield_time_ms: { type: 'number' },
      },
      required: ['cmd'],
      additionalProperties: false,
    },
  },
  {
    type: 'function',
    name: 'write_stdin',
    parameters: { type: 'object', properties: { session_id: { type: 'number' }, chars: { type: 'string' } } },
  },
  {
    type: 'custom',
    name: 'apply_patch',
    format: { type: 'grammar', syntax: 'lark', definition: 'start: x' },
  },
  {
    type: 'tool_search',
    execution: 'client',
    parameters: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] },
  },
  { type: 'web_search', external_web_access: false },
];

const DEVELOPER = {
  type: 'message',
  role: 'developer',
  content: [{ type: 'input_text', text: 'You are Codex, a coding agent.' }],
};
const USER = {
  type: 'message',
  role: 'user',
  content: [{ type: 'input_text', text: 'Execute the runbook.' }],
};

/** The input after `n` tool calls, as codex sends it (each call followed by its output). */
function conversation(n: number): Json[] {
  const input: Json[] = [DEVELOPER, USER];
  for (let i = 0; i < n; i++) {
    input.push({
      type: 'function_call',
      id: `fc_sim_${i}`,
      name: 'exec_command',
      arguments: '{"cmd":"true"}',
      call_id: `call_sim_${i}`,
    });
    input.push({
      type: 'function_call_output',
      call_id: `call_sim_${i}`,
      output: 'Process exited with code 0',
    });
  }
  return input;
}

function responsesBody(input: Json[], extra: Json = {}): Json {
  return {
    model: MODEL,
    stream: true,
    input,
    tools: CODEX_TOOLS,
    tool_choice: 'auto',
    parallel_tool_calls: true,
    reasoning: { effort: 'medium' },
    store: false,
    include: ['reasoning.encrypted_content'],
    text: { verbosity: 'low' },
    ...extra,
  };
}

function post(path: string, body: unknown, signal?: AbortSignal): Request {
  return new Request(`${BASE}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: 'Bearer run-token',
      accept: 'text/event-stream',
    },
    body: JSON.stringify(body),
    ...(signal === undefined ? {} : { signal }),
  });
}

function provider(script: string | null): SimulatedProvider {
  const runbook = script === null ? '# Runbook\n' : `# Runbook\n\n\`\`\`simulate\n${script}\n\`\`\`\n`;
  return createSimulatedProvider({
    runbook,
    requiredOutputs: [],
    resultsDir: '/app/results',
    workdir: '/app',
  });
}

/** A small parser for the SSE framing (WHATWG): blank lines end events, `data:` lines are joined. */
function parseSse(text: string): Array<{ event: string | null; data: string }> {
  const events: Array<{ event: string | null; data: string }> = [];
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

interface StreamedResponse {
  events: Array<{ event: string; data: Json }>;
  created: Json;
  /** Output items as codex builds them: from `response.output_item.done`. */
  items: Json[];
  /** Message text rebuilt from the `output_text` deltas, per item id. */
  textFromDeltas: Map<string, string>;
  /** Function call arguments rebuilt from the argument deltas, per item id. */
  argsFromDeltas: Map<string, string>;
  completed: Json;
}

/**
 * Reads the stream the way codex does, and fails on anything it would choke on: an `event:` name
 * that differs from the payload's type, sequence numbers out of order, deltas that do not add up to
 * the finished item, an item finished that was never added.
 */
function accumulate(text: string): StreamedResponse {
  const events = parseSse(text).map((e) => ({ event: e.event ?? '', data: JSON.parse(e.data) as Json }));
  for (const [i, e] of events.entries()) {
    expect(e.event).toBe(e.data.type);
    expect(e.data.sequence_number).toBe(i);
  }
  expect(events[0]?.event).toBe('response.created');
  expect(events[1]?.event).toBe('response.in_progress');
  expect(events.at(-1)?.event).toBe('response.completed');
  const added = new Set<string>();
  const items: Json[] = [];
  const textFromDeltas = new Map<string, string>();
  const argsFromDeltas = new Map<string, string>();
  for (const { event, data } of events.slice(2, -1)) {
    const item = data.item as Json | undefined;
    switch (event) {
      case 'response.output_item.added':
        expect(data.output_index).toBe(items.length);
        added.add(item?.id as string);
        break;
      case 'response.output_text.delta': {
        const id = data.item_id as string;
        textFromDeltas.set(id, (textFromDeltas.get(id) ?? '') + (data.delta as string));
        break;
      }
      case 'response.function_call_arguments.delta': {
        const id = data.item_id as string;
        argsFromDeltas.set(id, (argsFromDeltas.get(id) ?? '') + (data.delta as string));
        break;
      }
      case 'response.output_item.done':
        expect(added.has(item?.id as string)).toBe(true);
        expect(data.output_index).toBe(items.length);
        items.push(item as Json);
        break;
      default:
        expect([
          'response.content_part.added',
          'response.output_text.done',
          'response.content_part.done',
          'response.function_call_arguments.done',
        ]).toContain(event);
    }
  }
  for (const item of items) {
    if (item.type === 'message') {
      const content = item.content as Array<{ text: string }>;
      expect(textFromDeltas.get(item.id as string)).toBe(content[0]?.text);
    } else {
      expect(argsFromDeltas.get(item.id as string)).toBe(item.arguments);
    }
  }
  const completed = events.at(-1)!.data.response as Json;
  expect(completed.output).toEqual(items);
  return {
    events,
    created: events[0]!.data.response as Json,
    items,
    textFromDeltas,
    argsFromDeltas,
    completed,
  };
}

async function streamTurn(p: SimulatedProvider, toolOutputs: number): Promise<StreamedResponse> {
  const res = await p.fetch(post('/v1/responses', responsesBody(conversation(toolOutputs))));
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

describe('simulated provider, OpenAI Responses streaming', () => {
  it('streams the first turn as codex expects: a message, then one exec_command call', async () => {
    const p = provider(
      '- say: Creating the report now, then I will check it twice.\n- run: echo hi > /app/results/hello.txt',
    );
    const turn = await streamTurn(p, 0);

    expect(turn.created).toEqual({
      id: 'resp_sim_0',
      object: 'response',
      created_at: expect.any(Number),
      status: 'in_progress',
      model: MODEL,
      output: [],
      usage: null,
    });
    expect(turn.items).toEqual([
      {
        type: 'message',
        id: 'msg_sim_0_0',
        status: 'completed',
        role: 'assistant',
        content: [
          {
            type: 'output_text',
            text: 'Creating the report now, then I will check it twice.',
            annotations: [],
          },
        ],
      },
      {
        type: 'function_call',
        id: 'fc_sim_0',
        call_id: 'call_sim_0',
        name: 'exec_command',
        arguments: '{"cmd":"echo hi > /app/results/hello.txt"}',
        status: 'completed',
      },
    ]);
    expect(JSON.parse(turn.items[1]!.arguments as string)).toEqual({
      cmd: 'echo hi > /app/results/hello.txt',
    });
    // Text in several deltas; arguments in one, as the reference fake sent them.
    expect(turn.events.filter((e) => e.event === 'response.output_text.delta').length).toBeGreaterThan(1);
    expect(turn.events.filter((e) => e.event === 'response.function_call_arguments.delta')).toHaveLength(1);
    expect(turn.completed.status).toBe('completed');
    const usage = turn.completed.usage as Json;
    expect(usage).toEqual({
      input_tokens: expect.any(Number),
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: expect.any(Number),
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: (usage.input_tokens as number) + (usage.output_tokens as number),
    });
    expect(usage.input_tokens).toBeGreaterThan(0);
    expect(usage.output_tokens).toBeGreaterThan(1);
  });

  it('frames events exactly like the reference bytes', async () => {
    const p = provider('- run: printf hi > hello.txt');
    const res = await p.fetch(post('/v1/responses', responsesBody(conversation(0))));
    const text = await res.text();
    expect(
      text.startsWith(
        'event: response.created\ndata: {"type":"response.created","response":{"id":"resp_sim_0","object":"response","created_at":',
      ),
    ).toBe(true);
    expect(text).toContain(
      'event: response.output_item.added\ndata: {"type":"response.output_item.added","output_index":0,"item":{"type":"function_call","id":"fc_sim_0","call_id":"call_sim_0","name":"exec_command","arguments":"","status":"in_progress"},"sequence_number":2}\n\n',
    );
    expect(text).toContain(
      'event: response.function_call_arguments.delta\ndata: {"type":"response.function_call_arguments.delta","item_id":"fc_sim_0","output_index":0,"delta":"{\\"cmd\\":\\"printf hi > hello.txt\\"}","sequence_number":3}\n\n',
    );
    expect(text).toMatch(
      /event: response\.completed\ndata: \{"type":"response\.completed","response":\{"id":"resp_sim_0","object":"response","created_at":\d+,"status":"completed","model":"gpt-5\.5","output":\[\{"type":"function_call",.*\}\],"usage":\{"input_tokens":\d+,"input_tokens_details":\{"cached_tokens":0\},"output_tokens":\d+,"output_tokens_details":\{"reasoning_tokens":0\},"total_tokens":\d+\}\},"sequence_number":\d+\}\n\n$/,
    );
    expect(res.headers.get('x-request-id')).toBe('req_sim_0');
  });

  it('picks the turn from the number of tool outputs, so a retry replays its turn', async () => {
    const p = provider('- run: step one\n- say: between\n- run: step two\n- say: all done');
    const t0 = await streamTurn(p, 0);
    const t1 = await streamTurn(p, 1);
    const t1again = await streamTurn(p, 1);
    const t2 = await streamTurn(p, 2);

    expect(t0.items).toEqual([
      expect.objectContaining({ type: 'function_call', arguments: '{"cmd":"step one"}' }),
    ]);
    expect(t1.items.map((i) => i.type)).toEqual(['message', 'function_call']);
    expect(t1.items[1]).toMatchObject({ call_id: 'call_sim_1', arguments: '{"cmd":"step two"}' });
    expect(t1again.items).toEqual(t1.items);
    expect(t2.items).toEqual([
      expect.objectContaining({
        type: 'message',
        content: [{ type: 'output_text', text: 'all done', annotations: [] }],
      }),
    ]);
    expect(t2.completed.id).toBe('resp_sim_2');
  });

  it('ends with a closing message when the script ends on a run', async () => {
    const p = provider('- run: touch /tmp/x');
    const last = await streamTurn(p, 1);
    expect(last.items).toEqual([
      expect.objectContaining({
        type: 'message',
        content: [{ type: 'output_text', text: 'Done.', annotations: [] }],
      }),
    ]);
  });

  it('counts every kind of tool output as one answered call', () => {
    expect(countToolOutputs('just a string')).toBe(0);
    expect(countToolOutputs(conversation(2))).toBe(2);
    expect(
      countToolOutputs([
        USER,
        { type: 'custom_tool_call', call_id: 'a', name: 'apply_patch', input: '…' },
        { type: 'custom_tool_call_output', call_id: 'a', output: 'ok' },
        { type: 'tool_search_call', call_id: 'b', arguments: { query: 'x' } },
        { type: 'tool_search_output', call_id: 'b', tools: [] },
        { type: 'reasoning', summary: [] },
        null,
        'text',
      ]),
    ).toBe(2);
  });

  it('answers a side call (no tools offered) with plain text, or JSON matching its schema', async () => {
    const p = provider('- fail: 500');
    const plain = await p.fetch(post('/v1/responses', { model: MODEL, stream: true, input: [USER] }));
    expect(plain.status).toBe(200);
    const text = accumulate(await plain.text());
    expect(text.items).toEqual([
      expect.objectContaining({
        type: 'message',
        content: [{ type: 'output_text', text: 'Simulated run', annotations: [] }],
      }),
    ]);

    const schema = { type: 'object', properties: { title: { type: 'string' } }, required: ['title'] };
    const structured = await p.fetch(
      post('/v1/responses', {
        model: MODEL,
        stream: false,
        input: 'Name this conversation.',
        text: { format: { type: 'json_schema', name: 'title', schema, strict: true } },
      }),
    );
    const body = (await structured.json()) as { output: Array<{ content: Array<{ text: string }> }> };
    expect(JSON.parse(body.output[0]!.content[0]!.text)).toEqual({ title: expect.any(String) });
  });
});

describe('simulated provider, OpenAI Responses non-streaming', () => {
  it('returns the same response as one JSON object', async () => {
    const p = provider('- say: hello there\n- run: ls /app');
    const res = await p.fetch(post('/v1/responses', responsesBody(conversation(0), { stream: false })));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const streamed = await streamTurn(p, 0);
    expect(await res.json()).toEqual({ ...streamed.completed, created_at: expect.any(Number) });
  });

  it('rejects, in the OpenAI error shape, a turn that must run a command when no shell tool is offered', async () => {
    const p = provider('- run: ls');
    const tools = [{ type: 'function', name: 'view_image', parameters: { type: 'object', properties: {} } }];
    const res = await p.fetch(post('/v1/responses', { model: MODEL, input: [USER], tools }));
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: {
        message: expect.stringMatching(/no shell tool.*view_image/),
        type: 'invalid_request_error',
        param: null,
        code: null,
      },
    });
  });

  it('treats code mode (tools sent as an additional_tools item) as a turn, and says it has no shell tool', async () => {
    // What codex sends for a model that gets its JavaScript `exec` tool instead of exec_command.
    const additional = {
      type: 'additional_tools',
      role: 'developer',
      tools: [
        {
          type: 'namespace',
          name: 'functions',
          tools: [
            { type: 'custom', name: 'exec', format: { type: 'grammar' } },
            { type: 'function', name: 'wait', parameters: { type: 'object', properties: {} } },
          ],
        },
      ],
    };
    const p = provider('- run: ls');
    const res = await p.fetch(post('/v1/responses', { model: 'gpt-6.1-sol', input: [additional, USER] }));
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { message: string } };
    expect(body.error.message).toMatch(/no shell tool \(offered: exec, wait\)/);
  });

  it('rejects a body that is not JSON, in the OpenAI error shape', async () => {
    const p = provider('- say: hi');
    const res = await p.fetch(
      new Request(`${BASE}/v1/responses`, { method: 'POST', body: '{not json', headers: {} }),
    );
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
  });
});

describe('simulated provider, scripted failures in the OpenAI shape', () => {
  it.each([
    [401, 'invalid_request_error', 'invalid_api_key'],
    [403, 'invalid_request_error', 'unsupported_country_region_territory'],
    [404, 'invalid_request_error', 'model_not_found'],
    [429, 'requests', 'rate_limit_exceeded'],
    [500, 'server_error', null],
    [503, 'server_error', null],
  ])('fail: %i answers with the OpenAI error body', async (status, type, code) => {
    expect(openaiErrorShape(status)).toEqual({ type, code });
    const p = provider(`- run: ls\n- fail: ${status}`);
    // Turn 0 is fine; the failure belongs to the turn after the run, and every retry of it fails.
    expect((await streamTurn(p, 0)).items[0]?.type).toBe('function_call');
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await p.fetch(post('/v1/responses', responsesBody(conversation(1))));
      expect(res.status).toBe(status);
      expect(res.headers.get('content-type')).toBe('application/json');
      expect(res.headers.get('x-request-id')).toBe('req_sim_1');
      const body = (await res.json()) as { error: Json };
      expect(body).toEqual({ error: { message: expect.any(String), type, param: null, code } });
      expect(body.error.message).toMatch(/simulated/i);
      expect(body.error.message).toContain(String(status));
    }
  });
});

describe('simulated provider, OpenAI Responses pauses', () => {
  it('delays the turn after a run, not the run itself', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const p = provider('- run: A\n- sleep_ms: 500\n- say: X');

    let first: Response | undefined;
    void p.fetch(post('/v1/responses', responsesBody(conversation(0), { stream: false }))).then((r) => {
      first = r;
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(first?.status).toBe(200);

    let second: Response | undefined;
    void p.fetch(post('/v1/responses', responsesBody(conversation(1), { stream: false }))).then((r) => {
      second = r;
    });
    await vi.advanceTimersByTimeAsync(499);
    expect(second).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(second?.status).toBe(200);
  });

  it('stops a paused stream, and its timer, when the client goes away', async () => {
    const p = provider('- say: first\n- sleep_ms: 60000\n- say: never sent');
    const before = activeTimers();
    const res = await p.fetch(post('/v1/responses', responsesBody(conversation(0))));
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let seen = '';
    while (!seen.includes('response.output_item.done')) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += decoder.decode(value);
    }
    // The next read waits out the 60 s pause: cancel instead, as a client that disconnects does.
    const pending = reader.read();
    await reader.cancel();
    await pending.catch(() => undefined);
    await vi.waitFor(() => expect(activeTimers()).toBeLessThanOrEqual(before));
    expect(seen).not.toContain('never sent');
  });
});
