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
  /** BullMQ's lock of a run's job: it exists while a live worker holds the job (BullMQ's layout). */
  runJobLock(runId: string): string {
    return `${this.bullPrefix()}:${RUN_QUEUE}:${runId}:lock`;
  }
  /** BullMQ's own prefix. */
  bullPrefix(): string {
    return `${this.prefix}:bull`;
  }
}

export const RUN_QUEUE = 'runs';
export const WEBHOOK_QUEUE = 'webhooks';
