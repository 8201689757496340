/**
 * What bounds one run's output. A sandbox can print without end; each quantity below has a limit
 * (set by the operator, src/config), and a run that reaches one says so in a `warning` event
 * (code `output_limit`) and in its record (`limits_hit`).
 */
export interface RunLimits {
  /** Bytes of one stdout or stderr line held; the rest of a longer line is dropped. */
  maxLineBytes: number;
  /** Bytes of one text field of an event: tool.result output, a log line, tool.call input (as JSON). */
  maxEventTextBytes: number;
  /** Bytes of the agent's own words in one event: agent.message, agent.reasoning, final text, error. */
  maxMessageBytes: number;
  /** Events stored per run, besides the limit notices and the terminal event. */
  maxEvents: number;
  /** Bytes of event data stored per run, besides the limit notices and the terminal event. */
  maxStreamBytes: number;
}

export const DEFAULT_RUN_LIMITS: RunLimits = {
  // CLIs print a whole tool result as one JSON line (a 100 KiB file read makes a 210 KB line);
  // a line cut short cannot be parsed, so this is far above any real line and still bounded.
  maxLineBytes: 4 * 1024 * 1024,
  // What a person reads in a stream; the whole output stays in the sandbox's files.
  maxEventTextBytes: 16 * 1024,
  // A long final report must arrive whole: it is the answer of a non-streaming request.
  maxMessageBytes: 256 * 1024,
  // A busy hour-long run makes a few thousand events; 100,000 lines of noise must not.
  maxEvents: 20_000,
  // Bounds Redis and what a client reads back (GET /v1/runs/{id}/trajectory holds it all).
  maxStreamBytes: 32 * 1024 * 1024,
};

/** A limit a run reached, as its record lists it. */
export type LimitHit = 'max_line_bytes' | 'max_events' | 'max_stream_bytes';
export const LIMIT_HITS: readonly LimitHit[] = ['max_line_bytes', 'max_events', 'max_stream_bytes'];

/** The setting that raises each limit, as the notice names it. */
export const LIMIT_SETTINGS: Record<LimitHit, string> = {
  max_line_bytes: 'RUN_MAX_LINE_BYTES',
  max_events: 'RUN_MAX_EVENTS',
  max_stream_bytes: 'RUN_MAX_STREAM_BYTES',
};

/** The `warning` code of a limit notice. */
export const OUTPUT_LIMIT_CODE = 'output_limit';
