import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';
import { envelope } from './errors.js';

/**
 * The answers Fastify and Node give before a request reaches a route (a URL that does not decode,
 * a path segment past the router's limit, headers past the size limit, an unparseable request)
 * carry the OpenAI envelope and an x-request-id like every other answer, instead of their own
 * shapes: a client library reads every error the same way.
 */

/** The router's limit on one path segment (Fastify's maxParamLength). Ids and names are far shorter. */
export const MAX_PATH_SEGMENT = 100;

export function frameworkErrorHandler(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const appErr =
    err.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new AppError(
          `A segment of the URL path is longer than ${MAX_PATH_SEGMENT} characters, more than any id or name here can be. Check the path.`,
          { status: 414, type: 'invalid_request_error', code: 'path_too_long' },
        )
      : err.code === 'FST_ERR_BAD_URL'
        ? new AppError(
            'The URL path does not decode: a "%" must start an escape such as %2F, and the escapes must spell UTF-8. Encode each path segment (encodeURIComponent).',
            { status: 400, type: 'invalid_request_error', code: 'invalid_url' },
          )
        : new AppError(err.message, { status: 400, type: 'invalid_request_error', code: 'invalid_request' });
  req.log.info({ code: appErr.code }, appErr.message);
  void reply.code(appErr.status).header('x-request-id', req.id).send(envelope(appErr));
}

/** Node's HTTP parser refused the request: there is no request object, only the socket. */
export function clientErrorHandler(maxHeaderBytes: number) {
  return (err: NodeJS.ErrnoException, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const appErr =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? new AppError(
            `The request headers are larger than ${maxHeaderBytes} bytes, the server's limit (MAX_HEADER_BYTES). Send fewer or shorter headers.`,
            { status: 431, type: 'invalid_request_error', code: 'headers_too_large' },
          )
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? new AppError('The request took too long to arrive.', {
              status: 408,
              type: 'invalid_request_error',
              code: 'request_timeout',
            })
          : new AppError('The request is not valid HTTP/1.1.', {
              status: 400,
              type: 'invalid_request_error',
              code: 'malformed_request',
            });
    const body = JSON.stringify(envelope(appErr));
    if (socket.writable) {
      socket.write(
        `HTTP/1.1 ${appErr.status} ${STATUS_CODES[appErr.status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nx-request-id: req_${randomUUID()}\r\nConnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy();
  };
}
