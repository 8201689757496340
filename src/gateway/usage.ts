import type { UsageData } from '../events/types.js';
import { isPlainObject } from '../json.js';

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
  if (!usage) return false;
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

/** The reader for a request path, or null for calls that carry no usage (token counts, model lists). */
export function usageReaderForPath(path: string, contentType: string): UsageReader | null {
  const p = path.split('?')[0] ?? path;
  if (p.includes('count_tokens') || p.endsWith(':countTokens')) return null;
  if (p.endsWith('/messages')) return reader(anthropic, contentType);
  if (p.endsWith('/responses')) return reader(responses, contentType);
  if (p.endsWith('/chat/completions')) return reader(chat, contentType);
  if (p.endsWith(':streamGenerateContent') || p.endsWith(':generateContent'))
    return reader(gemini, contentType);
  return null;
}

// A JSON reply's usage sits in a body of bounded size; past this we stop buffering.
const MAX_JSON_BYTES = 4 * 1024 * 1024;

function reader(extract: Extractor, contentType: string): UsageReader {
  const decoder = new TextDecoder();
  const sse = contentType.includes('text/event-stream');
  const t: Tokens = { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 };
  let seen = false;
  let buf = '';

  const take = (text: string) => {
    try {
      const parsed = obj(JSON.parse(text));
      if (parsed && extract(parsed, t)) seen = true;
    } catch {
      // Not JSON ([DONE], a keepalive): not ours to judge; the CLI sees the bytes unchanged.
    }
  };
  const line = (l: string) => {
    if (l.startsWith('data:')) take(l.slice(5).trim());
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
        // A JSON array is how Gemini answers a non-SSE stream request: the last element counts.
        try {
          const parsed: unknown = JSON.parse(buf);
          for (const item of Array.isArray(parsed) ? parsed : [parsed]) {
            const o = obj(item);
            if (o && extract(o, t)) seen = true;
          }
        } catch {
          // An error body or not JSON: no usage.
        }
      }
      if (!seen) return null;
      return {
        input_tokens: Math.max(0, t.input),
        output_tokens: t.output,
        cache_read_tokens: t.cacheRead,
        cache_write_tokens: t.cacheWrite,
        source: 'gateway',
        ...(t.model ? { model: t.model } : {}),
      };
    },
  };
}
