import { describe, expect, it } from 'vitest';
import type { SimulatedProvider } from '../../src/providers/simulated/index.js';
import { createSimulatedProvider } from '../../src/providers/simulated/index.js';

const BASE = 'http://127.0.0.1:4100';
const MODEL = 'gemini-2.5-pro';
const STREAM = `/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`;
const GENERATE = `/v1beta/models/${MODEL}:generateContent`;

/** Two of the tools gemini-cli 0.61.0 offers, as it declares them. */
const GEMINI_TOOLS = [
  {
    functionDeclarations: [
      {
        name: 'write_file',
        description: 'Writes a file',
        parametersJsonSchema: {
          type: 'object',
          properties: { file_path: { type: 'string' }, content: { type: 'string' } },
          required: ['file_path', 'content'],
        },
      },
      {
        name: 'run_shell_command',
        description: 'Runs a shell command',
        parametersJsonSchema: {
          type: 'object',
          properties: {
            command: { type: 'string' },
            description: { type: 'string' },
            dir_path: { type: 'string' },
            is_background: { type: 'boolean' },
          },
          required: ['command'],
        },
      },
    ],
  },
];

type Json = Record<string, any>;
type Content = { role: 'user' | 'model'; parts: Json[] };

const FIRST_USER: Content = { role: 'user', parts: [{ text: 'Execute the runbook.' }] };

/** The conversation after `n` shell calls, as the CLI sends it. */
function conversation(n: number): Content[] {
  const contents: Content[] = [FIRST_USER];
  for (let i = 0; i < n; i++) {
    const id = `run_shell_command_${i}`;
    contents.push({
      role: 'model',
      parts: [
        { functionCall: { id, name: 'run_shell_command', args: { command: 'true' } } },
        { thoughtSignature: 'skip_thought_signature_validator' },
      ],
    });
    contents.push({
      role: 'user',
      parts: [{ functionResponse: { id, name: 'run_shell_command', response: { output: 'ok' } } }],
    });
  }
  return contents;
}

function body(contents: Content[], extra: Json = {}): Json {
  return {
    contents,
    systemInstruction: { role: 'user', parts: [{ text: 'You are Gemini CLI.' }] },
    tools: GEMINI_TOOLS,
    generationConfig: { temperature: 1, thinkingConfig: { includeThoughts: true } },
    ...extra,
  };
}

