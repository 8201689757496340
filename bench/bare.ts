// The "bare CLI" peer: the same pinned claude CLI the server's sandboxes run, started headless on
// this host with no server, no Docker and no gateway in between, answered by the project's own
// simulated provider on loopback with the same runbook's `simulate` script. Used by
// `npm run bench -- --vs-bare` (bench/run.ts), which interleaves its runs with the server's and the
// proxy's (bench/proxy-peer.ts).
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { CLAUDE_CODE_VERSION, claudeCodeAdapter, userMessage } from '../src/runtimes/claude-code.js';
import { composePrompt } from '../src/worker/prompt.js';
import { claudeEnv, ensurePeers, startSimulatedUpstream } from './simulated-upstream.js';

/** One timed run of a host-side peer: milliseconds to its first output and to its end, or why it failed. */
export type PeerRun = { ok: true; firstMs: number; ms: number } | { ok: false; reason: string };

export interface BarePeer {
  /** One headless CLI run of the runbook, from spawn to exit. */
  runOnce(timeoutSec: number): Promise<PeerRun>;
  readonly cliVersion: string;
  close(): Promise<void>;
}

export async function startBarePeer(root: string, runbookTemplate: string): Promise<BarePeer> {
  const bin = path.join(ensurePeers(root), 'claude');
  const up = await startSimulatedUpstream('bare', runbookTemplate);
  const { base, resultsDir, runbook } = up;
  // The prompt the server's worker composes (RUN_TIMEOUT_SEC's default 1200 s), given the same way
  // (one stream-json user message).
  const prompt = userMessage(
    composePrompt({ runbook, instruction: 'Execute the runbook.', timeoutSec: 1200, resultsDir }),
  );
  // The server's own command line for the run (src/runtimes/claude-code.ts), less the program name.
  const [, ...flags] = claudeCodeAdapter.buildInvocation({
    runId: 'bench',
    prompt: '',
    model: 'claude-sonnet-4-6',
    provider: 'anthropic',
    gatewayUrl: up.url,
    token: 'bench-not-a-key',
    deadlineSec: 1200,
    workdir: base,
    resultsDir,
  }).argv;
  let n = 0;
  return {
    cliVersion: CLAUDE_CODE_VERSION,
    async runOnce(timeoutSec) {
      const home = path.join(base, `home-${++n}`);
      await rm(resultsDir, { recursive: true, force: true });
      const calls = up.modelCalls();
      const t0 = performance.now();
      const child = spawn(bin, flags, {
        cwd: base,
        stdio: ['pipe', 'pipe', 'pipe'],
        env: claudeEnv(up, home),
      });
      let out = '';
      let err = '';
      let firstMs: number | undefined;
      child.stdout.on('data', (d: Buffer) => {
        firstMs ??= performance.now() - t0;
        out += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
      });
      child.stdin.end(prompt);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutSec * 1000);
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      clearTimeout(timer);
      const ms = performance.now() - t0;
      const last = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0) return { ok: false, reason: `exit ${code}: ${(err || last).slice(0, 300)}` };
      if (!/"type":"result","subtype":"success"/.test(last))
        return { ok: false, reason: `no success result: ${last.slice(0, 300)}` };
      if (up.modelCalls() === calls)
        return { ok: false, reason: 'no model call reached the simulated provider' };
      const text = await readFile(path.join(resultsDir, 'hello.txt'), 'utf8').catch(() => '(missing)');
      if (text.trim() !== 'hi') return { ok: false, reason: `hello.txt holds ${JSON.stringify(text)}` };
      return { ok: true, firstMs: firstMs ?? ms, ms };
    },
    close: () => up.close(),
  };
}
