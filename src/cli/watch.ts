import type { CliConfig } from '../config/cli.js';
import { TERMINAL_EVENT_TYPES } from '../events/types.js';
import type { JettyClient, RunEvent } from './client.js';
import { type CliContext, println } from './command.js';
import { followRun } from './follow.js';
import { ProgressView } from './progress.js';

export interface WatchOptions {
  json: boolean;
  after?: string;
  signal: AbortSignal;
  /** Hands over the progress view (not in --json mode), e.g. to pause it during a prompt. */
  onView?: (view: ProgressView) => void;
}

/** What watching saw: the terminal event, unless watching stopped first. */
export interface Watched {
  terminal: RunEvent | undefined;
  view: ProgressView | undefined;
}

/**
 * Follows a run and shows it: `--json` writes each event as one JSON line on stdout (notes go to
 * stderr, so stdout stays machine-readable); otherwise the progress view.
 */
export async function watchRun(
  client: JettyClient,
  config: CliConfig,
  id: string,
  ctx: CliContext,
  opts: WatchOptions,
): Promise<Watched> {
  const view = opts.json ? undefined : new ProgressView(ctx.stdout, { color: !ctx.env.NO_COLOR });
  if (view) opts.onView?.(view);
  const note = (m: string) => (view ? view.note(m) : println(ctx.stderr, m));
  const clock = view && ctx.stdout.isTTY ? setInterval(() => view.tick(), 1000) : undefined;
  let terminal: RunEvent | undefined;
  try {
    for await (const ev of followRun(client, id, {
      ...(opts.after ? { after: opts.after } : {}),
      reconnects: config.reconnects,
      maxEventBytes: config.maxEventBytes,
      signal: opts.signal,
      onReconnect: note,
    })) {
      if (view) view.event(ev);
      else println(ctx.stdout, JSON.stringify(ev));
      if ((TERMINAL_EVENT_TYPES as readonly string[]).includes(ev.type)) terminal = ev;
    }
  } finally {
    if (clock) clearInterval(clock);
    view?.close();
  }
  return { terminal, view };
}
