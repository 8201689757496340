/**
 * One conformance suite for the blob store's interface (src/storage/object-store.ts), run on both
 * implementations: the directory store and the S3 store against a real MinIO on loopback.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UploadStore } from '../../src/jetty/uploads.js';
import { BlobStore } from '../../src/storage/blob-store.js';
import { DirectoryObjectStore } from '../../src/storage/directory-object-store.js';
import { type ObjectStore, ObjectStoreError } from '../../src/storage/object-store.js';
import { S3ObjectStore, type S3Settings } from '../../src/storage/s3-object-store.js';
import { startMinio, type TestMinio } from '../support/minio.js';
import { freePort } from '../support/redis.js';

const MiB = 1024 ** 2;
let minio: TestMinio;
let tmp: string;
const s3Stores: S3ObjectStore[] = [];

beforeAll(async () => {
  minio = await startMinio();
  tmp = await mkdtemp(path.join(tmpdir(), 'jetty-objects-'));
});
afterAll(async () => {
  for (const s of s3Stores) s.destroy();
  await minio?.destroy();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

function s3Settings(over: Partial<S3Settings> = {}): S3Settings {
  return {
    bucket: 'unset',
    prefix: 'jetty/',
    endpoint: minio.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: minio.accessKeyId, secretAccessKey: minio.secretAccessKey },
    forcePathStyle: true,
    connectTimeoutMs: 2000,
    requestTimeoutMs: 10_000,
    maxAttempts: 2,
    uploadConcurrency: 2,
    // S3's smallest part: a 12 MiB stream goes up in three parts.
    partBytes: 5 * MiB,
    ...over,
  };
}

const kinds: Array<[string, () => Promise<ObjectStore>]> = [
  ['directory', async () => new DirectoryObjectStore(await mkdtemp(path.join(tmp, 'dir-')))],
  [
    's3 (MinIO)',
    async () => {
      const store = new S3ObjectStore(s3Settings({ bucket: await minio.bucket() }));
      s3Stores.push(store);
      return store;
    },
  ],
];

async function text(store: ObjectStore, key: string, range?: { start: number; end: number }) {
  const body = await store.get(key, range);
  if (!body) return null;
  const chunks: Buffer[] = [];
  for await (const c of body.stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

async function sha(stream: Readable): Promise<string> {
  const h = createHash('sha256');
  for await (const c of stream) h.update(c as Buffer);
  return h.digest('hex');
}

async function keys(store: ObjectStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of store.list(prefix)) out.push(o.key);
  return out;
}

describe.each(kinds)('ObjectStore conformance: %s', (_name, make) => {
  let store: ObjectStore;
  beforeAll(async () => {
    store = await make();
  });

  it('check() passes on a usable store', async () => {
    await expect(store.check()).resolves.toBeUndefined();
  });

  it('put then get and stat a string, a buffer, and overwrites it whole', async () => {
    await store.put('a/one.txt', 'hello');
    expect(await text(store, 'a/one.txt')).toBe('hello');
    const st = await store.stat('a/one.txt');
    expect(st).toMatchObject({ key: 'a/one.txt', size: 5 });
    expect(Math.abs(st!.modifiedMs - Date.now())).toBeLessThan(60_000);
    await store.put('a/one.txt', Buffer.from('replaced, longer'));
    expect(await text(store, 'a/one.txt')).toBe('replaced, longer');
    expect((await store.get('a/one.txt'))?.size).toBe(16);
  });

  it('a missing key is null to get and stat', async () => {
    expect(await store.get('nothing/here.txt')).toBeNull();
    expect(await store.stat('nothing/here.txt')).toBeNull();
  });

  it('puts a stream larger than one part, and a local file, byte for byte', async () => {
    const data = randomBytes(12 * MiB);
    await store.put('big/stream.bin', Readable.from([data.subarray(0, 7 * MiB), data.subarray(7 * MiB)]));
    const body = await store.get('big/stream.bin');
    expect(body?.size).toBe(data.length);
    expect(await sha(body!.stream)).toBe(createHash('sha256').update(data).digest('hex'));
    const file = path.join(tmp, `file-${randomBytes(3).toString('hex')}`);
    await writeFile(file, 'from a file');
    await store.putFile('files/x y é.txt', file);
    expect(await text(store, 'files/x y é.txt')).toBe('from a file');
  });

  it('serves a byte range: the bytes asked for, and the whole size', async () => {
    await store.put('r/digits.txt', '0123456789');
    expect(await text(store, 'r/digits.txt', { start: 2, end: 5 })).toBe('2345');
    expect(await text(store, 'r/digits.txt', { start: 9, end: 9 })).toBe('9');
    expect((await store.get('r/digits.txt', { start: 0, end: 0 }))?.size).toBe(10);
  });

  it('a stream that fails mid-way leaves no object', async () => {
    async function* failing() {
      yield randomBytes(6 * MiB);
      throw new Error('the source broke');
    }
    await expect(store.put('broken/half.bin', Readable.from(failing()))).rejects.toThrow();
    expect(await store.stat('broken/half.bin')).toBeNull();
    expect(await keys(store, 'broken/')).toEqual([]);
  });

  it('lists every key under a prefix, in byte order, and no other', async () => {
    const names = [
      'l/run/a-b.txt',
      'l/run/a/x.txt',
      'l/run/a/y/z.txt',
      'l/run/B.txt',
      'l/run/é.txt',
      'l/run10/n.txt',
    ];
    for (const k of names) await store.put(k, k);
    expect(await keys(store, 'l/run/')).toEqual(
      names
        .filter((k) => k.startsWith('l/run/'))
        .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
    );
    expect(await keys(store, 'l/none/')).toEqual([]);
    const sizes = [];
    for await (const o of store.list('l/run10/')) sizes.push(o.size);
    expect(sizes).toEqual(['l/run10/n.txt'.length]);
  });

  it('lists past a page (more than 1000 keys)', async () => {
    const many = Array.from({ length: 1005 }, (_, i) => `p/k${String(i).padStart(4, '0')}`);
    for (let i = 0; i < many.length; i += 50)
      await Promise.all(many.slice(i, i + 50).map((k) => store.put(k, 'x')));
    expect(await keys(store, 'p/')).toEqual(many);
    expect(await store.deletePrefix('p/')).toBe(1005);
    expect(await keys(store, 'p/')).toEqual([]);
  });

  it('deletePrefix removes that prefix only, and answers how many', async () => {
    for (const k of ['d/run1/a', 'd/run1/sub/b', 'd/run10/c', 'd/run2/d']) await store.put(k, 'x');
    expect(await store.deletePrefix('d/run1/')).toBe(2);
    expect(await keys(store, 'd/')).toEqual(['d/run10/c', 'd/run2/d']);
    expect(await store.deletePrefix('d/nothing/')).toBe(0);
  });

  it.each([
    ['empty', ''],
    ['climbing out', '../x'],
    ['a dot segment', 'a/./b'],
    ['an empty segment', 'a//b'],
    ['a leading slash', '/a'],
    ['a NUL byte', 'a\0b'],
    ['over 1024 bytes', 'k'.repeat(1025)],
  ])('refuses a key that is %s', async (_what, key) => {
    await expect(store.put(key, 'x')).rejects.toThrow(/invalid object key/);
    await expect(store.get(key)).rejects.toThrow(/invalid object key/);
  });
});

describe.each(kinds)('retention on the store: %s', (_name, make) => {
  it("removes expired runs' and uploads' objects, and keeps live and recent ones", async () => {
    const objects = await make();
    const scratch = await mkdtemp(path.join(tmp, 'scratch-'));
    const blobs = new BlobStore(objects, scratch, { maxJsonBytes: MiB });
    for (const run of ['old', 'live']) {
      const staging = await blobs.stagingDir(run);
      await writeFile(path.join(staging, 'out.txt'), run);
      await blobs.commitArtifacts(run, staging, ['out.txt']);
      await blobs.writeTrajectory(run, { run });
    }
    const uploads = new UploadStore(objects, scratch, { maxFileBytes: MiB, maxFiles: 5 });
    async function* one() {
      yield { filename: 'in.csv', stream: Readable.from([Buffer.from('a,b\n')]) };
    }
    const up = await uploads.save('col', one());
    expect(up).not.toBeNull();

    // Seen from two hours on, with a one-hour retention: everything is expired but the live run.
    const later = Date.now() + 2 * 3600_000;
    const removed = await blobs.removeOlderThan(3600_000, async (id) => id === 'live', later);
    expect(removed.runs).toBe(1);
    expect(await keys(objects, 'runs/old/')).toEqual([]);
    expect(await keys(objects, 'runs/live/')).toContain('runs/live/trajectory.json');
    expect(await uploads.removeOlderThan(3600_000, Date.now())).toBe(0);
    expect((await keys(objects, 'uploads/')).length).toBeGreaterThan(0);
    expect(await uploads.removeOlderThan(3600_000, later)).toBe(1);
    expect(await keys(objects, 'uploads/')).toEqual([]);
  });
});

describe.each(kinds)("a conversation turn's files on the store: %s", (_name, make) => {
  it('saved by one worker, read back whole by another with its own scratch; a new save replaces the old', async () => {
    const objects = await make();
    const workerA = new BlobStore(objects, await mkdtemp(path.join(tmp, 'a-')), { maxJsonBytes: MiB });
    const workerB = new BlobStore(objects, await mkdtemp(path.join(tmp, 'b-')), { maxJsonBytes: MiB });
    const save = async (files: Record<string, string>) => {
      const staging = await workerA.stagingDir('conv1');
      for (const [p, body] of Object.entries(files)) {
        await mkdir(path.dirname(path.join(staging, p)), { recursive: true });
        await writeFile(path.join(staging, p), body);
      }
      await workerA.replaceRunFiles('conv1', 'conversation', staging, Object.keys(files), { dirs: ['/app'] });
    };
    await save({ '0/notes.md': 'turn 1', '0/old.txt': 'gone next time' });
    await save({ '0/notes.md': 'turn 2', '1/session/s.jsonl': '{"a":1}' });

    expect(await workerB.readRunJson('conv1', 'conversation/manifest.json')).toEqual({ dirs: ['/app'] });
    const read = await workerB.readRunFiles('conv1', 'conversation', 100);
    expect(read.map((f) => [f.path, f.content.toString()])).toEqual([
      ['0/notes.md', 'turn 2'],
      ['1/session/s.jsonl', '{"a":1}'],
    ]);
    await expect(workerB.readRunFiles('conv1', 'conversation', 8)).rejects.toThrow(
      /CONVERSATION_STATE_MAX_BYTES/,
    );
  });
});

describe('a store that cannot be used says which, and how to fix it', () => {
  it('S3: a server that is not there fails check() and reads with object_store_unavailable, retryable', async () => {
    const port = await freePort();
    const store = new S3ObjectStore(
      s3Settings({ bucket: 'b', endpoint: `http://127.0.0.1:${port}`, maxAttempts: 1 }),
    );
    s3Stores.push(store);
    const err = await store.check().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ObjectStoreError);
    expect((err as ObjectStoreError).code).toBe('object_store_unavailable');
    expect((err as ObjectStoreError).retryable).toBe(true);
    expect((err as Error).message).toContain(`s3://b/jetty/ at http://127.0.0.1:${port}`);
    expect((err as Error).message).toContain('S3_ENDPOINT');
    await expect(store.get('x')).rejects.toBeInstanceOf(ObjectStoreError);
  });

  it('S3: a missing bucket or wrong credentials are refusals naming BLOB_STORE and the key settings', async () => {
    const missing = new S3ObjectStore(s3Settings({ bucket: 'no-such-bucket' }));
    const wrong = new S3ObjectStore(
      s3Settings({
        bucket: await minio.bucket(),
        credentials: { accessKeyId: 'nobody', secretAccessKey: 'wrong-secret' },
      }),
    );
    s3Stores.push(missing, wrong);
    for (const store of [missing, wrong]) {
      const err = (await store.check().catch((e: unknown) => e)) as ObjectStoreError;
      expect(err).toBeInstanceOf(ObjectStoreError);
      expect(err.code).toBe('object_store_refused');
      expect(err.retryable).toBe(false);
      expect(err.message).toMatch(/BLOB_STORE.*S3_ACCESS_KEY_ID/);
    }
    // A read of a missing bucket is an error, not "no such file".
    await expect(missing.get('x')).rejects.toBeInstanceOf(ObjectStoreError);
  });

  it('directory: a root that cannot be made fails check() naming the directory', async () => {
    const file = path.join(tmp, 'a-file');
    await writeFile(file, 'x');
    const err = await new DirectoryObjectStore(path.join(file, 'blobs')).check().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ObjectStoreError);
    expect((err as Error).message).toContain(path.join(file, 'blobs'));
  });
});
