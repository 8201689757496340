import type { Readable } from 'node:stream';
import type { ArtifactInfo } from '../events/types.js';
import type { SandboxFile } from '../runtimes/types.js';

export interface SandboxLimits {
  cpus: number;
  memoryBytes: number;
  pids: number;
}

export interface SandboxSpec {
  runId: string;
  image: string;
  argv: string[];
  env: Record<string, string>;
  files: SandboxFile[];
  stdinFile?: string;
  limits: SandboxLimits;
  /** 'none' by default: the sandbox reaches models only through the gateway socket. */
  network: 'none' | 'bridge';
  /** Host directory holding the gateway's unix socket; mounted read-only at GATEWAY_MOUNT. */
  gatewaySocketDir: string;
}

/** Where the gateway socket directory appears inside every sandbox. */
export const GATEWAY_MOUNT = '/run/jetty';
export const GATEWAY_SOCKET_NAME = 'gateway.sock';

export interface CollectedArtifact extends ArtifactInfo {
  /** Where the file now lives on the worker's disk. */
  localPath: string;
}

export interface RunningSandbox {
  readonly id: string;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Resolves when the CLI process exits. */
  wait(): Promise<{ exitCode: number | null }>;
  /** Stops the process now (SIGKILL after a short grace). Safe to call more than once. */
  kill(): Promise<void>;
  /** Copies `dir` out of the (running or stopped) sandbox into `destDir`. Missing dir: []. */
  collect(dir: string, destDir: string): Promise<CollectedArtifact[]>;
  /** Removes the container. Safe to call more than once. */
  remove(): Promise<void>;
}

export interface OwnedSandbox {
  id: string;
  runId: string;
  running: boolean;
}

export interface SandboxDriver {
  /**
   * Creates the run's sandbox and starts it. Idempotent per run: an existing sandbox of the same
   * run (a retried job) is removed first, so there is never a second one.
   */
  start(spec: SandboxSpec): Promise<RunningSandbox>;
  /** Sandboxes this server instance owns (by label). */
  listOwned(): Promise<OwnedSandbox[]>;
  /** Force-removes one sandbox by id; a missing one is not an error. */
  removeById(id: string): Promise<void>;
  /** Throws when the engine cannot be reached. */
  ping(): Promise<void>;
}
