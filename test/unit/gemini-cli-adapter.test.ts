import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { AgentEvent } from '../../src/events/types.js';
import {
  GEMINI_PROMPT_PATH,
  GEMINI_SETTINGS_PATH,
  GeminiCliParser,
  geminiCliAdapter,
  httpStatusOf,
} from '../../src/runtimes/gemini-cli.js';
import { getRuntime, listRuntimes } from '../../src/runtimes/registry.js';
import type { InvocationSpec, ProviderName, RuntimeOutcome } from '../../src/runtimes/types.js';
import { loadRecording, ofType, type RecordedRun, replay } from '../support/runtime-conformance.js';

const dir = new URL('../fixtures/gemini-cli/', import.meta.url);
const fixture = (name: string, exitCode: number | null): RecordedRun =>
  loadRecording(new URL(`${name}.jsonl`, dir), exitCode);

/** stdout and, when it was recorded, stderr of one run, fed the way the worker feeds them. */
function replayWithStderr(name: string, exitCode: number | null, withStderr = true) {
  const parser = new GeminiCliParser();
  const events = fixture(name, exitCode).lines.flatMap((line) => parser.push(line));
  const stderrFile = new URL(`${name}.stderr.txt`, dir);
  const stderr: AgentEvent[] = [];
  if (withStderr && existsSync(stderrFile)) {
    for (const line of readFileSync(stderrFile, 'utf8').split('\n')) stderr.push(...parser.pushStderr(line));
  }
  const done = parser.finish(exitCode);
  return { events, stderr, finishEvents: done.events, outcome: done.outcome };
}

const failure = (outcome: RuntimeOutcome) => (outcome.status === 'failed' ? outcome.error : undefined);

const spec = (over: Partial<InvocationSpec> = {}): InvocationSpec => ({
  runId: 'run_123',
  prompt: '# Weekly report\n\nWrite /app/results/report.md.\n\nDeadline: 20 minutes.',
  model: 'gemini-2.5-pro',
  provider: 'google',
  gatewayUrl: 'http://127.0.0.1:4100',
  token: 'jrt_run_123_secret',
  deadlineSec: 1200,
  workdir: '/app',
  resultsDir: '/app/results',
  ...over,
});

function settingsOf(s: InvocationSpec): Record<string, any> {
  const file = geminiCliAdapter.buildInvocation(s).files.find((f) => f.path === GEMINI_SETTINGS_PATH);
  expect(file).toBeDefined();
  return JSON.parse(String(file?.content));
}

describe('gemini-cli adapter', () => {
  it('describes the pinned CLI, its image, providers and capabilities', () => {
    expect(geminiCliAdapter).toMatchObject({
      name: 'gemini-cli',
      cliPackage: '@google/gemini-cli',
      cliVersion: '0.61.0',
      image: 'jetty/agent-gemini-cli:0.61.0',
      defaultModel: 'gemini-2.5-pro',
      capabilities: { token_usage: true, cost: false, streaming: 'delta', mcp_servers: true, resume: false },
    });
    expect([...geminiCliAdapter.providers].sort()).toEqual(['google', 'simulated', 'vertex']);
  });

  it('is in the registry', () => {
    expect(getRuntime('gemini-cli')).toBe(geminiCliAdapter);
    expect(listRuntimes()).toContain(geminiCliAdapter);
  });
});

