import { buildApp } from './app.js';
import type { AppDeps } from './deps.js';

/**
 * The OpenAPI document as the routes describe it. Built from an app that is never started, so it
 * needs no Redis or Docker: the committed openapi/openapi.json is this, and a test fails when they
 * drift apart.
 */
export async function generateOpenApi(): Promise<string> {
  const deps = {
    runs: {},
    blobs: {},
    heartbeatMs: 15_000,
    maxBodyBytes: 1024 * 1024,
    maxJsonDepth: 64,
    maxHeaderBytes: 16 * 1024,
    defaults: {
      agent: 'claude-code',
      timeoutSec: 1200,
      maxTimeoutSec: 3600,
      timeoutHintSec: 1200,
      sandbox: { cpus: 1, memoryBytes: 1, pids: 1, diskBytes: 1, maxDiskBytes: 1 },
      egress: { mode: 'none', allow: [] },
    },
    tenancy: {},
    adminToken: undefined,
    uploads: { limits: { maxFileBytes: 1, maxFiles: 1 } },
    tasks: {},
    serverProviderKeys: {},
    simulatedProvider: true,
    upstreamUrl: () => '',
    readiness: async () => ({}),
  } as unknown as AppDeps;
  const app = await buildApp(deps);
  await app.ready();
  const doc = app.swagger();
  await app.close();
  return `${JSON.stringify(doc, null, 2)}\n`;
}
