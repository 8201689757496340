import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BlobStore } from '../../src/storage/blob-store.js';
import { DirectoryObjectStore } from '../../src/storage/directory-object-store.js';
import type { ObjectStore } from '../../src/storage/object-store.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const OPTS = { maxJsonBytes: 1024 ** 2 };

/** Stages `files` (path -> content) and commits them as the run's artifacts. */
async function commit(blobs: BlobStore, runId: string, files: Record<string, string>) {
  const staging = await blobs.stagingDir(runId);
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(staging, rel)), { recursive: true });
    await writeFile(path.join(staging, rel), content);
  }
  return blobs.commitArtifacts(runId, staging, Object.keys(files));
}

/** A store with two finished runs: r1 with artifacts and a trajectory, r2 with artifacts. */
async function store(objects?: (root: string) => ObjectStore) {
  const root = await mkdtemp(path.join(tmpdir(), 'jetty-blobs-'));
  dirs.push(root);
  const dir = new DirectoryObjectStore(path.join(root, 'blobs'));
  const blobs = new BlobStore(objects ? objects(dir.root) : dir, path.join(root, 'scratch'), OPTS);
  for (const run of ['r1', 'r2'])
    await commit(blobs, run, { 'sub/out.txt': `out of ${run}`, 'top.txt': `top of ${run}` });
  await blobs.writeTrajectory('r1', { secret: 'the whole record' });
  await writeFile(path.join(root, 'master.key'), 'KEY');
  return { root, blobs, dir };
}

const body = async (blobs: BlobStore, run: string, rel: string) => {
  const file = await blobs.openArtifact(run, rel);
  if (!file) return null;
  const chunks: Buffer[] = [];
  for await (const c of file.stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
};

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (e.isFile()) out.push(path.relative(dir, path.join(e.parentPath, e.name)));
  }
  return out.sort();
}

describe('BlobStore.readArtifactStart: what the evaluation reads', () => {
  it('reads the first bytes of a committed artifact, or all of a shorter one', async () => {
    const { blobs } = await store();
    expect((await blobs.readArtifactStart('r1', 'sub/out.txt', 6))?.toString()).toBe('out of');
    expect((await blobs.readArtifactStart('r1', 'sub/out.txt', 1000))?.toString()).toBe('out of r1');
    expect((await blobs.readArtifactStart('r1', 'top.txt', 0))?.length).toBe(0);
  });

  it('answers null for what the run did not commit, as openArtifact does', async () => {
    const { blobs } = await store();
    expect(await blobs.readArtifactStart('r1', 'other.txt', 100)).toBeNull();
    expect(await blobs.readArtifactStart('r1', '../trajectory.json', 100)).toBeNull();
    expect(await blobs.readArtifactStart('nope', 'top.txt', 100)).toBeNull();
  });
});

describe('BlobStore.openArtifact: only what the run committed, nothing beside it', () => {
  it('serves a run its own files', async () => {
    const { blobs } = await store();
    expect(await body(blobs, 'r1', 'sub/out.txt')).toBe('out of r1');
    expect(await body(blobs, 'r2', 'top.txt')).toBe('top of r2');
  });

  it.each([
    ['the run directory itself', '.'],
    ['a path with a dot-dot', 'sub/../top.txt'],
    ["the run's trajectory", '../trajectory.json'],
    ["another run's artifact", '../../r2/artifacts/top.txt'],
    ['the master key', '../../../master.key'],
    ['an absolute path', '/etc/hostname'],
    ['a NUL byte', 'top.txt\0.png'],
    ['a file the run did not commit', 'other.txt'],
  ])('refuses %s', async (_what, rel) => {
    const { blobs } = await store();
    expect(await body(blobs, 'r1', rel)).toBeNull();
  });

  it('reads a run collected before manifests existed at its old place', async () => {
    const { blobs, dir } = await store();
    await mkdir(path.join(dir.root, 'runs', 'old', 'artifacts'), { recursive: true });
    await writeFile(path.join(dir.root, 'runs', 'old', 'artifacts', 'a.txt'), 'from before');
    expect(await body(blobs, 'old', 'a.txt')).toBe('from before');
  });
});

