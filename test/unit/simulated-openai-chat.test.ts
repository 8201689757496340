import { describe, expect, it } from 'vitest';
import type { SimulatedProvider } from '../../src/providers/simulated/index.js';
import { createSimulatedProvider } from '../../src/providers/simulated/index.js';
import { SIDE_CALL_TEXT } from '../../src/providers/simulated/openai-chat.js';

const BASE = 'http://127.0.0.1:4100';
const MODEL = 'claude-sonnet-4-6';

/** opencode's tools as it offers them (trimmed): its shell tool is `bash {command, description}`. */
const OPENCODE_TOOLS = [
  {
    type: 'function',
    function: {
      name: 'bash',
      description: 'Executes a given bash command',
      parameters: {
        type: 'object',
        properties: {
          command: { type: 'string' },
          timeout: { type: 'number' },
          description: { type: 'string' },
        },
        required: ['command', 'description'],
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'write',
      parameters: {
        type: 'object',
        properties: { filePath: { type: 'string' }, content: { type: 'string' } },
        required: ['filePath', 'content'],
      },
    },
  },
];

type Json = Record<string, unknown>;

/** The conversation after `n` tool calls, as a Chat Completions client sends it. */
function conversation(n: number): Json[] {
  const messages: Json[] = [
    { role: 'system', content: 'You are opencode.' },
    { role: 'user', content: 'Execute the runbook.' },
  ];
  for (let i = 0; i < n; i++) {
    messages.push({
      role: 'assistant',
      content: null,
      tool_calls: [
        {
          id: `call_sim_${i}`,
          type: 'function',
          function: { name: 'bash', arguments: '{"command":"true"}' },
        },
      ],
    });
    messages.push({ role: 'tool', tool_call_id: `call_sim_${i}`, content: 'ok' });
  }
  return messages;
}

function chatBody(toolResults: number, extra: Json = {}): Json {
  return {
    model: MODEL,
    max_tokens: 32000,
    stream: true,
    stream_options: { include_usage: true },
    messages: conversation(toolResults),
    tools: OPENCODE_TOOLS,
    tool_choice: 'auto',
    ...extra,
  };
}

function post(body: unknown, path = '/v1/chat/completions'): Request {
  return new Request(`${BASE}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer run-token' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
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

const HELLO = [
  '- say: Writing hello.txt now.',
  '- run: printf hi > /app/results/hello.txt',
  '- say: wrote hello.txt',
].join('\n');

interface Assembled {
  chunks: Json[];
  content: string;
  toolCalls: Array<{ id: string; type: string; name: string; arguments: string }>;
  finishReason: unknown;
  usage: Json | undefined;
  role: unknown;
}

/**
 * Reads the byte stream the way an OpenAI-compatible SDK does, and fails on anything it would
 * choke on: a frame that is not exactly `data: <one line>` and a blank line, a chunk of another
 * object type or id, tool call deltas for an index that was never opened, anything after [DONE].
 */
function assemble(text: string): Assembled {
  expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
  const frames = text.split('\n\n');
  expect(frames.pop()).toBe('');
  expect(frames.pop()).toBe('data: [DONE]');
  const chunks = frames.map((frame) => {
    expect(frame.startsWith('data: ')).toBe(true);
    expect(frame.includes('\n')).toBe(false);
    return JSON.parse(frame.slice(6)) as Json;
  });
  const out: Assembled = {
    chunks,
    content: '',
    toolCalls: [],
    finishReason: null,
    usage: undefined,
    role: null,
  };
  const first = chunks[0];
  for (const chunk of chunks) {
    expect(chunk.object).toBe('chat.completion.chunk');
    expect(chunk.id).toBe(first?.id);
    expect(chunk.model).toBe(MODEL);
    expect(typeof chunk.created).toBe('number');
    const choices = chunk.choices as Json[];
    if (choices.length === 0) {
      out.usage = chunk.usage as Json;
      continue;
    }
    expect(out.usage).toBeUndefined();
    const choice = choices[0]!;
    expect(choice.index).toBe(0);
    const delta = choice.delta as Json;
    if (delta.role !== undefined) out.role = delta.role;
    if (typeof delta.content === 'string') out.content += delta.content;
    for (const call of (delta.tool_calls as Json[] | undefined) ?? []) {
      const fn = call.function as Json;
      const index = call.index as number;
      if (call.id !== undefined) {
        expect(index).toBe(out.toolCalls.length);
        out.toolCalls.push({
          id: call.id as string,
          type: call.type as string,
          name: fn.name as string,
          arguments: (fn.arguments as string) ?? '',
        });
      } else {
        expect(out.toolCalls[index]).toBeDefined();
        out.toolCalls[index]!.arguments += fn.arguments as string;
      }
    }
    if (choice.finish_reason !== null) {
      expect(out.finishReason).toBeNull();
      out.finishReason = choice.finish_reason;
    }
  }
  return out;
}

async function streamTurn(p: SimulatedProvider, toolResults: number, extra: Json = {}): Promise<Assembled> {
  const res = await p.fetch(post(chatBody(toolResults, extra)));
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  return assemble(await res.text());
}

describe('simulated provider: OpenAI Chat Completions, streaming', () => {
  it('turn 0: the text, then a call of the bash tool, finish_reason tool_calls, usage, [DONE]', async () => {
    const turn = await streamTurn(provider(HELLO), 0);
    expect(turn.role).toBe('assistant');
    expect(turn.content).toBe('Writing hello.txt now.');
    expect(turn.toolCalls).toEqual([
      {
        id: 'call_sim_0',
        type: 'function',
        name: 'bash',
        arguments: JSON.stringify({
          command: 'printf hi > /app/results/hello.txt',
          description: 'Run a scripted step',
        }),
      },
    ]);
    expect(turn.finishReason).toBe('tool_calls');
    expect(turn.usage).toEqual({
      prompt_tokens: expect.any(Number),
      completion_tokens: expect.any(Number),
      total_tokens: expect.any(Number),
    });
    const usage = turn.usage as { prompt_tokens: number; completion_tokens: number; total_tokens: number };
    expect(usage.prompt_tokens).toBeGreaterThan(0);
    expect(usage.completion_tokens).toBeGreaterThan(0);
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);
  });

  it('sends the tool call as in the reference bytes: name and id with empty arguments, then the arguments', async () => {
    const res = await provider('- run: true').fetch(post(chatBody(0)));
    const turn = assemble(await res.text());
    // A turn without text: the tool call opens the message, with role and a null content.
    expect(turn.chunks[0]).toEqual({
      id: 'chatcmpl-sim-0',
      object: 'chat.completion.chunk',
      created: expect.any(Number),
      model: MODEL,
      choices: [
        {
          index: 0,
          delta: {
            role: 'assistant',
            content: null,
            tool_calls: [
              { index: 0, id: 'call_sim_0', type: 'function', function: { name: 'bash', arguments: '' } },
            ],
          },
          finish_reason: null,
        },
      ],
    });
    expect((turn.chunks[1]!.choices as Json[])[0]).toEqual({
      index: 0,
      delta: { tool_calls: [{ index: 0, function: { arguments: expect.any(String) } }] },
      finish_reason: null,
    });
    expect((turn.chunks[2]!.choices as Json[])[0]).toEqual({
      index: 0,
      delta: {},
      finish_reason: 'tool_calls',
    });
    expect(turn.chunks[3]!.choices).toEqual([]);
    expect(turn.chunks).toHaveLength(4);
  });

  it('turn N is the request carrying N tool messages: the closing text with finish_reason stop', async () => {
    const turn = await streamTurn(provider(HELLO), 1);
    expect(turn.content).toBe('wrote hello.txt');
    expect(turn.toolCalls).toEqual([]);
    expect(turn.finishReason).toBe('stop');
    expect(turn.chunks[0]!.id).toBe('chatcmpl-sim-1');
  });

  it('streams long text in several deltas that join back exactly', async () => {
    const text = 'word '.repeat(200).trim();
    const turn = await streamTurn(provider(`- say: ${text}`), 0);
    expect(turn.content).toBe(text);
    expect(turn.chunks.length).toBeGreaterThan(4);
  });

  it('joins two `say` steps of one turn into one message', async () => {
    const turn = await streamTurn(provider('- say: first\n- say: second'), 0);
    expect(turn.content).toBe('first\n\nsecond');
  });

  it('sends usage only when asked: stream_options.include_usage, or OpenRouter’s usage.include', async () => {
    const p = provider(HELLO);
    const none = await streamTurn(p, 0, { stream_options: undefined });
    expect(none.usage).toBeUndefined();
    expect(none.finishReason).toBe('tool_calls');
    const openrouter = await streamTurn(p, 0, { stream_options: undefined, usage: { include: true } });
    expect(openrouter.usage).toBeDefined();
  });

  it('gives the same usage for the same request (deterministic), more for a longer conversation', async () => {
    const p = provider(HELLO);
    const a = await streamTurn(p, 1);
    const b = await streamTurn(p, 1);
    expect(a.usage).toEqual(b.usage);
    const longer = await streamTurn(p, 3);
    expect((longer.usage as { prompt_tokens: number }).prompt_tokens).toBeGreaterThan(
      (a.usage as { prompt_tokens: number }).prompt_tokens,
    );
  });

  it('past the end of the script says so and stops', async () => {
    const turn = await streamTurn(provider(HELLO), 5);
    expect(turn.content).toBe('The simulated script has no more steps.');
    expect(turn.finishReason).toBe('stop');
  });

  it('works under any path prefix ending in /chat/completions (OpenRouter’s /api/v1)', async () => {
    const res = await provider(HELLO).fetch(post(chatBody(1), '/api/v1/chat/completions'));
    expect(assemble(await res.text()).content).toBe('wrote hello.txt');
  });
});

describe('simulated provider: OpenAI Chat Completions, non-streaming', () => {
  it('answers a chat.completion with the tool call, its text and usage', async () => {
    const res = await provider(HELLO).fetch(post(chatBody(0, { stream: false, stream_options: undefined })));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await res.json()) as Json;
    expect(body).toEqual({
      id: 'chatcmpl-sim-0',
      object: 'chat.completion',
      created: expect.any(Number),
      model: MODEL,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: 'Writing hello.txt now.',
            tool_calls: [
              {
                id: 'call_sim_0',
                type: 'function',
                function: {
                  name: 'bash',
                  arguments:
                    '{"command":"printf hi > /app/results/hello.txt","description":"Run a scripted step"}',
                },
              },
            ],
            refusal: null,
          },
          logprobs: null,
          finish_reason: 'tool_calls',
        },
      ],
      usage: {
        prompt_tokens: expect.any(Number),
        completion_tokens: expect.any(Number),
        total_tokens: expect.any(Number),
      },
    });
  });

  it('the closing turn: text, finish_reason stop, no tool_calls', async () => {
    const res = await provider(HELLO).fetch(post(chatBody(1, { stream: false })));
    const body = (await res.json()) as { choices: Array<{ message: Json; finish_reason: string }> };
    expect(body.choices[0]?.message).toEqual({
      role: 'assistant',
      content: 'wrote hello.txt',
      refusal: null,
    });
    expect(body.choices[0]?.finish_reason).toBe('stop');
  });
});

describe('simulated provider: OpenAI Chat Completions side calls and errors', () => {
  it('a request without tools (opencode’s title generation) gets a short plain title', async () => {
    const p = provider('- fail: 500');
    const body = {
      model: MODEL,
      stream: true,
      stream_options: { include_usage: true },
      messages: conversation(0),
    };
    const turn = assemble(await (await p.fetch(post(body))).text());
    expect(turn.content).toBe(SIDE_CALL_TEXT);
    expect(turn.finishReason).toBe('stop');
    expect(turn.usage).toBeDefined();
    // Not a turn of the script: the scripted failure does not apply to it.
    const plain = await p.fetch(post({ ...body, stream: false }));
    expect(plain.status).toBe(200);
  });

  it('a side call asking for a JSON schema gets JSON of that shape', async () => {
    const res = await provider(null).fetch(
      post({
        model: MODEL,
        messages: conversation(0),
        response_format: {
          type: 'json_schema',
          json_schema: {
            name: 'title',
            schema: { type: 'object', properties: { title: { type: 'string' } }, required: ['title'] },
          },
        },
      }),
    );
    const body = (await res.json()) as { choices: Array<{ message: { content: string } }> };
    expect(JSON.parse(body.choices[0]!.message.content)).toEqual({ title: 'Simulated run' });
  });

  it.each([
    [401, 'invalid_request_error', 'invalid_api_key'],
    [403, 'invalid_request_error', 'unsupported_country_region_territory'],
    [404, 'invalid_request_error', 'model_not_found'],
    [429, 'requests', 'rate_limit_exceeded'],
    [500, 'server_error', null],
    [503, 'server_error', null],
    [400, 'invalid_request_error', null],
  ])('`fail: %i` answers that status in the OpenAI error envelope', async (status, type, code) => {
    const res = await provider(`- fail: ${status}`).fetch(post(chatBody(0)));
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await res.json()) as { error: Json };
    expect(body).toEqual({ error: { message: expect.any(String), type, param: null, code } });
    expect(body.error.message).toContain(`HTTP ${status}`);
  });

  it('rejects a body that is not JSON, or not a Chat Completions request, with a 400 envelope', async () => {
    const p = provider(HELLO);
    const bad = await p.fetch(post('{not json'));
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: Json }).error.type).toBe('invalid_request_error');
    const wrong = await p.fetch(post({ model: MODEL, messages: 'hello' }));
    expect(wrong.status).toBe(400);
    expect(((await wrong.json()) as { error: { message: string } }).error.message).toContain('messages');
  });

  it('a `run` step with no shell tool offered is a 400 naming the tools that were', async () => {
    const tools = [OPENCODE_TOOLS[1]];
    const res = await provider(HELLO).fetch(post(chatBody(0, { tools })));
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain('offered: write');
  });
});