describe('gemini-cli buildInvocation', () => {
  it('runs gemini headless with stream-json, every tool approved and the model pinned', () => {
    expect(geminiCliAdapter.buildInvocation(spec()).argv).toEqual([
      'gemini',
      '--output-format',
      'stream-json',
      '--yolo',
      '--model=gemini-2.5-pro',
    ]);
  });

  it('feeds the prompt on stdin from a file, never in argv', () => {
    const s = spec({ prompt: `${'A very long runbook. '.repeat(10_000)}END` });
    const inv = geminiCliAdapter.buildInvocation(s);
    expect(inv.stdinFile).toBe(GEMINI_PROMPT_PATH);
    expect(inv.files).toContainEqual({
      path: '/home/agent/.jetty/prompt.md',
      content: s.prompt,
      mode: 0o644,
    });
    expect(inv.argv.some((a) => a.includes('END'))).toBe(false);
    // `-p` would make the CLI append its value to stdin; the whole prompt is on stdin instead.
    expect(inv.argv).not.toContain('-p');
  });

  it('google and simulated: the Gemini API at the gateway, the per-run token as the key, no other secret', () => {
    for (const provider of ['google', 'simulated'] as const) {
      const inv = geminiCliAdapter.buildInvocation(spec({ provider }));
      expect(inv.env).toEqual({
        GOOGLE_GEMINI_BASE_URL: 'http://127.0.0.1:4100',
        GEMINI_API_KEY: 'jrt_run_123_secret',
        GEMINI_CLI_NO_RELAUNCH: 'true',
        HOME: '/home/agent',
      });
      expect(settingsOf(spec({ provider })).security).toEqual({
        auth: { selectedType: 'gemini-api-key' },
        folderTrust: { enabled: false },
      });
    }
  });

  it('vertex: Vertex AI express mode at the gateway, key only, no project or location', () => {
    const inv = geminiCliAdapter.buildInvocation(spec({ provider: 'vertex' }));
    expect(inv.env).toEqual({
      GOOGLE_GENAI_USE_VERTEXAI: 'true',
      GOOGLE_VERTEX_BASE_URL: 'http://127.0.0.1:4100',
      GOOGLE_API_KEY: 'jrt_run_123_secret',
      GEMINI_CLI_NO_RELAUNCH: 'true',
      HOME: '/home/agent',
    });
    expect(settingsOf(spec({ provider: 'vertex' })).security.auth).toEqual({ selectedType: 'vertex-ai' });
  });

  it('the token is the only secret anywhere in the invocation', () => {
    for (const provider of geminiCliAdapter.providers) {
      const inv = geminiCliAdapter.buildInvocation(spec({ provider: provider as ProviderName }));
      const text = JSON.stringify(inv);
      expect(text).toContain('jrt_run_123_secret');
      expect(text).not.toMatch(/GOOGLE_CLOUD_PROJECT|GOOGLE_APPLICATION_CREDENTIALS|AIza/);
    }
  });

  it('settings: no telemetry, usage statistics or updates; bounded retries; plain shell bounded by the deadline', () => {
    const s = settingsOf(spec({ deadlineSec: 1200 }));
    expect(s).toMatchObject({
      privacy: { usageStatisticsEnabled: false },
      telemetry: { enabled: false },
      general: { enableAutoUpdate: false, enableAutoUpdateNotification: false, maxAttempts: 2 },
      ide: { enabled: false },
      tools: { useRipgrep: false, shell: { enableInteractiveShell: false, inactivityTimeout: 1200 } },
    });
    // A short deadline does not make the shell kill commands sooner than the CLI's own default.
    expect(settingsOf(spec({ deadlineSec: 60 })).tools.shell.inactivityTimeout).toBe(300);
  });

  it('MCP servers go in the settings’ mcpServers, in the CLI’s own form; none means no key', () => {
    expect(settingsOf(spec()).mcpServers).toBeUndefined();
    const s = settingsOf(
      spec({
        mcpServers: [
          { name: 'echo', transport: 'stdio', command: 'node', args: ['echo.js'], env: { TOKEN: 'x' } },
          { name: 'docs', transport: 'http', url: 'https://mcp.example.com/mcp', headers: { a: 'b' } },
          { name: 'old', transport: 'sse', url: 'https://mcp.example.com/sse', headers: {} },
        ],
      }),
    );
    expect(s.mcpServers).toEqual({
      echo: { command: 'node', args: ['echo.js'], env: { TOKEN: 'x' }, trust: true },
      docs: { httpUrl: 'https://mcp.example.com/mcp', headers: { a: 'b' }, trust: true },
      old: { url: 'https://mcp.example.com/sse', headers: {}, trust: true },
    });
    // The settings may hold an MCP server's secrets: readable by the agent user only.
    const file = geminiCliAdapter.buildInvocation(spec()).files.find((f) => f.path === GEMINI_SETTINGS_PATH);
    expect(file?.mode).toBe(0o600);
  });

  it('uses the default model when none is given, and takes Jetty’s google/ form', () => {
    expect(geminiCliAdapter.buildInvocation(spec({ model: '' })).argv.at(-1)).toBe('--model=gemini-2.5-pro');
    expect(geminiCliAdapter.buildInvocation(spec({ model: 'google/gemini-2.5-flash' })).argv.at(-1)).toBe(
      '--model=gemini-2.5-flash',
    );
  });

  it('keeps a model value that looks like a flag inside the --model argument', () => {
    const argv = geminiCliAdapter.buildInvocation(spec({ model: '--debug' })).argv;
    expect(argv.at(-1)).toBe('--model=--debug');
    expect(argv).not.toContain('--debug');
  });
});

