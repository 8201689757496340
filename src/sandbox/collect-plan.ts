import type { DroppedArtifact } from '../events/types.js';
import type { CollectLimits } from './driver.js';

/** A regular file found under the collected directory, path relative to it. */
export interface ListedFile {
  path: string;
  size: number;
}

/**
 * Which files to copy out: smallest first, so that one huge file never costs the small ones.
 * A file over the per-file limit is dropped; then files are taken in size order until the count
 * or the byte total would be passed, and every larger one is dropped. Ties go by path, so the
 * same directory always gives the same choice. Dropped files are listed largest first.
 */
export function planCollection(
  files: readonly ListedFile[],
  limits: CollectLimits,
): { keep: ListedFile[]; dropped: DroppedArtifact[] } {
  const sorted = [...files].sort((a, b) => a.size - b.size || compare(a.path, b.path));
  const keep: ListedFile[] = [];
  const dropped: DroppedArtifact[] = [];
  let total = 0;
  for (const f of sorted) {
    if (f.size > limits.maxFileBytes) dropped.push({ ...f, reason: 'file_too_large' });
    else if (keep.length >= limits.maxFiles) dropped.push({ ...f, reason: 'too_many_files' });
    else if (total + f.size > limits.maxBytes) dropped.push({ ...f, reason: 'total_too_large' });
    else {
      keep.push(f);
      total += f.size;
    }
  }
  dropped.sort((a, b) => b.size - a.size || compare(a.path, b.path));
  return { keep, dropped };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
