import { describe, expect, it } from 'vitest';
import type { AgentEvent } from '../../src/events/types.js';
import { CLAUDE_PROMPT_PATH, ClaudeCodeParser, claudeCodeAdapter } from '../../src/runtimes/claude-code.js';
import { getRuntime, listRuntimes } from '../../src/runtimes/registry.js';
import type { InvocationSpec } from '../../src/runtimes/types.js';
import { loadRecording, ofType, type RecordedRun, replay } from '../support/runtime-conformance.js';

const fixture = (name: string, exitCode: number | null): RecordedRun =>
  loadRecording(new URL(`../fixtures/claude-code/${name}`, import.meta.url), exitCode);

const spec = (over: Partial<InvocationSpec> = {}): InvocationSpec => ({
  runId: 'run_123',
  prompt: '# Weekly report\n\nWrite /app/results/report.md.\n\nDeadline: 20 minutes.',
  model: 'claude-sonnet-4-6',
  provider: 'anthropic',
  gatewayUrl: 'http://127.0.0.1:4100',
  token: 'jrt_run_123_secret',
  deadlineSec: 1200,
  workdir: '/app',
  resultsDir: '/app/results',
  ...over,
});

const replayClaude = (run: RecordedRun, exitCode = run.exitCode) => replay(claudeCodeAdapter, run, exitCode);

const failure = (outcome: ReturnType<typeof replayClaude>['outcome']) =>
  outcome.status === 'failed' ? outcome.error : undefined;

describe('claude-code adapter', () => {
  it('describes the pinned CLI, its image, providers and capabilities', () => {
    expect(claudeCodeAdapter).toMatchObject({
      name: 'claude-code',
      cliPackage: '@anthropic-ai/claude-code',
      cliVersion: '2.1.197',
      image: 'jetty/agent-claude-code:2.1.197',
      defaultModel: 'claude-sonnet-4-6',
      capabilities: { token_usage: true, cost: true, streaming: 'message', mcp_servers: true, resume: false },
    });
    expect([...claudeCodeAdapter.providers].sort()).toEqual([
      'anthropic',
      'bedrock',
      'openrouter',
      'simulated',
    ]);
  });

  it('is in the registry', () => {
    expect(getRuntime('claude-code')).toBe(claudeCodeAdapter);
    expect(listRuntimes()[0]).toBe(claudeCodeAdapter);
  });
});

describe('claude-code buildInvocation', () => {
  it('runs claude headless with stream-json, no permission prompts and no saved session', () => {
    expect(claudeCodeAdapter.buildInvocation(spec()).argv).toEqual([
      'claude',
      '-p',
      '--output-format',
      'stream-json',
      '--verbose',
      '--dangerously-skip-permissions',
      '--no-session-persistence',
      '--model=claude-sonnet-4-6',
    ]);
  });

  it('feeds the prompt on stdin from a file, never in argv', () => {
    const s = spec({ prompt: `${'A very long runbook. '.repeat(10_000)}END` });
    const inv = claudeCodeAdapter.buildInvocation(s);
    expect(inv.stdinFile).toBe(CLAUDE_PROMPT_PATH);
    expect(inv.files).toEqual([{ path: '/home/agent/.jetty/prompt.md', content: s.prompt, mode: 0o644 }]);
    expect(inv.argv.some((a) => a.includes('END'))).toBe(false);
  });

  it('gives the CLI the gateway and the per-run token, and no other secret', () => {
    const inv = claudeCodeAdapter.buildInvocation(spec());
    expect(inv.env).toEqual({
      ANTHROPIC_BASE_URL: 'http://127.0.0.1:4100',
      ANTHROPIC_API_KEY: 'jrt_run_123_secret',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      DISABLE_TELEMETRY: '1',
      DISABLE_AUTOUPDATER: '1',
      DISABLE_ERROR_REPORTING: '1',
      CLAUDE_CODE_MAX_RETRIES: '1',
      HOME: '/home/agent',
    });
  });

  it('uses the default model when none is given', () => {
    expect(claudeCodeAdapter.buildInvocation(spec({ model: '' })).argv.at(-1)).toBe(
      '--model=claude-sonnet-4-6',
    );
  });

  it('keeps a model value that looks like a flag inside the --model argument', () => {
    // Measured on 2.1.197: `--model --debug-file=x` made the CLI write x; `--model=--debug-file=x` did not.
    const argv = claudeCodeAdapter.buildInvocation(spec({ model: '--debug-file=/tmp/x' })).argv;
    expect(argv.at(-1)).toBe('--model=--debug-file=/tmp/x');
    expect(argv).not.toContain('--debug-file=/tmp/x');
  });
});

