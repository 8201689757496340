import { z } from 'zod';
import { LIMIT_HITS, type LimitHit } from '../events/limits.js';
import { AGENT_NAMES, type AgentName } from '../events/types.js';
import { MAX_MODEL_CHARS } from '../runbook/schema.js';
import { mcpServersSchema } from '../runtimes/mcp.js';
import { PROVIDER_NAMES, type ProviderName } from '../runtimes/types.js';

/** Route schemas: request validation and the OpenAPI document both come from these. */

const agentEnum = z.enum(AGENT_NAMES as [AgentName, ...AgentName[]], {
  error: `must be one of ${AGENT_NAMES.join(', ')}`,
});
const providerEnum = z.enum(PROVIDER_NAMES as [ProviderName, ...ProviderName[]], {
  error: `must be one of ${PROVIDER_NAMES.join(', ')}`,
});

const contentPart = z.looseObject({ type: z.string(), text: z.string().optional() });

export const chatMessageSchema = z.looseObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool'], {
    error: 'must be one of system, developer, user, assistant, tool',
  }),
  content: z
    .union([z.string(), z.array(contentPart)], { error: 'must be a string or an array of text parts' })
    .nullable(),
});

export const jettyBlockSchema = z
  .looseObject({
    runbook: z.boolean({ error: 'must be true to run the system message as a runbook' }).optional(),
    agent: agentEnum.optional(),
    model_provider: providerEnum.optional(),
    collection: z.string().max(128).optional(),
    task: z.string().max(128).optional(),
    template_variables: z
      .record(z.string(), z.unknown(), { error: 'must be an object of name → string' })
      .optional(),
    file_paths: z.array(z.string()).optional(),
    timeout_sec: z.number({ error: 'must be a number of seconds' }).int().positive().optional(),
    timeout_hint: z.number({ error: 'must be a number of seconds' }).int().min(0).optional(),
    max_cost_usd: z
      .number({ error: 'must be a dollar amount' })
      .positive({ error: 'must be above 0' })
      .optional()
      .describe(
        "The run's cost budget in USD (the gateway's token counts at list prices); past it, model calls are refused and the run fails with budget_exceeded. Default: the collection's default_max_cost_usd, else RUN_MAX_COST_USD",
      ),
    max_tokens: z
      .number({ error: 'must be a whole number of tokens' })
      .int({ error: 'must be a whole number of tokens' })
      .positive({ error: 'must be above 0' })
      .optional()
      .describe(
        "The run's token budget: input + output tokens of all its model calls, as the gateway measures them. Default: the collection's default_max_tokens, else RUN_MAX_TOKENS",
      ),
    network_enabled: z
      .boolean()
      .optional()
      .describe(
        "false: the run gets no network. true or absent: the collection's egress policy (narrowed by the runbook's network frontmatter). The sandbox is always --network none; allowed hosts are reached through the worker's audited egress proxy",
      ),
    judge_model: z
      .string({ error: 'must be a model slug' })
      .min(1)
      .max(MAX_MODEL_CHARS)
      .optional()
      .describe(
        "The model that scores a rubric runbook's outputs (never silently the agent's own). Default: the runbook's judge_model, else JUDGE_MODEL",
      ),
    judge_provider: providerEnum
      .optional()
      .describe(
        "The judge's provider. Default: the runbook's judge_provider, else JUDGE_PROVIDER, else the judge model's own",
      ),
    require_pass: z
      .boolean({ error: 'must be true or false' })
      .optional()
      .describe('true: a run whose evaluation does not pass ends `failed` with code evaluation_failed'),
    mcp_servers: mcpServersSchema.optional(),
    snapshot: z
      .string({ error: 'must be a snapshot name such as "python312-uv"' })
      .max(128)
      .optional()
      .describe(
        "The run's environment by name (GET /v1/snapshots lists them); default lean. Wins over the frontmatter's",
      ),
    image: z
      .string({ error: 'must be an image reference such as "acme/runner:1.2"' })
      .max(256)
      .optional()
      .describe(
        "The run's environment as an image on the worker's Docker engine (any glibc Linux image with /bin/sh); wins over snapshot",
      ),
    cpus: z
      .number()
      .positive()
      .optional()
      .describe("The sandbox's CPUs, e.g. 2; up to the server's SANDBOX_MAX_CPUS"),
    memory: z
      .union([z.string().max(32), z.number().int().positive()])
      .optional()
      .describe(
        'The sandbox\'s memory, e.g. "4g" (its files count against it); up to the server\'s SANDBOX_MAX_MEMORY',
      ),
    disk: z
      .union([z.string().max(32), z.number().int().positive()])
      .optional()
      .describe(
        'The sandbox\'s writable space (all of /app, /tmp, /home/agent, /var/tmp), e.g. "2g"; up to the server\'s SANDBOX_MAX_DISK',
      ),
    webhook_url: z
      .url({ protocol: /^https?$/, error: 'must be an http or https URL' })
      .max(2048, { error: 'must be at most 2048 characters' })
      .optional()
      .describe('An http or https URL, POSTed to (signed) when the run ends: completed, failed or cancelled'),
    continue_from: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'must be a run id (jetty_metadata.trajectory_id)' })
      .optional()
      .describe(
        "Continues that run's conversation: the new run starts from its files and the agent's session, with only the new user message as input. Chat clients need not send it: the answer's trailing `[//]: # (jetty:run:<id>)` line does the same",
      ),
    webhook_secret: z
      .string({ error: 'must be a string' })
      .min(1, { error: 'must not be empty' })
      .max(1024, { error: 'must be at most 1024 characters' })
      .optional()
      .describe(
        'Signs the webhook: `X-Mise-Signature` is the hex HMAC-SHA256 of "{X-Mise-Timestamp}.{body}" keyed with it. Never stored in the run or shown.',
      ),
  })
  .describe('Runs the system message as a runbook. The official OpenAI SDKs send it as an extra body field.');

