import type { Redis } from 'ioredis';
import type { Evaluation } from '../evaluation/record.js';
import type { LimitHit } from '../events/limits.js';
import {
  type AgentName,
  type ArtifactInfo,
  type ArtifactsDropped,
  emptyUsage,
  type NetworkSummary,
  type RetryReason,
  type RunError,
  type RunStatus,
  type RunWarning,
  type UsageTotals,
} from '../events/types.js';
import type { ProviderName } from '../runtimes/types.js';
import type { RedisKeys } from './keys.js';

/** What a run may spend and, once it ended, what the gateway measured against that. */
export interface RunBudgetRecord {
  max_cost_usd: number | null;
  max_tokens: number | null;
  /** Input + output tokens of the run's model calls; null until the run ends. */
  spent_tokens: number | null;
  /** Their cost at list prices (calls to models without a price not included); null until the run ends. */
  spent_cost_usd: number | null;
  /** Whether a model call was refused because the budget was spent. */
  exceeded: boolean;
}

/** Milliseconds spent in each stage of a run; null for a stage it did not reach. */
export interface RunTimings {
  /** From the request to a worker taking the job. */
  queue_ms: number;
  /** Creating the sandbox, placing its files and starting the agent in it. */
  sandbox_start_ms: number | null;
  /** The agent CLI's own run: from its start to its exit. */
  agent_ms: number | null;
  /** Copying results out and removing the sandbox. */
  collect_ms: number | null;
  /** Scoring the run (verification script, judge); absent or null when it was not evaluated. */
  evaluate_ms?: number | null;
}

/** The run record, as GET /v1/runs/{id} shows it. */
export interface RunRecord {
  id: string;
  object: 'run';
  status: RunStatus;
  /** The runtime, or `passthrough` for a plain LLM call recorded as a one-step run. */
  agent: AgentName | 'passthrough';
  model: string;
  provider: ProviderName;
  /** The collection the run belongs to; no other collection can see it. */
  collection: string;
  task: string | null;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
  duration_ms: number | null;
  timeout_sec: number;
  sandbox_id: string | null;
  image: string | null;
  runtime_version: string | null;
  usage: UsageTotals;
  final_text: string | null;
  error: RunError | null;
  exit_code: number | null;
  artifacts: ArtifactInfo[];
  /** Files of results_dir the collection left out (over a limit, unreadable); absent when none. */
  artifacts_dropped?: ArtifactsDropped;
  /** Required output files the run did not produce (set when it ends). */
  missing_outputs: string[];
  /** The runbook's `primary_outputs` (headline deliverables), relative to results_dir, first one first. */
  primary_outputs: string[];
  /** Every `run.warning` of the run: the pre-flight's when it is queued, the worker's when it ends. */
  warnings: RunWarning[];
  /** Limits of its output the run reached (its events say what was dropped); empty for most runs. */
  limits_hit: LimitHit[];
  cancel_requested: boolean;
  labels: Record<string, string>;
  timings: RunTimings | null;
  /** Attempts started so far (a worker's stop or death makes another); absent before the first. */
  attempt?: number;
  /** Why the last attempt handed the run back, when its worker knew; the next attempt reads it. */
  retry_reason?: RetryReason;
  /** Absent on passthrough calls and on runs queued by older servers. */
  budget?: RunBudgetRecord;
  /** The conversation this run is a turn of (its first turn's id); absent when it is none. */
  conversation_id?: string;
  /** The turn this one continues; null on a conversation's first turn. */
  parent_run_id?: string | null;
  /** 1 for a conversation's first turn, the parent's turn + 1 after. */
  turn?: number;
  /** The agent CLI's own session id, once its output named it (what a follow-up resumes). */
  session_id?: string | null;
  /** Whether this turn resumed the previous turn's CLI session (false: it got a summary instead). */
  resumed?: boolean;
  /** The sandbox's files and CLI session saved for the next turn, once the run ended. */
  conversation_state?: ConversationStateRecord;
  /** True from the run's end until its files for the next turn are saved (or failed to be). */
  conversation_saving?: boolean;
  /** What the run did through the egress proxy; set when it ends. */
  network?: NetworkSummary;
  /**
   * How the run scored against its runbook's own definition of success (docs/evaluation.md): the
   * newest evaluation. null: not evaluated (no evaluation declared, not ended, or cancelled).
   */
  evaluation: Evaluation | null;
  /** Every evaluation kept, oldest first (the run's own, then re-grades); absent in list pages. */
  evaluations?: Evaluation[];
}

/** What a conversation turn kept of its sandbox for the next turn. */
export interface ConversationStateRecord {
  files: number;
  bytes: number;
  /** Files left out (over CONVERSATION_STATE_MAX_*, unreadable); a run.warning names them. */
  dropped: number;
}

// Moves status only from an allowed one, atomically, and writes the other fields with it.
// Every hash value is JSON, statuses included ("running" with its quotes).
// KEYS[1] = run hash; ARGV[1] = comma-separated allowed statuses; ARGV[2] = new status; then field/value pairs.
const TRANSITION = `
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {0, ''} end
local ok = false
for s in string.gmatch(ARGV[1], '[^,]+') do if s == cur then ok = true end end
if not ok then return {0, cur} end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end
return {1, cur}
`;

// TRANSITION, and counts an attempt: returns {moved, previous, attempt number, retry_reason}, and
// clears retry_reason (it belongs to the attempt just ended).
const BEGIN_ATTEMPT = `
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {0, '', 0, ''} end
local ok = false
for s in string.gmatch(ARGV[1], '[^,]+') do if s == cur then ok = true end end
if not ok then return {0, cur, 0, ''} end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end
local n = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
local reason = redis.call('HGET', KEYS[1], 'retry_reason') or ''
redis.call('HDEL', KEYS[1], 'retry_reason')
return {1, cur, n, reason}
`;

