import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  HERMES_CONFIG_PATH,
  HERMES_PLUGIN_DIR,
  HERMES_PROMPT_PATH,
  HermesParser,
  hermesAdapter,
  PLUGIN_MANIFEST,
  PLUGIN_SOURCE,
} from '../../src/runtimes/hermes.js';
import { getRuntime } from '../../src/runtimes/registry.js';
import type { InvocationSpec, ProviderName } from '../../src/runtimes/types.js';
import { loadRecording, ofType, type RecordedRun, replay } from '../support/runtime-conformance.js';

const fixture = (name: string, exitCode: number | null): RecordedRun =>
  loadRecording(new URL(`../fixtures/hermes/${name}`, import.meta.url), exitCode);

const GATEWAY = 'http://127.0.0.1:4100';
const TOKEN = 'jrt_run_123_secret';

const spec = (over: Partial<InvocationSpec> = {}): InvocationSpec => ({
  runId: 'run_123',
  prompt: '# Weekly report\n\nWrite /app/results/report.md.\n\nDeadline: 20 minutes.',
  model: 'claude-sonnet-4-6',
  provider: 'anthropic',
  gatewayUrl: GATEWAY,
  token: TOKEN,
  deadlineSec: 1200,
  workdir: '/app',
  resultsDir: '/app/results',
  ...over,
});

function fileOf(inv: ReturnType<typeof hermesAdapter.buildInvocation>, p: string): string {
  const file = inv.files.find((f) => f.path === p);
  expect(file, p).toBeDefined();
  return String(file?.content);
}

/** config.yaml is written as JSON (which YAML reads), so the test can read it back exactly. */
function configOf(provider: ProviderName, model = 'some-model') {
  const inv = hermesAdapter.buildInvocation(spec({ provider, model }));
  return { inv, config: JSON.parse(fileOf(inv, HERMES_CONFIG_PATH)) as Record<string, any> };
}

const failure = (outcome: ReturnType<typeof replay>['outcome']) =>
  outcome.status === 'failed' ? outcome.error : undefined;

describe('hermes adapter', () => {
  it('describes the pinned CLI, its image, providers and capabilities', () => {
    expect(hermesAdapter).toMatchObject({
      name: 'hermes',
      cliPackage: 'hermes-agent',
      cliVersion: '0.19.0',
      image: 'jetty/agent-hermes:0.19.0',
      defaultModel: 'claude-sonnet-4-6',
      capabilities: {
        token_usage: true,
        cost: false,
        streaming: 'message',
        mcp_servers: true,
        resume: false,
      },
    });
    expect([...hermesAdapter.providers].sort()).toEqual([
      'anthropic',
      'bedrock',
      'google',
      'openai',
      'openrouter',
      'simulated',
    ]);
    expect(getRuntime('hermes')).toBe(hermesAdapter);
  });
});

