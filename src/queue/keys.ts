/** Every Redis key the server uses, in one place. A prefix lets tests and tenants share a Redis. */
export class RedisKeys {
  constructor(readonly prefix: string) {}

  run(id: string): string {
    return `${this.prefix}:run:${id}`;
  }
  events(id: string): string {
    return `${this.prefix}:events:${id}`;
  }
  /** Sorted set of a collection's run ids by creation time, for listing; per task with `task`. */
  runIndex(collection: string, task?: string): string {
    return task === undefined
      ? `${this.prefix}:runs:${collection}`
      : `${this.prefix}:runs:${collection}:task:${encodeURIComponent(task)}`;
  }
  /** Idempotency keys: the run id a request with that key created. */
  idempotency(key: string): string {
    return `${this.prefix}:idem:${key}`;
  }
  /** A conversation: its collection, the job its turns are made from, the turn under way. */
  conversation(id: string): string {
    return `${this.prefix}:conversation:${id}`;
  }
  /** Sorted set of a conversation's run ids (its turns) by creation time. */
  conversationTurns(id: string): string {
    return `${this.prefix}:conversation:${id}:turns`;
  }
  /** Pub/sub channel on which cancel requests are announced to workers. */
  cancelChannel(): string {
    return `${this.prefix}:cancel`;
  }
  /** This deployment's id: sandboxes are labelled with it, and workers sweep only their own. */
  deployment(): string {
    return `${this.prefix}:deployment`;
  }
  /** Runs over whose trajectory the blob store did not take yet (score: when they ended). */
  unsavedTrajectories(): string {
    return `${this.prefix}:unsaved-trajectories`;
  }
  /** Held by the one worker sweeping the shared blob store for expired runs. */
  blobSweepLock(): string {
    return `${this.prefix}:blob-sweep`;
  }
  /** BullMQ's lock of a run's job: it exists while a live worker holds the job (BullMQ's layout). */
  runJobLock(runId: string): string {
    return `${this.bullPrefix()}:${RUN_QUEUE}:${runId}:lock`;
  }
  /** Set, with a short expiry, while the worker of this name lives: its warm sandboxes are not orphans. */
  workerAlive(worker: string): string {
    return `${this.prefix}:worker:${worker}:alive`;
  }
  /** What a worker learnt of an environment image with an agent layer mounted (JSON, expires). */
  environmentProbe(imageId: string, layer: string): string {
    return `${this.prefix}:env:probe:${imageId}:${layer}`;
  }
  /** Hash of snapshot name → what a worker found of its image (JSON), for GET /v1/snapshots. */
  environmentSnapshots(): string {
    return `${this.prefix}:env:snapshots`;
  }
  /** An A/B experiment's record (JSON): its variants and its runs' ids. */
  experiment(id: string): string {
    return `${this.prefix}:experiment:${id}`;
  }
  /** BullMQ's own prefix. */
  bullPrefix(): string {
    return `${this.prefix}:bull`;
  }
}

export const RUN_QUEUE = 'runs';
export const WEBHOOK_QUEUE = 'webhooks';
/** Re-grades of ended runs (POST /v1/runs/{id}/evaluate), done by a worker: the judge is behind its gateway. */
export const EVALUATE_QUEUE = 'evaluations';
