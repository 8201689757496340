import { createServer } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
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

describe('SseStream holding its headers for the first message', () => {
  /** A raw client: what arrives in each socket read, until `until` matches the whole. */
  async function reads(
    open: (stream: SseStream) => void,
    until: RegExp,
  ): Promise<{ chunks: string[]; stream: SseStream }> {
    let stream: SseStream | undefined;
    const server = createServer((_req, res) => {
      stream = new SseStream(res, 60_000);
      open(stream);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const socket = connect(port, '127.0.0.1');
    socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    const chunks: string[] = [];
    await new Promise<void>((resolve, reject) => {
      socket.on('data', (b) => {
        chunks.push(b.toString());
        if (until.test(chunks.join(''))) resolve();
      });
      socket.on('error', reject);
    });
    socket.destroy();
    stream?.end();
    server.close();
    return { chunks, stream: stream! };
  }

  it('sends the headers and the first message in one write', async () => {
    const { chunks } = await reads((s) => {
      s.open(200, {}, 60_000);
      setTimeout(() => void s.send({ id: '1-0', event: 'run.queued', data: '{}' }), 30);
    }, /data: \{\}/);
    expect(chunks).toHaveLength(1);
    expect(chunks[0]).toMatch(
      /^HTTP\/1\.1 200 OK\r\n[\s\S]*content-type: text\/event-stream[\s\S]*\r\n\r\n[0-9a-f]+\r\nevent: run\.queued\nid: 1-0\ndata: \{\}\n\n/,
    );
  });

  it('sends held headers alone on flush(), before any message', async () => {
    const { chunks } = await reads((s) => {
      s.open(200, { 'x-test': '1' }, 60_000);
      setTimeout(() => s.flush(), 30);
    }, /\r\n\r\n/);
    expect(chunks.join('')).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*x-test: 1\r\n/);
  });

  it('sends held headers alone once the hold is over, when nothing came', async () => {
    const { chunks } = await reads((s) => s.open(200, { 'x-test': '2' }, 40), /\r\n\r\n/);
    expect(chunks.join('')).toMatch(/x-test: 2\r\n/);
  });

  it('sends held headers with the end of a stream that never had a message', async () => {
    const { chunks } = await reads((s) => {
      s.open(200, {}, 60_000);
      setTimeout(() => s.end(), 30);
    }, /\r\n0\r\n\r\n$/);
    expect(chunks.join('')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  });
});
