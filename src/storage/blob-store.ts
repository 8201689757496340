import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { type ByteRange, isSafeKey, type ObjectStore, ObjectTooLargeError, readAll } from './object-store.js';

/** What a committed collection of artifacts is: `runs/<id>/artifacts.json`, written last. */
interface ArtifactManifest {
  v: 1;
  /** Where this commit's files are: `runs/<id>/files-<token>/`. */
  prefix: string;
  paths: string[];
}

const MANIFEST = 'artifacts.json';

/**
 * A run's files in the object store (a directory by default, an S3 bucket across hosts):
 *
 *   runs/<id>/artifacts.json        the manifest: which files the run's artifacts are, and where
 *   runs/<id>/files-<token>/<path>  one attempt's collected files
 *   runs/<id>/trajectory.json       the record and every event, once the run is over
 *   runs/<id>/labels.json
 *
 * Artifacts are collected into local scratch (DATA_DIR/scratch), uploaded under a prefix of their
 * own, and only then named by the manifest: the manifest is the commit point. A collection cut
 * short (the store went away, the worker died) leaves objects no manifest names, which no reader
 * ever serves and retention removes with the run. Runs collected before manifests existed keep
 * their files at `runs/<id>/artifacts/<path>`, and are still read there.
 */
export class BlobStore {
  constructor(
    readonly objects: ObjectStore,
    /** Local scratch space of this process: where a run's artifacts are gathered before upload. */
    readonly scratch: string,
    private readonly opts: { maxJsonBytes: number; uploadConcurrency?: number },
  ) {}

  /** Names the store in messages. */
  get name(): string {
    return this.objects.name;
  }

  private runPrefix(runId: string): string {
    if (!isRunId(runId)) throw new Error('invalid run id');
    return `runs/${runId}/`;
  }