describe('claude-code parser on recorded runs', () => {
  it('a Bash tool run: the agent’s words, the call, its result, usage, and the final text', () => {
    const { events, finishEvents, outcome } = replayClaude(fixture('success-bash.jsonl', 0));
    expect(events).toEqual([
      { type: 'agent.message', data: { text: 'I will list the files and write hello.txt.' } },
      {
        type: 'tool.call',
        data: {
          call_id: 'toolu_fake_bash',
          name: 'Bash',
          input: {
            command: 'printf hi > /app/hello.txt && ls /app',
            description: 'Write hello.txt and list files',
          },
        },
      },
      { type: 'tool.result', data: { call_id: 'toolu_fake_bash', output: 'hello.txt', is_error: false } },
      { type: 'agent.message', data: { text: 'Done: hello.txt contains hi.' } },
      {
        type: 'usage',
        data: {
          input_tokens: 2400,
          output_tokens: 84,
          cache_read_tokens: 1600,
          cache_write_tokens: 600,
          cost_usd: 0.011189999999999999,
          cost_estimated: false,
          model: 'claude-sonnet-4-6',
          source: 'agent',
        },
      },
    ]);
    expect(finishEvents).toEqual([]);
    expect(outcome).toEqual({ status: 'completed', finalText: 'Done: hello.txt contains hi.' });
  });

  it('a Write tool run', () => {
    const { events, outcome } = replayClaude(fixture('success-write.jsonl', 0));
    const [call] = ofType(events, 'tool.call');
    expect(call?.data).toEqual({
      call_id: 'toolu_fake_write',
      name: 'Write',
      input: { file_path: '/app/hello.txt', content: 'hi' },
    });
    const [result] = ofType(events, 'tool.result');
    expect(result?.data.call_id).toBe('toolu_fake_write');
    expect(result?.data.output).toMatch(/^File created successfully at: \/app\/hello\.txt/);
    expect(outcome.status).toBe('completed');
    expect(ofType(events, 'log')).toEqual([]);
  });

  it('thinking becomes agent.reasoning; the thinking_tokens bookkeeping line shows nothing', () => {
    const { events } = replayClaude(fixture('thinking-bash.jsonl', 0));
    expect(events[0]).toEqual({
      type: 'agent.reasoning',
      data: { text: 'The user wants the kernel name; uname -s prints it.' },
    });
    expect(ofType(events, 'log')).toEqual([]);
    expect(ofType(events, 'tool.result')[0]?.data.output).toBe('Linux');
  });

  it('a failing tool call is a tool.result with is_error, and the run still completes', () => {
    const { events, outcome } = replayClaude(fixture('tool-error.jsonl', 0));
    expect(ofType(events, 'tool.result')).toEqual([
      {
        type: 'tool.result',
        data: {
          call_id: 'toolu_fake_err',
          output: 'Exit code 1\ncat: /nonexistent/file.txt: No such file or directory',
          is_error: true,
        },
      },
    ]);
    expect(outcome).toEqual({ status: 'completed', finalText: 'The file does not exist.' });
  });

  it("a 210 KB line (a 100 KiB Read result) is parsed whole, its output whole (the run's event sink cuts it)", () => {
    const run = fixture('long-line-read.jsonl', 0);
    expect(Math.max(...run.lines.map((l) => l.length))).toBeGreaterThan(200 * 1024);
    const { events, outcome } = replayClaude(run);
    const read = ofType(events, 'tool.result').find((e) => e.data.call_id === 'toolu_fake_read');
    expect(read?.data.truncated).toBeUndefined();
    expect(read?.data.output.startsWith('1\tline 00001 aaaa')).toBe(true);
    expect(Buffer.byteLength(read?.data.output ?? '')).toBeGreaterThan(100 * 1024);
    expect(ofType(events, 'log')).toEqual([]);
    expect(outcome).toEqual({ status: 'completed', finalText: 'big.txt has 1100 lines.' });
  });
});

