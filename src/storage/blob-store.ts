import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';

/**
 * Where artifacts and finished trajectories live: a directory tree by default,
 * `<root>/runs/<runId>/artifacts/...` and `<root>/runs/<runId>/trajectory.json`.
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
