import type { AgentEvent, RunStatus, UsageData } from '../events/types.js';
import type { Metrics } from '../metrics/registry.js';
import type { OutputParser } from '../runtimes/types.js';

const FIRST_OUTPUT_TYPES = new Set<AgentEvent['type']>(['agent.message', 'agent.reasoning', 'tool.call']);

/**
 * The moments of a run as the worker's metrics count them: one call per moment from the run's
 * phases, labelled with the run's runtime and provider.
 */
export class RunMetrics {
  constructor(
    private readonly metrics: Metrics,
    private readonly runtime: string,
    private readonly provider: string,
  ) {}

  sandboxStarted(ms: number): void {
    this.metrics.runsStarted.inc({ runtime: this.runtime, provider: this.provider });
    this.metrics.sandboxStart.observe({ runtime: this.runtime }, ms / 1000);
  }

  artifactsCollected(ms: number): void {
    this.metrics.artifactCollection.observe(ms / 1000);
  }

  ended(status: RunStatus, durationMs: number): void {
    this.metrics.runsEnded.inc({ runtime: this.runtime, provider: this.provider, status });
    this.metrics.runDuration.observe({ runtime: this.runtime, status }, durationMs / 1000);
  }

  /** What the gateway read in one model response, and its price-table cost when known. */
  static gatewayUsage(
    metrics: Metrics,
    provider: string,
    usage: UsageData,
    costUsd: number | undefined,
  ): void {
    const kinds = {
      input: usage.input_tokens,
      output: usage.output_tokens,
      cache_read: usage.cache_read_tokens,
      cache_write: usage.cache_write_tokens,
    };
    for (const [kind, n] of Object.entries(kinds)) {
      if (n > 0) metrics.gatewayTokens.inc({ provider, kind }, n);
    }
    if (costUsd !== undefined && costUsd > 0) metrics.gatewayCost.inc({ provider }, costUsd);
  }

  /**
   * Wraps a runtime's parser to observe the time to first chunk: from `acceptedAt` (the run's
   * creation) to the first event a client sees as the agent's own output.
   */
  watchFirstOutput(parser: OutputParser, acceptedAt: number): OutputParser {
    let seen = false;
    const see = (events: AgentEvent[]) => {
      if (!seen && events.some((e) => FIRST_OUTPUT_TYPES.has(e.type))) {
        seen = true;
        this.metrics.firstOutput.observe({ runtime: this.runtime }, (Date.now() - acceptedAt) / 1000);
      }
      return events;
    };
    const wrapped: OutputParser = {
      push: (line) => see(parser.push(line)),
      finish: (exitCode) => parser.finish(exitCode),
    };
    const stderr = parser.pushStderr?.bind(parser);
    if (stderr) wrapped.pushStderr = (line) => see(stderr(line));
    return wrapped;
  }
}