describe('gemini-cli parser on recorded runs', () => {
  it('a shell tool run: the words as deltas, the call, its result, usage, and the final text', () => {
    const { events, stderr, finishEvents, outcome } = replayWithStderr('success-shell', 0);
    const callId = 'run_shell_command__run_shell_command_1795596211322_0';
    expect(events).toEqual([
      { type: 'agent.message', data: { text: 'Writing hello.txt ', delta: true } },
      { type: 'agent.message', data: { text: 'now.', delta: true } },
      {
        type: 'tool.call',
        data: {
          call_id: callId,
          name: 'run_shell_command',
          input: {
            command: 'mkdir -p /app/results && printf hi > /app/results/hello.txt && ls /app/results',
          },
        },
      },
      { type: 'tool.result', data: { call_id: callId, output: 'hello.txt', is_error: false } },
      { type: 'agent.message', data: { text: 'wrote hello.txt', delta: true } },
      {
        type: 'usage',
        data: {
          input_tokens: 12436,
          output_tokens: 33,
          cache_read_tokens: 0,
          cache_write_tokens: 0,
          model: 'gemini-2.5-pro',
          source: 'agent',
        },
      },
    ]);
    // The colour warning and the twice-printed YOLO notice are the same on every run.
    expect(stderr).toEqual([]);
    expect(finishEvents).toEqual([]);
    expect(outcome).toEqual({ status: 'completed', finalText: 'wrote hello.txt' });
  });

  it('several turns: the final text is what the model said after its last tool call', () => {
    const { events, outcome } = replayWithStderr('multi-turn', 0);
    expect(ofType(events, 'tool.call')).toHaveLength(2);
    expect(ofType(events, 'tool.result').map((r) => r.data.output)).toEqual(['', 'one\ntwo']);
    expect(
      ofType(events, 'agent.message')
        .map((m) => m.data.text)
        .join(''),
    ).toBe('Step one.Step two.\n\nStill step two.All done.');
    expect(outcome).toEqual({ status: 'completed', finalText: 'All done.' });
  });

  it('a failing command is the tool’s output, not a tool error (the CLI reports it as success)', () => {
    const { events, outcome } = replayWithStderr('tool-error', 0);
    expect(ofType(events, 'tool.result')[0]?.data).toMatchObject({
      output: "ls: cannot access '/app/nonexistent': No such file or directory",
      is_error: false,
    });
    expect(outcome.status).toBe('completed');
  });

  it('a command with $(…) is blocked by the CLI, and says so in its result', () => {
    const { events } = replayWithStderr('blocked-substitution', 0);
    expect(ofType(events, 'tool.result')[0]?.data.output).toBe(
      'Blocked: command substitution detected in shell command.',
    );
  });

  it("a 100 KB tool output is kept whole (the run's event sink cuts it)", () => {
    const { events, outcome } = replayWithStderr('long-output', 0);
    const [result] = ofType(events, 'tool.result');
    expect(Buffer.byteLength(result?.data.output ?? '')).toBeGreaterThan(64 * 1024);
    expect(result?.data.truncated).toBeUndefined();
    expect(outcome).toEqual({ status: 'completed', finalText: 'printed it' });
  });

  it('model auto: the router call is its own model; one usage event per model', () => {
    const { events, outcome } = replayWithStderr('router-auto', 0);
    expect(
      ofType(events, 'usage').map((u) => [u.data.model, u.data.input_tokens, u.data.output_tokens]),
    ).toEqual([
      ['gemini-3.5-flash-lite', 839, 16],
      ['gemini-3.8-flash', 15930, 33],
    ]);
    expect(outcome.status).toBe('completed');
  });

  it('vertex express mode prints the same stream', () => {
    const { outcome, events } = replayWithStderr('vertex-express', 0);
    expect(outcome).toEqual({ status: 'completed', finalText: 'wrote hello.txt' });
    expect(ofType(events, 'usage')).toHaveLength(1);
  });

  const providerCases: Array<[name: string, exit: number, code: string, status: number]> = [
    ['provider-401', 145, 'provider_auth_error', 401],
    ['provider-403', 147, 'provider_auth_error', 403],
    ['provider-404', 1, 'provider_model_not_found', 404],
    ['provider-429', 173, 'provider_rate_limited', 429],
    ['provider-500', 244, 'provider_error', 500],
  ];
  for (const [name, exit, code, status] of providerCases) {
    it(`${name}: fails as ${code}, naming HTTP ${status}`, () => {
      const { events, stderr, outcome } = replayWithStderr(name, exit);
      expect(failure(outcome)?.code).toBe(code);
      expect(failure(outcome)?.message).toContain(`(HTTP ${status})`);
      expect(failure(outcome)?.message).toContain('[API Error:');
      // Nothing was used: no usage event of zeros.
      expect(ofType(events, 'usage')).toEqual([]);
      // The error line and its fields reach the log; the bundle's stack frames do not.
      expect(
        stderr.some((e) => e.type === 'log' && /Error when talking to Gemini API/.test(e.data.line)),
      ).toBe(true);
      expect(stderr.some((e) => e.type === 'log' && /^\s+at /.test(e.data.line))).toBe(false);
    });
  }

  it('404 and 429 carry their status only on stderr or in the exit code', () => {
    // Without stderr, the exit code (status & 0xFF) tells 429; 404 exits 1, which tells nothing.
    expect(failure(replayWithStderr('provider-429', 173, false).outcome)?.code).toBe('provider_rate_limited');
    expect(failure(replayWithStderr('provider-404', 1, false).outcome)?.code).toBe('agent_error');
    expect(failure(replayWithStderr('provider-404', 1, true).outcome)?.code).toBe('provider_model_not_found');
  });

  it('a gateway that cannot be reached: provider_unreachable after the retry', () => {
    const { stderr, outcome } = replayWithStderr('provider-unreachable', 1);
    expect(failure(outcome)).toEqual({
      code: 'provider_unreachable',
      message:
        'The model provider could not be reached: [API Error: exception TypeError: fetch failed sending request]',
    });
    expect(stderr.map((e) => (e.type === 'log' ? e.data.line : ''))).toContain(
      'jetty-forwarder: cannot reach the gateway at /run/jetty/gateway.sock: ENOENT',
    );
  });

  it('an empty model answer: the CLI’s error line, and a failed run that names it', () => {
    const { events, outcome } = replayWithStderr('empty-response', 0);
    expect(ofType(events, 'log').map((e) => e.data.line)).toEqual([
      'gemini-cli error: The model returned an empty response with no text or thoughts. This may be a transient API issue; please try again.',
    ]);
    expect(failure(outcome)).toEqual({
      code: 'agent_error',
      message:
        'Gemini CLI reported an error: The model returned an empty response with no text or thoughts. This may be a transient API issue; please try again.',
    });
  });

  it('killed mid-run: agent_crashed, naming the exit code or the kill', () => {
    const recorded = replayWithStderr('crash-killed', 137);
    expect(ofType(recorded.events, 'tool.result')).toHaveLength(1);
    expect(failure(recorded.outcome)).toEqual({
      code: 'agent_crashed',
      message: 'Gemini CLI exited with code 137 before reporting a result',
    });
    const killed = replay(geminiCliAdapter, fixture('crash-killed', null));
    expect(failure(killed.outcome)?.message).toBe('Gemini CLI was killed before reporting a result');
  });
});

