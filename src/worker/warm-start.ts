import { createHash, randomBytes } from 'node:crypto';
import type { AgentName } from '../events/types.js';
import type { RunJob } from '../queue/catalog.js';
import { getRuntime } from '../runtimes/registry.js';
import type { Invocation, ProviderName, RuntimeAdapter, SandboxFile } from '../runtimes/types.js';
import type { RunningSandbox, SandboxDriver, SandboxLimits, SandboxSpec } from '../sandbox/driver.js';
import type { WarmPool, WarmSandbox, WarmTemplate } from '../sandbox/warm-pool.js';

/**
 * Which runs start on a warm sandbox, and what a warm sandbox of each pool key is started with.
 *
 * A pool key is a runtime and its environment image (a snapshot's, or one the run named). A warm
 * sandbox is started from a *shape* (model, provider, deadline, results_dir, limits) with a gateway
 * token of its own; a run takes one over only when everything it would start a cold sandbox with is
 * the same once its token is the warm one's: the same CLI command line, environment variables and
 * config files, the same environment image, agent layer and limits. Anything else (secrets, script
 * keys or egress proxy variables in the environment, MCP servers, another model, input files, a
 * conversation's follow-up)
 * starts the run cold, and the pool learns the run's shape so that the next warm sandboxes fit
 * such runs.
 */

export interface RunShape {
  model: string;
  provider: ProviderName;
  timeoutSec: number;
  resultsDir: string;
  limits: SandboxLimits;
  /**
   * The CLI keeps its session for a later turn: every run of /v1/chat/completions is a
   * conversation's turn; /api/v1 runs are not.
   */
  persistSession: boolean;
}

export interface WarmStartsOptions {
  pool: WarmPool;
  /** Runtimes that get a pool (WARM_POOL_RUNTIMES). */
  runtimes: readonly AgentName[];
  /** The shape of the first warm sandboxes, before any run was seen. */
  initialShape(runtime: RuntimeAdapter): RunShape;
  /** The environment image of the first warm sandboxes (the default snapshot's). */
  defaultEnvironment: string;
  /** The agent's environment variables beside the CLI's own (the gateway's port and socket). */
  gatewayEnv: Record<string, string>;
  gatewayUrl: string;
  gatewaySocketDir: string;
}

/** How a run's sandbox was started. */
export type StartKind = 'warm' | 'cold';

export class WarmStarts {
  private readonly shapes = new Map<string, RunShape>();
  /**
   * The configured runtimes whose CLI can wait for its prompt and whose start does not depend on
   * the run's id (else no run could match).
   */
  private readonly poolable: Set<AgentName>;

  constructor(private readonly opts: WarmStartsOptions) {
    this.poolable = new Set(
      opts.runtimes.filter((name) => {
        const runtime = getRuntime(name);
        if (!runtime || runtime.waitsForPrompt === false) return false;
        return !dependsOnRunId(runtime, opts.initialShape(runtime));
      }),
    );
  }

  /** Runtimes that get warm sandboxes. */
  get runtimes(): AgentName[] {
    return [...this.poolable];
  }

  /** Fills the pools of the configured runtimes (at worker start). */
  prewarm(): void {
    for (const name of this.poolable) {
      const runtime = getRuntime(name);
      if (runtime) this.opts.pool.want(keyOf(runtime, this.opts.defaultEnvironment));
    }
  }

  /**
   * How the run's sandbox will start. `build` makes the run's cold start with a given gateway
   * token. A warm sandbox is taken when the run's start, with the warm sandbox's token, is the same
   * as the warm one's; only runs whose environment holds nothing of their own (no secrets, no script
   * keys, no egress proxy credentials) and that bring no input files are candidates. A warm sandbox that does not fit is removed
   * and its key's pool turns to this run's shape; the run then gets a token of its own.
   */
  plan(
    spec: RunJob,
    runEnv: Record<string, string>,
    build: (token: string) => SandboxSpec,
  ): { sandbox: SandboxSpec; token: string; warm: WarmSandbox | undefined } {
    let warm = this.candidate(spec, runEnv);
    if (warm) {
      const sandbox = build(warm.template.token);
      if (signatureOf(sandbox, warm.template.token) === warm.template.signature)
        return { sandbox, token: warm.template.token, warm };
      this.opts.pool.discard(warm, 'the run needs another start');
      this.learn(spec);
      warm = undefined;
    }
    const token = newToken();
    return { sandbox: build(token), token, warm };
  }

