import path from 'node:path';
import { badRequest } from '../errors.js';
import type { SandboxFile } from '../runtimes/types.js';

/**
 * The sandbox's file system: a read-only image with a sized tmpfs on every place the sandbox user
 * can write. tmpfs lives in memory, so a sandbox can never grow the host's disk; what it writes is
 * charged to its memory limit, and a full mount answers ENOSPC to the writer.
 */

/** The user every agent process runs as, whatever the image says (the images' `agent`). */
export const SANDBOX_UID = 1000;
export const SANDBOX_GID = 1000;
/** The do-nothing process that keeps the sandbox up runs as another user, so the agent cannot kill it. */
export const HOLDER_UID = 65534;

export interface WritableMount {
  path: string;
  /** Fraction of the sandbox's disk limit this mount gets. */
  share: number;
  /** Owned by the sandbox user (its own directories) or by root with the sticky bit (shared temp). */
  owner: 'agent' | 'root';
}

/** Where the agent can write, and how the disk limit is split between them (shares sum to 1). */
export const WRITABLE_MOUNTS: readonly WritableMount[] = [
  { path: '/app', share: 8 / 16, owner: 'agent' },
  { path: '/tmp', share: 4 / 16, owner: 'root' },
  { path: '/home/agent', share: 3 / 16, owner: 'agent' },
  { path: '/var/tmp', share: 1 / 16, owner: 'root' },
];

/** /run/lock (and /var/lock, a link to it) is world-writable in Debian images: a small fixed mount. */
export const LOCK_MOUNT = { path: '/run/lock', bytes: 1024 * 1024 } as const;

/** Directories every sandbox starts with (the image's own are hidden by the tmpfs on /app). */
export const SANDBOX_DIRS: readonly string[] = ['/app/assets', '/app/results'];

const PAGE = 4096;
const pages = (n: number) => Math.ceil(n / PAGE) * PAGE;

/**
 * Docker's `HostConfig.Tmpfs`: each writable mount sized at its share of `diskBytes`, plus the
 * bytes of the files placed under it (inputs do not eat the agent's space). `exec` because agents
 * run what they write; `nosuid,nodev` because nothing in a sandbox needs either.
 */
export function tmpfsMounts(diskBytes: number, files: readonly SandboxFile[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of WRITABLE_MOUNTS) {
    const placed = files
      .filter((f) => isUnder(f.path, m.path))
      .reduce((sum, f) => sum + pages(Buffer.byteLength(f.content)), 0);
    const size = pages(Math.floor(diskBytes * m.share)) + placed;
    const owner = m.owner === 'agent' ? `uid=${SANDBOX_UID},gid=${SANDBOX_GID},mode=0755` : 'mode=1777';
    out[m.path] = `rw,exec,nosuid,nodev,size=${size},${owner}`;
  }
  out[LOCK_MOUNT.path] = `rw,noexec,nosuid,nodev,size=${LOCK_MOUNT.bytes},mode=1777`;
  return out;
}

/** The writable mount holding `p`, or undefined when `p` is on the read-only image. */
export function writableMountOf(p: string): WritableMount | undefined {
  return WRITABLE_MOUNTS.find((m) => isUnder(p, m.path));
}

/**
 * A file's normalised absolute path inside the sandbox, or a typed error: absolute, no `..`, and
 * under one of the writable mounts (anywhere else is the read-only image).
 */
export function checkSandboxPath(p: string): string {
  if (!p.startsWith('/') || p.split('/').some((seg) => seg === '..') || p.includes('\0')) {
    throw badRequest(`sandbox file path ${JSON.stringify(p)} must be absolute and free of '..'`, 'files');
  }
  const normal = path.posix.normalize(p);
  const mount = writableMountOf(normal);
  if (!mount || mount.path === normal) {
    const roots = WRITABLE_MOUNTS.map((m) => m.path).join(', ');
    throw badRequest(`sandbox file path ${JSON.stringify(p)} must be inside one of ${roots}`, 'files');
  }
  return normal;
}

function isUnder(p: string, dir: string): boolean {
  const normal = path.posix.normalize(p);
  return normal === dir || normal.startsWith(`${dir}/`);
}
