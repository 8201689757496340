import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';

const MiB = 1024 ** 2;
const KEYS = { S3_ACCESS_KEY_ID: 'id', S3_SECRET_ACCESS_KEY: 'secret' };

describe('BLOB_STORE and the S3 settings', () => {
  it('default: the directory store on this host, a sweep every minute', () => {
    expect(loadConfig({}).blobs).toEqual({
      store: { kind: 'dir' },
      maxJsonBytes: 128 * MiB,
      sweepMs: 60_000,
    });
  });

  it('s3://bucket/prefix at an endpoint: path style, the prefix as a folder, the given bounds', () => {
    const c = loadConfig({
      BLOB_STORE: 's3://jetty-runs/prod//eu/',
      S3_ENDPOINT: 'http://127.0.0.1:9000/',
      S3_PART_BYTES: '16m',
      BLOB_SWEEP_MS: '5000',
      ...KEYS,
    });
    expect(c.blobs.sweepMs).toBe(5000);
    expect(c.blobs.store).toMatchObject({
      kind: 's3',
      bucket: 'jetty-runs',
      prefix: 'prod/eu/',
      endpoint: 'http://127.0.0.1:9000',
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'id', secretAccessKey: 'secret' },
      partBytes: 16 * MiB,
    });
  });

  it('on AWS (no endpoint): virtual-host style, AWS_* credentials and region, or the SDK chain', () => {
    const aws = loadConfig({
      BLOB_STORE: 's3://bucket',
      AWS_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: 'a',
      AWS_SECRET_ACCESS_KEY: 'b',
    });
    expect(aws.blobs.store).toMatchObject({
      prefix: '',
      region: 'eu-west-1',
      forcePathStyle: false,
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    });
    const chain = loadConfig({ BLOB_STORE: 's3://bucket', S3_FORCE_PATH_STYLE: 'yes' });
    expect(chain.blobs.store).toMatchObject({ credentials: undefined, forcePathStyle: true });
  });

  it.each([
    [{ BLOB_STORE: 'nfs:///mnt' }, /BLOB_STORE: must be "dir" .* or s3:\/\/bucket/],
    [{ BLOB_STORE: 's3://B_ad/x' }, /BLOB_STORE: .*got "s3:\/\/B_ad\/x"/],
    [{ BLOB_STORE: 's3://bucket/../x' }, /BLOB_STORE:/],
    [{ BLOB_STORE: 's3://bucket', S3_ENDPOINT: 'minio:9000', ...KEYS }, /S3_ENDPOINT: must be an http/],
    [
      { BLOB_STORE: 's3://bucket', S3_ENDPOINT: 'http://127.0.0.1:9000' },
      /S3_ACCESS_KEY_ID: BLOB_STORE is an S3 bucket at S3_ENDPOINT/,
    ],
    [
      { BLOB_STORE: 's3://bucket', S3_ACCESS_KEY_ID: 'id' },
      /S3_SECRET_ACCESS_KEY: needed with S3_ACCESS_KEY_ID/,
    ],
    [{ S3_PART_BYTES: '1m' }, /S3_PART_BYTES: must be a size from 5m/],
    [{ BLOB_SWEEP_MS: '10' }, /BLOB_SWEEP_MS: must be a whole number from 500/],
    [{ S3_FORCE_PATH_STYLE: 'maybe' }, /S3_FORCE_PATH_STYLE: must be one of/],
  ])('%j is refused, naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('a refusal never repeats the secret', () => {
    const err = (() => {
      try {
        loadConfig({ BLOB_STORE: 's3://bucket', S3_SECRET_ACCESS_KEY: 'very-secret-value' });
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err?.message).toContain('S3_ACCESS_KEY_ID');
    expect(err?.message).not.toContain('very-secret-value');
  });
});