  /** A new, empty local directory to collect a run's artifacts into before commitArtifacts(). */
  async stagingDir(runId: string): Promise<string> {
    this.runPrefix(runId);
    const dir = path.join(this.scratch, 'collect', `${runId}.${randomBytes(6).toString('hex')}`);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  /**
   * Uploads a staging directory's files (`paths`, relative to it) as the run's artifacts, then
   * writes the manifest naming them: until that write, readers see the previous commit (or none).
   * The earlier commit's files are removed after. The staging directory is removed either way.
   * Answers the paths that cannot be keys (too long for S3's 1024 bytes): those were not stored.
   */
  async commitArtifacts(runId: string, staging: string, paths: string[]): Promise<{ refused: string[] }> {
    const prefix = `${this.runPrefix(runId)}files-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}/`;
    try {
      const safe = paths.filter((p) => isSafeKey(`${prefix}${p}`));
      await inPool(safe, this.opts.uploadConcurrency ?? 4, (p) =>
        this.objects.putFile(`${prefix}${p}`, path.join(staging, ...p.split('/'))),
      );
      const before = await this.manifest(runId);
      const manifest: ArtifactManifest = { v: 1, prefix, paths: safe };
      await this.objects.put(`${this.runPrefix(runId)}${MANIFEST}`, JSON.stringify(manifest));
      if (before?.prefix) await this.objects.deletePrefix(before.prefix).catch(() => 0);
      return { refused: paths.filter((p) => !safe.includes(p)) };
    } catch (err) {
      // Best effort: the store may be the thing that failed. Unnamed objects are harmless anyway.
      await this.objects.deletePrefix(prefix).catch(() => 0);
      throw err;
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  /** Forgets the run's artifacts (a collection that failed: an earlier attempt's are not this one's). */
  async discardArtifacts(runId: string): Promise<void> {
    const before = await this.manifest(runId);
    await this.objects.put(
      `${this.runPrefix(runId)}${MANIFEST}`,
      JSON.stringify({ v: 1, prefix: '', paths: [] }),
    );
    if (before?.prefix) await this.objects.deletePrefix(before.prefix).catch(() => 0);
  }

  private async manifest(runId: string): Promise<ArtifactManifest | null> {
    return this.readRunJson<ArtifactManifest>(runId, MANIFEST);
  }

  /** The key of one of the run's artifacts, or null when the run has no such artifact. */
  private async artifactKey(runId: string, relPath: string): Promise<string | null> {
    if (!isSafeKey(relPath) || !isRunId(runId)) return null;
    const m = await this.manifest(runId);
    if (m) return m.prefix && m.paths.includes(relPath) ? `${m.prefix}${relPath}` : null;
    return `${this.runPrefix(runId)}artifacts/${relPath}`;
  }

  /** Streams an artifact (or a range of it), never reading it whole. */
  async openArtifact(
    runId: string,
    relPath: string,
    range?: ByteRange,
  ): Promise<{ stream: Readable; size: number } | null> {
    const key = await this.artifactKey(runId, relPath);
    return key ? this.objects.get(key, range) : null;
  }

  /** An artifact's bytes (an earlier run's output used as a later run's input), up to `maxBytes`. */
  async readArtifact(runId: string, relPath: string, maxBytes: number): Promise<Buffer | null> {
    const file = await this.openArtifact(runId, relPath);
    if (!file) return null;
    return readAll(
      file.stream,
      maxBytes,
      (n) => new ObjectTooLargeError(relPath, n, maxBytes, 'ARTIFACT_MAX_FILE_BYTES'),
    );
  }

  /**
   * The first `maxBytes` bytes of an artifact (the evaluation's report and the judge's input), or
   * null when the run has no such artifact. Only those bytes are fetched (a range request).
   */
  async readArtifactStart(runId: string, relPath: string, maxBytes: number): Promise<Buffer | null> {
    const key = await this.artifactKey(runId, relPath);
    const info = key ? await this.objects.stat(key) : null;
    if (!key || !info) return null;
    const end = Math.min(info.size, Math.max(0, maxBytes)) - 1;
    if (end < 0) return Buffer.alloc(0);
    const body = await this.objects.get(key, { start: 0, end });
    if (!body) return null;
    return readAll(
      body.stream,
      end + 1,
      (n) => new ObjectTooLargeError(relPath, n, end + 1, 'ARTIFACT_MAX_FILE_BYTES'),
    );
  }

  /**
   * Replaces the run's files under `runs/<id>/<dir>/` with a staging directory's (`paths`, relative
   * to it), then writes `manifest` as `<dir>/manifest.json`, last: a reader that finds the manifest
   * finds every file it names. The staging directory is removed either way.
   */
  async replaceRunFiles(
    runId: string,
    dir: string,
    staging: string,
    paths: string[],
    manifest: unknown,
  ): Promise<void> {
    const prefix = `${this.runPrefix(runId)}${dir}/`;
    try {
      await this.objects.deletePrefix(prefix);
      await inPool(paths, this.opts.uploadConcurrency ?? 4, (p) =>
        this.objects.putFile(`${prefix}${p}`, path.join(staging, ...p.split('/'))),
      );
      await this.objects.put(`${prefix}manifest.json`, JSON.stringify(manifest));
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  /** The files under the run's `<dir>/` (not its manifest), whole, up to `maxBytes` in all. */
  async readRunFiles(
    runId: string,
    dir: string,
    maxBytes: number,
  ): Promise<Array<{ path: string; content: Buffer }>> {
    const prefix = `${this.runPrefix(runId)}${dir}/`;
    const out: Array<{ path: string; content: Buffer }> = [];
    let total = 0;
    for await (const o of this.objects.list(prefix)) {
      const rel = o.key.slice(prefix.length);
      if (rel === 'manifest.json') continue;
      const body = await this.objects.get(o.key);
      if (!body) continue;
      const left = maxBytes - total;
      const content = await readAll(
        body.stream,
        left,
        (n) => new ObjectTooLargeError(o.key, n, left, 'CONVERSATION_STATE_MAX_BYTES'),
      );
      total += content.length;
      out.push({ path: rel, content });
    }
    return out;
  }

  async writeTrajectory(runId: string, trajectory: unknown): Promise<void> {
    await this.writeRunJson(runId, 'trajectory.json', trajectory);
  }

  async readTrajectory<T>(runId: string): Promise<T | null> {
    return this.readRunJson<T>(runId, 'trajectory.json');
  }

  /** Writes a JSON document beside the run's artifacts, whole (readers see old or new). */
  async writeRunJson(runId: string, name: string, value: unknown): Promise<void> {
    await this.objects.put(`${this.runPrefix(runId)}${name}`, JSON.stringify(value));
  }

  /** A JSON document of the run, or null when there is none (or it is not JSON). */
  async readRunJson<T>(runId: string, name: string): Promise<T | null> {
    // An id no run can have (a request's path, say) has nothing stored: not found, not a fault.
    if (!isRunId(runId)) return null;
    const key = `${this.runPrefix(runId)}${name}`;
    const body = await this.objects.get(key);
    if (!body) return null;
    const limit = this.opts.maxJsonBytes;
    if (body.size > limit) {
      body.stream.destroy();
      throw new ObjectTooLargeError(key, body.size, limit, 'BLOB_MAX_JSON_BYTES');
    }
    const bytes = await readAll(
      body.stream,
      limit,
      (n) => new ObjectTooLargeError(key, n, limit, 'BLOB_MAX_JSON_BYTES'),
    );
    try {
      return JSON.parse(bytes.toString('utf8')) as T;
    } catch {
      return null;
    }
  }

  /**
   * Removes the files of runs over: each run whose newest object is older than `ageMs`, and each
   * local staging directory of a collection that never finished (its worker died). `isLive` says
   * whether a run is still pending or running; its files are left alone. `store: false` cleans
   * only the local scratch (another process sweeps the shared store). Returns what it removed.
   */
  async removeOlderThan(
    ageMs: number,
    isLive: (runId: string) => Promise<boolean>,
    now = Date.now(),
    opts: { store?: boolean } = {},
  ): Promise<{ runs: number; partial: number }> {
    const removed = { runs: 0, partial: 0 };
    const collectDir = path.join(this.scratch, 'collect');
    for (const name of await readdir(collectDir).catch(() => [] as string[])) {
      if (await isLive(name.split('.')[0] ?? '')) continue;
      await rm(path.join(collectDir, name), { recursive: true, force: true });
      removed.partial++;
    }
    if (opts.store === false) return removed;
    // Keys list in order, so one run's objects come together: one group at a time, in little memory.
    let group: { runId: string; newest: number } | undefined;
    const close = async () => {
      if (!group || now - group.newest <= ageMs || (await isLive(group.runId))) return;
      await this.objects.deletePrefix(`runs/${group.runId}/`);
      removed.runs++;
    };
    for await (const o of this.objects.list('runs/')) {
      const runId = o.key.split('/')[1] ?? '';
      if (group?.runId !== runId) {
        await close();
        group = { runId, newest: 0 };
      }
      group.newest = Math.max(group.newest, o.modifiedMs);
    }
    await close();
    return removed;
  }
}

function isRunId(runId: string): boolean {
  return /^[A-Za-z0-9_-]+$/.test(runId);
}

/** Runs `fn` on every item, `size` at a time; the first failure stops new starts and is thrown. */
export async function inPool<T>(items: T[], size: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  let failed = false;
  const lane = async () => {
    while (!failed && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const lanes = Array.from({ length: Math.min(size, items.length) }, lane);
  const results = await Promise.allSettled(lanes);
  const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (rejected) throw rejected.reason;
}