describe('claude-code parser on provider errors', () => {
  it('401: is_error with subtype "success" fails as provider_auth_error, retries visible as logs', () => {
    const { events, outcome } = replayClaude(fixture('provider-401.jsonl', 1));
    expect(ofType(events, 'log').map((e) => e.data)).toEqual([
      {
        stream: 'system',
        line: 'claude-code: model request failed (HTTP 401, authentication_failed); retry 1/1',
      },
      {
        stream: 'system',
        line: 'claude-code: authentication_failed: Invalid API key · Fix external API key',
      },
    ]);
    // The CLI's made-up assistant message is an error, not the agent talking.
    expect(ofType(events, 'agent.message')).toEqual([]);
    expect(outcome).toEqual({
      status: 'failed',
      finalText: '',
      error: {
        code: 'provider_auth_error',
        message: 'The model provider rejected the request (HTTP 401): Invalid API key · Fix external API key',
      },
    });
  });

  it('the error result wins even if the exit code were 0', () => {
    expect(failure(replayClaude(fixture('provider-401.jsonl', 1), 0).outcome)?.code).toBe(
      'provider_auth_error',
    );
  });

  it.each([
    [
      'provider-404.jsonl',
      'provider_model_not_found',
      'The model provider does not know the model (HTTP 404): ',
    ],
    [
      'provider-429.jsonl',
      'provider_rate_limited',
      'The model provider rate-limited the request (HTTP 429): ',
    ],
    ['provider-500.jsonl', 'provider_error', 'The model provider failed (HTTP 500): API Error: 500'],
  ])('%s fails as %s', (name, code, prefix) => {
    const error = failure(replayClaude(fixture(name, 1)).outcome);
    expect(error?.code).toBe(code);
    expect(error?.message.startsWith(prefix)).toBe(true);
  });

  it('an unreachable gateway (no HTTP status) fails as provider_unreachable', () => {
    expect(failure(replayClaude(fixture('provider-unreachable.jsonl', 1)).outcome)).toEqual({
      code: 'provider_unreachable',
      message:
        'The model provider could not be reached: API Error: Unable to connect to API (ConnectionRefused)',
    });
  });

  it('maps other statuses by class', () => {
    const statusResult = (status: number) =>
      JSON.stringify({
        type: 'result',
        subtype: 'success',
        is_error: true,
        api_error_status: status,
        result: 'nope',
      });
    const codeFor = (status: number) =>
      failure(replayClaude({ name: 'inline', lines: [statusResult(status)], exitCode: 1 }).outcome)?.code;
    expect(codeFor(403)).toBe('provider_auth_error');
    expect(codeFor(529)).toBe('provider_error');
    expect(codeFor(400)).toBe('agent_error');
  });
});