describe('committing a collection: the manifest, written last, is the commit point', () => {
  it('replaces the artifacts whole; a staged file is never an artifact; nothing of the old commit stays', async () => {
    const { root, blobs, dir } = await store();
    const staging = await blobs.stagingDir('r1');
    expect(staging.startsWith(path.join(root, 'scratch') + path.sep)).toBe(true);
    await writeFile(path.join(staging, 'new.txt'), 'new');
    expect(await body(blobs, 'r1', 'new.txt')).toBeNull();
    await blobs.commitArtifacts('r1', staging, ['new.txt']);
    expect(await body(blobs, 'r1', 'new.txt')).toBe('new');
    expect(await body(blobs, 'r1', 'top.txt')).toBeNull();
    const files = await filesUnder(path.join(dir.root, 'runs', 'r1'));
    expect(files.filter((f) => f.endsWith('.txt'))).toHaveLength(1);
    expect(await filesUnder(path.join(root, 'scratch'))).toEqual([]);
  });

  it('a commit the store fails part-way leaves the previous artifacts served and none of the new', async () => {
    let puts = 0;
    const { root, blobs, dir } = await store((r) => {
      const real = new DirectoryObjectStore(r);
      // The real store, failing its third file write from the moment `puts` is armed.
      return Object.assign(Object.create(real) as DirectoryObjectStore, {
        putFile: async (key: string, file: string) => {
          if (puts > 0 && ++puts > 3) throw new Error('store went away');
          return real.putFile(key, file);
        },
      });
    });
    puts = 1;
    const files = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`f${i}.txt`, `new ${i}`]));
    await expect(commit(blobs, 'r1', files)).rejects.toThrow('store went away');
    expect(await body(blobs, 'r1', 'top.txt')).toBe('top of r1');
    for (const name of Object.keys(files)) expect(await body(blobs, 'r1', name)).toBeNull();
    // What was uploaded before the failure is removed again when the store lets it.
    expect((await filesUnder(path.join(dir.root, 'runs', 'r1'))).filter((f) => /f\d\.txt$/.test(f))).toEqual(
      [],
    );
    expect(await filesUnder(path.join(root, 'scratch'))).toEqual([]);
  });

  it('discardArtifacts forgets the run artifacts', async () => {
    const { blobs } = await store();
    await blobs.discardArtifacts('r1');
    expect(await body(blobs, 'r1', 'top.txt')).toBeNull();
    expect(await body(blobs, 'r2', 'top.txt')).toBe('top of r2');
  });

  it('refuses a path too long to be a key, and keeps the rest', async () => {
    const { blobs } = await store();
    const long = `${'d'.repeat(200)}/`.repeat(5) + 'x.txt';
    expect(await commit(blobs, 'r1', { 'ok.txt': 'ok', [long]: 'long' })).toEqual({ refused: [long] });
    expect(await body(blobs, 'r1', 'ok.txt')).toBe('ok');
  });
});

describe('BlobStore.removeOlderThan: run files expire with the retention', () => {
  it('removes the files of runs over for longer than the retention, and orphaned staging dirs', async () => {
    const { root, blobs, dir } = await store();
    await blobs.writeTrajectory('live', {});
    await blobs.writeTrajectory('recent', {});
    const past = new Date(Date.now() - 3 * 3600_000);
    for (const run of ['r1', 'r2', 'live']) {
      for (const f of await filesUnder(path.join(dir.root, 'runs', run)))
        await utimes(path.join(dir.root, 'runs', run, f), past, past);
    }
    const orphan = await blobs.stagingDir('r2');
    await writeFile(path.join(orphan, 'half.bin'), 'x');
    const inFlight = await blobs.stagingDir('live');

    const live = new Set(['live']);
    const removed = await blobs.removeOlderThan(3600_000, async (id) => live.has(id));
    expect(removed).toEqual({ runs: 2, partial: 1 });
    expect((await readdir(path.join(dir.root, 'runs'))).sort()).toEqual(['live', 'recent']);
    expect(await readdir(path.join(root, 'scratch', 'collect'))).toEqual([path.basename(inFlight)]);
    expect(await readFile(path.join(root, 'master.key'), 'utf8')).toBe('KEY');
  });

  it('with store: false, cleans only the local scratch', async () => {
    const { blobs, dir } = await store();
    await blobs.stagingDir('r2');
    const removed = await blobs.removeOlderThan(0, async () => false, Date.now() + 1000, { store: false });
    expect(removed).toEqual({ runs: 0, partial: 1 });
    expect((await readdir(path.join(dir.root, 'runs'))).sort()).toEqual(['r1', 'r2']);
  });
});

describe('a run id no run can have', () => {
  it('reads as nothing stored (a 404 to the caller), not a fault', async () => {
    const { blobs } = await store();
    for (const id of ['..', '../../master.key', '%2e%2e', 'a/b', '']) {
      expect(await blobs.readTrajectory(id)).toBeNull();
      expect(await blobs.readRunJson(id, 'labels.json')).toBeNull();
      expect(await blobs.openArtifact(id, 'top.txt')).toBeNull();
    }
  });
});

describe('stored JSON is bounded', () => {
  it('refuses a trajectory past BLOB_MAX_JSON_BYTES, naming the setting', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'jetty-blobs-'));
    dirs.push(root);
    const blobs = new BlobStore(new DirectoryObjectStore(root), path.join(root, 'scratch'), {
      maxJsonBytes: 100,
    });
    await blobs.writeTrajectory('big', { text: 'x'.repeat(200) });
    await expect(blobs.readTrajectory('big')).rejects.toThrow(/BLOB_MAX_JSON_BYTES/);
  });
});
