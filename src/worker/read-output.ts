import type { AgentEvent } from '../events/types.js';
import type { OutputParser } from '../runtimes/types.js';
import type { RunningSandbox } from '../sandbox/driver.js';
import { linesOf } from './lines.js';
import type { RunEventSink } from './run-events.js';

/** stderr lines kept as `log` events per run; the rest are counted, not stored. */
export const MAX_STDERR_EVENTS = 500;

/**
 * Feeds the sandbox's stdout to the parser and its stderr to the parser or straight to the sink.
 * A line cut at the line limit loses the start of a secret it ended in (the cut came before any
 * redaction could see the whole value), and the run says once that a line was cut.
 */
export async function readOutput(
  sandbox: Pick<RunningSandbox, 'stdout' | 'stderr'>,
  parser: OutputParser,
  sink: RunEventSink,
  maxLineBytes: number,
): Promise<void> {
  const read = async (stream: RunningSandbox['stdout'], each: (line: string) => void) => {
    for await (const batch of linesOf(stream, maxLineBytes)) {
      for (const line of batch) {
        if (line.truncated) sink.lineCut();
        each(line.truncated ? sink.redactor.dropPartialTail(line.text) : line.text);
      }
    }
  };
  const out = read(sandbox.stdout, (line) => {
    if (line) for (const ev of parser.push(line)) sink.emit(ev);
  });
  let n = 0;
  const err = read(sandbox.stderr, (line) => {
    if (!line.trim()) return;
    const evs: AgentEvent[] = parser.pushStderr?.(line) ?? [
      { type: 'log', data: { stream: 'stderr', line } },
    ];
    if (++n <= MAX_STDERR_EVENTS) for (const ev of evs) sink.emit(ev);
  });
  await Promise.all([out, err]);
  if (n > MAX_STDERR_EVENTS) {
    sink.emit({
      type: 'log',
      data: { stream: 'system', line: `${n - MAX_STDERR_EVENTS} more stderr lines were not kept.` },
    });
  }
}
