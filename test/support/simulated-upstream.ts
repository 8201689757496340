import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSimulatedProvider, type SimulatedProvider } from '../../src/providers/simulated/index.js';

/**
 * The simulated provider served over HTTP on loopback, standing in for a real provider's API (the
 * server's *_UPSTREAM_URL point at it). Unlike `model_provider: simulated`, calls reach it the way
 * they would reach a real provider: through the gateway's routing, with the collection's key.
 * It records each request's path and the credential it carried.
 */
export interface SimulatedUpstream {
  /** `http://127.0.0.1:<port>`; give each provider its own prefix, e.g. `${url}/openrouter`. */
  url: string;
  requests: Array<{ method: string; path: string; credential: string | undefined }>;
  /** Answers from now on with this runbook's `simulate` script (`{{results_dir}}` as /app/results). */
  use(runbook: string): void;
  close(): Promise<void>;
}

export async function startSimulatedUpstream(): Promise<SimulatedUpstream> {
  let sim: SimulatedProvider = providerFor('# nothing scripted\n');
  const requests: SimulatedUpstream['requests'] = [];
  const server = createServer((req, res) => {
    void (async () => {
      const path = req.url ?? '/';
      requests.push({ method: req.method ?? 'GET', path, credential: credentialOf(req) });
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
      const answer = await sim.fetch(
        new Request(`http://127.0.0.1${path}`, {
          method: req.method ?? 'GET',
          headers: { 'content-type': String(req.headers['content-type'] ?? 'application/json') },
          ...(hasBody ? { body: Buffer.concat(chunks) } : {}),
        }),
      );
      res.writeHead(answer.status, Object.fromEntries(answer.headers));
      if (answer.body) {
        for await (const c of answer.body as unknown as AsyncIterable<Uint8Array>) res.write(c);
      }
      res.end();
    })().catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    use(runbook) {
      sim = providerFor(runbook);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function providerFor(runbook: string): SimulatedProvider {
  return createSimulatedProvider({
    runbook: runbook.replaceAll('{{results_dir}}', '/app/results'),
    requiredOutputs: [],
    resultsDir: '/app/results',
    workdir: '/app',
  });
}

function credentialOf(req: IncomingMessage): string | undefined {
  const h = req.headers;
  const key = h['x-api-key'] ?? h['x-goog-api-key'];
  if (typeof key === 'string') return key;
  return typeof h.authorization === 'string' ? h.authorization.replace(/^Bearer\s+/i, '') : undefined;
}