export const chatRequestSchema = z.looseObject({
  model: z.string({ error: 'must be a model slug string' }).optional(),
  messages: z
    .array(chatMessageSchema, { error: 'must be an array of messages' })
    .min(1, { error: 'must hold at least one message: the runbook as the system message' }),
  stream: z.boolean({ error: 'must be true or false' }).optional(),
  stream_options: z.looseObject({}).optional(),
  jetty: jettyBlockSchema.optional(),
});

export type ChatRequest = z.infer<typeof chatRequestSchema>;

export const errorEnvelopeSchema = z.object({
  error: z.object({ message: z.string(), type: z.string(), param: z.string().nullable(), code: z.string() }),
});

const usageTotals = z.object({
  input_tokens: z.number(),
  output_tokens: z.number(),
  cache_read_tokens: z.number(),
  cache_write_tokens: z.number(),
  cost_usd: z.number().nullable(),
  cost_estimated: z.boolean(),
});

export const artifactSchema = z.object({
  path: z.string(),
  size: z.number(),
  sha256: z.string(),
  content_type: z.string(),
});

/** What a run did through the egress proxy (src/events/types.ts NetworkSummary). */
export const networkSummarySchema = z.object({
  policy: z.enum(['none', 'allowlist', 'open']),
  allow: z.array(z.string()).optional(),
  connections: z.number(),
  allowed: z.number(),
  refused: z.number(),
  failed: z.number(),
  bytes_up: z.number(),
  bytes_down: z.number(),
  hosts: z.array(
    z.object({
      host: z.string(),
      connections: z.number(),
      refused: z.number(),
      bytes_up: z.number(),
      bytes_down: z.number(),
    }),
  ),
  hosts_omitted: z.number().optional(),
});
const resultsSchema = z.object({ pass: z.number(), partial: z.number(), fail: z.number() });
const stageSchema = z.object({ name: z.string(), passed: z.boolean(), message: z.string() });

/** A run's evaluation (docs/evaluation.md). */
export const evaluationSchema = z
  .object({
    kind: z.enum(['programmatic', 'rubric']),
    status: z
      .enum(['scored', 'missing', 'error'])
      .describe('scored: decided; missing: the runbook gives no way to score it; error: scoring failed'),
    passed: z.boolean().nullable().describe('The verdict; null when it could not be scored'),
    score: z
      .number()
      .nullable()
      .describe('programmatic: share of checks passed (0-1); rubric: average of the criteria (1-5)'),
    max_score: z.number(),
    results: resultsSchema,
    stages: z.array(stageSchema),
    rubric_scores: z
      .record(
        z.string(),
        z.object({ score: z.number(), notes: z.string(), name: z.string(), number: z.number() }),
      )
      .nullable(),
    threshold: z.object({ average: z.number(), min_criterion: z.number() }).nullable(),
    source: z.enum(['verification_script', 'required_outputs', 'judge', 'none']),
    summary: z.string(),
    verification: z
      .object({
        exit_code: z.number().nullable(),
        timed_out: z.boolean(),
        duration_ms: z.number(),
        output: z.string(),
        stderr: z.string(),
        truncated: z.boolean(),
        carried_over: z.boolean().optional(),
      })
      .nullable()
      .describe("The verification script's run, as the server ran it in the sandbox"),
    judge_model: z.string().nullable(),
    judge_provider: z.string().nullable(),
    judge_usage: usageTotals.nullable().describe("The judge's tokens and cost (also in the run's usage)"),
    agent_report: z
      .object({
        overall_passed: z.boolean().nullable(),
        results: resultsSchema.nullable(),
        overall_score: z.number().nullable(),
        stages: z.array(stageSchema),
        rubric_scores: z.record(z.string(), z.object({ score: z.number(), notes: z.string() })).nullable(),
        problem: z.string().nullable(),
      })
      .nullable()
      .describe("The agent's own validation_report.json, as read"),
    disagreement: z.boolean().describe("The agent's report says the opposite of the server's decision"),
    evaluated_at: z.string(),
    duration_ms: z.number(),
    number: z.number(),
    trigger: z.enum(['run', 'regrade']),
  })
  .describe("How the run scored against its runbook's own definition of success");

