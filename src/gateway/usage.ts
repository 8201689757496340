import type { UsageData } from '../events/types.js';
import { isPlainObject } from '../json.js';
import { EventStreamDecoder } from './event-stream.js';

/**
 * Reads token usage out of provider responses as they stream through the gateway, without
 * changing a byte of them. One reader per response; the wire protocol is known from the path, so
 * usage is measured the same way whichever runtime or provider is behind it.
 */
export interface UsageReader {
  /** Feed response bytes as they pass. */
  push(chunk: Uint8Array): void;
  /** The response ended: the usage it reported, if any. */
  finish(): UsageData | null;
}

type Json = Record<string, unknown>;

interface Tokens {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
  model?: string;
}

/** Takes one JSON object (an SSE event's data, or the whole body) and updates the tokens seen. */
type Extractor = (obj: Json, t: Tokens) => boolean;

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const obj = (v: unknown): Json | undefined => (isPlainObject(v) ? (v as Json) : undefined);

/** Anthropic Messages: usage in message_start (input, cache) and message_delta (output); or `usage` of the JSON body. */
const anthropic: Extractor = (o, t) => {
  const message = obj(o.message);
  const usage = obj(o.type === 'message_start' ? message?.usage : o.usage);
  // Other shapes carry a `usage` too (Bedrock's own models): only Anthropic's names count here.
  if (!usage || (usage.input_tokens === undefined && usage.output_tokens === undefined)) return false;
  if (typeof (message?.model ?? o.model) === 'string') t.model = String(message?.model ?? o.model);
  t.input = num(usage.input_tokens) ?? t.input;
  t.output = num(usage.output_tokens) ?? t.output;
  t.cacheRead = num(usage.cache_read_input_tokens) ?? t.cacheRead;
  t.cacheWrite = num(usage.cache_creation_input_tokens) ?? t.cacheWrite;
  return true;
};

/** OpenAI Responses: `response.completed` carries response.usage; input_tokens include cached ones. */
const responses: Extractor = (o, t) => {
  const response = obj(o.response) ?? (o.object === 'response' ? o : undefined);
  const usage = obj(response?.usage);
  if (!usage) return false;
  if (typeof response?.model === 'string') t.model = response.model;
  const cached = num(obj(usage.input_tokens_details)?.cached_tokens) ?? 0;
  t.input = (num(usage.input_tokens) ?? 0) - cached;
  t.cacheRead = cached;
  t.output = num(usage.output_tokens) ?? 0;
  return true;
};

/** OpenAI Chat Completions: a `usage` object (last chunk when streaming); prompt_tokens include cached ones. */
const chat: Extractor = (o, t) => {
  const usage = obj(o.usage);
  if (!usage) return false;
  if (typeof o.model === 'string') t.model = o.model;
  const cached =
    num(obj(usage.prompt_tokens_details)?.cached_tokens) ?? num(usage.cache_read_input_tokens) ?? 0;
  t.input = (num(usage.prompt_tokens) ?? 0) - cached;
  t.cacheRead = cached;
  t.output = num(usage.completion_tokens) ?? 0;
  return true;
};

/** Gemini generateContent: usageMetadata (streaming: every chunk, the last one counts). */
const gemini: Extractor = (o, t) => {
  const usage = obj(o.usageMetadata);
  if (!usage) return false;
  if (typeof o.modelVersion === 'string') t.model = o.modelVersion;
  const cached = num(usage.cachedContentTokenCount) ?? 0;
  t.input = (num(usage.promptTokenCount) ?? 0) - cached;
  t.cacheRead = cached;
  t.output = (num(usage.candidatesTokenCount) ?? 0) + (num(usage.thoughtsTokenCount) ?? 0);
  return true;
};

/**
 * Bedrock Converse: `usage` of the body, or of the stream's `metadata` event. inputTokens leave
 * out cache reads and writes (totalTokens adds all four), as Anthropic's input_tokens do.
 */
const converse: Extractor = (o, t) => {
  const usage = obj(o.usage);
  if (!usage || (usage.inputTokens === undefined && usage.outputTokens === undefined)) return false;
  t.input = num(usage.inputTokens) ?? t.input;
  t.output = num(usage.outputTokens) ?? t.output;
  t.cacheRead = num(usage.cacheReadInputTokens) ?? t.cacheRead;
  t.cacheWrite = num(usage.cacheWriteInputTokens) ?? t.cacheWrite;
  return true;
};

