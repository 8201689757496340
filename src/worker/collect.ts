import { rm } from 'node:fs/promises';
import {
  type ArtifactInfo,
  type ArtifactsDropped,
  type DroppedArtifact,
  MAX_DROPPED_LISTED,
  type NewEvent,
} from '../events/types.js';
import type { CollectLimits, RunningSandbox } from '../sandbox/driver.js';
import type { BlobStore } from '../storage/blob-store.js';

/** Settings that bound each limit, named in what a user sees when one is hit. */
const SETTING_OF: Record<DroppedArtifact['reason'], string> = {
  file_too_large: 'ARTIFACT_MAX_FILE_BYTES',
  total_too_large: 'ARTIFACT_MAX_BYTES',
  too_many_files: 'ARTIFACT_MAX_FILES',
  unreadable: 'the file mode (the sandbox user could not read it)',
  bad_name: 'the file name (not UTF-8, or a path over 1024 bytes)',
  listing_too_long: 'the number of files in results_dir',
};

export interface CollectedResults {
  artifacts: ArtifactInfo[];
  /** Null when nothing was left out. */
  dropped: ArtifactsDropped | null;
  /** Events to emit: a `warning` when files were left out. */
  events: NewEvent[];
}

/**
 * Copies the run's results_dir out of its sandbox into the blob store, all or nothing: into a
 * local staging directory first, then uploaded, then named by the run's manifest (the commit
 * point, see src/storage/blob-store.ts). A failure leaves the run with no artifacts (the previous
 * attempt's are forgotten too: they were another sandbox's) and is thrown: an ObjectStoreError
 * when the store is what failed, which fails the attempt (see src/worker/run-worker.ts).
 */
export async function collectResults(opts: {
  sandbox: RunningSandbox;
  runId: string;
  resultsDir: string;
  blobs: BlobStore;
  limits: CollectLimits;
}): Promise<CollectedResults> {
  const { blobs, runId } = opts;
  const staging = await blobs.stagingDir(runId);
  try {
    const res = await opts.sandbox.collect(opts.resultsDir, staging, opts.limits);
    const { refused } = await blobs.commitArtifacts(
      runId,
      staging,
      res.artifacts.map((a) => a.path),
    );
    const kept = res.artifacts.filter((a) => !refused.includes(a.path));
    const artifacts = kept.map(({ localPath: _l, ...info }) => info);
    const tooLong = res.artifacts
      .filter((a) => refused.includes(a.path))
      .map((a): DroppedArtifact => ({ path: a.path, size: a.size, reason: 'bad_name' }));
    const dropped = summarize([...res.dropped, ...tooLong]);
    const events: NewEvent[] = dropped
      ? [{ type: 'run.warning', data: { code: 'artifacts_dropped', message: droppedMessage(dropped, opts) } }]
      : [];
    return { artifacts, dropped, events };
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    await blobs.discardArtifacts(runId).catch(() => undefined);
    throw err;
  }
}

function summarize(files: DroppedArtifact[]): ArtifactsDropped | null {
  if (files.length === 0) return null;
  const sorted = [...files].sort((a, b) => b.size - a.size);
  return {
    count: files.length,
    bytes: files.reduce((sum, f) => sum + f.size, 0),
    files: sorted.slice(0, MAX_DROPPED_LISTED),
  };
}

function droppedMessage(d: ArtifactsDropped, opts: { resultsDir: string; limits: CollectLimits }): string {
  const { limits } = opts;
  const named = d.files
    .slice(0, 5)
    .map((f) => `${f.path} (${formatBytes(f.size)}, ${f.reason}: ${SETTING_OF[f.reason]})`)
    .join('; ');
  const more = d.count > 5 ? `; and ${d.count - 5} more (the run record's artifacts_dropped lists them)` : '';
  return (
    `${d.count} file(s) of ${opts.resultsDir} (${formatBytes(d.bytes)}) were not kept: ${named}${more}. ` +
    `Files are kept smallest first, up to ${limits.maxFiles} files, ${formatBytes(limits.maxBytes)} in all ` +
    `and ${formatBytes(limits.maxFileBytes)} each; the server's operator sets these limits.`
  );
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}
