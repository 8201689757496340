import { describe, expect, it } from 'vitest';
import type { AgentEvent } from '../../src/events/types.js';
import {
  CODEX_CONFIG_PATH,
  CODEX_PROMPT_PATH,
  CodexParser,
  classifyError,
  codexAdapter,
} from '../../src/runtimes/codex.js';
import { getRuntime } from '../../src/runtimes/registry.js';
import type { InvocationSpec, ProviderName } from '../../src/runtimes/types.js';
import { loadRecording, ofType, type RecordedRun, replay } from '../support/runtime-conformance.js';

const fixture = (name: string, exitCode: number | null): RecordedRun =>
  loadRecording(new URL(`../fixtures/codex/${name}`, import.meta.url), exitCode);

const spec = (over: Partial<InvocationSpec> = {}): InvocationSpec => ({
  runId: 'run_123',
  prompt: '# Weekly report\n\nWrite /app/results/report.md.\n\nDeadline: 20 minutes.',
  model: 'gpt-5.5',
  provider: 'openai',
  gatewayUrl: 'http://127.0.0.1:4100',
  token: 'jrt_run_123_secret',
  deadlineSec: 1200,
  workdir: '/app',
  resultsDir: '/app/results',
  ...over,
});

const replayCodex = (run: RecordedRun, exitCode = run.exitCode) => replay(codexAdapter, run, exitCode);

const failure = (outcome: ReturnType<typeof replayCodex>['outcome']) =>
  outcome.status === 'failed' ? outcome.error : undefined;

const configOf = (s: InvocationSpec): string => {
  const file = codexAdapter.buildInvocation(s).files.find((f) => f.path === CODEX_CONFIG_PATH);
  return String(file?.content);
};

describe('codex adapter', () => {
  it('describes the pinned CLI, its image, providers and capabilities', () => {
    expect(codexAdapter).toMatchObject({
      name: 'codex',
      cliPackage: '@openai/codex',
      cliVersion: '0.169.0',
      image: 'jetty/agent-codex:0.169.0',
      defaultModel: 'gpt-5.5',
      capabilities: {
        token_usage: true,
        cost: false,
        streaming: 'message',
        mcp_servers: true,
        resume: false,
      },
    });
    expect([...codexAdapter.providers].sort()).toEqual(['openai', 'openrouter', 'simulated']);
  });

  it('is in the registry', () => {
    expect(getRuntime('codex')).toBe(codexAdapter);
  });
});

