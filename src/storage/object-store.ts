/**
 * The blob store's interface: flat keys (`runs/<id>/trajectory.json`, `uploads/<c>/<id>/a.csv`)
 * to bytes, as an S3 bucket holds them. Two implementations pass one conformance suite
 * (test/integration/object-store-conformance.test.ts): a directory on this host
 * (directory-object-store.ts, the single-machine default) and an S3-compatible server
 * (s3-object-store.ts, for API and workers on several hosts).
 *
 * Writes of one key are whole: a reader sees the old object or the new one, never a part.
 */
import type { Readable } from 'node:stream';
import { AppError } from '../errors.js';

export interface ObjectInfo {
  key: string;
  size: number;
  /** When it was last written (ms since the epoch). */
  modifiedMs: number;
}

/** Inclusive byte offsets, as in an HTTP `Range` header. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface ObjectBody {
  /** The bytes asked for (the range, or the whole object); read it or destroy it. */
  stream: Readable;
  /** The whole object's size. */
  size: number;
}

export interface ObjectStore {
  /** Names the store in messages: `the directory /var/lib/jetty/blobs`, `s3://bucket/prefix (at ...)`. */
  readonly name: string;
  /** Writes a key from bytes or a stream (of any length; a large one is sent in parts). */
  put(key: string, body: Buffer | string | Readable): Promise<void>;
  /** Writes a key from a local file (left in place). */
  putFile(key: string, file: string): Promise<void>;
  /** The object's bytes, or a range of them (within its size); null when there is no such key. */
  get(key: string, range?: ByteRange): Promise<ObjectBody | null>;
  stat(key: string): Promise<ObjectInfo | null>;
  /** Every key under a prefix, in key order (byte-wise, as S3 lists them). */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Removes every key under a prefix; answers how many went. */
  deletePrefix(prefix: string): Promise<number>;
  /** Throws an ObjectStoreError when the store cannot be used (for start-up and /readyz). */
  check(): Promise<void>;
}

/**
 * The store did not answer, or refused: the message names the store and the settings to check.
 * Unreachable is retryable (a run's attempt goes back to the queue); a refusal (credentials, no
 * bucket) is not, as trying again changes nothing.
 */
export class ObjectStoreError extends AppError {
  constructor(store: string, what: string, cause: unknown, opts: { retryable: boolean; fix: string }) {
    super(`The object store (${store}) ${what}: ${describe(cause)}. ${opts.fix}`, {
      status: 503,
      type: 'service_unavailable',
      code: opts.retryable ? 'object_store_unavailable' : 'object_store_refused',
      retryable: opts.retryable,
      cause,
    });
    this.name = 'ObjectStoreError';
  }
}

/** A JSON object past its bound: never read whole into memory. */
export class ObjectTooLargeError extends AppError {
  constructor(key: string, size: number, limit: number, setting: string) {
    super(
      `The stored file ${key} is ${size} bytes, more than the ${limit} bytes the server reads into memory (${setting}). Raise ${setting}.`,
      { status: 500, type: 'server_error', code: 'stored_file_too_large' },
    );
  }
}

function describe(cause: unknown): string {
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    const msg = cause.message || cause.name;
    return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
  }
  return String(cause);
}

/**
 * A key is `/`-separated non-empty segments, none `.` or `..`, no NUL, at most 1024 bytes (S3's
 * limit, the store's own prefix included): so that it means the same thing as a path under a
 * directory and as an S3 key.
 */
export function assertKey(key: string): void {
  if (!isSafeKey(key)) throw new Error(`invalid object key ${JSON.stringify(key.slice(0, 200))}`);
}

export const MAX_KEY_BYTES = 1024;

export function isSafeKey(key: string): boolean {
  if (key === '' || Buffer.byteLength(key) > MAX_KEY_BYTES || key.includes('\0')) return false;
  return key.split('/').every((s) => s !== '' && s !== '.' && s !== '..');
}

/** A prefix is a key followed by `/` (or empty: everything). */
export function assertPrefix(prefix: string): void {
  if (prefix !== '' && (!prefix.endsWith('/') || !isSafeKey(prefix.slice(0, -1)))) {
    throw new Error(`invalid object prefix ${JSON.stringify(prefix.slice(0, 200))}`);
  }
}

/** Reads a stream whole, refusing past `limit` bytes (the stream is destroyed then). */
export async function readAll(
  stream: Readable,
  limit: number,
  onTooLarge: (size: number) => Error,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    total += buf.length;
    if (total > limit) {
      stream.destroy();
      throw onTooLarge(total);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks, total);
}
