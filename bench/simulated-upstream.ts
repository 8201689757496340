// What the host-side peers share (bench/bare.ts, bench/proxy-peer.ts): the pinned peers installed
// under bench/peers, the project's simulated provider on a loopback port answering with the
// runbook's own `simulate` script, and the environment that points a claude CLI at it.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { createSimulatedProvider } from '../src/providers/simulated/index.js';

/** bench/peers/node_modules/.bin, installed on first use from bench/peers's exact pins. */
export function ensurePeers(root: string): string {
  const prefix = path.join(root, 'bench/peers');
  const bin = path.join(prefix, 'node_modules/.bin');
  if (!existsSync(path.join(bin, 'claude')) || !existsSync(path.join(bin, 'claude-max-api'))) {
    process.stderr.write('bench: installing the pinned peers (bench/peers/package.json) under bench/peers\n');
    const r = spawnSync('npm', ['ci', '--prefix', prefix, '--no-audit', '--no-fund'], { stdio: 'inherit' });
    if (r.status !== 0 || !existsSync(path.join(bin, 'claude')))
      throw new Error('npm ci --prefix bench/peers failed');
  }
  return bin;
}

/** Node's http server in front of the provider's fetch-shaped handler. */
async function serve(handler: (r: Request) => Promise<Response>): Promise<Server> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers.set(k, v);
    const request = new Request(`http://127.0.0.1${req.url ?? '/'}`, {
      method: req.method ?? 'GET',
      headers,
      ...(hasBody ? { body: Readable.toWeb(req) as ReadableStream, duplex: 'half' } : {}),
    });
    handler(request)
      .then(async (response) => {
        res.writeHead(response.status, Object.fromEntries(response.headers));
        if (response.body) for await (const part of response.body) res.write(part);
        res.end();
      })
      .catch((e: unknown) => {
        if (!res.headersSent) res.writeHead(500);
        res.end(String((e as Error).message));
      });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

export interface SimulatedUpstream {
  /** A scratch directory of this peer's own (its CLI's cwd, HOMEs, results). */
  readonly base: string;
  /** Where the runbook writes hello.txt (its {{results_dir}}). */
  readonly resultsDir: string;
  /** The runbook with {{results_dir}} filled in, as the server's worker fills it. */
  readonly runbook: string;
  readonly url: string;
  /** Model calls answered so far (POSTs): proof that a run went through this provider. */
  modelCalls(): number;
  close(): Promise<void>;
}

export async function startSimulatedUpstream(
  name: string,
  runbookTemplate: string,
): Promise<SimulatedUpstream> {
  const base = await mkdtemp(path.join(os.tmpdir(), `jetty-bench-${name}-`));
  const resultsDir = path.join(base, 'results');
  // The hello runbook has one template variable; the server fills it with its own results dir.
  const runbook = runbookTemplate.replaceAll('{{results_dir}}', resultsDir);
  const sim = createSimulatedProvider({
    runbook,
    requiredOutputs: [path.join(resultsDir, 'hello.txt')],
    resultsDir,
    workdir: base,
  });
  let calls = 0;
  const server = await serve((r) => {
    if (r.method === 'POST') calls++;
    return sim.fetch(r);
  });
  const port = (server.address() as AddressInfo).port;
  return {
    base,
    resultsDir,
    runbook,
    url: `http://127.0.0.1:${port}`,
    modelCalls: () => calls,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(base, { recursive: true, force: true });
    },
  };
}

/** The environment a claude CLI on the host needs to talk to `upstream` and nothing else. */
export function claudeEnv(upstream: SimulatedUpstream, home: string, pathPrefix?: string): NodeJS.ProcessEnv {
  const hostPath = process.env.PATH ?? '/usr/bin:/bin';
  return {
    PATH: pathPrefix ? `${pathPrefix}${path.delimiter}${hostPath}` : hostPath,
    HOME: home,
    ANTHROPIC_BASE_URL: upstream.url,
    ANTHROPIC_API_KEY: 'bench-not-a-key',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_AUTOUPDATER: '1',
    DISABLE_ERROR_REPORTING: '1',
    CLAUDE_CODE_MAX_RETRIES: '1',
    // The CLI refuses --dangerously-skip-permissions (and bypassPermissions) as root unless told it
    // is sandboxed; the server's sandboxes run it as an unprivileged user instead.
    ...(process.getuid?.() === 0 ? { IS_SANDBOX: '1' } : {}),
  };
}
