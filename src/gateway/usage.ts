import type { UsageData } from '../events/types.js';

/**
 * Reads token usage out of provider responses as they stream through the gateway, without
 * changing a byte of them. One reader per response.
 */
export interface UsageReader {
  /** Feed response bytes as they pass. */
  push(chunk: Uint8Array): void;
  /** The response ended: the usage it reported, if any. */
  finish(): UsageData | null;
}

/** Anthropic Messages: SSE (message_start + message_delta usage) or a JSON message with `usage`. */
export function anthropicUsageReader(contentType: string): UsageReader {
  const decoder = new TextDecoder();
  const sse = contentType.includes('text/event-stream');
  let buf = '';
  let json = '';
  const u = {
    input: 0,
    output: 0,
    cacheRead: 0,
    cacheWrite: 0,
    seen: false,
    model: undefined as string | undefined,
  };

  const take = (usage: Record<string, unknown> | undefined, model?: unknown) => {
    if (!usage) return;
    u.seen = true;
    if (typeof model === 'string') u.model = model;
    if (typeof usage.input_tokens === 'number') u.input = usage.input_tokens;
    if (typeof usage.output_tokens === 'number') u.output = usage.output_tokens;
    if (typeof usage.cache_read_input_tokens === 'number') u.cacheRead = usage.cache_read_input_tokens;
    if (typeof usage.cache_creation_input_tokens === 'number')
      u.cacheWrite = usage.cache_creation_input_tokens;
  };

  const line = (l: string) => {
    if (!l.startsWith('data:')) return;
    try {
      const ev = JSON.parse(l.slice(5).trim()) as Record<string, unknown>;
      if (ev.type === 'message_start') {
        const msg = ev.message as Record<string, unknown> | undefined;
        take(msg?.usage as Record<string, unknown> | undefined, msg?.model);
      } else if (ev.type === 'message_delta') {
        take(ev.usage as Record<string, unknown> | undefined);
      }
    } catch {
      // Not JSON: not ours to judge; the CLI sees the bytes unchanged.
    }
  };

  return {
    push(chunk) {
      const text = decoder.decode(chunk, { stream: true });
      if (!sse) {
        // Bounded: a JSON reply's usage sits in its first few kilobytes' worth of structure.
        if (json.length < 4 * 1024 * 1024) json += text;
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
      if (sse && buf) line(buf);
      if (!sse && json) {
        try {
          const body = JSON.parse(json) as Record<string, unknown>;
          take(body.usage as Record<string, unknown> | undefined, body.model);
        } catch {
          // An error body or not JSON: no usage.
        }
      }
      if (!u.seen) return null;
      return {
        input_tokens: u.input,
        output_tokens: u.output,
        cache_read_tokens: u.cacheRead,
        cache_write_tokens: u.cacheWrite,
        source: 'gateway',
        ...(u.model ? { model: u.model } : {}),
      };
    },
  };
}
