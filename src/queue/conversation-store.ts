import type { Redis } from 'ioredis';
import type { RedisKeys } from './keys.js';
import type { NewRun } from './run-service.js';

/**
 * Conversations in Redis: one hash per conversation (its collection, the job its turns are made
 * from, the turn under way) and a sorted set of its turns' run ids. A conversation's id is its
 * first turn's run id. Both keys expire with the runs' retention, renewed at every turn.
 */

/** The job a follow-up turn is made from: the first turn's, minus what belongs to one run only. */
export type ConversationBase = Omit<
  NewRun,
  'instruction' | 'assets' | 'webhook' | 'secretParams' | 'conversation'
>;

export interface ConversationRecord {
  id: string;
  collection: string;
  /** The task the first turn ran (`task/<name>` as a model, or jetty.task); null for none. */
  task: string | null;
  created_at: string;
  base: ConversationBase;
  /** The turn last started, and when: one turn at a time. */
  active: string | null;
}

/** A turn started less than this long ago whose run record is not there yet is still being created. */
const CREATING_MS = 60_000;

// Starts a turn: refused while the conversation's last started turn is pending or running (or is
// being created), or when the conversation has all the turns it may have.
// KEYS[1] = conversation hash, KEYS[2] = its turns. The active run's hash is ARGV[5] .. its id.
// ARGV[1] = new run id, ARGV[2] = now (ms), ARGV[3] = max turns, ARGV[4] = ttl (s), ARGV[5] = run key prefix.
// Returns {1, ''} started; {0, active run id} busy; {-1, count} full; {-2, ''} no conversation.
const CLAIM = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {-2, ''} end
local active = redis.call('HGET', KEYS[1], 'active')
if active and active ~= '' then
  local status = redis.call('HGET', ARGV[5] .. active, 'status')
  if status == '"pending"' or status == '"running"' then return {0, active} end
  if not status then
    local at = tonumber(redis.call('HGET', KEYS[1], 'active_at') or '0')
    if tonumber(ARGV[2]) - at < ${CREATING_MS} then return {0, active} end
  end
end
local n = redis.call('ZCARD', KEYS[2])
if n >= tonumber(ARGV[3]) then return {-1, tostring(n)} end
redis.call('HSET', KEYS[1], 'active', ARGV[1], 'active_at', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return {1, ''}
`;

// Gives a turn's claim back (the run was never created): only if it is still this run's.
const RELEASE = `
if redis.call('HGET', KEYS[1], 'active') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'active', '')
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1
`;

export type ClaimResult =
  | { ok: true }
  | { ok: false; reason: 'busy'; activeRunId: string }
  | { ok: false; reason: 'full'; turns: number }
  | { ok: false; reason: 'gone' };

export class ConversationStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    /** How long a conversation is kept after its last turn started (the runs' retention and more). */
    private readonly ttlSec: number,
  ) {}

  /** Records a new conversation whose first turn is `runId` (already claimed as its active turn). */
  async create(rec: Omit<ConversationRecord, 'id' | 'active' | 'created_at'>, runId: string): Promise<void> {
    const now = Date.now();
    const key = this.keys.conversation(runId);
    const multi = this.redis.multi();
    multi.hset(key, {
      collection: rec.collection,
      task: JSON.stringify(rec.task),
      created_at: new Date(now).toISOString(),
      base: JSON.stringify(rec.base),
      active: runId,
      active_at: String(now),
    });
    multi.zadd(this.keys.conversationTurns(runId), now, runId);
    multi.expire(key, this.ttlSec);
    multi.expire(this.keys.conversationTurns(runId), this.ttlSec);
    await multi.exec();
  }

  async get(id: string): Promise<ConversationRecord | null> {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) return null;
    const h = await this.redis.hgetall(this.keys.conversation(id));
    if (!h?.collection || !h.base) return null;
    return {
      id,
      collection: h.collection,
      task: JSON.parse(h.task ?? 'null') as string | null,
      created_at: h.created_at ?? '',
      base: JSON.parse(h.base) as ConversationBase,
      active: h.active ? h.active : null,
    };
  }

  /** The conversation's turns (run ids), oldest first. */
  async turns(id: string): Promise<string[]> {
    return this.redis.zrange(this.keys.conversationTurns(id), 0, -1);
  }

  /** Starts the turn `runId` of the conversation, unless one is under way or it is full. */
  async claim(id: string, runId: string, maxTurns: number): Promise<ClaimResult> {
    const [code, detail] = (await this.redis.eval(
      CLAIM,
      2,
      this.keys.conversation(id),
      this.keys.conversationTurns(id),
      runId,
      String(Date.now()),
      String(maxTurns),
      String(this.ttlSec),
      this.keys.run(''),
    )) as [number, string];
    if (code === 1) return { ok: true };
    if (code === 0) return { ok: false, reason: 'busy', activeRunId: detail };
    if (code === -1) return { ok: false, reason: 'full', turns: Number(detail) };
    return { ok: false, reason: 'gone' };
  }

  /** Undoes a claim whose run was never created. */
  async release(id: string, runId: string): Promise<void> {
    await this.redis.eval(RELEASE, 2, this.keys.conversation(id), this.keys.conversationTurns(id), runId);
  }
}