/** Bedrock InvokeModel: the model's own body (Anthropic Messages for Claude; Converse-style names for Amazon's). */
const bedrockInvoke: Extractor = (o, t) => anthropic(o, t) || converse(o, t);

/**
 * Bedrock's per-invocation figures, which it adds to the last chunk of a streamed InvokeModel
 * (`amazon-bedrock-invocationMetrics`): used only when the model's own events carried none.
 */
const invocationMetrics: Extractor = (o, t) => {
  const m = obj(o['amazon-bedrock-invocationMetrics']);
  if (!m || (m.inputTokenCount === undefined && m.outputTokenCount === undefined)) return false;
  t.input = num(m.inputTokenCount) ?? t.input;
  t.output = num(m.outputTokenCount) ?? t.output;
  t.cacheRead = num(m.cacheReadInputTokenCount) ?? t.cacheRead;
  t.cacheWrite = num(m.cacheWriteInputTokenCount) ?? t.cacheWrite;
  return true;
};

/** The wire protocol of a model call, known from its path; null for calls that are not one. */
export type WireProtocol =
  | 'anthropic-messages'
  | 'openai-responses'
  | 'openai-chat'
  | 'gemini'
  | 'bedrock-invoke'
  | 'bedrock-invoke-stream'
  | 'bedrock-converse'
  | 'bedrock-converse-stream';

const BEDROCK_OPERATIONS: Record<string, WireProtocol> = {
  invoke: 'bedrock-invoke',
  'invoke-with-response-stream': 'bedrock-invoke-stream',
  converse: 'bedrock-converse',
  'converse-stream': 'bedrock-converse-stream',
};

export interface ModelCall {
  protocol: WireProtocol;
  /** The model the path names (Bedrock and Gemini put it there), URL-decoded. */
  model?: string;
}

/** Which model call a request path is, or null (token counts, model lists, anything else). */
export function modelCallOf(path: string): ModelCall | null {
  const p = path.split('?')[0] ?? path;
  if (p.includes('count_tokens') || p.endsWith(':countTokens')) return null;
  const bedrock = /\/model\/([^/]+)\/([a-z-]+)$/.exec(p);
  const op = bedrock ? BEDROCK_OPERATIONS[bedrock[2]!] : undefined;
  if (bedrock && op) return { protocol: op, model: decode(bedrock[1]!) };
  if (p.endsWith('/messages')) return { protocol: 'anthropic-messages' };
  if (p.endsWith('/responses')) return { protocol: 'openai-responses' };
  if (p.endsWith('/chat/completions')) return { protocol: 'openai-chat' };
  const gemini = /\/models\/([^/:]+):(?:streamGenerateContent|generateContent)$/.exec(p);
  if (gemini) return { protocol: 'gemini', model: decode(gemini[1]!) };
  return null;
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/**
 * The reader for a request path, or null for calls that carry no usage. `headers` are the
 * response's: Bedrock's InvokeModel also reports its token counts there.
 */
export function usageReaderForPath(path: string, contentType: string, headers?: Headers): UsageReader | null {
  const call = modelCallOf(path);
  if (!call) return null;
  const sse = contentType.includes('text/event-stream');
  switch (call.protocol) {
    case 'anthropic-messages':
      return textReader(anthropic, sse, call.model);
    case 'openai-responses':
      return textReader(responses, sse, call.model);
    case 'openai-chat':
      return textReader(chat, sse, call.model);
    case 'gemini':
      return textReader(gemini, sse, call.model);
    case 'bedrock-invoke':
      return textReader(bedrockInvoke, false, call.model, bedrockHeaderCounts(headers));
    case 'bedrock-converse':
      return textReader(converse, false, call.model);
    case 'bedrock-invoke-stream':
      return eventStreamReader(invokeStreamEvent, call.model);
    case 'bedrock-converse-stream':
      return eventStreamReader(converseStreamEvent, call.model);
  }
}

// A JSON reply's usage sits in a body of bounded size; past this we stop buffering.
const MAX_JSON_BYTES = 4 * 1024 * 1024;

/** The tokens one response reported, and whether it reported any. */
class Tally {
  readonly t: Tokens = { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 };
  seen = false;

  constructor(private readonly pathModel: string | undefined) {}

  take(o: Json | undefined, extract: Extractor): boolean {
    if (o && extract(o, this.t)) this.seen = true;
    return this.seen;
  }

  result(): UsageData | null {
    if (!this.seen) return null;
    const model = this.t.model ?? this.pathModel;
    return {
      input_tokens: Math.max(0, this.t.input),
      output_tokens: this.t.output,
      cache_read_tokens: this.t.cacheRead,
      cache_write_tokens: this.t.cacheWrite,
      source: 'gateway',
      ...(model ? { model } : {}),
    };
  }
}

function parseJson(text: string): Json | undefined {
  try {
    return obj(JSON.parse(text));
  } catch {
    // Not JSON ([DONE], a keepalive, an error page): not ours to judge; the CLI sees the bytes unchanged.
    return undefined;
  }
}

/** SSE `data:` lines, or one JSON body (a JSON array is Gemini's non-SSE stream: every element counts). */
function textReader(
  extract: Extractor,
  sse: boolean,
  pathModel: string | undefined,
  fallback?: (tally: Tally) => void,
): UsageReader {
  const decoder = new TextDecoder();
  const tally = new Tally(pathModel);
  let buf = '';
  const line = (l: string) => {
    if (l.startsWith('data:')) tally.take(parseJson(l.slice(5).trim()), extract);
  };
  return {
    push(chunk) {
      const text = decoder.decode(chunk, { stream: true });
      if (!sse) {
        if (buf.length < MAX_JSON_BYTES) buf += text;
        return;
      }
      buf += text;
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        line(buf.slice(0, nl).replace(/\r$/, ''));
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
      }
    },
    finish() {
      if (sse) {
        if (buf) line(buf);
      } else if (buf) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(buf);
        } catch {
          parsed = undefined; // an error body or not JSON: no usage
        }
        for (const item of Array.isArray(parsed) ? parsed : [parsed]) tally.take(obj(item), extract);
      }
      if (!tally.seen) fallback?.(tally);
      return tally.result();
    },
  };
}

