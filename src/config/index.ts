import { z } from 'zod';
import { DEFAULT_EGRESS_LIMITS, type EgressLimits, parsePorts } from '../egress/limits.js';
import { parsePatterns } from '../egress/patterns.js';
import { EGRESS_MODES, type EgressPolicy } from '../egress/policy.js';
import { DEFAULT_SNAPSHOT, SNAPSHOT_NAMES } from '../environments/snapshots.js';
import { JUDGE_PROVIDERS } from '../evaluation/types.js';
import { DEFAULT_RUN_LIMITS, type RunLimits } from '../events/limits.js';
import { DEFAULT_MAX_FOLLOWERS } from '../events/stream-store.js';
import { AGENT_NAMES, type AgentName } from '../events/types.js';
import { type AllowEntry, parseAllowList } from '../net/address-policy.js';
import { type RealProvider, UPSTREAMS } from '../providers/upstreams.js';
import { DEFAULT_SANDBOX_DISK_BYTES, JOBS } from '../queue/catalog.js';
import type { ProviderName } from '../runtimes/types.js';
import { type BlobStoreConfig, blobStoreConfig, blobStoreSchema } from './blob-store.js';
import { int } from './fields.js';

/**
 * Server configuration, parsed once at start-up from environment variables. A bad value stops the
 * process with a message naming the variable and the accepted form. Only src/main calls this.
 */

// Env flags: "false" must mean false (z.coerce.boolean() would make it true).
const flag = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'], {
      error: 'must be one of true, false, 1, 0, yes, no',
    })
    .default(def ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1' || v === 'yes');

const bytes = (def: string, range?: { min: string; max: string }) =>
  z
    .string()
    .default(def)
    .transform((v, ctx) => {
      const n = parseBytes(v);
      if (n === null) {
        ctx.addIssue({ code: 'custom', message: `must be a size like 512m, 2g or 1048576; got "${v}"` });
        return z.NEVER;
      }
      if (range && (n < parseBytes(range.min)! || n > parseBytes(range.max)!)) {
        ctx.addIssue({
          code: 'custom',
          message: `must be a size from ${range.min} to ${range.max}; got "${v}"`,
        });
        return z.NEVER;
      }
      return n;
    });

/** A positive number of US dollars (cents and below allowed). */
const dollars = (def: number) =>
  z
    .string()
    .default(String(def))
    .transform((v, ctx) => {
      const n = Number(v);
      if (!(Number.isFinite(n) && n > 0 && n <= 1_000_000)) {
        ctx.addIssue({
          code: 'custom',
          message: `must be a dollar amount above 0 and at most 1000000, like 25 or 0.50; got "${v}"`,
        });
        return z.NEVER;
      }
      return n;
    });

const url = (def: string) => z.url({ error: 'must be a URL such as https://host:port' }).default(def);
const optionalSecret = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v === '' ? undefined : v));

/** Runtimes whose CLI starts measurably sooner when it is already waiting (docs/performance.md). */
export const DEFAULT_WARM_RUNTIMES: readonly AgentName[] = ['claude-code'];

