import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { AgentEvent } from '../../src/events/types.js';
import {
  OPENCODE_PROMPT_PATH,
  OpencodeParser,
  opencodeAdapter,
  opencodeConfig,
} from '../../src/runtimes/opencode.js';
import { getRuntime, listRuntimes } from '../../src/runtimes/registry.js';
import type { InvocationSpec, ProviderName } from '../../src/runtimes/types.js';
import { loadRecording, ofType, type RecordedRun, replay } from '../support/runtime-conformance.js';

const FIXTURES = new URL('../fixtures/opencode/', import.meta.url);
const fixture = (name: string, exitCode: number | null): RecordedRun =>
  loadRecording(new URL(name, FIXTURES), exitCode);
const stderrOf = (name: string): string[] =>
  readFileSync(new URL(name, FIXTURES), 'utf8')
    .split('\n')
    .filter((l) => l !== '');

const TOKEN = 'jrt_run_123_secret';

const spec = (over: Partial<InvocationSpec> = {}): InvocationSpec => ({
  runId: 'run_123',
  prompt: '# Weekly report\n\nWrite /app/results/report.md.\n\nDeadline: 20 minutes.',
  model: 'anthropic/claude-sonnet-4.6',
  provider: 'openrouter',
  gatewayUrl: 'http://127.0.0.1:4100',
  token: TOKEN,
  deadlineSec: 1200,
  workdir: '/app',
  resultsDir: '/app/results',
  ...over,
});

type Json = Record<string, any>;
const configOf = (s: InvocationSpec): Json =>
  JSON.parse(opencodeAdapter.buildInvocation(s).env.OPENCODE_CONFIG_CONTENT ?? '{}') as Json;

const replayOpencode = (run: RecordedRun, exitCode = run.exitCode) => replay(opencodeAdapter, run, exitCode);
const failure = (outcome: ReturnType<typeof replayOpencode>['outcome']) =>
  outcome.status === 'failed' ? outcome.error : undefined;

describe('opencode adapter', () => {
  it('describes the pinned CLI, its image, providers and capabilities', () => {
    expect(opencodeAdapter).toMatchObject({
      name: 'opencode',
      cliPackage: 'opencode-ai',
      cliVersion: '1.18.33',
      image: 'jetty/agent-opencode:1.18.33',
      defaultModel: 'claude-sonnet-4-6',
      capabilities: { token_usage: true, cost: true, streaming: 'message', mcp_servers: true, resume: false },
    });
    expect([...opencodeAdapter.providers].sort()).toEqual([
      'anthropic',
      'google',
      'openai',
      'openrouter',
      'simulated',
    ]);
  });

  it('is in the registry', () => {
    expect(getRuntime('opencode')).toBe(opencodeAdapter);
    expect(listRuntimes()).toContain(opencodeAdapter);
  });
});

