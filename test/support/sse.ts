/** A small, strict SSE reader for tests: yields each message (and each comment) as it arrives. */
export interface SseEvent {
  event?: string;
  id?: string;
  data: string;
  comment?: string;
}

export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buf = '';
  let cur: { event?: string; id?: string; data: string[] } = { data: [] };
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    let nl = buf.indexOf('\n');
    while (nl >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, '');
      buf = buf.slice(nl + 1);
      nl = buf.indexOf('\n');
      if (line === '') {
        if (cur.data.length || cur.event || cur.id) {
          yield {
            ...(cur.event ? { event: cur.event } : {}),
            ...(cur.id ? { id: cur.id } : {}),
            data: cur.data.join('\n'),
          };
        }
        cur = { data: [] };
      } else if (line.startsWith(':')) {
        yield { data: '', comment: line.slice(1).trim() };
      } else {
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
        if (field === 'data') cur.data.push(value);
        else if (field === 'event') cur.event = value;
        else if (field === 'id') cur.id = value;
      }
    }
  }
}
