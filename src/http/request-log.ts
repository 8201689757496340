import { type FastifyReply, type FastifyRequest, LogController } from 'fastify';

/**
 * One log line per request, when it is answered, instead of Fastify's two (one on arrival, one on
 * completion): the one line carries both (method, URL and client with status and time). Half the
 * lines is half the JSON encoding and half the writes to stdout, per request: a burst of a
 * thousand followers joining a run logged a thousand arrivals, about a tenth of the API's CPU.
 *
 * An SSE stream the client leaves never completes as a response; OpenStreams logs those.
 */
export class RequestLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    if (this.isLogDisabled(request)) return;
    const line = accessLine(reply);
    if (error) reply.log.error({ ...line, err: error }, 'request errored');
    else reply.log.info(line, 'request completed');
  }
}

/** What a request's one log line says of it: method, URL and client, status, time in ms. */
export function accessLine(reply: FastifyReply): {
  req: FastifyRequest;
  res: FastifyReply;
  responseTime: number;
} {
  return { req: reply.request, res: reply, responseTime: reply.elapsedTime };
}
