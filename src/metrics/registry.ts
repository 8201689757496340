import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The process's Prometheus instruments, one named field each, so that code elsewhere records a
 * moment with one call (`metrics.egressConnections.inc({ outcome: 'allowed' })`) and never builds
 * a metric of its own. Every label takes its values from a closed set (runtimes, providers,
 * statuses, a few outcomes): never a run id, collection or path, so a series count stays bounded.
 * docs/operations.md lists the names; GET /metrics serves them (the API's port, and a worker-only
 * process's WORKER_HTTP_PORT).
 */

/** Seconds: from a fraction of a second (a warm start) to an hour-long run. */
const RUN_SECONDS = [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600];
const SHORT_SECONDS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120];

/** A scrape waits this long for a queue's counts (a worker's Redis client waits out an outage). */
const QUEUE_READ_MS = 2_000;

export interface FollowStats {
  followers: number;
  streams: number;
}

export type QueueCounts = Record<'waiting' | 'active' | 'delayed', number>;

export class Metrics {
  readonly registry = new Registry();

  readonly runsStarted = new Counter({
    name: 'jetty_runs_started_total',
    help: 'Runs whose sandbox started (each attempt of a retried run counts)',
    labelNames: ['runtime', 'provider'] as const,
    registers: [this.registry],
  });

  readonly runsEnded = new Counter({
    name: 'jetty_runs_ended_total',
    help: 'Runs that reached a final status, by that status (completed, failed, cancelled)',
    labelNames: ['runtime', 'provider', 'status'] as const,
    registers: [this.registry],
  });

  readonly runDuration = new Histogram({
    name: 'jetty_run_duration_seconds',
    help: 'Wall-clock time of a run on its worker, from taking the job to its final status',
    labelNames: ['runtime', 'status'] as const,
    buckets: RUN_SECONDS,
    registers: [this.registry],
  });

  readonly firstOutput = new Histogram({
    name: 'jetty_run_first_output_seconds',
    help: "Time to first chunk: from the run's acceptance (queue wait included) to the agent's first message, reasoning or tool call",
    labelNames: ['runtime'] as const,
    buckets: RUN_SECONDS,
    registers: [this.registry],
  });

  readonly sandboxStart = new Histogram({
    name: 'jetty_sandbox_start_seconds',
    help: 'Time to create and start a sandbox container',
    labelNames: ['runtime'] as const,
    buckets: SHORT_SECONDS,
    registers: [this.registry],
  });

  readonly artifactCollection = new Histogram({
    name: 'jetty_artifact_collection_seconds',
    help: "Time to copy a run's results_dir out of its sandbox into the blob store",
    buckets: SHORT_SECONDS,
    registers: [this.registry],
  });

  readonly gatewayTokens = new Counter({
    name: 'jetty_gateway_tokens_total',
    help: 'Tokens the provider gateway read in model responses, by provider and kind (input, output, cache_read, cache_write)',
    labelNames: ['provider', 'kind'] as const,
    registers: [this.registry],
  });

  readonly gatewayCost = new Counter({
    name: 'jetty_gateway_cost_usd_total',
    help: "US dollars at list prices of the model calls through the gateway (the price table's estimate)",
    labelNames: ['provider'] as const,
    registers: [this.registry],
  });

  /**
   * The egress proxy's connections: `allowed` (opened) or `refused` (by address or policy). The
   * proxy calls `metrics.egressConnections.inc({ outcome })` once per connection it decides on.
   */
  readonly egressConnections = new Counter({
    name: 'jetty_egress_connections_total',
    help: "Sandboxes' outbound connections through the egress proxy, allowed or refused",
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly rateLimited = new Counter({
    name: 'jetty_http_rate_limited_total',
    help: 'Requests answered 429 because their API key (or address, without a key) was over RATE_LIMIT_MAX',
    registers: [this.registry],
  });

  readonly eventStreamFirstEvent = new Histogram({
    name: 'jetty_event_stream_first_event_seconds',
    help: "Time to first event of GET /v1/runs/{id}/events: from the request's arrival to its first event written to the socket",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  private readonly streamSources = new Set<() => number>();
  private followSource: (() => FollowStats) | undefined;
  private readonly queueSources = new Map<string, () => Promise<QueueCounts>>();

  constructor(opts: { processMetrics?: boolean } = {}) {
    const streams = this.streamSources;
    new Gauge({
      name: 'jetty_sse_streams_open',
      help: 'Server-sent event responses open right now (chat streams and run event streams)',
      registers: [this.registry],
      collect() {
        let n = 0;
        for (const count of streams) n += count();
        this.set(n);
      },
    });
    const follows = () => this.followSource?.() ?? { followers: 0, streams: 0 };
    new Gauge({
      name: 'jetty_event_followers',
      help: "Clients following run events through this process's shared Redis reader (run event streams and streamed completions)",
      registers: [this.registry],
      collect() {
        this.set(follows().followers);
      },
    });
    new Gauge({
      name: 'jetty_event_streams_followed',
      help: 'Run event streams (one per run) that this process reads for at least one follower',
      registers: [this.registry],
      collect() {
        this.set(follows().streams);
      },
    });
    const queues = this.queueSources;
    new Gauge({
      name: 'jetty_queue_jobs',
      help: 'Jobs in a BullMQ queue by state (waiting, active, delayed), read from Redis at scrape time',
      labelNames: ['queue', 'state'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        // A queue that cannot be read (Redis down) is left out of this scrape rather than shown as 0.
        const read = await Promise.allSettled(
          [...queues].map(async ([q, counts]) => [q, await within(QUEUE_READ_MS, counts())] as const),
        );
        for (const r of read) {
          if (r.status !== 'fulfilled') continue;
          const [queue, counts] = r.value;
          for (const [state, n] of Object.entries(counts)) this.set({ queue, state }, n);
        }
      },
    });
    // Node's own: CPU, memory, event-loop lag, handles. Once per process (they are process-wide).
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** Counts the SSE streams `count()` says are open, at every scrape; the returned function stops it. */
  countStreams(count: () => number): () => void {
    this.streamSources.add(count);
    return () => this.streamSources.delete(count);
  }

  /** Reads the followers and followed streams at every scrape; the returned function stops it. */
  watchFollowers(read: () => FollowStats): () => void {
    this.followSource = read;
    return () => {
      if (this.followSource === read) this.followSource = undefined;
    };
  }

  /** Reports a queue's job counts at every scrape under `queue`; the returned function stops it. */
  watchQueue(queue: string, counts: () => Promise<QueueCounts>): () => void {
    this.queueSources.set(queue, counts);
    return () => this.queueSources.delete(queue);
  }

  /** The Prometheus text exposition of every instrument. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
