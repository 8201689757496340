import { describe, expect, it } from 'vitest';
import { summarizeHistory } from '../../src/conversations/history.js';
import { createSimulatedProvider, parseSimulateScript } from '../../src/providers/simulated/index.js';

// A conversation resumed by the CLI resends its whole session: the earlier user messages, tool
// calls and answers, then the new user message. The simulated provider answers each user message
// with its own section of the script (`await_user` separates them), whatever came before.
const RUNBOOK = [
  '# Notes',
  '```simulate',
  '- run: echo one > /app/notes.txt',
  '- say: wrote the notes',
  '- await_user: the user asks what the notes say',
  '- run: cat /app/notes.txt',
  '- say: the notes say one',
  '```',
].join('\n');

const sim = () =>
  createSimulatedProvider({
    runbook: RUNBOOK,
    requiredOutputs: [],
    resultsDir: '/app/results',
    workdir: '/app',
  });

async function post(path: string, body: unknown): Promise<Record<string, any>> {
  const res = await sim().fetch(
    new Request(`http://127.0.0.1:4100${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    }),
  );
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, any>;
}

describe('simulated provider: one script section per user message', () => {
  it('reads await_user as the end of one answer and the start of the next', () => {
    const steps = parseSimulateScript(RUNBOOK);
    expect(steps?.map((s) => s.kind)).toEqual(['run', 'say', 'await_user', 'run', 'say']);
  });

  it('Anthropic Messages (claude-code): the second user message gets the second section', async () => {
    const tools = [
      { name: 'Bash', input_schema: { type: 'object', properties: { command: { type: 'string' } } } },
    ];
    const first = [
      {
        role: 'user',
        content: [
          { type: 'text', text: '<system-reminder>\nAgents available\n</system-reminder>' },
          { type: 'text', text: '# Notes\nDo it.' },
        ],
      },
      { role: 'assistant', content: [{ type: 'tool_use', id: 't0', name: 'Bash', input: { command: 'x' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't0', content: '' }] },
      { role: 'assistant', content: [{ type: 'text', text: 'wrote the notes' }] },
    ];
    const ask = { role: 'user', content: [{ type: 'text', text: 'What do the notes say?' }] };
    const body = (messages: unknown[]) => ({ model: 'claude-sonnet-4-6', max_tokens: 100, messages, tools });

    const call = await post('/v1/messages', body([...first, ask]));
    expect(call.content).toEqual([
      expect.objectContaining({ type: 'tool_use', input: { command: 'cat /app/notes.txt' } }),
    ]);

    const answered = [
      ...first,
      ask,
      {
        role: 'assistant',
        content: [{ type: 'tool_use', id: 't1', name: 'Bash', input: { command: 'cat' } }],
      },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: 'one' }] },
    ];
    const words = await post('/v1/messages', body(answered));
    expect(words.content).toEqual([{ type: 'text', text: 'the notes say one' }]);

    // A third message: the script has nothing more, and says so.
    const more = await post(
      '/v1/messages',
      body([
        ...answered,
        { role: 'assistant', content: 'the notes say one' },
        { role: 'user', content: 'And?' },
      ]),
    );
    expect(more.content[0].text).toMatch(/no steps for message 3/);
  });

  it("a later section's ids differ from the first section's (claude merges blocks sharing a message id)", async () => {
    const tools = [
      { name: 'Bash', input_schema: { type: 'object', properties: { command: { type: 'string' } } } },
    ];
    const body = (messages: unknown[]) => ({ model: 'claude-sonnet-4-6', max_tokens: 100, messages, tools });
    const ask = { role: 'user', content: '# Notes\nDo it.' };
    const first = await post('/v1/messages', body([ask]));
    const second = await post(
      '/v1/messages',
      body([
        ask,
        {
          role: 'assistant',
          content: [{ type: 'tool_use', id: first.content[0].id, name: 'Bash', input: {} }],
        },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: first.content[0].id, content: '' }] },
        { role: 'assistant', content: [{ type: 'text', text: 'wrote the notes' }] },
        { role: 'user', content: 'What do the notes say?' },
      ]),
    );
    expect(second.content[0].type).toBe('tool_use');
    expect(second.content[0].id).not.toBe(first.content[0].id);
    expect(second.id).not.toBe(first.id);
  });

  it('OpenAI Responses (codex): injected <environment_context> messages are not user messages', async () => {
    const tools = [
      {
        type: 'function',
        name: 'exec_command',
        parameters: { type: 'object', properties: { cmd: { type: 'string' } } },
      },
    ];
    const userText = (text: string) => ({
      type: 'message',
      role: 'user',
      content: [{ type: 'input_text', text }],
    });
    const input = [
      userText('<environment_context>\n  <cwd>/app</cwd>\n</environment_context>'),
      userText('# Notes\nDo it.'),
      { type: 'function_call', call_id: 'c0', name: 'exec_command', arguments: '{}' },
      { type: 'function_call_output', call_id: 'c0', output: '' },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'wrote the notes' }] },
      userText('What do the notes say?'),
    ];
    const res = await post('/v1/responses', { model: 'gpt-5.5', input, tools, stream: false });
    const call = res.output.find((o: any) => o.type === 'function_call');
    expect(JSON.parse(call.arguments)).toMatchObject({ cmd: 'cat /app/notes.txt' });
  });

  it('OpenAI Chat Completions (opencode): role "tool" results count only after the last user message', async () => {
    const tools = [
      {
        type: 'function',
        function: {
          name: 'bash',
          parameters: { type: 'object', properties: { command: { type: 'string' } } },
        },
      },
    ];
    const messages = [
      { role: 'system', content: 'You are OpenCode.' },
      { role: 'user', content: '# Notes\nDo it.' },
      {
        role: 'assistant',
        content: '',
        tool_calls: [{ id: 'c0', type: 'function', function: { name: 'bash', arguments: '{}' } }],
      },
      { role: 'tool', tool_call_id: 'c0', content: '' },
      { role: 'assistant', content: 'wrote the notes' },
      { role: 'user', content: 'What do the notes say?' },
      {
        role: 'assistant',
        content: '',
        tool_calls: [{ id: 'c1', type: 'function', function: { name: 'bash', arguments: '{}' } }],
      },
      { role: 'tool', tool_call_id: 'c1', content: 'one' },
    ];
    const res = await post('/v1/chat/completions', { model: 'm', messages, tools, stream: false });
    expect(res.choices[0].message.content).toBe('the notes say one');
  });

  it('Gemini (gemini-cli): the second user content gets the second section', async () => {
    const tools = [
      {
        functionDeclarations: [
          {
            name: 'run_shell_command',
            parametersJsonSchema: { type: 'object', properties: { command: { type: 'string' } } },
          },
        ],
      },
    ];
    const contents = [
      {
        role: 'user',
        parts: [
          { text: '<session_context>\nThis is the Gemini CLI.\n</session_context>' },
          { text: '# Notes\nDo it.' },
        ],
      },
      { role: 'model', parts: [{ functionCall: { name: 'run_shell_command', args: { command: 'x' } } }] },
      {
        role: 'user',
        parts: [{ functionResponse: { name: 'run_shell_command', response: { output: '' } } }],
      },
      { role: 'model', parts: [{ text: 'wrote the notes' }] },
      { role: 'user', parts: [{ text: 'What do the notes say?' }] },
    ];
    const res = await post('/v1beta/models/gemini-2.5-pro:generateContent', { contents, tools });
    const part = res.candidates[0].content.parts.find((p: any) => p.functionCall);
    expect(part.functionCall.args).toMatchObject({ command: 'cat /app/notes.txt' });
  });

  it('a prompt summarizing earlier turns (a runtime that cannot resume) answers the turn after them', async () => {
    const history = summarizeHistory(
      [{ turn: 1, message: 'Write the notes.', answer: 'wrote the notes', status: 'completed' }],
      32 * 1024,
    );
    const prompt = `# Notes\n\n---\n\n${history.text}\n\nWhat do the notes say?`;
    const tools = [
      { name: 'terminal', input_schema: { type: 'object', properties: { command: { type: 'string' } } } },
    ];
    const call = await post('/v1/messages', {
      model: 'claude-sonnet-4-6',
      max_tokens: 100,
      messages: [{ role: 'user', content: prompt }],
      tools,
    });
    expect(call.content).toEqual([
      expect.objectContaining({ type: 'tool_use', input: { command: 'cat /app/notes.txt' } }),
    ]);
  });
});