describe('codex buildInvocation', () => {
  it('runs codex exec headless: JSONL events, no approvals or inner sandbox, no session files, prompt from stdin', () => {
    expect(codexAdapter.buildInvocation(spec()).argv).toEqual([
      'codex',
      'exec',
      '--json',
      '--skip-git-repo-check',
      '--dangerously-bypass-approvals-and-sandbox',
      '--ephemeral',
      '--strict-config',
      '--cd=/app',
      '-',
    ]);
  });

  it('feeds the prompt on stdin from a file, never in argv', () => {
    const s = spec({ prompt: `${'A very long runbook. '.repeat(10_000)}END` });
    const inv = codexAdapter.buildInvocation(s);
    expect(inv.stdinFile).toBe(CODEX_PROMPT_PATH);
    expect(inv.files).toContainEqual({
      path: '/home/agent/.jetty/prompt.md',
      content: s.prompt,
      mode: 0o644,
    });
    expect(inv.argv.some((a) => a.includes('END'))).toBe(false);
  });

  it('gives the CLI the per-run token in the env var its provider entry names, and no other secret', () => {
    const inv = codexAdapter.buildInvocation(spec());
    expect(inv.env).toEqual({
      HOME: '/home/agent',
      CODEX_HOME: '/home/agent/.codex',
      JETTY_GATEWAY_TOKEN: 'jrt_run_123_secret',
    });
    // The token is in the environment only: not in argv, not in the config file.
    expect(inv.argv.join(' ')).not.toContain('jrt_run_123_secret');
    expect(configOf(spec())).not.toContain('jrt_run_123_secret');
    expect(configOf(spec())).toContain('env_key = "JETTY_GATEWAY_TOKEN"');
  });

  it.each([
    ['openai', 'jetty-openai', 'OpenAI via the Jetty gateway'],
    ['openrouter', 'jetty-openrouter', 'OpenRouter via the Jetty gateway'],
    ['simulated', 'jetty-simulated', 'Simulated provider via the Jetty gateway'],
  ] as const)('writes one %s provider entry that points at the gateway', (provider, id, name) => {
    const model = provider === 'openrouter' ? 'openai/gpt-5.5' : 'gpt-5.5';
    const config = configOf(spec({ provider, model }));
    expect(config).toBe(
      [
        '# Written for one run by the Jetty codex runtime adapter (src/runtimes/codex.ts).',
        `model = "${model}"`,
        `model_provider = "${id}"`,
        'check_for_update_on_startup = false',
        '',
        `[model_providers.${id}]`,
        `name = "${name}"`,
        'base_url = "http://127.0.0.1:4100/v1"',
        'env_key = "JETTY_GATEWAY_TOKEN"',
        'wire_api = "responses"',
        'request_max_retries = 2',
        'stream_max_retries = 2',
        '',
        '[analytics]',
        'enabled = false',
        '',
        '[features]',
        'plugins = false',
        'unbounded_connection_retries = false',
        '',
        '[shell_environment_policy]',
        'exclude = ["JETTY_GATEWAY_TOKEN"]',
        '',
      ].join('\n'),
    );
    // No provider key or upstream anywhere: only the gateway, which picks the upstream by the run.
    const inv = codexAdapter.buildInvocation(spec({ provider, model }));
    const everything = JSON.stringify(inv);
    expect(everything).not.toMatch(/https:|sk-|OPENAI_API_KEY|OPENROUTER_API_KEY/);
  });

  it('writes the config file readable by the sandbox user only', () => {
    const file = codexAdapter.buildInvocation(spec()).files.find((f) => f.path === CODEX_CONFIG_PATH);
    expect(file?.mode).toBe(0o600);
  });

  it('uses the default model when none is given', () => {
    expect(configOf(spec({ model: '' }))).toContain('\nmodel = "gpt-5.5"\n');
  });

  it('keeps any model value inside one TOML string: it cannot add keys or tables', () => {
    const config = configOf(spec({ model: 'x"\nmodel_provider = "evil"\n[features]\u007f' }));
    expect(config).toContain(
      '\nmodel = "x\\"\\nmodel_provider = \\"evil\\"\\n[features]\\u007F"\nmodel_provider = "jetty-openai"\n',
    );
    expect(config.match(/^model_provider = /gm)).toHaveLength(1);
    expect(config.match(/^\[features\]$/gm)).toHaveLength(1);
  });

  it('strips a trailing slash of the gateway URL before adding /v1', () => {
    expect(configOf(spec({ gatewayUrl: 'http://127.0.0.1:4100/' }))).toContain(
      'base_url = "http://127.0.0.1:4100/v1"',
    );
  });

  it('refuses a provider it has no entry for (pre-flight rejects those before a run is queued)', () => {
    for (const provider of ['anthropic', 'google', 'bedrock', 'vertex'] as ProviderName[]) {
      expect(() => codexAdapter.buildInvocation(spec({ provider }))).toThrow(
        /does not run with the provider/,
      );
    }
  });

  it('writes jetty.mcp_servers as [mcp_servers.<name>] tables: stdio and streamable HTTP', () => {
    const config = configOf(
      spec({
        mcpServers: [
          {
            name: 'echo',
            transport: 'stdio',
            command: 'node',
            args: ['/opt/mcp/echo.js', '--say "hi"'],
            env: { ECHO_PREFIX: 'echo: ', 'ODD KEY': 'v' },
          },
          {
            name: 'docs',
            transport: 'http',
            url: 'http://127.0.0.1:9000/mcp',
            headers: { 'X-Api-Key': 'k' },
          },
          { name: 'bare', transport: 'sse', url: 'http://127.0.0.1:9001/sse', headers: {} },
        ],
      }),
    );
    expect(
      config.endsWith(
        [
          'exclude = ["JETTY_GATEWAY_TOKEN"]',
          '',
          '[mcp_servers.echo]',
          'command = "node"',
          'args = ["/opt/mcp/echo.js", "--say \\"hi\\""]',
          'env = { "ECHO_PREFIX" = "echo: ", "ODD KEY" = "v" }',
          '',
          '[mcp_servers.docs]',
          'url = "http://127.0.0.1:9000/mcp"',
          'http_headers = { "X-Api-Key" = "k" }',
          '',
          '[mcp_servers.bare]',
          'url = "http://127.0.0.1:9001/sse"',
          'http_headers = {}',
          '',
        ].join('\n'),
      ),
    ).toBe(true);
  });
});

