// The "proxy" peer: claude-max-api-proxy (pinned in bench/peers/package.json, not a project
// dependency), an OpenAI-compatible HTTP server that spawns `claude --print` per request. Started
// on a free loopback port with bench/peers/node_modules/.bin first on its PATH, so the CLI it spawns
// is the project's pin; that CLI inherits the environment pointing it at the project's simulated
// provider on loopback, answering with the runbook's own `simulate` script.
//
// What the proxy decides and the benchmark cannot change (dist/subprocess/manager.js): it runs
// `claude --print --output-format stream-json --verbose --include-partial-messages --model <alias>
// --no-session-persistence <prompt>` in its own cwd, the prompt being the messages flattened into
// one argument (`<system>…</system>` then the user text). There is no way to pass
// `--dangerously-skip-permissions` or any other flag, so its CLI is given the permission in the
// settings file of the HOME it inherits (see PROXY_SETTINGS); the report says so.
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { z } from 'zod';
import type { PeerRun } from './bare.js';
import { claudeEnv, ensurePeers, startSimulatedUpstream } from './simulated-upstream.js';
import { readSse } from './sse.js';

export interface ProxyPeer {
  /** One `POST /v1/chat/completions` with `stream: true`, from the request to `data: [DONE]`. */
  runOnce(timeoutSec: number): Promise<PeerRun>;
  readonly version: string;
  close(): Promise<void>;
}

/**
 * `~/.claude/settings.json` for the proxy's CLI: it cannot be given `--dangerously-skip-permissions`,
 * and in `--print` mode a tool call that needs a permission is refused. This lets it run Bash, as
 * the server's and the bare CLI's flag does.
 */
export const PROXY_SETTINGS = { permissions: { defaultMode: 'bypassPermissions' } } as const;

/** Bounded tail of the proxy's own output, for the reason when it fails to start. */
const LOG_TAIL = 4000;

const chunkSchema = z.looseObject({
  choices: z
    .array(z.looseObject({ delta: z.looseObject({ content: z.string().optional() }).optional() }))
    .optional(),
  error: z.looseObject({ message: z.string() }).optional(),
});

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const address = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no free loopback port');
  return address.port;
}

export async function startProxyPeer(root: string, runbookTemplate: string): Promise<ProxyPeer> {
  const bin = ensurePeers(root);
  const pkg = z
    .object({ version: z.string() })
    .parse(
      JSON.parse(
        await readFile(path.join(root, 'bench/peers/node_modules/claude-max-api-proxy/package.json'), 'utf8'),
      ),
    );
  const up = await startSimulatedUpstream('proxy', runbookTemplate);
  const home = path.join(up.base, 'home');
  await mkdir(path.join(home, '.claude'), { recursive: true });
  await writeFile(path.join(home, '.claude/settings.json'), JSON.stringify(PROXY_SETTINGS));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // The proxy listens on 127.0.0.1 (hard-coded) at the port given as its only argument.
  const child = spawn(path.join(bin, 'claude-max-api'), [String(port)], {
    cwd: up.base,
    env: claudeEnv(up, home, bin),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const keep = (d: Buffer) => {
    log = (log + d.toString()).slice(-LOG_TAIL);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await up.close();
  };

  // Ready when /health answers; it checks `claude --version` first.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) })
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`claude-max-api did not start on ${url}: ${log.slice(-600)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  const body = JSON.stringify({
    model: 'claude-sonnet-4',
    stream: true,
    // The server's request, with {{results_dir}} filled in: the proxy has no templating.
    messages: [
      { role: 'system', content: up.runbook },
      { role: 'user', content: 'Execute the runbook.' },
    ],
  });

  return {
    version: pkg.version,
    async runOnce(timeoutSec) {
      await rm(up.resultsDir, { recursive: true, force: true });
      const calls = up.modelCalls();
      try {
        const t0 = performance.now();
        const res = await fetch(`${url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(timeoutSec * 1000),
        });
        if (!res.ok || !res.body) return { ok: false, reason: `POST answered ${res.status}` };
        let firstMs: number | undefined;
        let done: number | undefined;
        let text = '';
        let error: string | undefined;
        for await (const msg of readSse(res.body)) {
          const t = performance.now() - t0;
          firstMs ??= t;
          if (msg.data === '[DONE]') {
            done ??= t;
            continue;
          }
          const chunk = chunkSchema.parse(JSON.parse(msg.data));
          if (chunk.error) error ??= chunk.error.message;
          text += chunk.choices?.[0]?.delta?.content ?? '';
        }
        if (error) return { ok: false, reason: `the stream carried an error: ${error}` };
        if (done === undefined || firstMs === undefined)
          return { ok: false, reason: 'the stream ended without [DONE]' };
        if (up.modelCalls() === calls)
          return { ok: false, reason: 'no model call reached the simulated provider' };
        if (!text.includes('hello.txt is written'))
          return {
            ok: false,
            reason: `the answer is not the script's: ${JSON.stringify(text.slice(0, 200))}`,
          };
        const file = await readFile(path.join(up.resultsDir, 'hello.txt'), 'utf8').catch(() => '(missing)');
        if (file.trim() !== 'hi') return { ok: false, reason: `hello.txt holds ${JSON.stringify(file)}` };
        return { ok: true, firstMs, ms: done };
      } catch (e) {
        const err = e as Error;
        return {
          ok: false,
          reason:
            err.name === 'TimeoutError' ? `no [DONE] within ${timeoutSec} s` : `client error: ${err.message}`,
        };
      }
    },
    close: stop,
  };
}