describe('opencode buildInvocation', () => {
  it('runs `opencode run` with the JSON event stream, auto-approval, reasoning, a fixed title and its log on stderr', () => {
    expect(opencodeAdapter.buildInvocation(spec()).argv).toEqual([
      'opencode',
      'run',
      '--format',
      'json',
      '--auto',
      '--thinking',
      '--title=Jetty run run_123',
      '--print-logs',
      '--log-level=WARN',
    ]);
  });

  it('feeds the prompt on stdin from a file, never in argv', () => {
    const s = spec({ prompt: `${'A very long runbook. '.repeat(10_000)}END` });
    const inv = opencodeAdapter.buildInvocation(s);
    expect(inv.stdinFile).toBe(OPENCODE_PROMPT_PATH);
    expect(inv.files).toEqual([{ path: '/home/agent/.jetty/prompt.md', content: s.prompt, mode: 0o644 }]);
    expect(inv.argv.some((a) => a.includes('END'))).toBe(false);
  });

  it('keeps the model out of argv: a model that looks like a flag stays a config value', () => {
    const inv = opencodeAdapter.buildInvocation(spec({ model: '--print-logs' }));
    expect(inv.argv.filter((a) => a === '--print-logs')).toHaveLength(1);
    expect(configOf(spec({ model: '--print-logs' })).model).toBe('openrouter/--print-logs');
  });

  it('sets only the config, the switches that keep opencode offline, and HOME', () => {
    const env = opencodeAdapter.buildInvocation(spec()).env;
    expect(Object.keys(env).sort()).toEqual([
      'HOME',
      'OPENCODE_CONFIG_CONTENT',
      'OPENCODE_DISABLE_AUTOUPDATE',
      'OPENCODE_DISABLE_LSP_DOWNLOAD',
      'OPENCODE_DISABLE_MODELS_FETCH',
      'OPENCODE_DISABLE_SHARE',
    ]);
    expect(env).toMatchObject({
      HOME: '/home/agent',
      OPENCODE_DISABLE_AUTOUPDATE: '1',
      OPENCODE_DISABLE_LSP_DOWNLOAD: '1',
      OPENCODE_DISABLE_MODELS_FETCH: '1',
      OPENCODE_DISABLE_SHARE: '1',
    });
  });

  // What was verified per provider (the image, --network none, the gateway's unix socket): the
  // path each SDK calls and the header it puts the key in. See test/fixtures/opencode/README.md.
  const cases: Array<[ProviderName, string, string, string | undefined]> = [
    ['openrouter', 'anthropic/claude-sonnet-4.6', 'http://127.0.0.1:4100/v1', undefined],
    ['anthropic', 'claude-sonnet-4-6', 'http://127.0.0.1:4100/v1', undefined],
    ['openai', 'gpt-5.5', 'http://127.0.0.1:4100/v1', undefined],
    ['google', 'gemini-2.5-pro', 'http://127.0.0.1:4100/v1beta', undefined],
    ['simulated', 'claude-sonnet-4-6', 'http://127.0.0.1:4100/v1', '@ai-sdk/openai-compatible'],
  ];
  it.each(cases)(
    '%s: one provider entry pointing at the gateway, with the run token as its only key',
    (provider, model, baseURL, npm) => {
      const s = spec({ provider, model });
      const inv = opencodeAdapter.buildInvocation(s);
      const config = configOf(s);
      expect(Object.keys(config.provider)).toEqual([provider]);
      expect(config.enabled_providers).toEqual([provider]);
      const entry = config.provider[provider] as Json;
      expect(entry.options).toEqual({ baseURL, apiKey: TOKEN });
      expect(entry.npm).toBe(npm);
      expect(Object.keys(entry.models)).toEqual([model]);
      expect(config.model).toBe(`${provider}/${model}`);
      expect(config.small_model).toBe(`${provider}/${model}`);
      expect(config).toMatchObject({
        permission: { edit: 'allow', bash: 'allow' },
        autoupdate: false,
        share: 'disabled',
      });
      expect(config.mcp).toBeUndefined();
      // The token is the one secret, and it sits in the provider's apiKey only.
      const all = JSON.stringify({ argv: inv.argv, env: inv.env, files: inv.files.map((f) => f.path) });
      expect(all.split(TOKEN)).toHaveLength(2);
      expect(all).not.toMatch(/sk-|AIza|Bearer/);
    },
  );

  it('declares limits for a model only where opencode has no catalog (simulated)', () => {
    expect(
      configOf(spec({ provider: 'anthropic', model: 'claude-sonnet-4-6' })).provider.anthropic.models,
    ).toEqual({
      'claude-sonnet-4-6': {},
    });
    expect(configOf(spec({ provider: 'simulated', model: 'x' })).provider.simulated.models).toEqual({
      x: { name: 'x', tool_call: true, limit: { context: 200_000, output: 32_000 } },
    });
  });

  it('uses the default model when none is given', () => {
    expect(configOf(spec({ provider: 'anthropic', model: '' })).model).toBe('anthropic/claude-sonnet-4-6');
  });

  it('refuses a provider it cannot run with', () => {
    expect(() => opencodeAdapter.buildInvocation(spec({ provider: 'bedrock' }))).toThrow(/bedrock/);
  });

  it('writes jetty.mcp_servers in opencode’s `mcp` form: local command arrays and remote urls', () => {
    const config = opencodeConfig(
      spec({
        mcpServers: [
          {
            name: 'files',
            transport: 'stdio',
            command: 'node',
            args: ['server.js', '--ro'],
            env: { A: '1' },
          },
          { name: 'docs', transport: 'http', url: 'https://mcp.example.test/mcp', headers: { 'x-k': 'v' } },
          { name: 'old', transport: 'sse', url: 'https://mcp.example.test/sse', headers: {} },
        ],
      }),
    );
    expect(config.mcp).toEqual({
      files: {
        type: 'local',
        command: ['node', 'server.js', '--ro'],
        environment: { A: '1' },
        enabled: true,
      },
      docs: { type: 'remote', url: 'https://mcp.example.test/mcp', headers: { 'x-k': 'v' }, enabled: true },
      old: { type: 'remote', url: 'https://mcp.example.test/sse', headers: {}, enabled: true },
    });
  });
});

