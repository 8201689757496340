/**
 * Experiments in Redis: what was asked (one JSON value), the ids of its runs (a list, appended as
 * they are queued) and when it was cancelled (set once). Kept apart so that a cancel arriving while
 * the runs are still being queued is never overwritten, and no run queued then escapes it.
 * Figures are not kept: they are computed from the runs' records.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RedisKeys } from './keys.js';

export interface ExperimentVariant {
  name: string;
  agent: string;
  model: string;
  provider: string;
}

export interface ExperimentRecord {
  id: string;
  object: 'experiment';
  collection: string;
  created_at: string;
  /** Set on cancel; the runs it stopped end `cancelled`. */
  cancelled_at: string | null;
  repeats: number;
  variants: ExperimentVariant[];
  /** The one grader every run is scored by: the evaluation kind and judge (null: none, or programmatic). */
  grader: {
    kind: 'programmatic' | 'rubric' | null;
    judge_model: string | null;
    judge_provider: string | null;
  };
  runs: { id: string; variant: string }[];
}

export type NewExperiment = Omit<ExperimentRecord, 'cancelled_at' | 'runs'>;

export function newExperimentId(): string {
  return `exp_${randomBytes(9).toString('base64url')}`;
}

export class ExperimentStore {
  /** Each key lives `retentionSec` from the experiment's start (RETENTION_SEC, as ended runs do in Redis). */
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly retentionSec: number,
  ) {}

  async create(exp: NewExperiment): Promise<void> {
    await this.redis.set(this.keys.experiment(exp.id), JSON.stringify(exp), 'EX', this.retentionSec);
  }

  async addRun(id: string, run: { id: string; variant: string }): Promise<void> {
    const key = `${this.keys.experiment(id)}:runs`;
    await this.redis.multi().rpush(key, JSON.stringify(run)).expire(key, this.retentionSec).exec();
  }

  /** Marks it cancelled (the first time counts); returns when. */
  async cancel(id: string): Promise<string> {
    const key = `${this.keys.experiment(id)}:cancelled`;
    const ttl = await this.redis.ttl(this.keys.experiment(id));
    await this.redis.set(key, new Date().toISOString(), 'EX', Math.max(ttl, 60), 'NX');
    return (await this.redis.get(key))!;
  }

  async cancelledAt(id: string): Promise<string | null> {
    return this.redis.get(`${this.keys.experiment(id)}:cancelled`);
  }

  /** null when there is none, or it belongs to another collection (the same 404 either way). */
  async get(id: string, collection: string): Promise<ExperimentRecord | null> {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) return null;
    const key = this.keys.experiment(id);
    const [raw, runs, cancelled] = await Promise.all([
      this.redis.get(key),
      this.redis.lrange(`${key}:runs`, 0, -1),
      this.redis.get(`${key}:cancelled`),
    ]);
    if (!raw) return null;
    const exp = JSON.parse(raw) as NewExperiment;
    if (exp.collection !== collection) return null;
    return {
      ...exp,
      cancelled_at: cancelled,
      runs: runs.map((r) => JSON.parse(r) as ExperimentRecord['runs'][number]),
    };
  }
}