describe('codex parser on recorded runs', () => {
  it('a shell run: the agent’s words, the call, its result, usage, and the final text', () => {
    const { events, finishEvents, outcome } = replayCodex(fixture('success-shell.jsonl', 0));
    expect(events).toEqual([
      { type: 'agent.message', data: { text: 'Writing hello.txt now.' } },
      {
        type: 'tool.call',
        data: {
          call_id: 'item_1',
          name: 'shell',
          input: { command: "/bin/bash -lc 'printf hi > hello.txt && ls'" },
        },
      },
      { type: 'tool.result', data: { call_id: 'item_1', output: 'hello.txt\n', is_error: false } },
      { type: 'agent.message', data: { text: 'wrote hello.txt' } },
      {
        type: 'usage',
        data: {
          input_tokens: 13971,
          output_tokens: 19,
          cache_read_tokens: 0,
          cache_write_tokens: 0,
          source: 'agent',
        },
      },
    ]);
    expect(finishEvents).toEqual([]);
    expect(outcome).toEqual({ status: 'completed', finalText: 'wrote hello.txt' });
  });

  it('two commands across three model turns: each call answered in order, one usage for the turn', () => {
    const { events, outcome } = replayCodex(fixture('multi-step.jsonl', 0));
    expect(events.map((e) => e.type)).toEqual([
      'agent.message',
      'tool.call',
      'tool.result',
      'agent.message',
      'tool.call',
      'tool.result',
      'agent.message',
      'usage',
    ]);
    expect(ofType(events, 'tool.call').map((c) => c.data.call_id)).toEqual(['item_1', 'item_3']);
    expect(ofType(events, 'tool.result').map((r) => r.data.output)).toEqual(['.\n..\nresults\n', 'report\n']);
    expect(outcome).toEqual({ status: 'completed', finalText: 'Wrote results/report.md.' });
  });

  it('a failing command is an error result, and the run still completes', () => {
    const { events, outcome } = replayCodex(fixture('tool-error.jsonl', 0));
    expect(ofType(events, 'tool.result')).toEqual([
      {
        type: 'tool.result',
        data: {
          call_id: 'item_0',
          output: 'cat: /nonexistent/input.csv: No such file or directory\n',
          is_error: true,
        },
      },
    ]);
    expect(outcome.status).toBe('completed');
  });

  it("a 129 KB output line is read whole, its result whole (the run's event sink cuts it)", () => {
    const { events } = replayCodex(fixture('long-line-seq.jsonl', 0));
    const [result] = ofType(events, 'tool.result');
    expect(result?.data.truncated).toBeUndefined();
    expect(Buffer.byteLength(result?.data.output ?? '')).toBeGreaterThan(64 * 1024);
    expect(result?.data.output.startsWith('1\n2\n3\n')).toBe(true);
    expect(ofType(events, 'log')).toEqual([]);
  });

  it('reasoning, a hosted web search and an apply_patch file change; cached tokens counted apart', () => {
    const { events, outcome } = replayCodex(fixture('patch-reasoning-search.jsonl', 0));
    expect(events).toEqual([
      { type: 'agent.reasoning', data: { text: '**Planning** I will add hello.txt with a patch.' } },
      {
        type: 'tool.call',
        data: { call_id: 'ws_p0', name: 'web_search', input: { query: 'codex apply_patch format' } },
      },
      {
        type: 'tool.result',
        data: {
          call_id: 'ws_p0',
          output: '{"type":"search","query":"codex apply_patch format"}',
          is_error: false,
        },
      },
      {
        type: 'tool.call',
        data: {
          call_id: 'item_2',
          name: 'apply_patch',
          input: { changes: [{ path: '/app/hello.txt', kind: 'add' }] },
        },
      },
      { type: 'tool.result', data: { call_id: 'item_2', output: 'add /app/hello.txt', is_error: false } },
      { type: 'agent.message', data: { text: 'Added hello.txt with a patch.' } },
      {
        type: 'usage',
        data: {
          input_tokens: 800,
          output_tokens: 120,
          cache_read_tokens: 1600,
          cache_write_tokens: 0,
          source: 'agent',
        },
      },
    ]);
    expect(outcome).toEqual({ status: 'completed', finalText: 'Added hello.txt with a patch.' });
  });

  it('an MCP tool call: named mcp__<server>__<tool>, with its arguments and text result', () => {
    const { events } = replayCodex(fixture('mcp-echo.jsonl', 0));
    expect(events.slice(0, 2)).toEqual([
      {
        type: 'tool.call',
        data: { call_id: 'item_0', name: 'mcp__echo__echo', input: { text: 'hello from mcp' } },
      },
      { type: 'tool.result', data: { call_id: 'item_0', output: 'echo: hello from mcp', is_error: false } },
    ]);
  });

  it('an unknown model slug: the fallback-metadata warning is a log line, not a failure', () => {
    const { events, outcome } = replayCodex(fixture('unknown-model.jsonl', 0));
    expect(events[0]).toEqual({
      type: 'log',
      data: {
        stream: 'system',
        line: 'codex warning: Model metadata for `totally-unknown-model-x` not found. Defaulting to fallback metadata; this can degrade performance and cause issues.',
      },
    });
    expect(outcome).toEqual({ status: 'completed', finalText: 'wrote hello.txt' });
  });
});

