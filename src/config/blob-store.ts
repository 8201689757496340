/**
 * Where run files (artifacts, trajectories, uploads) live: BLOB_STORE and the S3_* settings,
 * parsed apart from the rest of the configuration so that src/config/index.ts only adds the result.
 */
import { z } from 'zod';
import type { S3Settings } from '../storage/s3-object-store.js';
import { int } from './fields.js';

/** The S3 store's settings, as the store takes them (src/storage/s3-object-store.ts). */
export type S3StoreConfig = { kind: 's3' } & S3Settings;

export interface BlobStoreConfig {
  /** `dir`: DATA_DIR/blobs on this host; `s3`: an S3-compatible bucket shared by every host. */
  store: { kind: 'dir' } | S3StoreConfig;
  /** The largest stored JSON document (a trajectory) a process reads into memory. */
  maxJsonBytes: number;
  /**
   * How often each worker cleans its local scratch and writes trajectories the store missed, and
   * one worker per deployment removes expired runs' and uploads' objects.
   */
  sweepMs: number;
}

const MIB = 1024 ** 2;

/** Sizes in MiB-style units, like the rest of the configuration (8m, 1g). */
const size = (def: string, min: number, max: number, parse: (v: string) => number | null) =>
  z
    .string()
    .default(def)
    .transform((v, ctx) => {
      const n = parse(v);
      if (n === null || n < min || n > max) {
        ctx.addIssue({
          code: 'custom',
          message: `must be a size from ${min / MIB}m to ${max / MIB}m, like 8m or 1g; got "${v}"`,
        });
        return z.NEVER;
      }
      return n;
    });

const optional = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v === '' ? undefined : v));

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** `dir`, or `s3://bucket` with an optional `/prefix`. */
const storeUrl = z
  .string()
  .default('dir')
  .transform((v, ctx) => {
    if (v === 'dir') return { kind: 'dir' as const };
    const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(v);
    const segments = (m?.[2] ?? '').split('/').filter((s) => s !== '');
    if (!m || !BUCKET.test(m[1] ?? '') || segments.some((s) => s === '.' || s === '..')) {
      ctx.addIssue({
        code: 'custom',
        message: `must be "dir" (DATA_DIR/blobs on this host) or s3://bucket/optional/prefix with an S3 bucket name (3 to 63 of a-z 0-9 . -); got "${v}"`,
      });
      return z.NEVER;
    }
    return { kind: 's3' as const, bucket: m[1]!, prefix: segments.map((s) => `${s}/`).join('') };
  });

const schema = z.object({
  BLOB_STORE: storeUrl,
  S3_ENDPOINT: optional.pipe(
    z
      .string()
      .refine(
        (v) => /^https?:\/\/[^/]+/.test(v),
        'must be an http:// or https:// URL, like http://127.0.0.1:9000',
      )
      .optional(),
  ),
  S3_REGION: optional,
  AWS_REGION: optional,
  S3_ACCESS_KEY_ID: optional,
  S3_SECRET_ACCESS_KEY: optional,
  AWS_ACCESS_KEY_ID: optional,
  AWS_SECRET_ACCESS_KEY: optional,
  S3_FORCE_PATH_STYLE: z
    .enum(['true', 'false', '1', '0', 'yes', 'no', ''], {
      error: 'must be one of true, false, 1, 0, yes, no',
    })
    .optional(),
  S3_CONNECT_TIMEOUT_MS: int(5_000, 100, 120_000),
  S3_REQUEST_TIMEOUT_MS: int(60_000, 1_000, 3_600_000),
  S3_MAX_ATTEMPTS: int(3, 1, 10),
  S3_UPLOAD_CONCURRENCY: int(4, 1, 64),
  BLOB_SWEEP_MS: int(60_000, 500, 3_600_000),
});

export function blobStoreSchema(parseBytes: (v: string) => number | null) {
  return schema.extend({
    // S3 takes parts of 5 MiB at least (but the last).
    S3_PART_BYTES: size('8m', 5 * MIB, 1024 * MIB, parseBytes),
    BLOB_MAX_JSON_BYTES: size('128m', 1 * MIB, 4096 * MIB, parseBytes),
  });
}

export type BlobStoreEnv = z.output<ReturnType<typeof blobStoreSchema>>;

/** The parsed settings, or the lines of what is wrong (each naming its variable). */
export function blobStoreConfig(e: BlobStoreEnv): BlobStoreConfig | { errors: string[] } {
  if (e.BLOB_STORE.kind === 'dir')
    return { store: { kind: 'dir' }, maxJsonBytes: e.BLOB_MAX_JSON_BYTES, sweepMs: e.BLOB_SWEEP_MS };
  const errors: string[] = [];
  const id = e.S3_ACCESS_KEY_ID ?? e.AWS_ACCESS_KEY_ID;
  const secret = e.S3_SECRET_ACCESS_KEY ?? e.AWS_SECRET_ACCESS_KEY;
  if ((id === undefined) !== (secret === undefined)) {
    errors.push(
      `${id === undefined ? 'S3_ACCESS_KEY_ID' : 'S3_SECRET_ACCESS_KEY'}: needed with ${id === undefined ? 'S3_SECRET_ACCESS_KEY' : 'S3_ACCESS_KEY_ID'} (or AWS_ACCESS_KEY_ID with AWS_SECRET_ACCESS_KEY)`,
    );
  }
  // Without an endpoint, AWS's own credential chain (profiles, instance roles) may supply keys; a
  // self-hosted server has no such chain, and asking it would only time out.
  if (id === undefined && secret === undefined && e.S3_ENDPOINT !== undefined) {
    errors.push(
      'S3_ACCESS_KEY_ID: BLOB_STORE is an S3 bucket at S3_ENDPOINT: set S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)',
    );
  }
  if (errors.length > 0) return { errors };
  const pathStyle = e.S3_FORCE_PATH_STYLE;
  return {
    store: {
      kind: 's3',
      bucket: e.BLOB_STORE.bucket,
      prefix: e.BLOB_STORE.prefix,
      endpoint: e.S3_ENDPOINT?.replace(/\/+$/, ''),
      region: e.S3_REGION ?? e.AWS_REGION ?? 'us-east-1',
      credentials: id && secret ? { accessKeyId: id, secretAccessKey: secret } : undefined,
      // Self-hosted servers (MinIO, Ceph) rarely have a DNS name per bucket: path style by default.
      forcePathStyle:
        pathStyle === undefined || pathStyle === ''
          ? e.S3_ENDPOINT !== undefined
          : pathStyle === 'true' || pathStyle === '1' || pathStyle === 'yes',
      connectTimeoutMs: e.S3_CONNECT_TIMEOUT_MS,
      requestTimeoutMs: e.S3_REQUEST_TIMEOUT_MS,
      maxAttempts: e.S3_MAX_ATTEMPTS,
      uploadConcurrency: e.S3_UPLOAD_CONCURRENCY,
      partBytes: e.S3_PART_BYTES,
    },
    maxJsonBytes: e.BLOB_MAX_JSON_BYTES,
    sweepMs: e.BLOB_SWEEP_MS,
  };
}
