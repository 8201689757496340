import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { sanitizeName, UploadStore } from '../../src/jetty/uploads.js';
import { DirectoryObjectStore } from '../../src/storage/directory-object-store.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function store() {
  const root = await mkdtemp(path.join(tmpdir(), 'jetty-uploads-'));
  dirs.push(root);
  const objects = new DirectoryObjectStore(path.join(root, 'blobs'));
  return {
    root,
    uploads: new UploadStore(objects, path.join(root, 'scratch'), { maxFileBytes: 1024, maxFiles: 5 }),
  };
}

async function* files(...names: string[]) {
  for (const name of names)
    yield { filename: name, stream: Readable.from([Buffer.from(`content of ${name}`)]) };
}

describe('upload names', () => {
  it.each([
    ['../../etc/passwd', 'passwd'],
    ['..\\..\\windows\\system.ini', 'system.ini'],
    ['..', 'file'],
    ['.bashrc', 'bashrc'],
    ['a b;c|d`e$(f).txt', 'a b_c_d_e__f_.txt'],
    ['naïve résumé.pdf', 'naïve résumé.pdf'],
    ['\u0000evil\u0007.sh', '_evil_.sh'],
    ['', 'file'],
  ])('%j becomes %j', (raw, safe) => {
    expect(sanitizeName(raw)).toBe(safe);
  });

  it('two files of one name in one upload both stay, the second renamed', async () => {
    const { uploads } = await store();
    const saved = await uploads.save('acme', files('a.txt', 'A.txt', 'a.txt'));
    expect(saved!.file_paths.map((k) => k.split('/').pop())).toEqual(['a.txt', 'A-2.txt', 'a-3.txt']);
  });
});

describe('a zip whose entries collide once made safe', () => {
  it('keeps each, numbered before the extension like any other upload', async () => {
    const { zipOf } = await import('../support/zip.js');
    const { uploads } = await store();
    const zip = zipOf({ 'a*b.txt': '1', 'a|b.txt': '2', 'a?b.txt': '3' });
    const saved = await uploads.save(
      'acme',
      (async function* () {
        yield { filename: 'z.zip', stream: Readable.from([Buffer.from(zip)]) };
      })(),
    );
    expect(saved!.file_paths.map((k) => decodeURIComponent(k.split('/').slice(3).join('/')))).toEqual([
      'z/a_b.txt',
      'z/a_b-2.txt',
      'z/a_b-3.txt',
    ]);
  });
});

describe('upload retention', () => {
  it('removes uploads older than the retention and keeps the others', async () => {
    const { root, uploads } = await store();
    const old = (await uploads.save('acme', files('old.txt')))!;
    const fresh = (await uploads.save('acme', files('new.txt')))!;
    const past = new Date(Date.now() - 3 * 3600_000);
    await utimes(path.join(root, 'blobs', 'uploads', 'acme', old.upload_id, 'old.txt'), past, past);
    expect(await uploads.removeOlderThan(3600_000)).toBe(1);
    expect(await uploads.read('acme', old.upload_id, 'old.txt')).toBeNull();
    expect(String(await uploads.read('acme', fresh.upload_id, 'new.txt'))).toBe('content of new.txt');
  });
});

describe('UploadStore.fileOf: the guard that keeps a path inside its upload', () => {
  type Ids = { other: string; theirs: string };
  it.each([
    ["another upload's file", (ids: Ids) => `../${ids.other}/b.txt`],
    ["another collection's upload", (ids: Ids) => `../../beta/${ids.theirs}/b.txt`],
    ['the master key', () => '../../../master.key'],
    ['an absolute path', () => '/etc/hostname'],
    ['the upload directory itself', () => '.'],
  ])('has, open and read refuse %s', async (_what, relOf) => {
    const { root, uploads } = await store();
    const mine = (await uploads.save('acme', files('a.txt')))!;
    const other = (await uploads.save('acme', files('b.txt')))!;
    const theirs = (await uploads.save('beta', files('b.txt')))!;
    await writeFile(path.join(root, 'master.key'), 'KEY');
    const rel = relOf({ other: other.upload_id, theirs: theirs.upload_id });
    expect(await uploads.has('acme', mine.upload_id, rel)).toBe(false);
    expect(await uploads.open('acme', mine.upload_id, rel)).toBeNull();
    expect(await uploads.read('acme', mine.upload_id, rel)).toBeNull();
    // The upload's own file is there.
    expect(String(await uploads.read('acme', mine.upload_id, 'a.txt'))).toBe('content of a.txt');
  });
});