describe('opencode parser on recorded runs', () => {
  it('a bash tool run: the words, the call and its result, usage per step, the final text', () => {
    const { events, finishEvents, outcome } = replayOpencode(fixture('success-bash.jsonl', 0));
    const usage = (input: number, output: number): AgentEvent => ({
      type: 'usage',
      data: {
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        source: 'agent',
      },
    });
    expect(events).toEqual([
      { type: 'agent.message', data: { text: 'Writing hello.txt now.' } },
      {
        type: 'tool.call',
        data: {
          call_id: 'call_sim_0',
          name: 'bash',
          input: {
            command: 'mkdir -p /app/results && printf hi > /app/results/hello.txt && ls /app/results',
          },
        },
      },
      { type: 'tool.result', data: { call_id: 'call_sim_0', output: 'hello.txt\n', is_error: false } },
      usage(2482, 29),
      { type: 'agent.message', data: { text: 'wrote hello.txt' } },
      usage(2570, 4),
    ]);
    expect(finishEvents).toEqual([]);
    expect(outcome).toEqual({ status: 'completed', finalText: 'wrote hello.txt' });
  });

  it('a known model of a real provider: cost per step from opencode’s catalog', () => {
    const { events, outcome } = replayOpencode(fixture('anthropic-success.jsonl', 0));
    const usage = ofType(events, 'usage');
    expect(usage.map((u) => u.data.cost_usd)).toEqual([0.007914, 0.007821]);
    expect(usage.every((u) => u.data.cost_estimated === false)).toBe(true);
    expect(outcome.status).toBe('completed');
  });

  it('a shell command that exits non-zero is a tool result with is_error', () => {
    const { events, outcome } = replayOpencode(fixture('tool-error.jsonl', 0));
    expect(ofType(events, 'tool.result').map((r) => r.data)).toEqual([
      {
        call_id: 'call_sim_0',
        output: 'cat: /app/does-not-exist.txt: No such file or directory\n',
        is_error: true,
      },
    ]);
    expect(outcome).toEqual({ status: 'completed', finalText: 'the file is missing' });
  });

  it('reasoning parts, a failed tool (status error), and reasoning tokens counted as output', () => {
    const { events, outcome } = replayOpencode(fixture('reasoning-read-error.jsonl', 0));
    expect(events.slice(0, 3)).toEqual([
      { type: 'agent.reasoning', data: { text: 'The runbook needs /app/missing.txt; read it first.' } },
      {
        type: 'tool.call',
        data: { call_id: 'call_custom_read', name: 'read', input: { filePath: '/app/missing.txt' } },
      },
      {
        type: 'tool.result',
        data: { call_id: 'call_custom_read', output: 'File not found: /app/missing.txt', is_error: true },
      },
    ]);
    expect(ofType(events, 'usage')[0]?.data).toMatchObject({ input_tokens: 1500, output_tokens: 20 });
    expect(outcome).toEqual({
      status: 'completed',
      finalText: 'The input file is missing, so there is nothing to summarise.',
    });
  });

  it('a 140 KB line (a 70,000-byte command) is one tool call, not a log line', () => {
    const { events, outcome } = replayOpencode(fixture('long-line-bash.jsonl', 0));
    expect(ofType(events, 'log')).toEqual([]);
    const [call] = ofType(events, 'tool.call');
    expect((call?.data.input as { command?: string } | undefined)?.command?.length).toBe(70_072);
    expect(ofType(events, 'tool.result')[0]?.data.output).toBe('70000\n');
    expect(outcome.status).toBe('completed');
  });

  it.each([
    ['provider-401.jsonl', 401, 'provider_auth_error'],
    ['provider-404.jsonl', 404, 'provider_model_not_found'],
    ['provider-429.jsonl', 429, 'provider_rate_limited'],
    ['provider-500.jsonl', 500, 'provider_error'],
  ])('%s: fails with the provider code and the HTTP status in the message', (file, status, code) => {
    const { events, outcome } = replayOpencode(fixture(file, 1));
    expect(failure(outcome)?.code).toBe(code);
    expect(failure(outcome)?.message).toContain(`(HTTP ${status})`);
    expect(failure(outcome)?.message).toContain(`scripted to fail with HTTP ${status}`);
    // The error line is shown to the user as it happens.
    expect(ofType(events, 'log').map((e) => e.data.line)).toEqual([
      expect.stringMatching(/^opencode APIError: /),
    ]);
  });

  it('an error line fails the run even if the exit code were 0', () => {
    expect(failure(replayOpencode(fixture('provider-401.jsonl', 1), 0).outcome)?.code).toBe(
      'provider_auth_error',
    );
  });

  it('a gateway that cannot be reached: provider_unreachable, after opencode’s own retries', () => {
    const { outcome } = replayOpencode(fixture('provider-unreachable.jsonl', 1));
    expect(failure(outcome)?.code).toBe('provider_unreachable');
    expect(failure(outcome)?.message).toContain('Cannot connect to API');
  });

  it('killed mid-run: agent_crashed, keeping the last text seen', () => {
    const killed = replayOpencode(fixture('crash-killed.jsonl', 137));
    expect(failure(killed.outcome)).toEqual({
      code: 'agent_crashed',
      message: 'opencode exited with code 137 before finishing',
    });
    expect(failure(replayOpencode(fixture('crash-killed.jsonl', null), null).outcome)?.message).toBe(
      'opencode was killed before finishing',
    );
  });

  it('exit 0 without a single model call is not a success', () => {
    const parser = opencodeAdapter.createParser();
    expect(failure(parser.finish(0).outcome)).toEqual({
      code: 'agent_crashed',
      message: 'opencode exited with code 0 without calling the model before finishing',
    });
  });
});