describe('claude-code parser on other failures', () => {
  it('error_max_turns fails as agent_max_turns with the CLI’s reason, usage still counted', () => {
    const { events, outcome } = replayClaude(fixture('error-max-turns.jsonl', 1));
    expect(failure(outcome)).toEqual({
      code: 'agent_max_turns',
      message: 'The agent stopped at its turn limit: Reached maximum number of turns (2)',
    });
    expect(ofType(events, 'usage')[0]?.data.output_tokens).toBe(84);
    expect(ofType(events, 'tool.call')).toHaveLength(2);
  });

  it('a killed CLI (no result) fails as agent_crashed; what it did is still reported', () => {
    const run = fixture('crash-killed.jsonl', 137);
    const { events, outcome } = replayClaude(run);
    expect(ofType(events, 'tool.result')).toHaveLength(1);
    expect(outcome).toEqual({
      status: 'failed',
      finalText: 'I will list the files and write hello.txt.',
      error: { code: 'agent_crashed', message: 'Claude Code exited with code 137 before reporting a result' },
    });
    expect(failure(replayClaude(run, null).outcome)?.message).toBe(
      'Claude Code was killed before reporting a result',
    );
  });

  it('a crash that cuts a line in half: the half line is a log, the run crashed', () => {
    const success = fixture('success-bash.jsonl', 0).lines;
    const cut = success.at(-1)?.slice(0, 120) ?? '';
    const { events, outcome } = replayClaude({
      name: 'cut',
      lines: [...success.slice(0, -1), cut],
      exitCode: null,
    });
    expect(ofType(events, 'log').map((e) => e.data.line)).toEqual([cut]);
    expect(failure(outcome)?.code).toBe('agent_crashed');
    expect(failure(outcome)?.message).toContain(cut.slice(0, 40));
  });

  it('a crash names the last stderr line (recorded: running as root without IS_SANDBOX)', () => {
    const parser = new ClaudeCodeParser();
    const line =
      '--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons';
    expect(parser.pushStderr(line)).toEqual([{ type: 'log', data: { stream: 'stderr', line } }]);
    expect(parser.finish(1).outcome).toEqual({
      status: 'failed',
      finalText: '',
      error: {
        code: 'agent_crashed',
        message: `Claude Code exited with code 1 before reporting a result: ${line}`,
      },
    });
  });

  it('a success result followed by a non-zero exit still completes, and says so in a log', () => {
    const parser = claudeCodeAdapter.createParser();
    for (const line of fixture('success-bash.jsonl', 0).lines) parser.push(line);
    const { events, outcome } = parser.finish(143);
    expect(outcome).toEqual({ status: 'completed', finalText: 'Done: hello.txt contains hi.' });
    expect(events).toEqual([
      {
        type: 'log',
        data: {
          stream: 'system',
          line: 'claude-code exited with code 143 after reporting success; keeping the result',
        },
      },
    ]);
  });
});

describe('claude-code parser edge cases', () => {
  const push = (...lines: unknown[]): AgentEvent[] => {
    const parser = claudeCodeAdapter.createParser();
    return lines.flatMap((l) => parser.push(typeof l === 'string' ? l : JSON.stringify(l)));
  };

  it('tool_result content given as blocks: text parts joined, images named', () => {
    const events = push({
      type: 'user',
      message: {
        role: 'user',
        content: [
          {
            type: 'tool_result',
            tool_use_id: 'toolu_1',
            content: [
              { type: 'text', text: 'first' },
              { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAAA' } },
              { type: 'text', text: 'second' },
            ],
          },
        ],
      },
    });
    expect(events).toEqual([
      {
        type: 'tool.result',
        data: { call_id: 'toolu_1', output: 'first\n[image]\nsecond', is_error: false },
      },
    ]);
  });

  it('a sub-agent’s text is reasoning, not the answer', () => {
    const events = push({
      type: 'assistant',
      parent_tool_use_id: 'toolu_task',
      message: {
        role: 'assistant',
        model: 'claude-haiku-4-5',
        content: [{ type: 'text', text: 'exploring' }],
      },
    });
    expect(events).toEqual([{ type: 'agent.reasoning', data: { text: 'exploring' } }]);
  });

  it('non-JSON and unknown lines become logs; blank lines and noise nothing', () => {
    expect(push('Segmentation fault', '', '{"type":"brand_new","x":1}', { type: 'stream_event' })).toEqual([
      { type: 'log', data: { stream: 'system', line: 'Segmentation fault' } },
      { type: 'log', data: { stream: 'system', line: '{"type":"brand_new","x":1}' } },
    ]);
  });

  it('a huge garbage line is a log event (cut by the event sink, not here)', () => {
    const [event] = push('x'.repeat(300 * 1024));
    expect(event).toEqual({ type: 'log', data: { stream: 'system', line: 'x'.repeat(300 * 1024) } });
  });

  it('the model in usage drops the CLI’s context suffix and prefers the session model', () => {
    const events = push(
      { type: 'system', subtype: 'init', session_id: 's1', model: 'claude-opus-4-8[1m]' },
      {
        type: 'result',
        subtype: 'success',
        is_error: false,
        result: 'ok',
        usage: { input_tokens: 1, output_tokens: 2 },
        modelUsage: {
          'claude-haiku-4-5': { inputTokens: 900, outputTokens: 900 },
          'claude-opus-4-8[1m]': { inputTokens: 1, outputTokens: 2 },
        },
      },
    );
    expect(ofType(events, 'usage')[0]?.data.model).toBe('claude-opus-4-8');
  });
});