describe('codex parser outcomes on provider errors', () => {
  it.each([
    ['provider-401.jsonl', 'provider_auth_error', 'HTTP 401'],
    ['provider-403.jsonl', 'provider_auth_error', 'HTTP 403'],
    ['provider-404.jsonl', 'provider_model_not_found', 'HTTP 404'],
    ['provider-429.jsonl', 'provider_rate_limited', 'HTTP 429'],
    ['provider-500.jsonl', 'provider_error', 'HTTP 500'],
    ['provider-503.jsonl', 'provider_error', 'HTTP 503'],
    ['provider-500-after-tool.jsonl', 'provider_error', 'HTTP 500'],
  ])('%s fails with %s naming %s', (file, code, status) => {
    const { events, outcome } = replayCodex(fixture(file, 1));
    expect(failure(outcome)?.code).toBe(code);
    expect(failure(outcome)?.message).toContain(status);
    // The retry notices are shown, never taken for the agent's words.
    expect(ofType(events, 'agent.message')).toEqual([]);
    for (const log of ofType(events, 'log')) expect(log.data.line.startsWith('codex: ')).toBe(true);
  });

  it('a 401 names the cause and keeps codex’s words', () => {
    const error = failure(replayCodex(fixture('provider-401.jsonl', 1)).outcome);
    expect(error?.message).toMatch(
      /^The model provider rejected the request \(HTTP 401\): unexpected status 401 Unauthorized: Simulated provider/,
    );
  });

  it('tool activity before a provider failure is kept', () => {
    const { events } = replayCodex(fixture('provider-500-after-tool.jsonl', 1));
    expect(ofType(events, 'tool.result')).toHaveLength(1);
  });

  it('an unreachable gateway is provider_unreachable', () => {
    const error = failure(replayCodex(fixture('provider-unreachable.jsonl', 1)).outcome);
    expect(error).toEqual({
      code: 'provider_unreachable',
      message: 'The model provider could not be reached: Connection failed: error sending request',
    });
  });

  it('a turn.failed decides, even with exit code 0', () => {
    expect(failure(replayCodex(fixture('provider-401.jsonl', 0)).outcome)?.code).toBe('provider_auth_error');
  });
});

