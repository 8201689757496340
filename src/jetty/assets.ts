/**
 * A run's input files (`file_paths`, Jetty's storage keys): each must be an upload or an artifact
 * of the caller's collection, and lands in the sandbox at `/app/assets/<its path>`. A key of
 * another collection is refused with exactly the words of a key that does not exist.
 */
import { badRequest, quoted } from '../errors.js';
import type { RunAsset } from '../queue/catalog.js';
import type { RunService } from '../queue/run-service.js';
import { parseFileKey } from './trajectory.js';
import { ASSETS_DIR, claimName, type UploadStore } from './uploads.js';

export const MAX_ASSETS = 100;

/** A key's segments, each percent-decoded once (keys encode what a segment cannot hold raw). */
export function keySegments(key: string): string[] | null {
  try {
    return key.split('/').map((s) => decodeURIComponent(s));
  } catch {
    return null;
  }
}

export async function resolveAssets(
  keys: readonly unknown[],
  ctx: { collection: string; runs: RunService; uploads: UploadStore; param: string },
): Promise<RunAsset[]> {
  if (keys.length > MAX_ASSETS) {
    throw badRequest(
      `${ctx.param} lists ${keys.length} files; a run takes at most ${MAX_ASSETS}.`,
      ctx.param,
    );
  }
  const out: RunAsset[] = [];
  const taken = new Set<string>();
  for (const [i, key] of keys.entries()) {
    const param = `${ctx.param}[${i}]`;
    const missing = () =>
      badRequest(
        `${param}: no file ${quoted(String(key), 200)} in your collection. Use a storage key from POST /api/v1/sandbox/upload (file_paths) or from a run's outputs.`,
        param,
        'file_not_found',
      );
    if (typeof key !== 'string') throw badRequest(`${param} must be a storage key string.`, param);
    const segments = keySegments(key);
    const parts = segments ? parseFileKey(segments) : null;
    if (!parts || parts.collection !== ctx.collection) throw missing();
    if (parts.kind === 'upload') {
      if (!(await ctx.uploads.has(parts.collection, parts.id, parts.relPath))) throw missing();
    } else {
      const run = await ctx.runs.get(parts.id, ctx.collection);
      if (!run?.artifacts.some((a) => a.path === parts.relPath)) throw missing();
    }
    const rel = claimName(parts.relPath, taken);
    out.push({ kind: parts.kind, id: parts.id, relPath: parts.relPath, path: `${ASSETS_DIR}/${rel}` });
  }
  return out;
}
