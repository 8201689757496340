import type { FastifyInstance, FastifyReply } from 'fastify';
import { SseStream } from '../events/sse.js';
import { accessLine } from './request-log.js';

/**
 * The API's open SSE responses. Streams are hijacked from Fastify, so closing the server would wait
 * for them forever: on close they are ended instead, and their clients reconnect (to this process
 * once it is back, or another) with Last-Event-ID. The runs themselves are not touched.
 */
export class OpenStreams {
  private readonly open = new Set<SseStream>();

  constructor(private readonly heartbeatMs: number) {}

  /** How many are open now (the jetty_sse_streams_open gauge). */
  get size(): number {
    return this.open.size;
  }

  /**
   * Takes the reply over and opens an SSE response on it; with `holdMs` its headers wait that long
   * at most for the first message, to go in one write with it (SseStream.open).
   */
  start(reply: FastifyReply, status: number, headers: Record<string, string>, holdMs = 0): SseStream {
    reply.hijack();
    const sse = new SseStream(reply.raw, this.heartbeatMs);
    this.open.add(sse);
    sse.signal.addEventListener('abort', () => this.open.delete(sse), { once: true });
    // A stream ended by us completes as a response and is logged as one (RequestLog); one its
    // client left never completes, and is logged here, once.
    reply.raw.once('close', () => {
      if (reply.raw.writableFinished) return;
      reply.log.info(accessLine(reply), 'stream closed by the client');
    });
    sse.open(status, headers, holdMs);
    return sse;
  }

  register(app: FastifyInstance): void {
    app.addHook('preClose', async () => {
      for (const sse of this.open) sse.end();
    });
  }
}
