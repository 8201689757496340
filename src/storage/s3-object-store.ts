import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { checkRange } from './directory-object-store.js';
import {
  assertKey,
  assertPrefix,
  type ByteRange,
  type ObjectBody,
  type ObjectInfo,
  type ObjectStore,
  ObjectStoreError,
} from './object-store.js';

export interface S3Settings {
  bucket: string;
  /** Prepended to every key (no leading slash; ends with `/` when not empty). */
  prefix: string;
  /** An S3-compatible server's URL (MinIO, Ceph, R2); undefined: AWS itself. */
  endpoint: string | undefined;
  region: string;
  /** Undefined: the AWS SDK's own chain (AWS_* variables, profiles, instance roles). */
  credentials: { accessKeyId: string; secretAccessKey: string } | undefined;
  /** `bucket` in the path rather than the host name (MinIO and most self-hosted servers need it). */
  forcePathStyle: boolean;
  connectTimeoutMs: number;
  /** How long a request may sit with no bytes moving. */
  requestTimeoutMs: number;
  /** Tries per request (the SDK backs off between them). */
  maxAttempts: number;
  /** Parts of a large upload in flight at once, each `partBytes`: memory held is their product. */
  uploadConcurrency: number;
  partBytes: number;
}

const UNREACHABLE_FIX =
  'Check that it is up and reachable from this host at S3_ENDPOINT; runs that end meanwhile are retried.';
const REFUSED_FIX =
  'Check the bucket in BLOB_STORE exists and that S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) may read, write, list and delete in it.';

/** The object store on an S3-compatible server (BLOB_STORE=s3://bucket/prefix). */
export class S3ObjectStore implements ObjectStore {
  readonly name: string;
  private readonly client: S3Client;

  constructor(private readonly s: S3Settings) {
    this.name = `s3://${s.bucket}/${s.prefix}${s.endpoint ? ` at ${s.endpoint}` : ` in ${s.region}`}`;
    this.client = new S3Client({
      region: s.region,
      ...(s.endpoint ? { endpoint: s.endpoint } : {}),
      forcePathStyle: s.forcePathStyle,
      ...(s.credentials ? { credentials: s.credentials } : {}),
      maxAttempts: s.maxAttempts,
      requestHandler: { connectionTimeout: s.connectTimeoutMs, requestTimeout: s.requestTimeoutMs },
      // Checksums only where S3 requires them: several S3-compatible servers reject the newer ones.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  private key(key: string): string {
    assertKey(key);
    return `${this.s.prefix}${key}`;
  }

  async put(key: string, body: Buffer | string | Readable): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.s.bucket, Key: this.key(key), Body: body },
      queueSize: this.s.uploadConcurrency,
      partSize: this.s.partBytes,
      // A failed multipart upload is aborted: no parts left behind to pay for.
      leavePartsOnError: false,
    });
    await this.call('could not be written', () => upload.done());
  }

  async putFile(key: string, file: string): Promise<void> {
    await this.put(key, createReadStream(file));
  }

  async get(key: string, range?: ByteRange): Promise<ObjectBody | null> {
    const res = await this.call('could not be read', async () => {
      try {
        return await this.client.send(
          new GetObjectCommand({
            Bucket: this.s.bucket,
            Key: this.key(key),
            ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
          }),
        );
      } catch (err) {
        if (isNotFound(err)) return null;
        throw err;
      }
    });
    if (!res) return null;
    const stream = res.Body as Readable;
    const total = res.ContentRange ? Number(res.ContentRange.split('/')[1]) : (res.ContentLength ?? 0);
    if (range) {
      try {
        checkRange(range, total);
      } catch (err) {
        stream.destroy();
        throw err;
      }
    }
    return { stream, size: total };
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    return this.call('could not be read', async () => {
      try {
        const res = await this.client.send(
          new HeadObjectCommand({ Bucket: this.s.bucket, Key: this.key(key) }),
        );
        return { key, size: res.ContentLength ?? 0, modifiedMs: res.LastModified?.getTime() ?? 0 };
      } catch (err) {
        if (isNotFound(err)) return null;
        throw err;
      }
    });
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    assertPrefix(prefix);
    let token: string | undefined;
    do {
      const page = await this.call('could not be listed', () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.s.bucket,
            Prefix: `${this.s.prefix}${prefix}`,
            ContinuationToken: token,
          }),
        ),
      );
      for (const o of page.Contents ?? []) {
        if (!o.Key) continue;
        yield {
          key: o.Key.slice(this.s.prefix.length),
          size: o.Size ?? 0,
          modifiedMs: o.LastModified?.getTime() ?? 0,
        };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async deletePrefix(prefix: string): Promise<number> {
    let batch: string[] = [];
    let n = 0;
    const flush = async () => {
      const keys = batch;
      batch = [];
      const res = await this.call('could not delete', () =>
        this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.s.bucket,
            Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true },
          }),
        ),
      );
      const failed = res.Errors?.[0];
      if (failed) {
        throw new ObjectStoreError(
          this.name,
          `did not delete ${failed.Key}`,
          new Error(failed.Message ?? 'refused'),
          {
            retryable: false,
            fix: REFUSED_FIX,
          },
        );
      }
      n += keys.length;
    };
    for await (const o of this.list(prefix)) {
      batch.push(`${this.s.prefix}${o.key}`);
      // One DeleteObjects request takes at most 1000 keys.
      if (batch.length === 1000) await flush();
    }
    if (batch.length > 0) await flush();
    return n;
  }

  async check(): Promise<void> {
    await this.call('cannot be used', () =>
      this.client.send(new HeadBucketCommand({ Bucket: this.s.bucket })),
    );
  }

  /** Runs one call, turning what the SDK throws into an ObjectStoreError naming this store. */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ObjectStoreError || err instanceof RangeError) throw err;
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      const refused =
        status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429;
      throw new ObjectStoreError(this.name, refused ? `refused a request (HTTP ${status})` : what, err, {
        retryable: !refused,
        fix: refused ? REFUSED_FIX : UNREACHABLE_FIX,
      });
    }
  }

  /** Closes the client's connections (tests; a process that ends needs nothing). */
  destroy(): void {
    this.client.destroy();
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  if (e.name === 'NoSuchBucket') return false;
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
}
