import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BlobStore } from '../../src/storage/blob-store.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** A store with two finished runs: r1 with an artifact and a trajectory, r2 with an artifact. */
async function store() {
  const root = await mkdtemp(path.join(tmpdir(), 'jetty-blobs-'));
  dirs.push(root);
  const blobs = new BlobStore(root);
  for (const run of ['r1', 'r2']) {
    await mkdir(path.join(blobs.artifactDir(run), 'sub'), { recursive: true });
    await writeFile(path.join(blobs.artifactDir(run), 'sub', 'out.txt'), `out of ${run}`);
    await writeFile(path.join(blobs.artifactDir(run), 'top.txt'), `top of ${run}`);
  }
  await blobs.writeTrajectory('r1', { secret: 'the whole record' });
  await writeFile(path.join(root, 'master.key'), 'KEY');
  return { root, blobs };
}

const body = async (blobs: BlobStore, run: string, rel: string) => {
  const file = await blobs.openArtifact(run, rel);
  if (!file) return null;
  const chunks: Buffer[] = [];
  for await (const c of file.stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
};

describe('BlobStore.artifactPath: the guard that keeps a path inside its run', () => {
  it('serves a run its own files', async () => {
    const { blobs } = await store();
    expect(await body(blobs, 'r1', 'sub/out.txt')).toBe('out of r1');
    expect(await body(blobs, 'r1', 'sub/../top.txt')).toBe('top of r1');
  });

  it.each([
    ['the run directory itself', '.'],
    ["the run's trajectory", '../trajectory.json'],
    ["another run's artifact", '../../r2/artifacts/top.txt'],
    ['the master key', '../../../master.key'],
    ['an absolute path', '/etc/hostname'],
    ['a NUL byte', 'top.txt\0.png'],
  ])('refuses %s', async (_what, rel) => {
    const { blobs } = await store();
    expect(blobs.artifactPath('r1', rel)).toBeNull();
    expect(await body(blobs, 'r1', rel)).toBeNull();
  });
});

describe('collecting into a staging directory', () => {
  it('replaces the artifacts whole, and a staging directory is never an artifact', async () => {
    const { root, blobs } = await store();
    const staging = await blobs.stagingDir('r1');
    expect(staging.startsWith(path.join(root, 'partial') + path.sep)).toBe(true);
    await writeFile(path.join(staging, 'new.txt'), 'new');
    expect(await body(blobs, 'r1', 'new.txt')).toBeNull();
    await blobs.commitArtifacts('r1', staging);
    expect(await readdir(blobs.artifactDir('r1'))).toEqual(['new.txt']);
    expect(await readdir(path.join(root, 'partial'))).toEqual([]);
  });
});

describe('BlobStore.removeOlderThan: run files expire with the retention', () => {
  it('removes the files of runs over for longer than the retention, and orphaned staging dirs', async () => {
    const { root, blobs } = await store();
    await blobs.writeTrajectory('live', {});
    await blobs.writeTrajectory('recent', {});
    const past = new Date(Date.now() - 3 * 3600_000);
    for (const run of ['r1', 'r2', 'live']) await utimes(blobs.runDir(run), past, past);
    const orphan = await blobs.stagingDir('r2');
    await writeFile(path.join(orphan, 'half.bin'), 'x');
    const inFlight = await blobs.stagingDir('live');

    const live = new Set(['live']);
    const removed = await blobs.removeOlderThan(3600_000, async (id) => live.has(id));
    expect(removed).toEqual({ runs: 2, partial: 1 });
    expect((await readdir(path.join(root, 'runs'))).sort()).toEqual(['live', 'recent']);
    expect(await readdir(path.join(root, 'partial'))).toEqual([path.basename(inFlight)]);
    expect(await readFile(path.join(root, 'master.key'), 'utf8')).toBe('KEY');
  });
});