export class RunStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  static newRecord(
    init: Pick<RunRecord, 'id' | 'agent' | 'model' | 'provider' | 'collection' | 'task' | 'timeout_sec'>,
  ): RunRecord {
    return {
      object: 'run',
      status: 'pending',
      created_at: new Date().toISOString(),
      started_at: null,
      ended_at: null,
      duration_ms: null,
      sandbox_id: null,
      image: null,
      runtime_version: null,
      usage: emptyUsage(),
      final_text: null,
      error: null,
      exit_code: null,
      artifacts: [],
      missing_outputs: [],
      primary_outputs: [],
      warnings: [],
      limits_hit: [],
      cancel_requested: false,
      labels: {},
      timings: null,
      evaluation: null,
      ...init,
    };
  }

  async create(rec: RunRecord): Promise<void> {
    const multi = this.redis.multi();
    multi.hset(this.keys.run(rec.id), encode(rec));
    const at = Date.parse(rec.created_at);
    multi.zadd(this.keys.runIndex(rec.collection), at, rec.id);
    if (rec.task !== null) multi.zadd(this.keys.runIndex(rec.collection, rec.task), at, rec.id);
    await multi.exec();
  }

  /** The run's collection, reading nothing else of its record; null when Redis holds no such run. */
  async collectionOf(id: string): Promise<string | null> {
    const [status, collection] = await this.redis.hmget(this.keys.run(id), 'status', 'collection');
    return status && collection ? (JSON.parse(collection) as string) : null;
  }

  async get(id: string): Promise<RunRecord | null> {
    const h = await this.redis.hgetall(this.keys.run(id));
    if (!h?.status) return null;
    return decode(h);
  }

  async update(id: string, fields: Partial<RunRecord>): Promise<void> {
    await this.redis.hset(this.keys.run(id), encode(fields));
  }

  /** Sets `status` to `to` only if it is one of `from`. Returns whether it moved and what it was. */
  async transition(
    id: string,
    from: RunStatus[],
    to: RunStatus,
    fields: Partial<RunRecord> = {},
  ): Promise<{ moved: boolean; previous: RunStatus | null }> {
    const flat = Object.entries(encode(fields)).flat();
    const [moved, prev] = (await this.redis.eval(
      TRANSITION,
      1,
      this.keys.run(id),
      from.map((s) => JSON.stringify(s)).join(','),
      JSON.stringify(to),
      ...flat,
    )) as [number, string];
    return { moved: moved === 1, previous: prev === '' ? null : (JSON.parse(prev) as RunStatus) };
  }

  /**
   * A worker starts an attempt of the run: pending or running becomes running (with `fields`), and
   * the attempt is counted. Not moved: the run is over (or unknown) and must not start.
   */
  async beginAttempt(
    id: string,
    fields: Partial<RunRecord> = {},
  ): Promise<{
    moved: boolean;
    previous: RunStatus | null;
    attempt: number;
    retryReason: RetryReason | null;
  }> {
    const flat = Object.entries(encode(fields)).flat();
    const [moved, prev, attempt, reason] = (await this.redis.eval(
      BEGIN_ATTEMPT,
      1,
      this.keys.run(id),
      ['pending', 'running'].map((s) => JSON.stringify(s)).join(','),
      JSON.stringify('running'),
      ...flat,
    )) as [number, string, number, string];
    return {
      moved: moved === 1,
      previous: prev === '' ? null : (JSON.parse(prev) as RunStatus),
      attempt: Number(attempt),
      retryReason: reason === '' ? null : (JSON.parse(reason) as RetryReason),
    };
  }

  /**
   * A collection's runs (a task's, with `task`), newest first. `before` is a cursor: the created
   * time (ms) of the last item of the previous page.
   */
  async listIds(
    scope: { collection: string; task?: string },
    limit: number,
    before?: number,
  ): Promise<{ ids: string[]; scores: number[] }> {
    const max = before === undefined ? '+inf' : `(${before}`;
    const rows = await this.redis.zrevrangebyscore(
      this.keys.runIndex(scope.collection, scope.task),
      max,
      '-inf',
      'WITHSCORES',
      'LIMIT',
      0,
      limit,
    );
    const ids: string[] = [];
    const scores: number[] = [];
    for (let i = 0; i + 1 < rows.length; i += 2) {
      ids.push(rows[i]!);
      scores.push(Number(rows[i + 1]));
    }
    return { ids, scores };
  }

  /** One page of a task's runs, newest first, and how many it has (pages count from 0 here). */
  async pageIds(scope: { collection: string; task: string }, offset: number, limit: number) {
    const key = this.keys.runIndex(scope.collection, scope.task);
    const [ids, total] = await Promise.all([
      this.redis.zrevrange(key, offset, offset + limit - 1),
      this.redis.zcard(key),
    ]);
    return { ids, total };
  }

  async expire(id: string, seconds: number): Promise<void> {
    await this.redis.expire(this.keys.run(id), seconds);
  }
}

function encode(fields: Partial<RunRecord>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    out[k] = JSON.stringify(v);
  }
  return out;
}

function decode(h: Record<string, string>): RunRecord {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(h)) out[k] = JSON.parse(v);
  // Records written before these fields existed read as having none.
  return { primary_outputs: [], warnings: [], evaluation: null, ...out } as unknown as RunRecord;
}
