import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import type {
  CollectResult,
  OwnedSandbox,
  RunningSandbox,
  SandboxDriver,
  SandboxSpec,
} from '../../src/sandbox/driver.js';

/**
 * A SandboxDriver for Redis-level integration tests: instead of a container it plays back claude
 * stream-json lines on a timer. It stands in for Docker only; Redis, BullMQ and the server are
 * real. The Docker driver has its own suite on a real engine.
 */
export interface ScriptStep {
  line?: unknown;
  delayMs?: number;
}

export function claudeLines(opts: { steps: number; delayMs: number; text?: string }): ScriptStep[] {
  const out: ScriptStep[] = [
    { line: { type: 'system', subtype: 'init', session_id: 's1', model: 'claude-sonnet-4-6' } },
  ];
  for (let i = 0; i < opts.steps; i++) {
    out.push({ delayMs: opts.delayMs, line: assistantText(`step ${i}`) });
    out.push({
      line: {
        type: 'assistant',
        message: {
          id: `m${i}`,
          role: 'assistant',
          content: [{ type: 'tool_use', id: `t${i}`, name: 'Bash', input: { command: `echo ${i}` } }],
        },
      },
    });
    out.push({
      line: {
        type: 'user',
        message: {
          role: 'user',
          content: [{ type: 'tool_result', tool_use_id: `t${i}`, content: `${i}`, is_error: false }],
        },
      },
    });
  }
  out.push({
    line: {
      type: 'result',
      subtype: 'success',
      is_error: false,
      result: opts.text ?? 'all done',
      total_cost_usd: 0.001,
      usage: {
        input_tokens: 10,
        output_tokens: 5,
        cache_read_input_tokens: 0,
        cache_creation_input_tokens: 0,
      },
      modelUsage: { 'claude-sonnet-4-6': {} },
    },
  });
  return out;
}

function assistantText(text: string) {
  return { type: 'assistant', message: { id: 'mt', role: 'assistant', content: [{ type: 'text', text }] } };
}

/** The prompt the CLI was given (piped to its stdin). */
export function promptOf(spec: SandboxSpec): string {
  if (spec.stdin === undefined) return '';
  const text = String(spec.stdin);
  // claude-code reads its prompt as one stream-json user message: the text is what the agent sees.
  try {
    const msg = JSON.parse(text) as { type?: string; message?: { content?: { text?: string }[] } };
    if (msg.type === 'user') return (msg.message?.content ?? []).map((c) => c.text ?? '').join('');
  } catch {
    // plain text
  }
  return text;
}

export class ScriptedDriver implements SandboxDriver {
  readonly started: SandboxSpec[] = [];
  private readonly live = new Map<string, { runId: string; kill: () => void }>();
  private seq = 0;

  /** When each sandbox's copies out (`collect`) ended, by run id and directory. */
  readonly collectedAt = new Map<string, number>();

  constructor(
    private readonly script: (spec: SandboxSpec) => ScriptStep[],
    /** How long copying a directory out of a run's sandbox takes (none by default). */
    private readonly collectDelayMs: (spec: SandboxSpec, dir: string) => number = () => 0,
  ) {}

  async ping(): Promise<void> {}

  async listOwned(): Promise<OwnedSandbox[]> {
    return [...this.live].map(([id, s]) => ({ id, runId: s.runId, running: true }));
  }

  /** Run ids whose sandbox something removed by its id (the worker's sweep of orphans). */
  readonly removedById: string[] = [];

  async removeById(id: string): Promise<void> {
    const s = this.live.get(id);
    if (s) this.removedById.push(s.runId);
    s?.kill();
    this.live.delete(id);
  }

  liveCount(): number {
    return this.live.size;
  }

  async start(spec: SandboxSpec): Promise<RunningSandbox> {
    this.started.push(spec);
    const id = `scripted-${++this.seq}`;
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let killed = false;
    let wake: (() => void) | undefined;
    const kill = () => {
      killed = true;
      wake?.();
    };
    this.live.set(id, { runId: spec.runId, kill });
    const done = (async () => {
      for (const step of this.script(spec)) {
        if (step.delayMs) {
          await new Promise<void>((r) => {
            const t = setTimeout(r, step.delayMs);
            wake = () => {
              clearTimeout(t);
              r();
            };
          });
        }
        if (killed) break;
        if (step.line !== undefined) stdout.write(`${JSON.stringify(step.line)}\n`);
      }
      stdout.end();
      stderr.end();
      return { exitCode: killed ? 137 : 0 };
    })();
    const live = this.live;
    const collectDelayMs = this.collectDelayMs;
    const collectedAt = this.collectedAt;
    return {
      id,
      stdout,
      stderr,
      wait: () => done,
      kill: async () => kill(),
      async collect(dir: string, destDir: string): Promise<CollectResult> {
        const delay = collectDelayMs(spec, dir);
        if (delay > 0) await new Promise((r) => setTimeout(r, delay));
        collectedAt.set(`${spec.runId} ${dir}`, Date.now());
        const body = Buffer.from('hi\n');
        await mkdir(destDir, { recursive: true });
        const localPath = path.join(destDir, 'hello.txt');
        await writeFile(localPath, body);
        const sha256 = createHash('sha256').update(body).digest('hex');
        return {
          artifacts: [
            { path: 'hello.txt', size: body.length, sha256, content_type: 'text/plain', localPath },
          ],
          dropped: [],
        };
      },
      // It plays back lines and has no shell: a command (a verification script) cannot run here.
      async exec() {
        return {
          exitCode: 127,
          stdout: '',
          stderr: 'the scripted test driver runs no commands',
          timedOut: false,
          truncated: false,
          durationMs: 0,
        };
      },
      async remove() {
        live.delete(id);
      },
    };
  }
}
