import { z } from 'zod';
import { AGENT_NAMES, type AgentName } from '../events/types.js';
import { mcpServerSchema } from '../runtimes/mcp.js';
import { PROVIDER_NAMES, type ProviderName } from '../runtimes/types.js';

/**
 * The job catalog: the only place job shapes live. A payload is validated when it is enqueued and
 * again when a worker takes it (a worker of another version may be reading the queue).
 */
export const runJobSchema = z.object({
  runId: z.string().min(1),
  agent: z.enum(AGENT_NAMES as [AgentName, ...AgentName[]]),
  model: z.string().min(1),
  provider: z.enum(PROVIDER_NAMES as [ProviderName, ...ProviderName[]]),
  /** The templated runbook, as the agent sees it. */
  runbook: z.string(),
  /** The user's messages after the system one, joined. */
  instruction: z.string(),
  resultsDir: z.string().startsWith('/'),
  requiredOutputs: z.array(z.string()),
  timeoutSec: z.number().int().positive(),
  limits: z.object({
    cpus: z.number().positive(),
    memoryBytes: z.number().int().positive(),
    pids: z.number().int(),
  }),
  network: z.enum(['none', 'bridge']),
  /** Normalized MCP servers (src/runtimes/mcp.ts); absent in jobs queued by older servers. */
  mcpServers: z.array(mcpServerSchema).default([]),
});

export type RunJob = z.infer<typeof runJobSchema>;

export const JOBS = {
  run: {
    name: 'run',
    schema: runJobSchema,
    // Retries are for infrastructure hiccups only (Docker, Redis); bad input is never retried.
    attempts: 3,
    backoff: { type: 'exponential' as const, delay: 2000 },
  },
} as const;
