import { TERMINAL_EVENT_TYPES } from '../events/types.js';
import type { JettyClient, RunEvent } from './client.js';
import { CliError, EXIT } from './exit.js';

export interface FollowOptions {
  /** Resume after this event id (the SSE Last-Event-ID); from the start when absent. */
  after?: string;
  /** Reconnections in a row, with no event between them, before giving up. */
  reconnects: number;
  maxEventBytes: number;
  signal: AbortSignal;
  /** Told before each reconnection (the CLI prints it). */
  onReconnect?(message: string): void;
}

const isTerminal = (type: string) => (TERMINAL_EVENT_TYPES as readonly string[]).includes(type);

/**
 * A run's events, each once, in order, until its terminal event: a dropped connection (or a server
 * that restarts) is resumed with Last-Event-ID, so nothing is missed or repeated. Returns early
 * when `signal` aborts.
 */
export async function* followRun(
  client: JettyClient,
  id: string,
  opts: FollowOptions,
): AsyncGenerator<RunEvent> {
  let after = opts.after;
  let failures = 0;
  for (;;) {
    let why = 'the server closed the stream';
    try {
      for await (const ev of client.events(id, after, opts)) {
        failures = 0;
        after = ev.id;
        yield ev;
        if (isTerminal(ev.type)) return;
      }
    } catch (err) {
      if (opts.signal.aborted) return;
      // A 4xx (unknown run, bad key) will not get better by asking again; a 5xx may.
      if (err instanceof CliError && err.status !== undefined && err.status < 500) throw err;
      why = describe(err);
    }
    if (opts.signal.aborted) return;
    if (++failures > opts.reconnects) {
      throw new CliError(
        `lost the event stream of run ${id} (${why}) and ${opts.reconnects} reconnections failed. ` +
          `The run goes on: follow it with \`jetty logs ${id} -f\` (JETTY_CLI_RECONNECTS sets the attempts).`,
        EXIT.unreachable,
      );
    }
    opts.onReconnect?.(
      `connection lost (${why}); resuming ${after ? `after event ${after}` : 'from the start'} ` +
        `(attempt ${failures} of ${opts.reconnects})`,
    );
    await sleep(Math.min(250 * 2 ** (failures - 1), 5000), opts.signal);
  }
}

function describe(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return e.cause?.code ?? e.cause?.message ?? e.message;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
