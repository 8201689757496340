/**
 * A run that is a turn of a conversation, seen from the worker: what the CLI is told (only the new
 * message when it resumes its session; the runbook, the earlier turns summarized and the message
 * when it cannot), the files put back into the new sandbox (the previous turn's /app and the CLI's
 * session directories), and what is saved when the turn ends for the next one.
 *
 * Saved files live beside the run's artifacts in the object store (BLOB_STORE), at
 * `runs/<run>/conversation/<n>/…` with `conversation/manifest.json` naming the sandbox directory of
 * each `<n>` (written last), so the next turn finds them on any worker host; they expire with the
 * run's other files.
 */
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { DroppedArtifact, NewEvent } from '../events/types.js';
import type { RunJob } from '../queue/catalog.js';
import type { ConversationStateRecord } from '../queue/run-store.js';
import type { InvocationSpec, RuntimeAdapter, SandboxFile } from '../runtimes/types.js';
import type { RunningSandbox } from '../sandbox/driver.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { Redactor } from '../tenancy/redact.js';
import { formatBytes } from './collect.js';
import { composePrompt } from './prompt.js';

/** The sandbox's working directory: everything the agent made there carries over to the next turn. */
export const CONVERSATION_WORKDIR = '/app';
const STATE_DIR = 'conversation';
const MANIFEST = 'manifest.json';

/** CONVERSATION_STATE_MAX_*: what one turn keeps for the next (maxBytes 0: nothing). */
export interface TurnStateLimits {
  maxBytes: number;
  maxFiles: number;
}

interface Manifest {
  /** The sandbox directory each numbered directory holds. */
  dirs: string[];
  files: number;
  bytes: number;
  /** Bytes stored, after redaction. */
  stored?: number;
  /** What did not fit, told to the next turn (whose sandbox lacks those files). */
  dropped_warning?: string;
}

/** What the turn's CLI is told: the new message alone when it resumes its session. */
export function turnPrompt(spec: RunJob): string {
  const conv = spec.conversation;
  if (conv?.resumeSession) return `${spec.instruction.trim()}\n`;
  const instruction = conv?.history ? `${conv.history}\n\n${spec.instruction.trim()}` : spec.instruction;
  return composePrompt({
    runbook: spec.runbook,
    instruction,
    timeoutSec: spec.timeoutSec,
    resultsDir: spec.resultsDir,
  });
}

/** The CLI's session for this run: kept for a later turn, and the earlier one resumed. */
export function turnSession(spec: RunJob): InvocationSpec['session'] {
  const conv = spec.conversation;
  if (!conv) return undefined;
  return { persist: true, ...(conv.resumeSession ? { resume: conv.resumeSession } : {}) };
}

/**
 * The previous turn's files, to place in the new sandbox before the agent starts. A previous turn
 * whose files are gone (removed, or kept nothing) gives none, and the run says so.
 */
export async function restoreTurnFiles(
  spec: RunJob,
  blobs: BlobStore,
): Promise<{ files: SandboxFile[]; events: NewEvent[] }> {
  const parent = spec.conversation?.parentRunId;
  if (!parent) return { files: [], events: [] };
  const manifest = await blobs.readRunJson<Manifest>(parent, `${STATE_DIR}/${MANIFEST}`).catch(() => null);
  if (manifest === null) {
    const message = `The files of the previous turn (run ${parent}) are no longer stored (they expire with the run, after RETENTION_SEC, and are not kept when CONVERSATION_STATE_MAX_BYTES is 0): this turn starts from an empty /app${spec.conversation?.resumeSession ? ', and the agent CLI may not find its session' : ''}.`;
    return {
      files: [],
      events: [{ type: 'run.warning', data: { code: 'conversation_state_missing', message } }],
    };
  }
  const files: SandboxFile[] = [];
  const events: NewEvent[] = manifest.dropped_warning
    ? [
        {
          type: 'run.warning',
          data: { code: 'conversation_state_dropped', message: manifest.dropped_warning },
        },
      ]
    : [];
  // Read back within what the manifest says was stored.
  for (const f of await blobs.readRunFiles(parent, STATE_DIR, manifest.stored ?? manifest.bytes)) {
    const slash = f.path.indexOf('/');
    const dir = manifest.dirs[Number(f.path.slice(0, slash))];
    if (slash < 0 || dir === undefined) continue;
    files.push({ path: path.posix.join(dir, f.path.slice(slash + 1)), content: f.content });
  }
  return { files, events };
}

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(path.join(dir, prefix), { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listFiles(dir, rel)));
    else if (e.isFile()) out.push(rel);
  }
  return out;
}

