/**
 * Experiments in Redis: one JSON value per experiment (its variants, the ids of its runs, and
 * whether it was cancelled). Figures are not kept: they are computed from the runs' records.
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

export function newExperimentId(): string {
  return `exp_${randomBytes(9).toString('base64url')}`;
}

export class ExperimentStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  async save(rec: ExperimentRecord): Promise<void> {
    await this.redis.set(this.keys.experiment(rec.id), JSON.stringify(rec));
  }

  /** null when there is none, or it belongs to another collection (the same 404 either way). */
  async get(id: string, collection: string): Promise<ExperimentRecord | null> {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) return null;
    const raw = await this.redis.get(this.keys.experiment(id));
    if (!raw) return null;
    const rec = JSON.parse(raw) as ExperimentRecord;
    return rec.collection === collection ? rec : null;
  }
}