const envSchema = z.object({
  HOST: z.string().default('127.0.0.1'),
  PORT: int(8080, 0, 65535),
  LISTEN_BACKLOG: int(4096, 1, 65535),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  REDIS_URL: z
    .string()
    .default('redis://127.0.0.1:6379')
    .refine((v) => /^rediss?:\/\//.test(v), 'must start with redis:// or rediss://'),
  JETTY_KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/, 'may hold only letters, digits, _ . -')
    .default('jetty'),
  DATA_DIR: z.string().default('./data'),
  INSTANCE_NAME: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/, 'may hold only letters, digits, _ . -')
    .optional(),
  GATEWAY_SOCKET_DIR: z.string().optional(),
  WORKER_CONCURRENCY: int(2, 1, 64),
  WORKER_LOCK_MS: int(30_000, 1_000, 600_000),
  WORKER_HTTP_HOST: z.string().default('127.0.0.1'),
  WORKER_HTTP_PORT: int(8081, 0, 65535),
  SANDBOX_SWEEP_MS: int(5_000, 500, 600_000),
  RETENTION_SEC: int(7 * 24 * 3600, 60, 365 * 24 * 3600),
  MAX_BODY_BYTES: bytes('2m'),
  MAX_JSON_DEPTH: int(64, 2, 1000),
  MAX_HEADER_BYTES: bytes('16k').refine((n) => n >= 1024 && n <= 1024 ** 2, 'must be from 1k to 1m'),
  DEFAULT_AGENT: z.enum(AGENT_NAMES as [AgentName, ...AgentName[]]).default('claude-code'),
  // Warm sandboxes (docs/performance.md): per runtime and environment; 0 (size or memory) disables.
  WARM_POOL_SIZE: int(2, 0, 64),
  WARM_POOL_MEMORY: bytes('4g'),
  WARM_POOL_IDLE_SEC: int(600, 0, 7 * 24 * 3600),
  WARM_POOL_RUNTIMES: z
    .string()
    .default(DEFAULT_WARM_RUNTIMES.join(','))
    .transform((v, ctx) => {
      const names = v
        .split(',')
        .map((n) => n.trim())
        .filter((n) => n !== '' && n !== 'none');
      const bad = names.filter((n) => !AGENT_NAMES.includes(n as AgentName));
      if (bad.length > 0) {
        ctx.addIssue({
          code: 'custom',
          message: `must be runtimes separated by commas, from ${AGENT_NAMES.join(', ')} (or none); got "${bad.join(', ')}"`,
        });
        return z.NEVER;
      }
      return names as AgentName[];
    }),
  RUN_TIMEOUT_SEC: int(1200, 5, 24 * 3600),
  RUN_MAX_TIMEOUT_SEC: int(3600, 5, 24 * 3600),
  TIMEOUT_HINT_SEC: int(1200, 0, 24 * 3600),
  RUN_MAX_COST_USD: dollars(25),
  RUN_MAX_TOKENS: int(20_000_000, 1, 1_000_000_000_000),
  SANDBOX_CPUS: z
    .string()
    .default('1')
    .transform((v, ctx) => {
      const n = Number(v);
      if (!(n > 0 && n <= 64)) {
        ctx.addIssue({ code: 'custom', message: `must be a number of CPUs from 0.1 to 64; got "${v}"` });
        return z.NEVER;
      }
      return n;
    }),
  SANDBOX_MEMORY: bytes('2g'),
  SANDBOX_MAX_CPUS: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return undefined;
      const n = Number(v);
      if (!(n > 0 && n <= 256)) {
        ctx.addIssue({ code: 'custom', message: `must be a number of CPUs from 0.1 to 256; got "${v}"` });
        return z.NEVER;
      }
      return n;
    }),
  SANDBOX_MAX_MEMORY: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return undefined;
      const n = parseBytes(v);
      if (n === null) {
        ctx.addIssue({ code: 'custom', message: `must be a size like 512m, 8g or 1048576; got "${v}"` });
        return z.NEVER;
      }
      return n;
    }),
  SANDBOX_PIDS: int(512, 16, 65536),
  SANDBOX_DISK: bytes(String(DEFAULT_SANDBOX_DISK_BYTES)),
  SANDBOX_MAX_DISK: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return undefined;
      const n = parseBytes(v);
      if (n === null) {
        ctx.addIssue({ code: 'custom', message: `must be a size like 512m, 2g or 1048576; got "${v}"` });
        return z.NEVER;
      }
      return n;
    }),
  ARTIFACT_MAX_FILES: int(1000, 1, 1_000_000),
  ARTIFACT_MAX_BYTES: bytes('512m'),
  ARTIFACT_MAX_FILE_BYTES: bytes('256m'),
  // Conversations (docs/conversations.md): what a turn keeps for the next one, and how much of the
  // earlier turns a runtime that cannot resume is told again. 0 bytes keeps nothing.
  CONVERSATION_STATE_MAX_BYTES: bytes('64m', { min: '0', max: '4g' }),
  CONVERSATION_STATE_MAX_FILES: int(5000, 0, 1_000_000),
  CONVERSATION_HISTORY_MAX_BYTES: bytes('32k', { min: '1k', max: '16m' }),
  CONVERSATION_MAX_TURNS: int(100, 1, 10_000),
  // Gone: sandboxes are always --network none now. Refused when set to true, naming what replaced it.
  SANDBOX_ALLOW_NETWORK: flag(false).refine(
    (v) => !v,
    'is no longer supported: a sandbox never gets a network of its own; it reaches hosts through the audited egress proxy. Set EGRESS_POLICY=open (or allowlist with EGRESS_ALLOW) instead, and remove SANDBOX_ALLOW_NETWORK',
  ),
  EGRESS_POLICY: z.enum(EGRESS_MODES, { error: `must be one of ${EGRESS_MODES.join(', ')}` }).default('none'),
  EGRESS_ALLOW: z
    .string()
    .default('')
    .transform((v, ctx) => {
      const parsed = parsePatterns(v.split(/[\s,]+/).filter(Boolean));
      if ('error' in parsed) {
        ctx.addIssue({ code: 'custom', message: parsed.error });
        return z.NEVER;
      }
      return parsed.patterns;
    }),
  EGRESS_PORTS: z
    .string()
    .default('80,443')
    .transform((v, ctx) => {
      const parsed = parsePorts(v);
      if ('error' in parsed) {
        ctx.addIssue({ code: 'custom', message: parsed.error });
        return z.NEVER;
      }
      return parsed.ports;
    }),
  EGRESS_MAX_CONNECTIONS: int(DEFAULT_EGRESS_LIMITS.maxConnections, 1, 1_000_000),
  EGRESS_MAX_CONCURRENT: int(DEFAULT_EGRESS_LIMITS.maxConcurrent, 1, 4096),
  EGRESS_IDLE_TIMEOUT_MS: int(DEFAULT_EGRESS_LIMITS.idleTimeoutMs, 1_000, 3_600_000),
  EGRESS_CONNECT_TIMEOUT_MS: int(DEFAULT_EGRESS_LIMITS.connectTimeoutMs, 100, 120_000),
  EGRESS_MAX_BYTES: bytes(String(DEFAULT_EGRESS_LIMITS.maxBytes), { min: '1m', max: '1024g' }),
  SANDBOX_SNAPSHOTS: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return undefined;
      const names = v
        .split(',')
        .map((n) => n.trim())
        .filter(Boolean);
      const unknown = names.filter((n) => !SNAPSHOT_NAMES.includes(n));
      if (unknown.length > 0) {
        ctx.addIssue({
          code: 'custom',
          message: `unknown snapshot ${unknown.join(', ')}; the snapshots are ${SNAPSHOT_NAMES.join(', ')}`,
        });
        return z.NEVER;
      }
      return names;
    }),
  SANDBOX_ALLOW_CUSTOM_IMAGES: flag(true),
  ENVIRONMENT_PROBE_TTL_SEC: int(7 * 24 * 3600, 60, 365 * 24 * 3600),
  ENVIRONMENT_PROBE_MAX_BYTES: bytes('1m', { min: '4k', max: '64m' }),
  ENVIRONMENT_SURVEY: flag(true),
  SIMULATED_PROVIDER: flag(true),
  HEARTBEAT_MS: int(15_000, 100, 60_000),
  // Event-stream clients one API process serves at once (SSE followers and waiting requests).
  API_MAX_FOLLOWERS: int(DEFAULT_MAX_FOLLOWERS, 1, 1_000_000),
  WEBHOOK_CONCURRENCY: int(8, 1, 256),
  WEBHOOK_ATTEMPTS: int(JOBS.webhook.attempts, 1, 50),
  WEBHOOK_BACKOFF_MS: int(JOBS.webhook.backoff.delay, 10, 3_600_000),
  WEBHOOK_TIMEOUT_MS: int(JOBS.webhook.timeoutMs, 100, 120_000),
  WEBHOOK_MAX_REDIRECTS: int(3, 0, 10),
  NETWORK_ALLOW_PRIVATE: z
    .string()
    .default('')
    .transform((v, ctx) => {
      const parsed = parseAllowList(v);
      if ('error' in parsed) {
        ctx.addIssue({ code: 'custom', message: parsed.error });
        return z.NEVER;
      }
      return parsed.entries;
    }),
  JETTY_MASTER_KEY: optionalSecret,
  JETTY_BOOTSTRAP_COLLECTION: z
    .string()
    .optional()
    .transform((v) => (v === '' ? undefined : v)),
  JETTY_BOOTSTRAP_API_KEY: optionalSecret,
  JETTY_ADMIN_TOKEN: optionalSecret.refine(
    (v) => v === undefined || v.length >= 32,
    'must be at least 32 characters (openssl rand -hex 32 makes one)',
  ),
  /** Edges (docs/operations.md): browsers' origins, requests per key, /metrics, the dashboard. */
  CORS_ORIGINS: z
    .string()
    .default('')
    .transform((v, ctx) => {
      const parsed = parseOrigins(v);
      if ('error' in parsed) {
        ctx.addIssue({ code: 'custom', message: parsed.error });
        return z.NEVER;
      }
      return parsed.origins;
    }),
  RATE_LIMIT_MAX: int(600, 0, 1_000_000),
  RATE_LIMIT_WINDOW_SEC: int(60, 1, 24 * 3600),
  METRICS_TOKEN: optionalSecret.refine(
    (v) => v === undefined || v.length >= 16,
    'must be at least 16 characters (openssl rand -hex 32 makes one)',
  ),
  ADMIN_SESSION_TTL_SEC: int(8 * 3600, 60, 7 * 24 * 3600),
  REDIS_STARTUP_WAIT_SEC: int(60, 0, 3600),
  MAX_UPLOAD_BYTES: bytes('25m'),
  MAX_UPLOAD_FILES: int(20, 1, 1000),
  /** The web page at /ui: the largest artifact it previews inline, and the timeline entries it keeps. */
  UI_PREVIEW_MAX_BYTES: bytes('2m'),
  UI_MAX_TIMELINE_EVENTS: int(5000, 100, 1_000_000),
  // Per-run output limits (src/events/limits.ts says why each default).
  RUN_MAX_LINE_BYTES: bytes(String(DEFAULT_RUN_LIMITS.maxLineBytes), { min: '64k', max: '256m' }),
  RUN_MAX_EVENT_TEXT_BYTES: bytes(String(DEFAULT_RUN_LIMITS.maxEventTextBytes), { min: '1k', max: '64m' }),
  RUN_MAX_MESSAGE_BYTES: bytes(String(DEFAULT_RUN_LIMITS.maxMessageBytes), { min: '1k', max: '64m' }),
  RUN_MAX_EVENTS: int(DEFAULT_RUN_LIMITS.maxEvents, 100, 10_000_000),
  RUN_MAX_STREAM_BYTES: bytes(String(DEFAULT_RUN_LIMITS.maxStreamBytes), { min: '64k', max: '4g' }),
  // Evaluation (docs/evaluation.md): the verification script, the agent's report, the judge.
  EVALUATION_SCRIPT_TIMEOUT_SEC: int(60, 1, 3600),
  EVALUATION_MAX_OUTPUT_BYTES: bytes('16k', { min: '1k', max: '16m' }),
  EVALUATION_MAX_REPORT_BYTES: bytes('1m', { min: '1k', max: '64m' }),
  EVALUATION_MAX_HISTORY: int(20, 2, 1000),
  JUDGE_MODEL: z
    .string()
    .trim()
    .min(1, 'must be a model slug such as claude-sonnet-4-6')
    .default('claude-sonnet-4-6'),
  JUDGE_PROVIDER: z
    .enum(JUDGE_PROVIDERS as [ProviderName, ...ProviderName[]], {
      error: `must be one of ${JUDGE_PROVIDERS.join(', ')} (or unset: the judge model's own provider)`,
    })
    .optional()
    .or(z.literal('').transform(() => undefined)),
  JUDGE_TIMEOUT_SEC: int(120, 5, 3600),
  JUDGE_MAX_INPUT_BYTES: bytes('200k', { min: '1k', max: '16m' }),
  REGRADE_WAIT_SEC: int(60, 0, 600),
  EXPERIMENT_MAX_RUNS: int(60, 1, 10_000),
  EXPERIMENT_MAX_VARIANTS: int(10, 1, 100),
});

