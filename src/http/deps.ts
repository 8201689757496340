import type { Logger } from 'pino';
import type { AgentName } from '../events/types.js';
import type { RealProvider } from '../providers/upstreams.js';
import type { RunService } from '../queue/run-service.js';
import type { ProviderName } from '../runtimes/types.js';
import type { BlobStore } from '../storage/blob-store.js';

/** What buildApp needs. Everything is passed in: the app reads no environment and opens nothing. */
export interface AppDeps {
  runs: RunService;
  blobs: BlobStore;
  logger?: Logger;
  heartbeatMs: number;
  maxBodyBytes: number;
  defaults: {
    agent: AgentName;
    timeoutSec: number;
    maxTimeoutSec: number;
    timeoutHintSec: number;
    sandbox: { cpus: number; memoryBytes: number; pids: number; allowNetwork: boolean };
  };
  /** Providers whose key this server holds (the simulated one counts when enabled). */
  providerAvailable: (provider: ProviderName) => boolean;
  /** The server's key for a provider, for passthrough calls the API makes itself. */
  providerKey: (provider: RealProvider) => string | undefined;
  /** A provider's base URL. */
  upstreamUrl: (provider: RealProvider) => string;
  /** Readiness of each dependency, for /readyz. */
  readiness: () => Promise<Record<string, boolean>>;
}
