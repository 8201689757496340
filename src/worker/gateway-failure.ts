import type { RunError } from '../events/types.js';
import type { OutputParser } from '../runtimes/types.js';

/**
 * What the sandbox's forwarder and entrypoint print on stderr when the worker's provider gateway
 * cannot be reached (docker/runtimes/common/forwarder.js, entrypoint.sh).
 */
const GATEWAY_FAILURE =
  /^jetty-(?:forwarder: cannot reach the gateway|entrypoint: the gateway forwarder did not start)/;
const DETAIL_MAX = 300;

/**
 * Wraps a runtime's parser so that a run that failed because its sandbox could not reach OUR
 * gateway says so (`gateway_unreachable`) instead of blaming the model provider, whatever the CLI
 * made of the refused connections.
 */
export function watchGatewayFailures(parser: OutputParser): OutputParser {
  let seen: string | undefined;
  const wrapped: OutputParser = {
    push: (line) => parser.push(line),
    finish(exitCode) {
      const fin = parser.finish(exitCode);
      if (seen === undefined || fin.outcome.status !== 'failed') return fin;
      return { ...fin, outcome: { ...fin.outcome, error: gatewayUnreachable(seen) } };
    },
  };
  const inner = parser.pushStderr?.bind(parser);
  if (inner) {
    wrapped.pushStderr = (line) => {
      if (seen === undefined && GATEWAY_FAILURE.test(line)) seen = line.trim().slice(0, DETAIL_MAX);
      return inner(line);
    };
  }
  return wrapped;
}

export function gatewayUnreachable(detail: string): RunError {
  return {
    code: 'gateway_unreachable',
    message: `The sandbox could not reach this server's provider gateway (${detail}). This is a fault of the worker that ran it, not of the model provider: check that worker's /readyz and its log, then run again.`,
  };
}
