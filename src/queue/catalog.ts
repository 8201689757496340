import { z } from 'zod';
import { egressPolicySchema } from '../egress/policy.js';
import { DEFAULT_SNAPSHOT, snapshotByName } from '../environments/snapshots.js';
import { evaluationSpecSchema, judgeSpecSchema, thresholdSchema } from '../evaluation/types.js';
import { AGENT_NAMES, type AgentName } from '../events/types.js';
import { mcpServerSchema } from '../runtimes/mcp.js';
import { PROVIDER_NAMES, type ProviderName } from '../runtimes/types.js';

/**
 * The job catalog: the only place job shapes live. A payload is validated when it is enqueued and
 * again when a worker takes it (a worker of another version may be reading the queue).
 */

/** SANDBOX_DISK's default: the writable space of one sandbox, all its mounts together. */
export const DEFAULT_SANDBOX_DISK_BYTES = 1024 ** 3;

/**
 * A secret the runbook declared: the variable read from the collection and set in the sandbox. One
 * with `provider` is a provider key the runbook's scripts use: the sandbox gets a per-run gateway
 * token in that variable (and the provider's base-URL variable), never the key.
 */
export const runSecretSchema = z.object({
  name: z.string(),
  env: z.string(),
  required: z.boolean(),
  provider: z.enum(PROVIDER_NAMES as [ProviderName, ...ProviderName[]]).optional(),
});
export type RunSecret = z.infer<typeof runSecretSchema>;

/** An input file for the sandbox: an upload or an earlier run's artifact of the same collection. */
export const runAssetSchema = z.object({
  kind: z.enum(['upload', 'artifact']),
  /** The upload id or the run id. */
  id: z.string().regex(/^[A-Za-z0-9_-]+$/),
  relPath: z.string().min(1),
  /** Where it appears in the sandbox (under /app/assets). */
  path: z.string().startsWith('/app/assets/'),
});
export type RunAsset = z.infer<typeof runAssetSchema>;

export const runJobSchema = z.object({
  runId: z.string().min(1),
  /** Whose run it is: provider keys and secrets come from this collection. */
  collection: z.string().min(1),
  agent: z.enum(AGENT_NAMES as [AgentName, ...AgentName[]]),
  model: z.string().min(1),
  provider: z.enum(PROVIDER_NAMES as [ProviderName, ...ProviderName[]]),
  /** The templated runbook, as the agent sees it. */
  runbook: z.string(),
  /** The user's messages after the system one, joined. */
  instruction: z.string(),
  resultsDir: z.string().startsWith('/'),
  requiredOutputs: z.array(z.string()),
  /** Headline deliverables (absolute), in the runbook's order. */
  primaryOutputs: z.array(z.string()).default([]),
  /** Declared secrets: names only; the worker reads the values when the run starts. */
  secrets: z.array(runSecretSchema).default([]),
  /**
   * This run's own secret values (the /api/v1 `secret_params`), encrypted with the master key and
   * bound to the run id: a job in Redis never holds a secret in the clear.
   */
  secretParams: z.string().optional(),
  /** Input files put into the sandbox before the agent starts. */
  assets: z.array(runAssetSchema).default([]),
  timeoutSec: z.number().int().positive(),
  limits: z.object({
    cpus: z.number().positive(),
    memoryBytes: z.number().int().positive(),
    pids: z.number().int(),
    /** Jobs queued before the disk limit existed get the default. */
    diskBytes: z.number().int().positive().default(DEFAULT_SANDBOX_DISK_BYTES),
  }),
  /**
   * Which hosts the run may reach through the egress proxy, resolved at the pre-flight from the
   * operator's, the collection's and the runbook's policies. Jobs of older servers get none.
   */
  egress: egressPolicySchema.default({ mode: 'none', allow: [] }),
  /**
   * The run's environment: a snapshot's image, or the image the run named itself (snapshot null).
   * Jobs queued before environments existed get the lean default.
   */
  environment: z
    .object({ snapshot: z.string().nullable(), image: z.string().min(1) })
    .default({ snapshot: DEFAULT_SNAPSHOT, image: snapshotByName(DEFAULT_SNAPSHOT)!.image }),
  /** Commands the runbook calls (src/environments/commands.ts), for the environment check. */
  commands: z.array(z.string()).default([]),
  /**
   * What the run may spend, enforced at the gateway: USD at list prices, and input + output
   * tokens; null: no cap of that kind. Absent in jobs queued by older servers.
   */
  budget: z
    .object({
      maxCostUsd: z.number().positive().nullable(),
      maxTokens: z.number().int().positive().nullable(),
    })
    .default({ maxCostUsd: null, maxTokens: null }),
  /** Normalized MCP servers (src/runtimes/mcp.ts); absent in jobs queued by older servers. */
  mcpServers: z.array(mcpServerSchema).default([]),
  /** How the run is scored when the agent ends (src/evaluation); null: the runbook declares no evaluation. */
  evaluation: evaluationSpecSchema.nullable().default(null),
  /** Labels the run is created with (an experiment's id and variant). */
  labels: z.record(z.string(), z.string()).default({}),
});

export type RunJob = z.infer<typeof runJobSchema>;

/**
 * One webhook delivery: where to POST the end of a run and the secret that signs it. The secret
 * lives only here, in the job, never in the run record, its events or its trajectory.
 */
export const webhookJobSchema = z.object({
  runId: z.string().min(1),
  url: z.url({ protocol: /^https?$/ }),
  secret: z.string().min(1).optional(),
});

export type WebhookJob = z.infer<typeof webhookJobSchema>;

/**
 * A re-grade of an ended run from its stored files: optionally with another judge or threshold
 * (checked by the API, so the worker only follows them). `number` is the evaluation it makes.
 */
export const evaluateJobSchema = z.object({
  runId: z.string().min(1),
  number: z.number().int().positive(),
  judge: judgeSpecSchema.nullable().default(null),
  threshold: thresholdSchema.nullable().default(null),
});

export type EvaluateJob = z.infer<typeof evaluateJobSchema>;

/** The delivery job's id: one per run, so a repeated enqueue is a no-op. */
export function webhookJobId(runId: string): string {
  return `webhook-${runId}`;
}

export const JOBS = {
  run: {
    name: 'run',
    schema: runJobSchema,
    // Retries are for infrastructure hiccups only (Docker, Redis); bad input is never retried.
    attempts: 3,
    backoff: { type: 'exponential' as const, delay: 2000 },
  },
  webhook: {
    name: 'webhook',
    schema: webhookJobSchema,
    // 5, 10, 20, 40 and 80 s between the six tries: a receiver has about 2.5 minutes to come back.
    // WEBHOOK_ATTEMPTS and WEBHOOK_BACKOFF_MS override these.
    attempts: 6,
    backoff: { type: 'exponential' as const, delay: 5000 },
    /** Each POST gets this long for its answer (WEBHOOK_TIMEOUT_MS). */
    timeoutMs: 10_000,
  },
  evaluate: {
    name: 'evaluate',
    schema: evaluateJobSchema,
    // A re-grade that failed on infrastructure is asked for again by its user; its job id is per evaluation.
    attempts: 2,
    backoff: { type: 'exponential' as const, delay: 2000 },
  },
} as const;
