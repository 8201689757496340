import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { encodeComment, encodeSse, SseStream } from '../../src/events/sse.js';
import { readSse } from '../support/sse.js';

describe('encodeSse', () => {
  it('writes event, id and data lines and a blank line', () => {
    expect(encodeSse({ event: 'tool.call', id: '1-0', data: '{"a":1}' })).toBe(
      'event: tool.call\nid: 1-0\ndata: {"a":1}\n\n',
    );
  });

  it('splits data on every kind of line break so a payload cannot end the message early', () => {
    expect(encodeSse({ data: 'a\nb\r\nc\rd' })).toBe('data: a\ndata: b\ndata: c\ndata: d\n\n');
  });

  it('refuses a line break in id or event (it would forge fields)', () => {
    expect(() => encodeSse({ id: '1\nevent: x', data: '' })).toThrow(/single line/);
    expect(() => encodeSse({ event: 'a\rb', data: '' })).toThrow(/single line/);
  });

  it('writes comments as lines starting with a colon', () => {
    expect(encodeComment('keepalive')).toBe(': keepalive\n\n');
    expect(encodeComment()).toBe(':\n\n');
  });
});

describe('SseStream over a real socket', () => {
  it('sends headers, messages and heartbeat comments, and signals when the client leaves', async () => {
    let stream: SseStream | undefined;
    const server = createServer((_req, res) => {
      stream = new SseStream(res, 50);
      stream.open(200, { 'x-test': '1' });
      void stream.send({ id: '1-0', event: 'hello', data: 'line1\nline2' });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const ctl = new AbortController();
    const res = await fetch(`http://127.0.0.1:${port}/`, { signal: ctl.signal });
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(res.headers.get('x-accel-buffering')).toBe('no');
    const got: string[] = [];
    for await (const ev of readSse(res.body!)) {
      got.push(ev.comment !== undefined ? `comment:${ev.comment}` : `${ev.event}:${ev.id}:${ev.data}`);
      if (got.length === 3) break;
    }
    expect(got[0]).toBe('hello:1-0:line1\nline2');
    expect(got.slice(1)).toEqual(['comment:keepalive', 'comment:keepalive']);
    ctl.abort();
    await new Promise((r) => setTimeout(r, 100));
    expect(stream!.signal.aborted).toBe(true);
    server.close();
  });
});