/**
 * Copies the turn's /app and the CLI's session directories out of the sandbox, within the limits
 * (smallest files first, as results are), all or nothing. Returns what it kept. When files did not
 * fit, the manifest holds a warning naming the largest and the setting, which the next turn gives
 * (it runs without them; this turn may have ended before they were saved).
 */
export async function saveTurnFiles(opts: {
  sandbox: RunningSandbox;
  runId: string;
  runtime: RuntimeAdapter;
  blobs: BlobStore;
  limits: TurnStateLimits;
  /** The run's secret values: redacted from the CLI's session files (not from /app, the agent's own files). */
  redactor?: Redactor;
}): Promise<ConversationStateRecord | null> {
  const { blobs, runId, limits } = opts;
  if (limits.maxBytes === 0) return null;
  const dirs = [CONVERSATION_WORKDIR, ...(opts.runtime.sessionDirs ?? [])];
  const staging = await blobs.stagingDir(runId);
  try {
    const kept = { files: 0, bytes: 0 };
    const dropped: DroppedArtifact[] = [];
    for (const [i, dir] of dirs.entries()) {
      const left = { files: limits.maxFiles - kept.files, bytes: limits.maxBytes - kept.bytes };
      const res = await opts.sandbox.collect(dir, path.join(staging, String(i)), {
        maxFiles: Math.max(0, left.files),
        maxBytes: Math.max(0, left.bytes),
        maxFileBytes: Math.max(0, left.bytes),
      });
      if (i > 0 && opts.redactor && !opts.redactor.empty)
        await redactFiles(path.join(staging, String(i)), opts.redactor);
      kept.files += res.artifacts.length;
      kept.bytes += res.artifacts.reduce((n, a) => n + a.size, 0);
      dropped.push(...res.dropped.map((d) => ({ ...d, path: path.posix.join(dir, d.path) })));
    }
    const paths = await listFiles(staging);
    // What is stored (redaction marks may be longer than the values they replace): the bound a
    // later turn reads it back within.
    let stored = 0;
    for (const p of paths) stored += (await stat(path.join(staging, p))).size;
    const manifest: Manifest = {
      dirs,
      ...kept,
      stored,
      ...(dropped.length > 0 ? { dropped_warning: droppedWarning(runId, dropped, limits) } : {}),
    };
    // Into the run's files in the object store, so a later turn on any worker host finds them.
    await blobs.replaceRunFiles(runId, STATE_DIR, staging, paths, manifest);
    return { ...kept, dropped: dropped.length };
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
}

/**
 * The CLI's session files are its transcript: tool results in them hold what the agent printed,
 * secrets included. They are kept at rest like a trajectory is, with each value replaced by its
 * mark (the next turn's sandbox gets the secrets again in its environment). Binary files are left.
 */
async function redactFiles(dir: string, redactor: Redactor): Promise<void> {
  for (const rel of await listFiles(dir)) {
    const file = path.join(dir, rel);
    const bytes = await readFile(file);
    if (bytes.subarray(0, 8192).includes(0)) continue;
    const text = bytes.toString('utf8');
    const clean = redactor.text(text);
    if (clean !== text) await writeFile(file, clean);
  }
}

function droppedWarning(runId: string, dropped: DroppedArtifact[], limits: TurnStateLimits): string {
  const largest = [...dropped].sort((a, b) => b.size - a.size);
  const named = largest
    .slice(0, 5)
    .map((f) => `${f.path} (${formatBytes(f.size)})`)
    .join(', ');
  const more = dropped.length > 5 ? ` and ${dropped.length - 5} more` : '';
  return `${dropped.length} file(s) of the previous turn's sandbox (run ${runId}) were not kept for this turn: ${named}${more}. A turn keeps /app and the agent's session files, smallest first, up to ${limits.maxFiles} files and ${formatBytes(limits.maxBytes)} (CONVERSATION_STATE_MAX_FILES, CONVERSATION_STATE_MAX_BYTES).`;
}