  /** Starts the planned sandbox: the warm one claimed, or a cold one (also when the claim fails). */
  async start(
    driver: SandboxDriver,
    runId: string,
    sandbox: SandboxSpec,
    warm: WarmSandbox | undefined,
  ): Promise<{ sandbox: RunningSandbox; kind: StartKind }> {
    if (warm) {
      try {
        return { sandbox: await this.opts.pool.claim(warm, runId, [], sandbox.stdin ?? ''), kind: 'warm' };
      } catch {
        // Gone bad under us (its container removed, its agent dead): removed by claim; start cold.
        // Its token is safe to reuse: the only other holder is gone.
      }
    }
    return { sandbox: await driver.start(sandbox), kind: 'cold' };
  }

  /**
   * The run on a warm sandbox of this key got going (its first model call was answered) or ended:
   * the sandbox it took is replaced now (src/sandbox/warm-pool.ts, refillLater).
   */
  refill(key: string): void {
    this.opts.pool.refill(key);
  }

  /** A planned warm sandbox the run will not start on after all (stopped before it started). */
  abandon(warm: WarmSandbox): void {
    this.opts.pool.discard(warm, 'its run stopped before it started');
  }

  private candidate(spec: RunJob, runEnv: Record<string, string>): WarmSandbox | undefined {
    const runtime = getRuntime(spec.agent);
    if (!runtime || !this.poolable.has(spec.agent)) return undefined;
    if (Object.keys(runEnv).length > 0 || spec.assets.length > 0) return undefined;
    // A conversation's follow-up starts from the previous turn's files and resumes its session.
    if (spec.conversation?.parentRunId || spec.conversation?.resumeSession) return undefined;
    return this.opts.pool.take(keyOf(runtime, spec.environment.image));
  }

  /** The template of a new warm sandbox of `key`, from its shape, with a fresh token. */
  template(key: string): WarmTemplate | null {
    const parsed = parseKey(key);
    if (!parsed) return null;
    const { runtime, environment } = parsed;
    const shape = this.shapes.get(key) ?? this.opts.initialShape(runtime);
    const token = newToken();
    let invocation: Invocation;
    try {
      invocation = runtime.buildInvocation({
        runId: 'warm',
        // The prompt goes in when a run claims it; the CLI only waits for it.
        prompt: '',
        model: shape.model,
        provider: shape.provider,
        gatewayUrl: this.opts.gatewayUrl,
        token,
        deadlineSec: shape.timeoutSec,
        mcpServers: [],
        workdir: '/app',
        resultsDir: shape.resultsDir,
        ...(shape.persistSession ? { session: { persist: true } } : {}),
      });
    } catch {
      return null;
    }
    const spec = buildSandboxSpec({
      runtime,
      invocation,
      shape,
      runId: 'warm',
      environment,
      gatewayEnv: this.opts.gatewayEnv,
      gatewaySocketDir: this.opts.gatewaySocketDir,
      runEnv: {},
      assets: [],
    });
    return {
      environment: {
        image: spec.image,
        agentImage: spec.agentImage,
        limits: spec.limits,
        gatewaySocketDir: spec.gatewaySocketDir,
        files: spec.files,
      },
      agent: { argv: spec.argv, env: spec.env, files: spec.files },
      forwarderEnv: this.opts.gatewayEnv,
      token,
      signature: signatureOf(spec, token),
    };
  }

  /** The next warm sandboxes of this run's key are made for runs like it. */
  private learn(spec: RunJob): void {
    const runtime = getRuntime(spec.agent);
    if (!runtime) return;
    const key = keyOf(runtime, spec.environment.image);
    this.shapes.set(key, shapeOf(spec));
    const next = this.template(key);
    if (next) this.opts.pool.retire(key, next.signature);
  }
}

