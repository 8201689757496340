/** One dispatched server-sent event. */
export interface SseMessage {
  event: string;
  data: string;
  id: string | undefined;
}

/**
 * Reads a `text/event-stream` body and yields each event as it completes, following the parts of
 * the WHATWG rules a client needs: CRLF, LF or CR line ends (a CR split across reads included),
 * `field: value` with one optional space, multi-line `data`, comments (heartbeats) ignored, and an
 * unterminated event at the end discarded. Events are yielded the moment their blank line arrives,
 * so a caller's clock reads the time the event reached the client.
 */
export async function* readSse(body: AsyncIterable<Uint8Array>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  let buf = '';
  let event = '';
  let data: string[] = [];
  let id: string | undefined;

  // The next whole line, or null until more bytes come. A CR at the very end may be half of a CRLF.
  const takeLine = (atEnd: boolean): string | null => {
    const i = buf.search(/[\r\n]/);
    if (i < 0) return null;
    if (buf[i] === '\r' && i === buf.length - 1 && !atEnd) return null;
    const width = buf[i] === '\r' && buf[i + 1] === '\n' ? 2 : 1;
    const line = buf.slice(0, i);
    buf = buf.slice(i + width);
    return line;
  };

  // Applies one line; returns the event a blank line completes.
  const apply = (line: string): SseMessage | null => {
    if (line === '') {
      if (data.length === 0) {
        event = '';
        return null;
      }
      const msg = { event: event || 'message', data: data.join('\n'), id };
      event = '';
      data = [];
      return msg;
    }
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
    else if (field === 'id' && !value.includes('\0')) id = value;
    return null;
  };

  // The events the lines read so far complete (at the end, a CR alone ends its line too).
  function* complete(atEnd: boolean): Generator<SseMessage> {
    for (let line = takeLine(atEnd); line !== null; line = takeLine(atEnd)) {
      const msg = apply(line);
      if (msg) yield msg;
    }
  }

  // Leaving early (the caller stops) lets go of the body: a fetch body is cancelled, a node:http
  // response destroyed.
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    yield* complete(false);
  }
  buf += decoder.decode();
  yield* complete(true);
}
