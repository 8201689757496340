import type { Readable } from 'node:stream';
import type { EnvironmentReport } from '../environments/probe.js';
import type { ArtifactInfo, DroppedArtifact } from '../events/types.js';
import type { SandboxFile } from '../runtimes/types.js';

export interface SandboxLimits {
  cpus: number;
  memoryBytes: number;
  pids: number;
  /**
   * Bytes the sandbox may write, all places together (src/sandbox/layout.ts splits it across the
   * writable mounts). Written bytes live in memory and count against `memoryBytes` too.
   */
  diskBytes: number;
}

export interface SandboxSpec {
  runId: string;
  /** The environment: the image the sandbox is made of (a snapshot's, or the run's own). */
  image: string;
  /** The runtime's agent layer image (docker/agents/<runtime>/), mounted read-only at /opt/jetty. */
  agentImage: string;
  argv: string[];
  env: Record<string, string>;
  /** Placed before the agent starts, owned by the sandbox user; only under the writable mounts. */
  files: SandboxFile[];
  /** Piped to the agent's stdin, then closed (no stdin: it reads an empty one). */
  stdin?: string | Buffer;
  limits: SandboxLimits;
  /** Host directory holding the gateway's unix socket; mounted read-only at GATEWAY_MOUNT. */
  gatewaySocketDir: string;
}

/** Where the gateway socket directory appears inside every sandbox. */
export const GATEWAY_MOUNT = '/run/jetty';
export const GATEWAY_SOCKET_NAME = 'gateway.sock';

/** Bounds on what collect() copies out of a sandbox; what does not fit is reported, not copied. */
export interface CollectLimits {
  maxFiles: number;
  maxBytes: number;
  maxFileBytes: number;
}

export interface CollectedArtifact extends ArtifactInfo {
  /** Where the file now lives on the worker's disk. */
  localPath: string;
}

export interface CollectResult {
  /** Sorted by path. */
  artifacts: CollectedArtifact[];
  /** Largest first; see src/sandbox/collect-plan.ts for the rule. */
  dropped: DroppedArtifact[];
}

/** What exec() may take and give back: a time limit and a bound on the output it keeps. */
export interface ExecLimits {
  timeoutMs: number;
  /** Bytes of stdout and of stderr kept (each); the rest is read and counted, not kept. */
  maxOutput: number;
  env?: Record<string, string>;
  /** Defaults to /app. */
  workdir?: string;
}

export interface ExecResult {
  /** null when the process was stopped at its time limit, or the sandbox went away. */
  exitCode: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Output past maxOutput was left out (of either stream). */
  truncated: boolean;
  durationMs: number;
}

/** One run's sandbox with its agent process started in it. */
export interface RunningSandbox {
  readonly id: string;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Resolves when the agent process exits; exitCode is null when kill() ended it. */
  wait(): Promise<{ exitCode: number | null }>;
  /** Kills every process of the sandbox user now (the sandbox itself stays). Safe to call more than once. */
  kill(): Promise<void>;
  /**
   * Copies the regular files under `dir` out of the sandbox into `destDir`, smallest first, within
   * `limits`. Processes the agent left behind are stopped first. A missing dir: nothing collected.
   */
  collect(dir: string, destDir: string, limits: CollectLimits): Promise<CollectResult>;
  /**
   * Runs one more process in the sandbox as the sandbox user, after the agent has ended (the
   * server's own checks: a runbook's verification script). Past `timeoutMs` every process of the
   * sandbox user is killed and `timedOut` is set.
   */
  exec(argv: string[], limits: ExecLimits): Promise<ExecResult>;
  /** Removes the sandbox and everything written in it. Safe to call more than once. */
  remove(): Promise<void>;
}

export interface OwnedSandbox {
  id: string;
  runId: string;
  running: boolean;
}

export interface SandboxDriver {
  /**
   * Creates the run's sandbox, places its files and starts the agent in it. Idempotent per run:
   * an existing sandbox of the same run (a retried job) is removed first, so there is never a
   * second one.
   */
  start(spec: SandboxSpec): Promise<RunningSandbox>;
  /** Sandboxes this server instance owns (by label). */
  listOwned(): Promise<OwnedSandbox[]>;
  /** Force-removes one sandbox by id; a missing one is not an error. */
  removeById(id: string): Promise<void>;
  /** Throws when the engine cannot be reached. */
  ping(): Promise<void>;
  /**
   * Environments (drivers that do not have them skip the environment check). The engine's id of
   * an environment image: a missing one is a 400 naming it.
   */
  environmentId?(image: string): Promise<string>;
  /** The agent layer's volume, made ready for use (a missing layer image is a typed error). */
  agentLayer?(agentImage: string): Promise<string>;
  /** Probes an environment image with an agent layer mounted (src/environments/probe.ts). */
  describeEnvironment?(image: string, agentImage: string, maxOutputBytes: number): Promise<EnvironmentReport>;
  /** Size and labels of an image; null when the engine does not have it. */
  imageInfo?(
    image: string,
  ): Promise<{ id: string; sizeBytes: number; labels: Record<string, string> } | null>;
}
