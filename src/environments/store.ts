import type { Redis } from 'ioredis';
import type { RedisKeys } from '../queue/keys.js';
import type { EnvironmentReport } from './probe.js';

/** What a worker found of a snapshot's image on its engine, for GET /v1/snapshots. */
export interface SnapshotInfo {
  name: string;
  image: string;
  /** Null when the worker's engine does not have the image. */
  imageId: string | null;
  sizeBytes: number | null;
  /** The image's `jetty.*` labels without the prefix (python, node, description, ...). */
  labels: Record<string, string>;
  /** Runtimes whose agent layer this worker checked on the image and found able to run. */
  runtimes: string[];
  reportedAt: string;
}

/**
 * The environment facts workers share through Redis: probe reports per (image id, agent layer),
 * so that one worker's probe serves all of them, and what each snapshot's image is, so that an
 * API process (which has no Docker engine) can list them.
 */
export class EnvironmentStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly ttlSec: number,
  ) {}

  async getProbe(imageId: string, layer: string): Promise<EnvironmentReport | null> {
    const raw = await this.redis.get(this.keys.environmentProbe(imageId, layer));
    if (!raw) return null;
    try {
      return JSON.parse(raw) as EnvironmentReport;
    } catch {
      return null;
    }
  }

  async putProbe(report: EnvironmentReport): Promise<void> {
    await this.redis.set(
      this.keys.environmentProbe(report.imageId, report.layer),
      JSON.stringify(report),
      'EX',
      this.ttlSec,
    );
  }

  async putSnapshot(info: SnapshotInfo): Promise<void> {
    await this.redis.hset(this.keys.environmentSnapshots(), info.name, JSON.stringify(info));
  }

  async listSnapshots(): Promise<Map<string, SnapshotInfo>> {
    const all = await this.redis.hgetall(this.keys.environmentSnapshots());
    const out = new Map<string, SnapshotInfo>();
    for (const [name, raw] of Object.entries(all)) {
      try {
        out.set(name, JSON.parse(raw) as SnapshotInfo);
      } catch {
        // A record of another version: skipped, the next report replaces it.
      }
    }
    return out;
  }
}
