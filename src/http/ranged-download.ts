/**
 * Downloads of stored files, streamed from the blob store (never read whole), with single-range
 * `Range` requests answered 206 (RFC 9110 section 14). Several ranges in one request, or a header
 * that does not parse, get the whole file (200), as the RFC allows; a range past the end gets 416.
 */
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';
import type { ByteRange } from '../storage/object-store.js';

export type RangeAnswer = { kind: 'whole' } | { kind: 'part'; range: ByteRange } | { kind: 'unsatisfiable' };

export function parseRange(header: string | undefined, size: number): RangeAnswer {
  if (header === undefined) return { kind: 'whole' };
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return { kind: 'whole' };
  if (m[1] === '') {
    // A suffix: the last N bytes.
    const n = Number(m[2]);
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'part', range: { start: Math.max(0, size - n), end: size - 1 } };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (!Number.isSafeInteger(start) || (m[2] !== '' && Number(m[2]) < start)) return { kind: 'whole' };
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'part', range: { start, end } };
}

export interface DownloadSource {
  /** The whole file's size, known before it is opened (the run record, or a stat). */
  size: number;
  /** A strong validator (an artifact's sha256), for `ETag` and `If-Range`. */
  etag?: string;
  open(range?: ByteRange): Promise<{ stream: Readable; size: number } | null>;
}

/**
 * Sends a stored file, or the range asked for. Headers the caller set (content type, disposition)
 * stay. Answers null when the file is gone from the store, for the caller's own 404.
 */
export async function sendDownload(
  req: FastifyRequest,
  reply: FastifyReply,
  src: DownloadSource,
): Promise<FastifyReply | null> {
  const etag = src.etag ? `"${src.etag}"` : undefined;
  const ifRange = req.headers['if-range'];
  // A Range with an If-Range that names another version of the file: the whole (new) file.
  const honour = ifRange === undefined || (etag !== undefined && ifRange === etag);
  const rangeHeader = honour ? req.headers.range : undefined;
  const answer = parseRange(rangeHeader, src.size);
  if (answer.kind === 'unsatisfiable') {
    throw new AppError(
      `The Range "${rangeHeader}" is outside the file (${src.size} bytes). Ask for bytes=0-${Math.max(0, src.size - 1)} or less.`,
      {
        status: 416,
        type: 'invalid_request_error',
        code: 'range_not_satisfiable',
        param: 'Range',
        headers: { 'content-range': `bytes */${src.size}` },
      },
    );
  }
  const range = answer.kind === 'part' ? answer.range : undefined;
  const file = await src.open(range);
  if (!file) return null;
  reply.header('accept-ranges', 'bytes');
  if (etag) reply.header('etag', etag);
  if (!range) return reply.header('content-length', String(file.size)).send(file.stream);
  return reply
    .code(206)
    .header('content-range', `bytes ${range.start}-${range.end}/${file.size}`)
    .header('content-length', String(range.end - range.start + 1))
    .send(file.stream);
}