describe('opencode parser: stderr and odd input', () => {
  it('stderr lines become log events; the last ERROR of opencode’s log explains a crash', () => {
    const parser = new OpencodeParser();
    const lines = stderrOf('provider-401.stderr.txt');
    const events = lines.flatMap((l) => parser.pushStderr(l));
    expect(events.map((e) => e.type)).toEqual(['log', 'log']);
    const { outcome } = parser.finish(1);
    expect(failure(outcome)?.code).toBe('agent_crashed');
    expect(failure(outcome)?.message).toMatch(
      /^opencode exited with code 1 before finishing: process: Simulated provider: turn 0 is scripted to fail with HTTP 401/,
    );
  });

  it('drops the harmless plugin install failure every offline start logs', () => {
    const parser = new OpencodeParser();
    const lines = stderrOf('provider-500.stderr.txt');
    const events = lines.flatMap((l) => parser.pushStderr(l));
    expect(lines).toHaveLength(8);
    expect(events).toHaveLength(7);
    expect(events.some((e) => e.type === 'log' && e.data.line.includes('background dependency'))).toBe(false);
  });

  it("keeps a long tool output whole (the run's event sink cuts it)", () => {
    const parser = new OpencodeParser();
    const output = 'é'.repeat(64 * 1024);
    const line = JSON.stringify({
      type: 'tool_use',
      sessionID: 'ses_1',
      part: { type: 'tool', tool: 'bash', callID: 'c1', state: { status: 'completed', input: {}, output } },
    });
    const [, result] = parser.push(line);
    expect(result?.type).toBe('tool.result');
    if (result?.type !== 'tool.result') return;
    expect(result.data.truncated).toBeUndefined();
    expect(result.data.output).toBe(output);
  });

  it('logs lines it does not know, and non-JSON lines, instead of dropping them', () => {
    const parser = new OpencodeParser();
    expect(parser.push('{"type":"something_new","part":{}}')).toEqual([
      { type: 'log', data: { stream: 'system', line: '{"type":"something_new","part":{}}' } },
    ]);
    expect(parser.push('plain text')).toEqual([
      { type: 'log', data: { stream: 'system', line: 'plain text' } },
    ]);
    expect(parser.push('{"type":"step_start","sessionID":"ses_x","part":{"type":"step-start"}}')).toEqual([]);
    expect(parser.session).toBe('ses_x');
  });
});
