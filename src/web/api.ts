import { SseParser } from '../events/sse-parser.js';

/**
 * The page's calls to the API. The key lives in sessionStorage (gone when the tab closes) and is
 * sent as `Authorization: Bearer`. The event stream is read with fetch rather than EventSource,
 * because EventSource cannot send that header and the key must never ride in a URL.
 */
const STORAGE_KEY = 'jetty.apiKey';

export const session = {
  get key(): string | null {
    return sessionStorage.getItem(STORAGE_KEY);
  },
  set(key: string): void {
    sessionStorage.setItem(STORAGE_KEY, key);
  },
  clear(): void {
    sessionStorage.removeItem(STORAGE_KEY);
  },
};

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export interface StreamedEvent {
  id: string;
  type: string;
  ts: number;
  data: Record<string, unknown>;
}

/** The largest single event the page takes from the stream (the server bounds tool output anyway). */
const MAX_EVENT_CHARS = 8 * 1024 * 1024;

export class Api {
  constructor(private readonly onUnauthorized: () => void) {}

  async json<T>(path: string, init: RequestInit = {}, key = session.key): Promise<T> {
    const res = await this.fetch(path, init, key);
    return (await res.json()) as T;
  }

  async blob(path: string): Promise<Blob> {
    return (await this.fetch(path)).blob();
  }

  /** One connection to a run's events after `after`; ends when the server ends the stream. */
  async *events(id: string, after: string | undefined, signal: AbortSignal): AsyncGenerator<StreamedEvent> {
    const res = await this.fetch(`/v1/runs/${encodeURIComponent(id)}/events`, {
      headers: { accept: 'text/event-stream', ...(after ? { 'last-event-id': after } : {}) },
      signal,
    });
    if (!res.body) throw new ApiError('the server sent no stream', res.status);
    const parser = new SseParser(MAX_EVENT_CHARS);
    const decoder = new TextDecoder();
    const reader = res.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        for (const m of parser.push(decoder.decode(value, { stream: true }))) {
          yield { ...(JSON.parse(m.data) as StreamedEvent), id: m.id ?? '' };
        }
      }
    } finally {
      reader.cancel().catch(() => undefined);
    }
  }

  private async fetch(path: string, init: RequestInit = {}, key = session.key): Promise<Response> {
    const headers = new Headers(init.headers);
    if (key) headers.set('authorization', `Bearer ${key}`);
    const res = await fetch(path, { ...init, headers });
    if (res.ok) return res;
    let message = `HTTP ${res.status}`;
    try {
      const e = ((await res.json()) as { error?: { message?: string } }).error;
      if (e?.message) message = e.message;
    } catch {
      // Not the JSON envelope: the status says enough.
    }
    if (res.status === 401 && key === session.key) this.onUnauthorized();
    throw new ApiError(message, res.status);
  }
}