export const runRecordSchema = z.object({
  id: z.string(),
  object: z.literal('run'),
  status: z.enum(['pending', 'running', 'completed', 'failed', 'cancelled']),
  agent: z.string(),
  model: z.string(),
  provider: z.string(),
  collection: z.string().nullable(),
  task: z.string().nullable(),
  created_at: z.string(),
  started_at: z.string().nullable(),
  ended_at: z.string().nullable(),
  duration_ms: z.number().nullable(),
  timeout_sec: z.number(),
  sandbox_id: z.string().nullable(),
  image: z.string().nullable(),
  runtime_version: z.string().nullable(),
  usage: usageTotals,
  final_text: z.string().nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  exit_code: z.number().nullable(),
  webhook: z
    .object({
      url: z.string(),
      state: z.enum(['pending', 'retrying', 'delivered', 'failed']),
      deliveries: z.array(
        z.object({
          attempt: z.number(),
          at: z.string(),
          status_code: z.number().nullable(),
          error: z.string().nullable(),
          duration_ms: z.number(),
        }),
      ),
    })
    .optional()
    .describe("The run's webhook (jetty.webhook_url) and each try at delivering it; never its secret"),
  artifacts: z.array(artifactSchema),
  artifacts_dropped: z
    .object({
      count: z.number(),
      bytes: z.number(),
      files: z.array(
        z.object({
          path: z.string(),
          size: z.number(),
          reason: z.enum([
            'file_too_large',
            'total_too_large',
            'too_many_files',
            'unreadable',
            'bad_name',
            'listing_too_long',
          ]),
        }),
      ),
    })
    .optional()
    .describe(
      'Files of results_dir not kept (over ARTIFACT_MAX_FILES, ARTIFACT_MAX_BYTES or ARTIFACT_MAX_FILE_BYTES, or unreadable): how many, their bytes, the largest 100. Absent when none.',
    ),
  missing_outputs: z.array(z.string()),
  primary_outputs: z
    .array(z.string())
    .describe(
      "The runbook's primary_outputs (headline deliverables), relative to results_dir, first one first",
    ),
  warnings: z
    .array(z.object({ code: z.string(), message: z.string() }))
    .describe(
      'Every run.warning of the run: what the pre-flight rewrote or left as written, and what the run missed',
    ),
  limits_hit: z
    .array(z.enum(LIMIT_HITS as [LimitHit, ...LimitHit[]]))
    .default([])
    .describe(
      "Limits of the run's output it reached (RUN_MAX_LINE_BYTES, RUN_MAX_EVENTS, RUN_MAX_STREAM_BYTES); a warning event with code output_limit says what was dropped",
    ),
  cancel_requested: z.boolean(),
  labels: z.record(z.string(), z.string()),
  timings: z
    .object({
      queue_ms: z.number(),
      sandbox_start_ms: z.number().nullable(),
      agent_ms: z.number().nullable(),
      collect_ms: z.number().nullable(),
      evaluate_ms: z.number().nullable().optional(),
    })
    .nullable()
    .describe(
      'Milliseconds per stage: waiting in the queue, starting the sandbox, the agent CLI itself, collecting results',
    ),
  budget: z
    .object({
      max_cost_usd: z.number().nullable(),
      max_tokens: z.number().nullable(),
      spent_tokens: z.number().nullable(),
      spent_cost_usd: z.number().nullable(),
      exceeded: z.boolean(),
    })
    .optional()
    .describe(
      "The run's budget (jetty.max_cost_usd, jetty.max_tokens or their defaults) and, once it ended, what the gateway measured against it: input + output tokens, and their cost at list prices",
    ),
  conversation_id: z
    .string()
    .optional()
    .describe('The conversation this run is a turn of (GET /v1/conversations/{id}); absent when it is none'),
  parent_run_id: z
    .string()
    .nullable()
    .optional()
    .describe('The turn this run continues; null on a first turn'),
  turn: z.number().optional().describe("The run's turn in its conversation, 1 for the first"),
  session_id: z
    .string()
    .nullable()
    .optional()
    .describe("The agent CLI's own session id (a follow-up turn resumes it where the runtime can)"),
  resumed: z
    .boolean()
    .optional()
    .describe(
      "Whether this turn resumed the previous turn's CLI session (false: the earlier turns were summarized into its prompt)",
    ),
  conversation_state: z
    .object({ files: z.number(), bytes: z.number(), dropped: z.number() })
    .optional()
    .describe(
      "What the turn kept for the next one: its /app and the CLI's session files (within CONVERSATION_STATE_MAX_BYTES and CONVERSATION_STATE_MAX_FILES); `dropped` files did not fit",
    ),
  network: networkSummarySchema
    .optional()
    .describe(
      'What the run did through the egress proxy (set when it ends): its policy, connections allowed, refused and failed, bytes each way, and the hosts (most connections first). Each connection is a net.connect event',
    ),
  evaluation: evaluationSchema.nullable().default(null),
  evaluations: z
    .array(evaluationSchema)
    .optional()
    .describe('Every evaluation kept (EVALUATION_MAX_HISTORY), oldest first; on GET /v1/runs/{id} only'),
});

export const runIdParams = z.object({ id: z.string().min(1).max(64) });