/** One event stream message: feeds the tally, given its `:event-type` and JSON payload. */
type StreamEventReader = (eventType: string, payload: Json, tally: Tally) => void;

/** invoke-with-response-stream: `chunk` events whose `bytes` (base64) hold the model's own stream events. */
const invokeStreamEvent: StreamEventReader = (eventType, payload, tally) => {
  if (eventType !== 'chunk' || typeof payload.bytes !== 'string') return;
  const inner = parseJson(Buffer.from(payload.bytes, 'base64').toString('utf8'));
  if (!inner) return;
  if (!tally.take(inner, bedrockInvoke)) tally.take(inner, invocationMetrics);
};

/** converse-stream: the `metadata` event carries the call's usage. */
const converseStreamEvent: StreamEventReader = (eventType, payload, tally) => {
  if (eventType === 'metadata') tally.take(payload, converse);
};

function eventStreamReader(read: StreamEventReader, pathModel: string | undefined): UsageReader {
  const decoder = new EventStreamDecoder();
  const text = new TextDecoder();
  const tally = new Tally(pathModel);
  return {
    push(chunk) {
      for (const message of decoder.push(chunk)) {
        if (message.headers[':message-type'] !== 'event') continue;
        const payload = parseJson(text.decode(message.payload));
        if (payload) read(message.headers[':event-type'] ?? '', payload, tally);
      }
    },
    finish() {
      return tally.result();
    },
  };
}

/** Bedrock InvokeModel's answer headers with its token counts, for models whose body has none. */
function bedrockHeaderCounts(headers: Headers | undefined): ((tally: Tally) => void) | undefined {
  const input = Number(headers?.get('x-amzn-bedrock-input-token-count') ?? Number.NaN);
  const output = Number(headers?.get('x-amzn-bedrock-output-token-count') ?? Number.NaN);
  if (!Number.isFinite(input) && !Number.isFinite(output)) return undefined;
  return (tally) =>
    tally.take(
      {
        usage: {
          inputTokens: Number.isFinite(input) ? input : 0,
          outputTokens: Number.isFinite(output) ? output : 0,
        },
      },
      converse,
    );
}