describe('gemini-cli parser edge cases', () => {
  const result = (stats: Record<string, unknown>, status = 'success') =>
    JSON.stringify({ type: 'result', timestamp: 't', status, stats });

  it('cached tokens are split out of the prompt count; thinking tokens count as output', () => {
    const parser = new GeminiCliParser();
    const events = parser.push(
      result({
        models: {
          'gemini-2.5-pro': {
            total_tokens: 1500,
            input_tokens: 1000,
            output_tokens: 100,
            cached: 600,
            input: 400,
          },
        },
      }),
    );
    expect(events).toEqual([
      {
        type: 'usage',
        data: {
          input_tokens: 400,
          output_tokens: 500,
          cache_read_tokens: 600,
          cache_write_tokens: 0,
          model: 'gemini-2.5-pro',
          source: 'agent',
        },
      },
    ]);
  });

  it('a success with a non-zero exit code still completes, and says so', () => {
    const parser = new GeminiCliParser();
    parser.push(JSON.stringify({ type: 'message', role: 'assistant', content: 'ok', delta: true }));
    parser.push(result({}));
    const done = parser.finish(1);
    expect(done.outcome).toEqual({ status: 'completed', finalText: 'ok' });
    expect(done.events).toEqual([
      {
        type: 'log',
        data: {
          stream: 'system',
          line: 'gemini-cli exited with code 1 after reporting success; keeping the result',
        },
      },
    ]);
  });

  it('a crash names the CLI’s own last words on stderr', () => {
    const parser = new GeminiCliParser();
    parser.pushStderr('Error: Cannot find module /opt/x.js');
    parser.pushStderr('    at Module._resolveFilename (node:internal/modules/cjs/loader:1)');
    parser.pushStderr('}');
    expect(failure(parser.finish(1).outcome)?.message).toBe(
      'Gemini CLI exited with code 1 before reporting a result: Error: Cannot find module /opt/x.js',
    );
  });

  it('reads the HTTP status from the API error forms the CLI prints', () => {
    expect(httpStatusOf('[API Error: {"error":{"code":401,"message":"x","status":"UNAUTHENTICATED"}}]')).toBe(
      401,
    );
    expect(httpStatusOf('[API Error: quota (Status: RESOURCE_EXHAUSTED)]')).toBe(429);
    expect(httpStatusOf('[API Error: models/x is not found for API version v1beta]')).toBeUndefined();
  });
});