describe('codex parser: crashes and odd endings', () => {
  it('killed mid-run: agent_crashed naming the exit code, with the words so far', () => {
    const { events, outcome } = replayCodex(fixture('crash-killed.jsonl', 137));
    expect(ofType(events, 'tool.result')).toHaveLength(1);
    expect(outcome).toEqual({
      status: 'failed',
      finalText: 'Starting.',
      error: { code: 'agent_crashed', message: 'Codex exited with code 137 before its turn ended' },
    });
    expect(failure(replayCodex(fixture('crash-killed.jsonl', null), null).outcome)?.message).toBe(
      'Codex was killed before its turn ended',
    );
  });

  it('a crash names the last stderr line', () => {
    const parser = new CodexParser();
    expect(parser.pushStderr('Error: unknown configuration field `modle` in config.toml')).toEqual([
      {
        type: 'log',
        data: { stream: 'stderr', line: 'Error: unknown configuration field `modle` in config.toml' },
      },
    ]);
    expect(parser.pushStderr('   ')).toEqual([]);
    expect(failure(parser.finish(1).outcome)).toEqual({
      code: 'agent_crashed',
      message:
        'Codex exited with code 1 before its turn ended: Error: unknown configuration field `modle` in config.toml',
    });
  });

  it('a non-zero exit after a completed turn keeps the result, and says so', () => {
    const { finishEvents, outcome } = replayCodex(fixture('success-shell.jsonl', 2));
    expect(outcome).toEqual({ status: 'completed', finalText: 'wrote hello.txt' });
    expect(finishEvents).toEqual([
      {
        type: 'log',
        data: {
          stream: 'system',
          line: 'codex exited with code 2 after its turn completed; keeping the result',
        },
      },
    ]);
  });

  it('a fatal error after the turn completed fails the run; a retry notice does not', () => {
    const lines = fixture('success-shell.jsonl', 0).lines;
    const withNotice = [
      ...lines.slice(0, 2),
      '{"type":"error","message":"Reconnecting... 1/2 (stream closed)"}',
      ...lines.slice(2),
    ];
    expect(replay(codexAdapter, { name: 'notice', lines: withNotice, exitCode: 0 }).outcome.status).toBe(
      'completed',
    );
    const fatalAfter = [...lines, '{"type":"error","message":"unexpected status 502 Bad Gateway: upstream"}'];
    expect(failure(replay(codexAdapter, { name: 'fatal', lines: fatalAfter, exitCode: 1 }).outcome)).toEqual({
      code: 'provider_error',
      message: 'The model provider failed (HTTP 502): unexpected status 502 Bad Gateway: upstream',
    });
  });

  it('emits a tool.call once, and both call and result for an item that only completes', () => {
    const parser = new CodexParser();
    const started =
      '{"type":"item.started","item":{"id":"item_7","type":"command_execution","command":"ls","aggregated_output":"","exit_code":null,"status":"in_progress"}}';
    const updated = started.replace('item.started', 'item.updated');
    const events: AgentEvent[] = [started, updated].flatMap((l) => parser.push(l));
    expect(ofType(events, 'tool.call')).toHaveLength(1);
    const only = parser.push(
      '{"type":"item.completed","item":{"id":"item_8","type":"file_change","changes":[{"path":"/app/a.txt","kind":"update"}],"status":"failed"}}',
    );
    expect(only).toEqual([
      {
        type: 'tool.call',
        data: {
          call_id: 'item_8',
          name: 'apply_patch',
          input: { changes: [{ path: '/app/a.txt', kind: 'update' }] },
        },
      },
      { type: 'tool.result', data: { call_id: 'item_8', output: 'update /app/a.txt', is_error: true } },
    ]);
  });

  it('shows a to-do list as reasoning once per change', () => {
    const parser = new CodexParser();
    const list = (done: boolean) =>
      `{"type":"item.updated","item":{"id":"item_1","type":"todo_list","items":[{"text":"read input","completed":${done}},{"text":"write report","completed":false}]}}`;
    expect(parser.push(list(false))).toEqual([
      { type: 'agent.reasoning', data: { text: 'Plan:\n[ ] read input\n[ ] write report' } },
    ]);
    expect(parser.push(list(false))).toEqual([]);
    expect(parser.push(list(true))).toEqual([
      { type: 'agent.reasoning', data: { text: 'Plan:\n[x] read input\n[ ] write report' } },
    ]);
  });

  it('keeps the thread id', () => {
    const parser = new CodexParser();
    parser.push(fixture('success-shell.jsonl', 0).lines[0]!);
    expect(parser.session).toBe('01a211f3-2742-7d80-908a-657695f73e68');
  });
});

describe('codex error classification', () => {
  it.each([
    ['Quota exceeded. Check your plan and billing details.', 'provider_rate_limited', /HTTP 429/],
    [
      'The model `gpt-x` does not exist or you do not have access to it.',
      'provider_model_not_found',
      /HTTP 404/,
    ],
    [
      'unexpected status 404 Not Found: No endpoints found for openai/gpt-x., url: http://127.0.0.1:4100/v1/responses',
      'provider_model_not_found',
      /HTTP 404/,
    ],
    [
      'unexpected status 413 Payload Too Large: request too big',
      'agent_error',
      /refused the request \(HTTP 413\)/,
    ],
    [
      'stream disconnected before completion: The model failed.',
      'provider_error',
      /answer broke off: stream disconnected/,
    ],
    [
      '{"error":{"message":"Invalid value for reasoning.","type":"invalid_request_error","param":"reasoning","code":null}}',
      'agent_error',
      /^The model provider refused the request: Invalid value for reasoning\.$/,
    ],
    [
      "Codex ran out of room in the model's context window.",
      'agent_error',
      /^Codex reported an error: Codex ran out of room/,
    ],
  ])('%s → %s', (message, code, text) => {
    const error = classifyError(message);
    expect(error.code).toBe(code);
    expect(error.message).toMatch(text);
  });
});
