import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';

/**
 * Where artifacts and finished trajectories live: a directory tree by default,
 * `<root>/runs/<runId>/artifacts/...` and `<root>/runs/<runId>/trajectory.json`. Artifacts are
 * collected into `<root>/partial/` first and moved into place whole, so a reader never sees
 * half a collection.
 */
export class BlobStore {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  runDir(runId: string): string {
    if (!/^[A-Za-z0-9_-]+$/.test(runId)) throw new Error('invalid run id');
    return path.join(this.root, 'runs', runId);
  }

  artifactDir(runId: string): string {
    return path.join(this.runDir(runId), 'artifacts');
  }

  /** Resolves an artifact path, refusing anything that would leave the run's artifact directory. */
  artifactPath(runId: string, relPath: string): string | null {
    const base = this.artifactDir(runId);
    if (relPath.includes('\0')) return null;
    const full = path.resolve(base, relPath);
    if (full !== base && full.startsWith(base + path.sep)) return full;
    return null;
  }

  /** A new, empty directory to collect a run's artifacts into before commitArtifacts(). */
  async stagingDir(runId: string): Promise<string> {
    this.runDir(runId);
    const dir = path.join(this.root, 'partial', `${runId}.${randomBytes(6).toString('hex')}`);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  /** Makes a staging directory the run's artifacts, replacing any earlier attempt's. */
  async commitArtifacts(runId: string, staging: string): Promise<void> {
    const dest = this.artifactDir(runId);
    await mkdir(path.dirname(dest), { recursive: true });
    await rm(dest, { recursive: true, force: true });
    await rename(staging, dest);
  }

  /**
   * Removes the files of runs over: each run directory last changed more than `ageMs` ago, and
   * each staging directory of a collection that never finished (its worker died). `isLive` says
   * whether a run is still pending or running; its files are left alone. Returns what it removed.
   */
  async removeOlderThan(
    ageMs: number,
    isLive: (runId: string) => Promise<boolean>,
    now = Date.now(),
  ): Promise<{ runs: number; partial: number }> {
    const removed = { runs: 0, partial: 0 };
    const partialDir = path.join(this.root, 'partial');
    for (const name of await readdir(partialDir).catch(() => [] as string[])) {
      if (await isLive(name.split('.')[0] ?? '')) continue;
      await rm(path.join(partialDir, name), { recursive: true, force: true });
      removed.partial++;
    }
    const runsDir = path.join(this.root, 'runs');
    for (const runId of await readdir(runsDir).catch(() => [] as string[])) {
      const st = await stat(path.join(runsDir, runId)).catch(() => null);
      if (!st || now - st.mtimeMs <= ageMs || (await isLive(runId))) continue;
      await rm(path.join(runsDir, runId), { recursive: true, force: true });
      removed.runs++;
    }
    return removed;
  }

  async openArtifact(runId: string, relPath: string): Promise<{ stream: Readable; size: number } | null> {
    const full = this.artifactPath(runId, relPath);
    if (!full) return null;
    try {
      const st = await stat(full);
      if (!st.isFile()) return null;
      return { stream: createReadStream(full), size: st.size };
    } catch {
      return null;
    }
  }

  async writeTrajectory(runId: string, trajectory: unknown): Promise<void> {
    await this.writeRunJson(runId, 'trajectory.json', trajectory);
  }

  async readTrajectory<T>(runId: string): Promise<T | null> {
    return this.readRunJson<T>(runId, 'trajectory.json');
  }

  /** Writes a JSON document beside the run's artifacts, atomically (readers see old or new). */
  async writeRunJson(runId: string, name: string, value: unknown): Promise<void> {
    const dir = this.runDir(runId);
    await mkdir(dir, { recursive: true });
    const tmp = path.join(dir, `${name}.${process.pid}.${Date.now()}.tmp`);
    await writeFile(tmp, JSON.stringify(value));
    await rename(tmp, path.join(dir, name));
  }

  async readRunJson<T>(runId: string, name: string): Promise<T | null> {
    try {
      return JSON.parse(await readFile(path.join(this.runDir(runId), name), 'utf8')) as T;
    } catch {
      return null;
    }
  }
}