describe('hermes buildInvocation', () => {
  it('runs Hermes one-shot through its own entry point, with the prompt from stdin', () => {
    const s = spec({ prompt: `${'A very long runbook. '.repeat(10_000)}END` });
    const inv = hermesAdapter.buildInvocation(s);
    expect(inv.argv.slice(0, 2)).toEqual(['/opt/jetty/hermes/venv/bin/python', '-c']);
    expect(inv.argv[2]).toContain('from hermes_cli.main import main');
    expect(inv.argv[2]).toContain("'--oneshot=' + sys.stdin.buffer.read()");
    expect(inv.argv).toHaveLength(3);
    expect(inv.stdinFile).toBe(HERMES_PROMPT_PATH);
    expect(fileOf(inv, HERMES_PROMPT_PATH)).toBe(s.prompt);
    expect(inv.argv.some((a) => a.includes('END'))).toBe(false);
  });

  it('installs the event plugin and enables it, with bounded retries', () => {
    const { inv, config } = configOf('simulated');
    expect(fileOf(inv, `${HERMES_PLUGIN_DIR}/plugin.yaml`)).toBe(PLUGIN_MANIFEST);
    expect(fileOf(inv, `${HERMES_PLUGIN_DIR}/__init__.py`)).toBe(PLUGIN_SOURCE);
    expect(config.plugins).toEqual({ enabled: ['jetty_events'] });
    expect(config.agent).toEqual({ api_max_retries: 2 });
    expect(inv.env.HERMES_DISABLE_LAZY_INSTALLS).toBe('1');
    expect(inv.env.HOME).toBe('/home/agent');
  });

  const routes: Array<[ProviderName, string, string]> = [
    ['simulated', GATEWAY, 'anthropic_messages'],
    ['anthropic', GATEWAY, 'anthropic_messages'],
    ['openai', `${GATEWAY}/v1`, 'codex_responses'],
    ['openrouter', `${GATEWAY}/v1`, 'chat_completions'],
    ['google', `${GATEWAY}/v1beta/openai`, 'chat_completions'],
  ];
  for (const [provider, baseUrl, transport] of routes) {
    it(`${provider}: one custom provider pointing at the gateway, the run token from the env`, () => {
      const { inv, config } = configOf(provider, 'vendor/model-x');
      const name = `jetty_${provider}`;
      expect(config.model).toEqual({ default: 'vendor/model-x', provider: name });
      expect(config.providers).toEqual({
        [name]: { name, base_url: baseUrl, key_env: 'JETTY_RUN_TOKEN', transport },
      });
      expect(inv.env.JETTY_RUN_TOKEN).toBe(TOKEN);
    });
  }

  it('bedrock: the built-in provider with the token as bearer and the gateway as endpoint', () => {
    const { inv, config } = configOf('bedrock', 'us.anthropic.claude-sonnet-4-6');
    // A stated context window: Hermes would otherwise probe Bedrock with 19 MB of requests.
    expect(config.model).toEqual({
      default: 'us.anthropic.claude-sonnet-4-6',
      provider: 'bedrock',
      context_length: 200_000,
    });
    expect(configOf('bedrock', 'deepseek.v3.2').config.model.context_length).toBe(128_000);
    expect(config.providers).toBeUndefined();
    expect(inv.env).toMatchObject({
      AWS_BEARER_TOKEN_BEDROCK: TOKEN,
      AWS_ENDPOINT_URL_BEDROCK_RUNTIME: GATEWAY,
      AWS_EC2_METADATA_DISABLED: 'true',
    });
  });

  it('carries no secret but the run token, for every provider', () => {
    for (const provider of hermesAdapter.providers) {
      const inv = hermesAdapter.buildInvocation(spec({ provider }));
      const values = Object.entries(inv.env);
      for (const [key, value] of values) {
        if (value === TOKEN) continue;
        expect(key, `${provider}: ${key}`).not.toMatch(/KEY|TOKEN|SECRET|PASSWORD/);
      }
      expect(values.filter(([, v]) => v === TOKEN)).toHaveLength(1);
      // The config names the variable; the token itself is not written to disk.
      expect(fileOf(inv, HERMES_CONFIG_PATH)).not.toContain(TOKEN);
    }
  });

  it('writes jetty.mcp_servers into config.yaml in Hermes’ form, and nothing when there are none', () => {
    const inv = hermesAdapter.buildInvocation(
      spec({
        mcpServers: [
          { name: 'echo', transport: 'stdio', command: 'node', args: ['server.js'], env: { A: '1' } },
          { name: 'docs', transport: 'http', url: 'https://mcp.example.com/mcp', headers: { X: 'y' } },
          { name: 'feed', transport: 'sse', url: 'https://mcp.example.com/sse', headers: {} },
        ],
      }),
    );
    expect(JSON.parse(fileOf(inv, HERMES_CONFIG_PATH)).mcp_servers).toEqual({
      echo: { command: 'node', args: ['server.js'], env: { A: '1' } },
      docs: { url: 'https://mcp.example.com/mcp', headers: { X: 'y' } },
      feed: { url: 'https://mcp.example.com/sse', headers: {}, transport: 'sse' },
    });
    expect(configOf('anthropic').config).not.toHaveProperty('mcp_servers');
  });

  it('uses the default model when the run names none', () => {
    expect(configOf('anthropic', '').config.model.default).toBe('claude-sonnet-4-6');
  });

  it('refuses a provider it cannot use', () => {
    expect(() => hermesAdapter.buildInvocation(spec({ provider: 'vertex' }))).toThrow(/vertex/);
  });

  const python = (() => {
    try {
      execFileSync('python3', ['--version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  it.skipIf(!python)('the plugin is valid Python and forwards the hooks its manifest lists', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hermes-plugin-'));
    try {
      writeFileSync(path.join(dir, 'jetty_events.py'), PLUGIN_SOURCE);
      // Register against a stand-in context, fire two hooks, and read what reaches stdout.
      const out = execFileSync(
        'python3',
        [
          '-c',
          [
            'import sys, types; sys.path.insert(0, sys.argv[1]); import jetty_events as p',
            'hooks = {}',
            'p.register(types.SimpleNamespace(register_hook=lambda n, cb: hooks.setdefault(n, cb)))',
            'print(",".join(sorted(hooks)), flush=True)',
            'call = types.SimpleNamespace(id="c1", function=types.SimpleNamespace(name="terminal", arguments="{}"))',
            'msg = types.SimpleNamespace(content="hi", reasoning=None, tool_calls=[call])',
            'hooks["post_api_request"](assistant_message=msg, conversation_history=[1], usage={"input_tokens": 3})',
            'hooks["on_session_end"](completed=True, interrupted=False)',
          ].join('\n'),
          dir,
        ],
        { encoding: 'utf8' },
      );
      const [hooks, ...lines] = out.trim().split('\n');
      const manifestHooks = PLUGIN_MANIFEST.split('\n')
        .filter((l) => l.startsWith('  - '))
        .map((l) => l.slice(4));
      expect(hooks?.split(',')).toEqual([...manifestHooks].sort());
      const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(events[0]).toMatchObject({
        hermes_event: 'post_api_request',
        assistant_message: { content: 'hi', tool_calls: [{ id: 'c1', name: 'terminal', arguments: '{}' }] },
        usage: { input_tokens: 3 },
      });
      expect(events[0]).not.toHaveProperty('conversation_history');
      expect(events[1]).toMatchObject({ hermes_event: 'on_session_end', completed: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('hermes parser on recorded runs', () => {
  it('success: the agent’s words, the terminal call and its result, usage per request', () => {
    const { events, outcome } = replay(hermesAdapter, fixture('success-terminal.jsonl', 0));
    expect(outcome).toEqual({ status: 'completed', finalText: 'wrote hello.txt' });
    expect(events.map((e) => e.type)).toEqual([
      'agent.message',
      'tool.call',
      'usage',
      'tool.result',
      'agent.message',
      'usage',
    ]);
    expect(ofType(events, 'agent.message').map((e) => e.data.text)).toEqual([
      'Writing hello.txt now.',
      'wrote hello.txt',
    ]);
    const [call] = ofType(events, 'tool.call');
    expect(call?.data).toEqual({
      call_id: 'toolu_sim_0',
      name: 'terminal',
      input: { command: 'mkdir -p /app/results && printf hi > /app/results/hello.txt' },
    });
    const [result] = ofType(events, 'tool.result');
    expect(result?.data).toMatchObject({ call_id: 'toolu_sim_0', is_error: false });
    expect(JSON.parse(result?.data.output ?? '')).toMatchObject({ exit_code: 0 });
    for (const u of ofType(events, 'usage')) {
      expect(u.data).toMatchObject({ source: 'agent', model: 'claude-sonnet-4-6', cache_read_tokens: 0 });
      expect(u.data.input_tokens).toBeGreaterThan(0);
      expect(u.data.output_tokens).toBeGreaterThan(0);
      expect(u.data.cost_usd).toBeUndefined();
    }
  });

  it('a text-only answer completes without tool events', () => {
    const { events, outcome } = replay(hermesAdapter, fixture('text-only.jsonl', 0));
    expect(outcome).toEqual({ status: 'completed', finalText: 'Nothing to run; the answer is 42.' });
    expect(ofType(events, 'tool.call')).toEqual([]);
  });

  it('a shell command that exits non-zero is a failed tool call, and the run still completes', () => {
    const { events, outcome } = replay(hermesAdapter, fixture('tool-error.jsonl', 0));
    const [result] = ofType(events, 'tool.result');
    expect(result?.data.is_error).toBe(true);
    expect(result?.data.output).toContain('No such file or directory');
    expect(outcome.status).toBe('completed');
  });

  it("long tool output is parsed whole and kept whole (the run's event sink cuts it)", () => {
    const { events, outcome } = replay(hermesAdapter, fixture('long-line-terminal.jsonl', 0));
    const [result] = ofType(events, 'tool.result');
    expect(result?.data.truncated).toBeUndefined();
    expect(Buffer.byteLength(result?.data.output ?? '')).toBeGreaterThan(64 * 1024);
    expect(result?.data.output.startsWith('{"output": "ééé')).toBe(true);
    expect(outcome.status).toBe('completed');
  });

  const providerCases: Array<[string, number, string, number]> = [
    ['provider-401.jsonl', 401, 'provider_auth_error', 1],
    ['provider-404.jsonl', 404, 'provider_model_not_found', 2],
    ['provider-429.jsonl', 429, 'provider_rate_limited', 2],
    ['provider-500.jsonl', 500, 'provider_error', 2],
  ];
  for (const [file, status, code, attempts] of providerCases) {
    it(`HTTP ${status} fails as ${code} although Hermes exits 0`, () => {
      const { events, outcome } = replay(hermesAdapter, fixture(file, 0));
      expect(failure(outcome)?.code).toBe(code);
      expect(failure(outcome)?.message).toContain(`HTTP ${status}`);
      expect(failure(outcome)?.message).toContain('scripted to fail');
      const logs = ofType(events, 'log').map((e) => e.data.line);
      expect(logs).toHaveLength(attempts);
      expect(logs[0]).toContain(`model request failed (HTTP ${status}`);
    });
  }

  it('a Bedrock error without a status is named by its AWS exception', () => {
    const parser = new HermesParser();
    parser.push(
      '{"hermes_event": "api_request_error", "status_code": null, "reason": "unknown", "error": {"type": "ClientError", "message": "An error occurred (AccessDeniedException) when calling the ConverseStream operation: denied"}}',
    );
    expect(failure(parser.finish(0).outcome)).toEqual({
      code: 'provider_auth_error',
      message:
        'The model provider rejected the request (HTTP 403, from the AWS error name): An error occurred (AccessDeniedException) when calling the ConverseStream operation: denied',
    });
  });

  it('an unreachable gateway fails as provider_unreachable', () => {
    const { outcome } = replay(hermesAdapter, fixture('provider-unreachable.jsonl', 0));
    expect(failure(outcome)?.code).toBe('provider_unreachable');
    expect(failure(outcome)?.message).toContain('Connection error');
  });

  it('a run killed mid-turn is agent_crashed, naming the exit code or the kill', () => {
    const run = fixture('crash-killed.jsonl', 137);
    const recorded = replay(hermesAdapter, run);
    expect(failure(recorded.outcome)?.code).toBe('agent_crashed');
    expect(failure(recorded.outcome)?.message).toContain('exited with code 137');
    expect(ofType(recorded.events, 'tool.result')).toHaveLength(1);
    const killed = replay(hermesAdapter, run, null);
    expect(failure(killed.outcome)?.message).toContain('was killed');
  });
});

describe('hermes parser edge cases', () => {
  const success = fixture('success-terminal.jsonl', 0);

  it('keeps a finished answer when the exit code is not 0, and says so', () => {
    const { finishEvents, outcome } = replay(hermesAdapter, success, 1);
    expect(outcome.status).toBe('completed');
    expect(finishEvents[0]?.data).toMatchObject({ line: expect.stringContaining('exited with code 1') });
  });

  it('a run that printed only plain text means the event plugin did not load', () => {
    const parser = new HermesParser();
    expect(parser.push('The answer is 42.')).toEqual([]);
    const { outcome } = parser.finish(0);
    expect(failure(outcome)?.code).toBe('agent_error');
    expect(failure(outcome)?.message).toContain('jetty_events plugin did not load');
  });

  it('names the last stderr line when the CLI dies early', () => {
    const parser = new HermesParser();
    expect(parser.pushStderr('hermes -z: agent failed: No LLM provider configured')).toHaveLength(1);
    const { outcome } = parser.finish(1);
    expect(failure(outcome)).toEqual({
      code: 'agent_crashed',
      message:
        'Hermes exited with code 1 before finishing its turn: hermes -z: agent failed: No LLM provider configured',
    });
  });

  it('a turn that ends unfinished is an agent error', () => {
    const parser = new HermesParser();
    parser.push('{"hermes_event": "on_session_start", "session_id": "s1", "model": "m"}');
    parser.push('{"hermes_event": "on_session_end", "completed": false, "interrupted": false}');
    parser.push('Reached the iteration limit.');
    expect(parser.session).toBe('s1');
    expect(failure(parser.finish(0).outcome)).toEqual({
      code: 'agent_error',
      message: 'Hermes ended its turn without an answer: Reached the iteration limit.',
    });
  });

  it('a request that failed and then succeeded on retry is not a failure', () => {
    const lines = success.lines.filter((l) => l.startsWith('{'));
    const error =
      '{"hermes_event": "api_request_error", "status_code": 500, "retry_count": 0, "max_retries": 2, "retryable": true, "reason": "server_error", "error": {"type": "InternalServerError", "message": "boom"}}';
    const parser = new HermesParser();
    const events = [error, ...lines].flatMap((l) => parser.push(l));
    expect(ofType(events, 'log')[0]?.data.line).toContain('attempt 1/2; retrying: boom');
    expect(parser.finish(0).outcome.status).toBe('completed');
  });

  it('announces a tool call at pre_tool_call when no response showed it', () => {
    const parser = new HermesParser();
    const pre = parser.push(
      '{"hermes_event": "pre_tool_call", "tool_name": "read_file", "args": {"path": "a"}, "tool_call_id": "c9"}',
    );
    const post = parser.push(
      '{"hermes_event": "post_tool_call", "tool_name": "read_file", "result": "x", "tool_call_id": "c9", "status": "ok"}',
    );
    expect(pre).toEqual([
      { type: 'tool.call', data: { call_id: 'c9', name: 'read_file', input: { path: 'a' } } },
    ]);
    expect(post).toEqual([{ type: 'tool.result', data: { call_id: 'c9', output: 'x', is_error: false } }]);
  });
});