function post(path: string, json: unknown, signal?: AbortSignal): Request {
  return new Request(`${BASE}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-goog-api-key': 'run-token' },
    body: typeof json === 'string' ? json : JSON.stringify(json),
    ...(signal === undefined ? {} : { signal }),
  });
}

function provider(script: string | null, requiredOutputs: string[] = []): SimulatedProvider {
  const runbook = script === null ? '# Runbook\n' : `# Runbook\n\n\`\`\`simulate\n${script}\n\`\`\`\n`;
  return createSimulatedProvider({ runbook, requiredOutputs, resultsDir: '/app/results', workdir: '/app' });
}

/**
 * Reads the stream the way the Gen AI SDK the CLI uses does: one `data: <json>` line per event,
 * events ended by a blank line. Anything else in the bytes fails the test.
 */
function parseGeminiSse(text: string): Json[] {
  expect(text.endsWith('\n\n')).toBe(true);
  return text
    .slice(0, -2)
    .split('\n\n')
    .map((event) => {
      expect(event).toMatch(/^data: \{.*\}$/);
      return JSON.parse(event.slice('data: '.length)) as Json;
    });
}

const partsOf = (chunks: Json[]) => chunks.flatMap((c) => c.candidates[0].content.parts as Json[]);

const HELLO = [
  '- say: Writing hello.txt now.',
  '- run: mkdir -p /app/results && printf hi > /app/results/hello.txt',
  '- say: wrote hello.txt',
].join('\n');

describe('simulated Gemini API: streamGenerateContent', () => {
  it('turn 0 streams the words, then a run_shell_command call; the last chunk has finishReason', async () => {
    const res = await provider(HELLO).fetch(post(STREAM, body(conversation(0))));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const chunks = parseGeminiSse(await res.text());
    expect(chunks.length).toBeGreaterThanOrEqual(2);
    const parts = partsOf(chunks);
    expect(
      parts
        .filter((p) => 'text' in p)
        .map((p) => p.text)
        .join(''),
    ).toBe('Writing hello.txt now.');
    expect(parts.at(-1)).toEqual({
      functionCall: {
        name: 'run_shell_command',
        args: { command: 'mkdir -p /app/results && printf hi > /app/results/hello.txt' },
      },
    });
    for (const [i, chunk] of chunks.entries()) {
      const candidate = chunk.candidates[0];
      expect(candidate.content.role).toBe('model');
      expect(candidate.index).toBe(0);
      expect(candidate.finishReason).toBe(i === chunks.length - 1 ? 'STOP' : undefined);
      expect(chunk.modelVersion).toBe(MODEL);
      expect(chunk.responseId).toBe('resp_sim_0');
      const u = chunk.usageMetadata;
      expect(u.promptTokenCount).toBeGreaterThan(0);
      expect(u.candidatesTokenCount).toBeGreaterThan(0);
      expect(u.totalTokenCount).toBe(u.promptTokenCount + u.candidatesTokenCount);
    }
  });

  it('the exact bytes of a chunk: one data line, the shape the CLI was recorded accepting', async () => {
    const res = await provider('- say: done').fetch(post(STREAM, body(conversation(0))));
    const text = await res.text();
    const prompt = JSON.parse(text.slice(6)).usageMetadata.promptTokenCount;
    expect(text).toBe(
      `data: {"candidates":[{"content":{"role":"model","parts":[{"text":"done"}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":${prompt},"candidatesTokenCount":1,"totalTokenCount":${prompt + 1}},"modelVersion":"gemini-2.5-pro","responseId":"resp_sim_0"}\n\n`,
    );
  });

  it('turn N is the request carrying N function responses', async () => {
    const sim = provider(HELLO);
    const res = await sim.fetch(post(STREAM, body(conversation(1))));
    const chunks = parseGeminiSse(await res.text());
    expect(partsOf(chunks)).toEqual([{ text: 'wrote hello.txt' }]);
    expect(chunks.at(-1)?.responseId).toBe('resp_sim_1');
    // Past the end of the script it says so, in words.
    const after = partsOf(
      parseGeminiSse(await (await sim.fetch(post(STREAM, body(conversation(5))))).text()),
    );
    expect(after.map((p) => p.text).join('')).toBe('The simulated script has no more steps.');
  });

  it('two `say` steps in one turn stay apart (the client joins the parts of a turn)', async () => {
    const res = await provider('- say: One.\n- say: Two.').fetch(post(STREAM, body(conversation(0))));
    const text = partsOf(parseGeminiSse(await res.text()))
      .map((p) => p.text)
      .join('');
    expect(text).toBe('One.\n\nTwo.');
  });

  it('answers the same request with the same bytes (deterministic usage too)', async () => {
    const sim = provider(HELLO);
    const a = await (await sim.fetch(post(STREAM, body(conversation(0))))).text();
    const b = await (await sim.fetch(post(STREAM, body(conversation(0))))).text();
    expect(a).toBe(b);
  });

  it('Vertex AI express mode paths are served the same way', async () => {
    const res = await provider(HELLO).fetch(
      post(`/v1beta1/publishers/google/models/${MODEL}:streamGenerateContent?alt=sse`, body(conversation(1))),
    );
    expect(partsOf(parseGeminiSse(await res.text()))).toEqual([{ text: 'wrote hello.txt' }]);
  });

  it.each([
    'anthropic/claude-sonnet-4.6',
    'openai/gpt-5.5',
    'us.anthropic.claude-sonnet-4-5-20250929-v1:0',
    'anthropic%2Fclaude-sonnet-4.6',
  ])(
    'serves any model name, %s included (a runbook switched to gemini-cli keeps its model)',
    async (model) => {
      const p = provider(HELLO);
      const res = await p.fetch(
        post(`/v1beta/models/${model}:streamGenerateContent?alt=sse`, body(conversation(1))),
      );
      expect(res.status).toBe(200);
      const chunks = parseGeminiSse(await res.text());
      expect(partsOf(chunks)).toEqual([{ text: 'wrote hello.txt' }]);
      expect(chunks[0]!.modelVersion).toBe(decodeURIComponent(model));
      const one = await p.fetch(new Request(`${BASE}/v1beta/models/${model}`, { method: 'GET' }));
      expect(one.status).toBe(200);
      expect(((await one.json()) as Json).name).toBe(`models/${decodeURIComponent(model)}`);
    },
  );

  it('the default dry run writes the required outputs through the shell tool', async () => {
    const res = await provider(null, ['/app/results/report.md']).fetch(post(STREAM, body(conversation(0))));
    const call = partsOf(parseGeminiSse(await res.text())).find((p) => 'functionCall' in p);
    expect(call?.functionCall.name).toBe('run_shell_command');
    expect(call?.functionCall.args.command).toContain("> '/app/results/report.md'");
  });
});

describe('simulated Gemini API: generateContent', () => {
  it('answers a turn in one response with every part', async () => {
    const res = await provider(HELLO).fetch(post(GENERATE, body(conversation(0))));
    expect(res.status).toBe(200);
    const json = (await res.json()) as Json;
    expect(json.candidates[0].finishReason).toBe('STOP');
    expect(json.candidates[0].content.parts).toEqual([
      { text: 'Writing hello.txt now.' },
      {
        functionCall: {
          name: 'run_shell_command',
          args: { command: 'mkdir -p /app/results && printf hi > /app/results/hello.txt' },
        },
      },
    ]);
    expect(json.usageMetadata.promptTokenCount).toBeGreaterThan(0);
  });

  it('the router (no tools, Gemini-style schema) gets JSON with a complexity_score of at least 1', async () => {
    const res = await provider(HELLO).fetch(
      post('/v1beta/models/gemini-3.5-flash-lite:generateContent', {
        contents: [FIRST_USER],
        systemInstruction: { role: 'user', parts: [{ text: 'You are a Task Routing AI.' }] },
        generationConfig: {
          responseMimeType: 'application/json',
          responseJsonSchema: {
            type: 'OBJECT',
            properties: {
              complexity_reasoning: { type: 'STRING' },
              complexity_score: { type: 'INTEGER' },
            },
            required: ['complexity_reasoning', 'complexity_score'],
          },
        },
      }),
    );
    const json = (await res.json()) as Json;
    const answer = JSON.parse(json.candidates[0].content.parts[0].text);
    expect(typeof answer.complexity_reasoning).toBe('string');
    expect(Number.isInteger(answer.complexity_score) && answer.complexity_score >= 1).toBe(true);
    expect(json.modelVersion).toBe('gemini-3.5-flash-lite');
  });

  it('the loop check (a fraction) is told there is no loop', async () => {
    const res = await provider(HELLO).fetch(
      post(GENERATE, {
        contents: [FIRST_USER],
        generationConfig: {
          responseMimeType: 'application/json',
          responseJsonSchema: {
            type: 'object',
            properties: {
              unproductive_state_analysis: { type: 'string' },
              unproductive_state_confidence: { type: 'number' },
            },
          },
        },
      }),
    );
    const json = (await res.json()) as Json;
    expect(JSON.parse(json.candidates[0].content.parts[0].text).unproductive_state_confidence).toBe(0);
  });

  it('a side call with no tools and no schema is answered plainly, and is not a turn', async () => {
    const res = await provider('- fail: 500').fetch(post(GENERATE, { contents: [FIRST_USER] }));
    expect(res.status).toBe(200);
    expect(((await res.json()) as Json).candidates[0].content.parts).toEqual([{ text: 'Simulated run' }]);
  });

  it('countTokens', async () => {
    const res = await provider(HELLO).fetch(
      post(`/v1beta/models/${MODEL}:countTokens`, body(conversation(0))),
    );
    expect(((await res.json()) as Json).totalTokens).toBeGreaterThan(0);
  });
});

describe('simulated Gemini API: errors', () => {
  for (const [status, name] of [
    [401, 'UNAUTHENTICATED'],
    [403, 'PERMISSION_DENIED'],
    [404, 'NOT_FOUND'],
    [429, 'RESOURCE_EXHAUSTED'],
    [500, 'INTERNAL'],
    [503, 'UNAVAILABLE'],
  ] as const) {
    it(`fail: ${status} answers in the Google error shape, streaming or not`, async () => {
      for (const path of [STREAM, GENERATE]) {
        const res = await provider(`- fail: ${status}`).fetch(post(path, body(conversation(0))));
        expect(res.status).toBe(status);
        const json = (await res.json()) as Json;
        expect(json).toEqual({
          error: { code: status, message: expect.stringContaining(`HTTP ${status}`), status: name },
        });
      }
    });
  }

  it('a run step with no shell tool offered is a 400 naming the tools', async () => {
    const res = await provider(HELLO).fetch(
      post(STREAM, body(conversation(0), { tools: [{ functionDeclarations: [{ name: 'read_file' }] }] })),
    );
    expect(res.status).toBe(400);
    const json = (await res.json()) as Json;
    expect(json.error.status).toBe('INVALID_ARGUMENT');
    expect(json.error.message).toContain('offered: read_file');
  });

  it('a body that is not a GenerateContent request is a 400', async () => {
    for (const bad of ['{not json', JSON.stringify({ contents: 'x' })]) {
      const res = await provider(HELLO).fetch(post(STREAM, bad));
      expect(res.status).toBe(400);
      expect(((await res.json()) as Json).error.status).toBe('INVALID_ARGUMENT');
    }
  });

  it('a client that goes away mid-pause ends the stream', async () => {
    const abort = new AbortController();
    const res = await provider('- say: first\n- sleep_ms: 60000\n- say: second').fetch(
      post(STREAM, body(conversation(0)), abort.signal),
    );
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain('"text":"first"');
    const t0 = Date.now();
    await reader.cancel();
    expect(Date.now() - t0).toBeLessThan(1000);
  });
});
