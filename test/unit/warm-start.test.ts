import { describe, expect, it } from 'vitest';
import { runJobSchema } from '../../src/queue/catalog.js';
import { getRuntime } from '../../src/runtimes/registry.js';
import type { SandboxSpec } from '../../src/sandbox/driver.js';
import type { WarmPool, WarmSandbox, WarmTemplate } from '../../src/sandbox/warm-pool.js';
import { buildSandboxSpec, keyOf, type RunShape, shapeOf, WarmStarts } from '../../src/worker/warm-start.js';

// Which runs take over a warm sandbox, decided without Docker: a pool stand-in records what the
// worker's warm-start logic asks of it (the real pool is exercised in test/e2e/warm-pool.e2e.test.ts).
const claude = getRuntime('claude-code')!;
const LIMITS = { cpus: 1, memoryBytes: 1024 ** 3, pids: 256, diskBytes: 1024 ** 3 };
const SHAPE: RunShape = {
  model: claude.defaultModel,
  provider: 'simulated',
  timeoutSec: 600,
  resultsDir: '/app/results',
  limits: LIMITS,
  persistSession: true,
};
const LEAN = 'jetty/env-lean:1';
const gatewayEnv = { JETTY_GATEWAY_PORT: '4100', JETTY_GATEWAY_SOCKET: '/run/jetty-gateway/gateway.sock' };

function job(over: Partial<Record<string, unknown>> = {}) {
  return runJobSchema.parse({
    runId: 'run-1',
    collection: 'c',
    agent: 'claude-code',
    model: SHAPE.model,
    provider: SHAPE.provider,
    runbook: '# hi',
    instruction: '',
    resultsDir: SHAPE.resultsDir,
    requiredOutputs: [],
    timeoutSec: SHAPE.timeoutSec,
    limits: LIMITS,
    environment: { snapshot: 'lean', image: LEAN },
    // As /v1/chat/completions starts it: the first turn of a conversation.
    conversation: { id: 'run-1', turn: 1, parentRunId: null, resumeSession: null, history: null },
    ...over,
  });
}

function setup() {
  const calls = { retired: [] as string[], discarded: 0, taken: [] as string[] };
  const ready: WarmSandbox[] = [];
  let starts!: WarmStarts;
  const pool = {
    want: () => undefined,
    take: (key: string) => {
      calls.taken.push(key);
      const i = ready.findIndex((w) => w.key === key);
      return i < 0 ? undefined : ready.splice(i, 1)[0];
    },
    discard: () => {
      calls.discarded++;
    },
    retire: (_key: string, signature: string) => calls.retired.push(signature),
  } as unknown as WarmPool;
  starts = new WarmStarts({
    pool,
    runtimes: ['claude-code'],
    initialShape: () => SHAPE,
    defaultEnvironment: LEAN,
    gatewayEnv,
    gatewayUrl: 'http://127.0.0.1:4100',
    gatewaySocketDir: '/tmp/gw',
  });
  const addWarm = (environment = LEAN) => {
    const template = starts.template(keyOf(claude, environment)) as WarmTemplate;
    ready.push({ key: keyOf(claude, environment), template } as WarmSandbox);
    return template;
  };
  const build =
    (spec: ReturnType<typeof job>) =>
    (token: string): SandboxSpec =>
      buildSandboxSpec({
        runtime: claude,
        invocation: claude.buildInvocation({
          runId: spec.runId,
          prompt: 'the prompt',
          model: spec.model,
          provider: spec.provider,
          gatewayUrl: 'http://127.0.0.1:4100',
          token,
          deadlineSec: spec.timeoutSec,
          mcpServers: spec.mcpServers,
          workdir: '/app',
          resultsDir: spec.resultsDir,
          ...(spec.conversation
            ? {
                session: {
                  persist: true,
                  ...(spec.conversation.resumeSession ? { resume: spec.conversation.resumeSession } : {}),
                },
              }
            : {}),
        }),
        shape: shapeOf(spec),
        runId: spec.runId,
        environment: spec.environment.image,
        gatewayEnv,
        gatewaySocketDir: '/tmp/gw',
        runEnv: {},
        assets: [],
      });
  return { starts, calls, addWarm, build };
}