// Provider keys and upstream URLs, one pair per provider (src/providers/upstreams.ts names them).
const providerEnvSchema = z.object(
  Object.fromEntries(
    Object.values(UPSTREAMS).flatMap((u) => [
      ...u.keyEnv.map((k) => [k, optionalSecret] as const),
      [u.urlEnv, url(u.defaultUrl)] as const,
    ]),
  ),
);

export type RawEnv = z.input<typeof envSchema>;

/** Every environment variable loadConfig reads: docs/configuration.md has a row for each (a test checks). */
export function configVariableNames(): string[] {
  return [
    ...Object.keys(envSchema.shape),
    ...Object.keys(providerEnvSchema.shape),
    ...Object.keys(blobStoreSchema(() => null).shape),
  ];
}

export interface Config {
  host: string;
  /** Connections the kernel queues for the API before it accepts them (LISTEN_BACKLOG). */
  listenBacklog: number;
  port: number;
  logLevel: string;
  redisUrl: string;
  keyPrefix: string;
  dataDir: string;
  instance: string;
  gatewaySocketDir: string;
  workerConcurrency: number;
  /** Warm sandboxes per runtime and environment; size or memoryBytes 0: none. */
  warmPool: { size: number; memoryBytes: number; idleSec: number; runtimes: AgentName[] };
  /** How long a worker's hold on a job lasts without renewal: a dead worker's run is picked up after it. */
  workerLockMs: number;
  /**
   * The small HTTP listener of a worker-only process (/healthz, /readyz); port 0: none. An `all`
   * process answers both on its API port instead.
   */
  workerHttp: { host: string; port: number };
  /**
   * How often a worker looks for sandboxes of this deployment whose run no worker holds any more
   * (its worker died) and stops them.
   */
  sandboxSweepMs: number;
  retentionSec: number;
  maxBodyBytes: number;
  /** How deep a JSON body (or JSON form field) may nest its objects and arrays. */
  maxJsonDepth: number;
  /** Bytes of request headers (all of them) the HTTP server reads at most. */
  maxHeaderBytes: number;
  defaultAgent: AgentName;
  runTimeoutSec: number;
  runMaxTimeoutSec: number;
  timeoutHintSec: number;
  /**
   * Sandbox limits. diskBytes is every run's writable space unless it asks for up to
   * maxDiskBytes (jetty.disk); it lives in memory and counts against memoryBytes.
   */
  sandbox: {
    cpus: number;
    memoryBytes: number;
    pids: number;
    diskBytes: number;
    maxDiskBytes: number;
    /** What a run may ask for with `cpus` and `memory` (SANDBOX_MAX_CPUS, SANDBOX_MAX_MEMORY). */
    maxCpus: number;
    maxMemoryBytes: number;
    /** The snapshots this server serves (SANDBOX_SNAPSHOTS); lean, the default, always. */
    snapshots: string[];
    /** Whether a run may name its own image (SANDBOX_ALLOW_CUSTOM_IMAGES). */
    allowCustomImages: boolean;
  };
  /** How long a worker trusts what it learnt of an environment image (ENVIRONMENT_PROBE_TTL_SEC). */
  environmentProbeTtlSec: number;
  /** Bytes of a probe's output read at most (ENVIRONMENT_PROBE_MAX_BYTES); past it the command list is partial. */
  environmentProbeMaxBytes: number;
  /** Whether a starting worker probes every runtime on every snapshot once (ENVIRONMENT_SURVEY). */
  environmentSurvey: boolean;
  /**
   * The egress proxy: the operator's policy (every collection's default and ceiling) and the bounds
   * on each run's connections.
   */
  egress: { policy: EgressPolicy; limits: EgressLimits };
  /** What a run's results_dir may give back: files, bytes in all, bytes per file. */
  artifacts: { maxFiles: number; maxBytes: number; maxFileBytes: number };
  /**
   * Conversations: what a turn keeps of its sandbox (/app and the CLI's session) for the next turn
   * (maxBytes 0: nothing), the summary of earlier turns given to a runtime that cannot resume, and
   * the turns one conversation may have.
   */
  conversations: { stateMaxBytes: number; stateMaxFiles: number; historyMaxBytes: number; maxTurns: number };
  /**
   * The operator's maximum budget of one run (RUN_MAX_COST_USD, RUN_MAX_TOKENS), which is also
   * the budget of a run that sets none and whose collection has no default.
   */
  budget: { maxCostUsd: number; maxTokens: number };
  simulatedProvider: boolean;
  heartbeatMs: number;
  /** Event-stream followers one process holds at once; one more gets a 503 (too_many_followers). */
  maxFollowers: number;
  /**
   * Webhook deliveries: how many at once per worker process, tries per delivery, the first backoff
   * (it doubles), each POST's time limit.
   */
  webhooks: {
    concurrency: number;
    attempts: number;
    backoffMs: number;
    timeoutMs: number;
    maxRedirects: number;
  };
  /**
   * Private, loopback and link-local addresses (or host names) that webhooks and the egress proxy
   * may reach anyway; every other such address is refused after DNS resolution.
   */
  network: { allowPrivate: AllowEntry[] };
  /** The key that encrypts collections' environments; undefined: kept in DATA_DIR/master.key. */
  masterKey: string | undefined;
  /** The collection (and optionally its key) made sure of at start-up. */
  bootstrap: { collection: string; apiKey: string | undefined } | undefined;
  /** The operator's token for creating collections over HTTP; undefined: only the CLI can. */
  adminToken: string | undefined;
  /**
   * Origins whose pages may call the API from a browser (CORS); empty: none, no CORS headers.
   * `*` allows every origin (keys are sent as headers, never cookies, so no credentials mode).
   */
  corsOrigins: string[];
  /** Requests per API key (or per address, without a key) per window; max 0: no limit. */
  rateLimit: { max: number; windowSec: number };
  /** A bearer token /metrics asks for; undefined: /metrics is open (it holds no tenant data). */
  metricsToken: string | undefined;
  /** How long a queue-dashboard sign-in (its HttpOnly cookie) lasts. */
  adminSessionTtlSec: number;
  /** How long a starting process waits for Redis to answer before it gives up naming REDIS_URL. */
  redisStartupWaitSec: number;
  /** Uploads: bytes per file and files per request. */
  uploads: { maxFileBytes: number; maxFiles: number };
  ui: { previewMaxBytes: number; maxTimelineEvents: number };
  /** What bounds each run's output: line length, event text, events and bytes per run. */
  runLimits: RunLimits;
  /**
   * Provider keys from server configuration: every collection without its own key for a provider
   * uses these. On a server shared by several teams, leave them unset.
   */
  providerKeys: Partial<Record<RealProvider, string>>;
  /** Base URL of each real provider. */
  upstreams: Record<RealProvider, string>;
  /** Where artifacts, trajectories and uploads live (BLOB_STORE; src/config/blob-store.ts). */
  blobs: BlobStoreConfig;
  /** How runs are scored (EVALUATION_*, JUDGE_*): bounds, the default judge, re-grade waits. */
  evaluation: {
    scriptTimeoutMs: number;
    maxOutputBytes: number;
    maxReportBytes: number;
    maxHistory: number;
    judgeTimeoutMs: number;
    judgeMaxInputBytes: number;
    judge: { model: string; provider: ProviderName | undefined };
    regradeWaitSec: number;
  };
  /** A/B experiments: runs (variants × repeats) and variants one may have at most. */
  experiments: { maxRuns: number; maxVariants: number };
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: Record<string, string | undefined>, hostname = 'local'): Config {
  const parsed = envSchema.safeParse(env);
  const providers = providerEnvSchema.safeParse(env);
  const blobEnv = blobStoreSchema(parseBytes).safeParse(env);
  const issues = [
    ...(parsed.error?.issues ?? []),
    ...(providers.error?.issues ?? []),
    ...(blobEnv.error?.issues ?? []),
  ];
  if (!parsed.success || !providers.success || !blobEnv.success) {
    const lines = issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const blobs = blobStoreConfig(blobEnv.data);
  if ('errors' in blobs) {
    throw new ConfigError(`invalid configuration:\n${blobs.errors.map((l) => `  ${l}`).join('\n')}`);
  }
  const e = parsed.data;
  const pe = providers.data as Record<string, string | undefined>;
  const providerKeys: Partial<Record<RealProvider, string>> = {};
  const upstreams = {} as Record<RealProvider, string>;
  for (const [name, u] of Object.entries(UPSTREAMS) as [RealProvider, (typeof UPSTREAMS)[RealProvider]][]) {
    const key = u.keyEnv.map((k) => pe[k]).find((v) => v !== undefined);
    if (key !== undefined) providerKeys[name] = key;
    upstreams[name] = (pe[u.urlEnv] ?? u.defaultUrl).replace(/\/+$/, '');
  }
  if (e.RUN_TIMEOUT_SEC > e.RUN_MAX_TIMEOUT_SEC) {
    throw new ConfigError(
      `invalid configuration:\n  RUN_TIMEOUT_SEC: must not exceed RUN_MAX_TIMEOUT_SEC (${e.RUN_MAX_TIMEOUT_SEC})`,
    );
  }
  if (e.JETTY_BOOTSTRAP_API_KEY !== undefined && e.JETTY_BOOTSTRAP_COLLECTION === undefined) {
    throw new ConfigError(
      'invalid configuration:\n  JETTY_BOOTSTRAP_API_KEY: needs JETTY_BOOTSTRAP_COLLECTION, the collection the key opens',
    );
  }
  const disk = checkDisk(e);
  const dataDir = e.DATA_DIR;
  return {
    host: e.HOST,
    port: e.PORT,
    listenBacklog: e.LISTEN_BACKLOG,
    logLevel: e.LOG_LEVEL,
    redisUrl: e.REDIS_URL,
    keyPrefix: e.JETTY_KEY_PREFIX,
    dataDir,
    instance: e.INSTANCE_NAME ?? hostname.replace(/[^A-Za-z0-9_.-]/g, '-'),
    gatewaySocketDir: e.GATEWAY_SOCKET_DIR ?? `${dataDir}/gateway`,
    workerConcurrency: e.WORKER_CONCURRENCY,
    warmPool: {
      size: e.WARM_POOL_SIZE,
      memoryBytes: e.WARM_POOL_MEMORY,
      idleSec: e.WARM_POOL_IDLE_SEC,
      runtimes: e.WARM_POOL_RUNTIMES,
    },
    workerLockMs: e.WORKER_LOCK_MS,
    workerHttp: { host: e.WORKER_HTTP_HOST, port: e.WORKER_HTTP_PORT },
    sandboxSweepMs: e.SANDBOX_SWEEP_MS,
    retentionSec: e.RETENTION_SEC,
    maxBodyBytes: e.MAX_BODY_BYTES,
    maxJsonDepth: e.MAX_JSON_DEPTH,
    maxHeaderBytes: e.MAX_HEADER_BYTES,
    defaultAgent: e.DEFAULT_AGENT,
    runTimeoutSec: e.RUN_TIMEOUT_SEC,
    runMaxTimeoutSec: e.RUN_MAX_TIMEOUT_SEC,
    timeoutHintSec: e.TIMEOUT_HINT_SEC,
    sandbox: {
      cpus: e.SANDBOX_CPUS,
      memoryBytes: e.SANDBOX_MEMORY,
      pids: e.SANDBOX_PIDS,
      diskBytes: disk.diskBytes,
      maxDiskBytes: disk.maxDiskBytes,
      maxCpus: e.SANDBOX_MAX_CPUS ?? e.SANDBOX_CPUS,
      maxMemoryBytes: disk.maxMemoryBytes,
      snapshots: servedSnapshots(e.SANDBOX_SNAPSHOTS),
      allowCustomImages: e.SANDBOX_ALLOW_CUSTOM_IMAGES,
    },
    environmentProbeTtlSec: e.ENVIRONMENT_PROBE_TTL_SEC,
    environmentProbeMaxBytes: e.ENVIRONMENT_PROBE_MAX_BYTES,
    environmentSurvey: e.ENVIRONMENT_SURVEY,
    egress: egressOf(e),
    budget: { maxCostUsd: e.RUN_MAX_COST_USD, maxTokens: e.RUN_MAX_TOKENS },
    artifacts: {
      maxFiles: e.ARTIFACT_MAX_FILES,
      maxBytes: e.ARTIFACT_MAX_BYTES,
      maxFileBytes: e.ARTIFACT_MAX_FILE_BYTES,
    },
    conversations: {
      stateMaxBytes: e.CONVERSATION_STATE_MAX_BYTES,
      stateMaxFiles: e.CONVERSATION_STATE_MAX_FILES,
      historyMaxBytes: e.CONVERSATION_HISTORY_MAX_BYTES,
      maxTurns: e.CONVERSATION_MAX_TURNS,
    },
    simulatedProvider: e.SIMULATED_PROVIDER,
    heartbeatMs: e.HEARTBEAT_MS,
    maxFollowers: e.API_MAX_FOLLOWERS,
    webhooks: {
      concurrency: e.WEBHOOK_CONCURRENCY,
      attempts: e.WEBHOOK_ATTEMPTS,
      backoffMs: e.WEBHOOK_BACKOFF_MS,
      timeoutMs: e.WEBHOOK_TIMEOUT_MS,
      maxRedirects: e.WEBHOOK_MAX_REDIRECTS,
    },
    network: { allowPrivate: e.NETWORK_ALLOW_PRIVATE },
    masterKey: e.JETTY_MASTER_KEY,
    bootstrap: e.JETTY_BOOTSTRAP_COLLECTION
      ? { collection: e.JETTY_BOOTSTRAP_COLLECTION, apiKey: e.JETTY_BOOTSTRAP_API_KEY }
      : undefined,
    adminToken: e.JETTY_ADMIN_TOKEN,
    corsOrigins: e.CORS_ORIGINS,
    rateLimit: { max: e.RATE_LIMIT_MAX, windowSec: e.RATE_LIMIT_WINDOW_SEC },
    metricsToken: e.METRICS_TOKEN,
    adminSessionTtlSec: e.ADMIN_SESSION_TTL_SEC,
    redisStartupWaitSec: e.REDIS_STARTUP_WAIT_SEC,
    uploads: { maxFileBytes: e.MAX_UPLOAD_BYTES, maxFiles: e.MAX_UPLOAD_FILES },
    ui: { previewMaxBytes: e.UI_PREVIEW_MAX_BYTES, maxTimelineEvents: e.UI_MAX_TIMELINE_EVENTS },
    runLimits: {
      maxLineBytes: e.RUN_MAX_LINE_BYTES,
      maxEventTextBytes: e.RUN_MAX_EVENT_TEXT_BYTES,
      maxMessageBytes: e.RUN_MAX_MESSAGE_BYTES,
      maxEvents: e.RUN_MAX_EVENTS,
      maxStreamBytes: e.RUN_MAX_STREAM_BYTES,
    },
    providerKeys,
    upstreams,
    blobs,
    evaluation: {
      scriptTimeoutMs: e.EVALUATION_SCRIPT_TIMEOUT_SEC * 1000,
      maxOutputBytes: e.EVALUATION_MAX_OUTPUT_BYTES,
      maxReportBytes: e.EVALUATION_MAX_REPORT_BYTES,
      maxHistory: e.EVALUATION_MAX_HISTORY,
      judgeTimeoutMs: e.JUDGE_TIMEOUT_SEC * 1000,
      judgeMaxInputBytes: e.JUDGE_MAX_INPUT_BYTES,
      judge: { model: e.JUDGE_MODEL, provider: e.JUDGE_PROVIDER },
      regradeWaitSec: e.REGRADE_WAIT_SEC,
    },
    experiments: { maxRuns: e.EXPERIMENT_MAX_RUNS, maxVariants: e.EXPERIMENT_MAX_VARIANTS },
  };
}

/** EGRESS_POLICY with EGRESS_ALLOW: a list only with `allowlist`, and never an empty one. */
function egressOf(e: z.output<typeof envSchema>): Config['egress'] {
  const fail = (line: string) => {
    throw new ConfigError(`invalid configuration:\n  ${line}`);
  };
  if (e.EGRESS_POLICY === 'allowlist' && e.EGRESS_ALLOW.length === 0) {
    fail(
      'EGRESS_ALLOW: EGRESS_POLICY=allowlist needs at least one host pattern, such as pypi.org,*.pythonhosted.org',
    );
  }
  if (e.EGRESS_POLICY !== 'allowlist' && e.EGRESS_ALLOW.length > 0) {
    fail(
      `EGRESS_ALLOW: is read only with EGRESS_POLICY=allowlist (it is ${e.EGRESS_POLICY}); set that, or remove EGRESS_ALLOW`,
    );
  }
  return {
    policy: { mode: e.EGRESS_POLICY, allow: e.EGRESS_POLICY === 'allowlist' ? e.EGRESS_ALLOW : [] },
    limits: {
      ports: e.EGRESS_PORTS,
      maxConnections: e.EGRESS_MAX_CONNECTIONS,
      maxConcurrent: e.EGRESS_MAX_CONCURRENT,
      idleTimeoutMs: e.EGRESS_IDLE_TIMEOUT_MS,
      connectTimeoutMs: e.EGRESS_CONNECT_TIMEOUT_MS,
      maxBytes: e.EGRESS_MAX_BYTES,
    },
  };
}

/** The smallest writable space a sandbox can run in (its smallest mount gets a sixteenth). */
export const MIN_SANDBOX_DISK = 64 * 1024 ** 2;

/**
 * The sandbox's writable space is tmpfs, charged to its memory: a limit past the memory limit
 * would end in the agent being killed for memory instead of a "disk full" it can handle.
 */
function checkDisk(e: z.output<typeof envSchema>): {
  diskBytes: number;
  maxDiskBytes: number;
  maxMemoryBytes: number;
} {
  const diskBytes = e.SANDBOX_DISK;
  const maxDiskBytes = e.SANDBOX_MAX_DISK ?? diskBytes;
  const maxMemoryBytes = e.SANDBOX_MAX_MEMORY ?? e.SANDBOX_MEMORY;
  const fail = (line: string) => {
    throw new ConfigError(`invalid configuration:\n  ${line}`);
  };
  if (diskBytes < MIN_SANDBOX_DISK) fail(`SANDBOX_DISK: must be at least 64m; got ${diskBytes} bytes`);
  if (maxDiskBytes < diskBytes) fail('SANDBOX_MAX_DISK: must not be below SANDBOX_DISK');
  if (maxMemoryBytes < e.SANDBOX_MEMORY) fail('SANDBOX_MAX_MEMORY: must not be below SANDBOX_MEMORY');
  if (e.SANDBOX_MAX_CPUS !== undefined && e.SANDBOX_MAX_CPUS < e.SANDBOX_CPUS) {
    fail('SANDBOX_MAX_CPUS: must not be below SANDBOX_CPUS');
  }
  if (diskBytes > e.SANDBOX_MEMORY) {
    fail(
      `SANDBOX_DISK: must not exceed SANDBOX_MEMORY (${e.SANDBOX_MEMORY} bytes): the sandbox's files live in memory and count against it; raise SANDBOX_MEMORY too`,
    );
  }
  if (maxDiskBytes > maxMemoryBytes) {
    fail(
      `SANDBOX_MAX_DISK: must not exceed SANDBOX_MAX_MEMORY (${maxMemoryBytes} bytes): the sandbox's files live in memory and count against it; raise SANDBOX_MAX_MEMORY too`,
    );
  }
  return { diskBytes, maxDiskBytes, maxMemoryBytes };
}

/** The served snapshots: those named (lean, the default, always among them), else all. */
function servedSnapshots(names: string[] | undefined): string[] {
  if (!names) return [...SNAPSHOT_NAMES];
  return SNAPSHOT_NAMES.filter((n) => n === DEFAULT_SNAPSHOT || names.includes(n));
}

export function parseBytes(v: string): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)b?$/i.exec(v.trim());
  if (!m) return null;
  const n = Number(m[1]);
  const unit = (m[2] ?? '').toLowerCase();
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  return Math.round(n * mult);
}

/**
 * CORS_ORIGINS: a comma-separated list of origins as browsers send them (`https://app.example`,
 * `http://localhost:3000`), or `*`. A path, a trailing slash or a wildcard inside a name would never
 * match a browser's Origin header, so they are refused here rather than ignored later.
 */
export function parseOrigins(v: string): { origins: string[] } | { error: string } {
  const items = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length > 100) return { error: `lists ${items.length} origins; at most 100` };
  for (const item of items) {
    if (item === '*') continue;
    let origin: string | undefined;
    try {
      origin = new URL(item).origin;
    } catch {
      origin = undefined;
    }
    if (origin !== item || item.includes('*')) {
      return {
        error: `"${item}" is not an origin: write scheme://host[:port] with no path or trailing slash, like https://app.example or http://localhost:3000, or * for any`,
      };
    }
  }
  return { origins: items.includes('*') ? ['*'] : items };
}