/** One run's sandbox as the run worker starts it cold, and as a warm one is started (runEnv, assets: none). */
export function buildSandboxSpec(o: {
  runtime: RuntimeAdapter;
  invocation: Invocation;
  shape: RunShape;
  runId: string;
  /** The environment image (the agent layer is the runtime's image, mounted in it). */
  environment: string;
  gatewayEnv: Record<string, string>;
  gatewaySocketDir: string;
  /** The run's own variables: its secrets, its scripts' gateway keys, its egress proxy's. */
  runEnv: Record<string, string>;
  assets: SandboxFile[];
}): SandboxSpec {
  const { invocation } = o;
  // The prompt is piped to the CLI rather than written into the sandbox.
  const stdin = invocation.files.find((f) => f.path === invocation.stdinFile);
  return {
    runId: o.runId,
    image: o.environment,
    agentImage: o.runtime.image,
    argv: invocation.argv,
    env: { ...o.runEnv, ...invocation.env, ...o.gatewayEnv },
    files: [...o.assets, ...invocation.files.filter((f) => f !== stdin)],
    ...(stdin ? { stdin: stdin.content } : {}),
    limits: o.shape.limits,
    gatewaySocketDir: o.gatewaySocketDir,
  };
}

function newToken(): string {
  return `jrt_${randomBytes(24).toString('hex')}`;
}

/** Whether the runtime's start names the run (then no warm sandbox could ever fit a run). */
function dependsOnRunId(runtime: RuntimeAdapter, shape: RunShape): boolean {
  const build = (runId: string) =>
    JSON.stringify(
      runtime.buildInvocation({
        runId,
        prompt: '',
        model: shape.model,
        provider: shape.provider,
        gatewayUrl: 'http://127.0.0.1:1',
        token: 't',
        deadlineSec: shape.timeoutSec,
        mcpServers: [],
        workdir: '/app',
        resultsDir: shape.resultsDir,
        ...(shape.persistSession ? { session: { persist: true } } : {}),
      }),
    );
  try {
    return build('run-a') !== build('run-b');
  } catch {
    return true;
  }
}

/** The pool key: a runtime's name and the environment image it runs in. */
export function keyOf(runtime: RuntimeAdapter, environment: string): string {
  return `${runtime.name}@${environment}`;
}

function parseKey(key: string): { runtime: RuntimeAdapter; environment: string } | undefined {
  const at = key.indexOf('@');
  if (at <= 0 || at === key.length - 1) return undefined;
  const runtime = getRuntime(key.slice(0, at) as AgentName);
  return runtime ? { runtime, environment: key.slice(at + 1) } : undefined;
}

export function shapeOf(spec: RunJob): RunShape {
  return {
    model: spec.model,
    provider: spec.provider,
    timeoutSec: spec.timeoutSec,
    resultsDir: spec.resultsDir,
    limits: spec.limits,
    persistSession: spec.conversation !== undefined,
  };
}

/**
 * Everything a sandbox is started with but the run's id, its prompt and its gateway token: two
 * starts with the same signature give the same sandbox and the same waiting CLI once each has its
 * own token. The token is left out so that the pool can tell which of its sandboxes (each with a
 * token of its own) fit the shape runs now want. Hashed: the env may hold more than names.
 */
export function signatureOf(spec: SandboxSpec, token: string): string {
  // The token may be anywhere: argv, env, a config file (latin1 keeps any bytes as they are).
  const untoken = (text: string) => text.replaceAll(token, '<token>');
  const files = spec.files.map((f: SandboxFile) => [
    f.path,
    f.mode ?? null,
    digest(untoken(typeof f.content === 'string' ? f.content : f.content.toString('latin1'))),
  ]);
  const env = Object.entries(spec.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const { cpus, memoryBytes, pids, diskBytes } = spec.limits;
  const parts = [spec.image, spec.agentImage, spec.argv, env, files, [cpus, memoryBytes, pids, diskBytes]];
  return digest(untoken(JSON.stringify(parts)));
}

function digest(content: string | Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}