describe('warm starts', () => {
  it('two warm sandboxes of one shape carry different tokens but the same signature', () => {
    const { addWarm } = setup();
    const a = addWarm();
    const b = addWarm();
    expect(a.token).not.toBe(b.token);
    expect(a.signature).toBe(b.signature);
  });

  it('a run of the warm shape takes the warm sandbox, with its token', () => {
    const { starts, addWarm, build } = setup();
    const t = addWarm();
    const spec = job();
    const plan = starts.plan(spec, {}, build(spec));
    expect(plan.warm?.template).toBe(t);
    expect(plan.token).toBe(t.token);
  });

  it('a run with secrets in its environment never takes one', () => {
    const { starts, addWarm, build } = setup();
    addWarm();
    const spec = job();
    const plan = starts.plan(spec, { DEPLOY_TOKEN: 'x' }, build(spec));
    expect(plan.warm).toBeUndefined();
  });

  it('a conversation’s follow-up never takes one, and leaves it for the next first turn', () => {
    const { starts, calls, addWarm, build } = setup();
    const t = addWarm();
    const spec = job({
      conversation: { id: 'run-0', turn: 2, parentRunId: 'run-0', resumeSession: 'sess-1', history: null },
    });
    const plan = starts.plan(spec, {}, build(spec));
    expect(plan.warm).toBeUndefined();
    expect(calls.discarded).toBe(0);
    expect(calls.taken).toEqual([]);
    const first = job({ runId: 'run-2' });
    expect(starts.plan(first, {}, build(first)).warm?.template).toBe(t);
  });

  it('a run whose egress policy gives it proxy variables never takes one', () => {
    const { starts, addWarm, build } = setup();
    addWarm();
    const spec = job();
    const plan = starts.plan(spec, { HTTPS_PROXY: 'http://jetty:egress-token@127.0.0.1:4100' }, build(spec));
    expect(plan.warm).toBeUndefined();
  });

  it("the pool is kept per runtime and environment image: a run takes only its own image's", () => {
    const { starts, calls, addWarm, build } = setup();
    const lean = addWarm();
    const other = addWarm('jetty/env-python312-uv:1');
    expect(other.environment.image).toBe('jetty/env-python312-uv:1');
    expect(other.environment.agentImage).toBe(claude.image);
    expect(other.signature).not.toBe(lean.signature);
    const spec = job({ environment: { snapshot: 'python312-uv', image: 'jetty/env-python312-uv:1' } });
    const plan = starts.plan(spec, {}, build(spec));
    expect(calls.taken).toEqual([keyOf(claude, 'jetty/env-python312-uv:1')]);
    expect(plan.warm?.template).toBe(other);
    expect(plan.sandbox.image).toBe('jetty/env-python312-uv:1');
    expect(plan.sandbox.agentImage).toBe(claude.image);
  });

  it('a run on another model starts cold and turns the pool to a shape the next warm sandbox carries', () => {
    const { starts, calls, addWarm, build } = setup();
    const old = addWarm();
    const spec = job({ model: 'claude-haiku-4-5' });
    const plan = starts.plan(spec, {}, build(spec));
    expect(plan.warm).toBeUndefined();
    expect(plan.token).not.toBe(old.token);
    expect(calls.discarded).toBe(1);
    expect(calls.retired).toHaveLength(1);
    // The pool keeps only sandboxes of the wanted signature: the next one made must carry it.
    const next = addWarm();
    expect(calls.retired[0]).toBe(next.signature);
    expect(next.signature).not.toBe(old.signature);
    const again = starts.plan(spec, {}, build(spec));
    expect(again.warm?.template).toBe(next);
  });

  it('every runtime whose CLI waits for its prompt can have warm sandboxes; gemini-cli cannot', () => {
    const all = ['claude-code', 'codex', 'gemini-cli', 'opencode', 'hermes'] as const;
    const starts = new WarmStarts({
      pool: {} as WarmPool,
      runtimes: all,
      initialShape: () => SHAPE,
      defaultEnvironment: LEAN,
      gatewayEnv,
      gatewayUrl: 'http://127.0.0.1:4100',
      gatewaySocketDir: '/tmp/gw',
    });
    expect(starts.runtimes.sort()).toEqual(['claude-code', 'codex', 'hermes', 'opencode']);
  });
});
