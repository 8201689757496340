import { randomBytes } from 'node:crypto';
import path from 'node:path';
import Dockerode from 'dockerode';
import tar from 'tar-stream';
import { type EnvironmentReport, parseProbeOutput } from '../environments/probe.js';
import { AppError, badRequest, infraError } from '../errors.js';
import type { SandboxFile } from '../runtimes/types.js';
import {
  AGENT_MOUNT,
  AgentVolumes,
  LAYER_ENTRYPOINT,
  LAYER_PROBE,
  LAYER_SHELL,
  LAYER_TOOLS,
} from './agent-volume.js';
import { collectDirectory } from './docker-collect.js';
import {
  dockerMessage,
  dockerStatus,
  readBounded,
  runExec,
  type StartedExec,
  startExec,
  toAppError,
} from './docker-exec.js';
import {
  type CollectLimits,
  type CollectResult,
  type ExecLimits,
  type ExecResult,
  GATEWAY_MOUNT,
  type OwnedSandbox,
  type RunningSandbox,
  type SandboxDriver,
  type SandboxSpec,
} from './driver.js';
import {
  checkSandboxPath,
  HOLDER_UID,
  SANDBOX_DIRS,
  SANDBOX_GID,
  SANDBOX_UID,
  tmpfsMounts,
} from './layout.js';

export { contentType } from './docker-collect.js';
export { SANDBOX_GID, SANDBOX_UID } from './layout.js';

/**
 * Labels on every sandbox container. `jetty.deployment` scopes clean-up to one deployment (one Redis
 * and key prefix) when the driver is given one, else `jetty.instance` to one server instance.
 * `jetty.worker` names the worker process that started it.
 */
export const SANDBOX_LABELS = {
  managed: 'jetty.managed',
  instance: 'jetty.instance',
  deployment: 'jetty.deployment',
  keyPrefix: 'jetty.key-prefix',
  worker: 'jetty.worker',
  runId: 'jetty.run-id',
} as const;

const AGENT_USER = `${SANDBOX_UID}:${SANDBOX_GID}`;
/** /dev/shm, a tmpfs of its own outside SANDBOX_DISK (Docker's usual size). */
const SHM_BYTES = 64 * 1024 * 1024;
const BUILD_COMMAND = 'bash docker/build-images.sh';
/**
 * The agent's process, in one exec: its stdin is the files' tar, exactly $1 bytes of it (GNU head
 * never reads past what it was asked for), then the agent's own stdin. The engine's archive API
 * cannot be used for the files: it writes beneath the tmpfs mounts, where nobody would see them;
 * and one exec instead of two starts the agent sooner. tar makes missing parent directories
 * itself, owned by the sandbox user; existing ones (a mount root such as /tmp) keep their owner
 * and mode. After the command, what it left behind (the forwarder, background jobs) is killed and
 * its exit code passed on: the run's processes end with the agent, as when the container was the
 * agent, and its output ends at once instead of when the last straggler lets go of it.
 */
const AGENT_SCRIPT = [
  `${LAYER_TOOLS}/head -c "$1" | ${LAYER_TOOLS}/tar -x -p -f - -C / || { echo "jetty-sandbox: could not place the run's files" >&2; exit 125; }`,
  'shift',
  '"$@"; code=$?',
  'kill -9 -1 2>/dev/null',
  'exit $code',
].join('\n');
const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$/;

/** The subset of a pino logger the driver uses. Container env is never passed to it. */
export interface DriverLogger {
  debug(obj: object, msg?: string): void;
}

export interface DockerSandboxDriverOptions {
  /** Defaults to the local engine (dockerode honours DOCKER_HOST by itself). */
  docker?: Dockerode;
  /** This server instance's name: containers are labelled with it and listOwned() filters on it. */
  instance: string;
  /** The deployment (see src/queue/deployment.ts): labelled, and what listOwned() filters on. */
  deployment?: { id: string; keyPrefix: string };
  /** The worker process that starts the sandboxes (its gateway directory's name). */
  worker?: string;
  logger?: DriverLogger;
}

/**
 * Sandboxes as Docker containers. The container is the run's environment: a read-only image,
 * sized tmpfs mounts where the sandbox user writes, no network, no capabilities, and a
 * do-nothing holder process of another user. Everything else is a process exec'd into it: the
 * files going in (tar -x), the agent, stopping (kill -9 -1 as the sandbox user), the results
 * coming out (find, tar -c). So the sandbox's writes never touch the host's disk, and its files
 * can still be read after the agent has gone.
 */
export class DockerSandboxDriver implements SandboxDriver {
  private readonly docker: Dockerode;
  private readonly instance: string;
  private readonly deployment: DockerSandboxDriverOptions['deployment'];
  private readonly worker: string | undefined;
  private readonly logger: DriverLogger | undefined;
  private readonly volumes: AgentVolumes;

  constructor(opts: DockerSandboxDriverOptions) {
    this.docker = opts.docker ?? new Dockerode();
    this.volumes = new AgentVolumes(this.docker);
    this.instance = opts.instance;
    this.deployment = opts.deployment;
    this.worker = opts.worker;
    this.logger = opts.logger;
  }

  /** The phases: the agent layer's volume, the container (the environment), the agent in it. */
  async start(spec: SandboxSpec): Promise<RunningSandbox> {
    checkSpec(spec);
    const volume = await this.volumes.volumeFor(spec.agentImage);
    const container = await this.create(spec, volume);
    try {
      const agent = await this.startAgent(container, spec);
      this.logger?.debug({ runId: spec.runId, container: container.id.slice(0, 12) }, 'sandbox started');
      return new DockerSandbox(container, agent);
    } catch (err) {
      await container.remove({ force: true, v: true }).catch(() => undefined);
      throw toAppError(err, `could not start the sandbox of run ${spec.runId}`);
    }
  }

  /** Creates and starts the run's container: the environment with its holder, nothing of the run's yet. */
  private async create(spec: SandboxSpec, volume: string): Promise<Dockerode.Container> {
    const name = `jetty-run-${spec.runId}`;
    const container = await this.createReplacing(name, this.createOptions(name, spec, volume));
    this.logger?.debug(
      { runId: spec.runId, container: container.id.slice(0, 12), image: spec.image },
      'sandbox created',
    );
    try {
      await container.start();
    } catch (err) {
      await container.remove({ force: true, v: true }).catch(() => undefined);
      throw toAppError(err, `could not start the sandbox of run ${spec.runId}`);
    }
    return container;
  }

  /** Places the run's files and starts the agent through the layer's entrypoint, in one exec. */
  private async startAgent(container: Dockerode.Container, spec: SandboxSpec): Promise<StartedExec> {
    const files = await filesArchive(spec.files);
    return startExec(container, {
      argv: [
        ...LAYER_SHELL,
        '-c',
        AGENT_SCRIPT,
        'jetty-agent',
        String(files.length),
        ...LAYER_ENTRYPOINT,
        ...spec.argv,
      ],
      user: AGENT_USER,
      workdir: '/app',
      // The entrypoint feeds the CLI from this file: here, the exec's own stdin.
      env: [...Object.entries(spec.env).map(([k, v]) => `${k}=${v}`), 'JETTY_STDIN_FILE=/dev/stdin'],
      stdin: Buffer.concat([files, Buffer.from(spec.stdin ?? '')]),
    });
  }

  /**
   * What an environment image is with an agent layer mounted: whether it can host the agent, and
   * the commands it has. One short-lived container (no network, the sandbox's own limits), one
   * exec of the layer's probe as the sandbox user. A missing image is a typed error naming it.
   */
  async describeEnvironment(
    image: string,
    agentImage: string,
    maxOutputBytes: number,
  ): Promise<EnvironmentReport> {
    const imageId = await this.environmentId(image);
    const layer = await this.volumes.volumeFor(agentImage);
    const name = `jetty-probe-${randomBytes(6).toString('hex')}`;
    const base = this.createOptions(name, PROBE_SPEC(image), layer);
    // Not a run's sandbox (the sweep does not know it): it ends and removes itself within a
    // minute, even when this worker dies mid-probe.
    const options: Dockerode.ContainerCreateOptions = {
      ...base,
      Cmd: ['sleep', '60'],
      Labels: { 'jetty.probe': 'true', [SANDBOX_LABELS.instance]: this.instance },
      HostConfig: { ...base.HostConfig, Binds: [], AutoRemove: true },
    };
    let container: Dockerode.Container;
    try {
      container = await this.docker.createContainer(options);
    } catch (err) {
      throw toAppError(err, `could not create a probe of the image ${image}`);
    }
    try {
      await container.start();
      const res = await runExec(container, { argv: [...LAYER_PROBE], user: AGENT_USER }, maxOutputBytes + 1);
      // probe.sh always says which glibc it found: without that line, the probe itself failed.
      if (res.code !== 0 || !/^glibc /m.test(res.stdout)) {
        throw infraError(
          `the probe of the image ${image} failed (exit ${res.code}): ${res.stderr.trim().slice(0, 300)}`,
          'environment_probe_failed',
        );
      }
      const cut = Buffer.byteLength(res.stdout) > maxOutputBytes;
      const facts = parseProbeOutput(cut ? res.stdout.slice(0, maxOutputBytes) : res.stdout, cut);
      return { image, imageId, layer, ...facts, probedAt: new Date().toISOString() };
    } catch (err) {
      throw toAppError(err, `could not probe the image ${image}`);
    } finally {
      await removeContainer(container);
    }
  }

  /** The engine's id of an environment image; a missing one is a 400 naming it (the run named it). */
  async environmentId(image: string): Promise<string> {
    try {
      return (await this.docker.getImage(image).inspect()).Id;
    } catch (err) {
      if (dockerStatus(err) === 404) throw environmentMissing(image, err);
      throw toAppError(err, `could not inspect the image ${image}`);
    }
  }

  async agentLayer(agentImage: string): Promise<string> {
    return this.volumes.volumeFor(agentImage);
  }

  /** Size and labels of an image, or null when the engine does not have it. */
  async imageInfo(
    image: string,
  ): Promise<{ id: string; sizeBytes: number; labels: Record<string, string> } | null> {
    try {
      const info = await this.docker.getImage(image).inspect();
      return {
        id: info.Id,
        sizeBytes: info.Size,
        labels: (info.Config?.Labels as Record<string, string> | null) ?? {},
      };
    } catch (err) {
      if (dockerStatus(err) === 404) return null;
      throw toAppError(err, `could not inspect the image ${image}`);
    }
  }

  async listOwned(): Promise<OwnedSandbox[]> {
    try {
      const containers = await this.docker.listContainers({
        all: true,
        filters: {
          label: [
            `${SANDBOX_LABELS.managed}=true`,
            this.deployment
              ? `${SANDBOX_LABELS.deployment}=${this.deployment.id}`
              : `${SANDBOX_LABELS.instance}=${this.instance}`,
          ],
        },
      });
      return containers.map((c) => ({
        id: c.Id,
        runId: c.Labels[SANDBOX_LABELS.runId] ?? '',
        running: c.State === 'running',
      }));
    } catch (err) {
      throw toAppError(err, 'could not list the sandbox containers');
    }
  }

  async removeById(id: string): Promise<void> {
    await removeContainer(this.docker.getContainer(id));
  }

  async ping(): Promise<void> {
    try {
      await this.docker.ping();
    } catch (err) {
      throw infraError(`the Docker engine is unreachable: ${dockerMessage(err)}`, 'docker_unavailable', err);
    }
  }

  private createOptions(
    name: string,
    spec: Pick<SandboxSpec, 'image' | 'runId' | 'limits' | 'gatewaySocketDir' | 'files'>,
    volume: string,
  ): Dockerode.ContainerCreateOptions {
    return {
      name,
      Image: spec.image,
      // The holder: PID 1 is the engine's tiny init (it reaps what agent tools leave behind, which
      // the pids limit counts), and its child sleeps, as a user the agent cannot signal. The
      // layer's static busybox, so that any image can hold a sandbox.
      Entrypoint: [LAYER_SHELL[0]],
      Cmd: ['sleep', 'infinity'],
      Env: [],
      User: `${HOLDER_UID}:${HOLDER_UID}`,
      WorkingDir: '/',
      Tty: false,
      OpenStdin: false,
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      Labels: {
        [SANDBOX_LABELS.managed]: 'true',
        [SANDBOX_LABELS.instance]: this.instance,
        [SANDBOX_LABELS.runId]: spec.runId,
        ...(this.deployment
          ? {
              [SANDBOX_LABELS.deployment]: this.deployment.id,
              [SANDBOX_LABELS.keyPrefix]: this.deployment.keyPrefix,
            }
          : {}),
        ...(this.worker ? { [SANDBOX_LABELS.worker]: this.worker } : {}),
      },
      HostConfig: {
        NanoCpus: Math.round(spec.limits.cpus * 1e9),
        Memory: spec.limits.memoryBytes,
        MemorySwap: spec.limits.memoryBytes,
        PidsLimit: spec.limits.pids,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        // Always: models and (where the run's policy allows) other hosts are reached through the
        // worker's gateway socket, so nothing leaves the sandbox unchecked or unrecorded.
        NetworkMode: 'none',
        ReadonlyRootfs: true,
        Tmpfs: tmpfsMounts(spec.limits.diskBytes, spec.files),
        Binds: [`${spec.gatewaySocketDir}:${GATEWAY_MOUNT}:ro`],
        Mounts: [{ Type: 'volume', Source: volume, Target: AGENT_MOUNT, ReadOnly: true }],
        Init: true,
        // Set here rather than left to the engine's default, which an operator may have changed.
        ShmSize: SHM_BYTES,
        LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '1' } },
      },
    };
  }

  /** Creates the container; one left by an earlier attempt of the same run is removed first. */
  private async createReplacing(
    name: string,
    options: Dockerode.ContainerCreateOptions,
  ): Promise<Dockerode.Container> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.docker.createContainer(options);
      } catch (err) {
        const status = dockerStatus(err);
        if (status === 404 && /no such image/i.test(dockerMessage(err))) {
          throw imageMissing(options.Image ?? '', err);
        }
        if (status !== 409 || attempt >= 3) throw toAppError(err, `could not create the sandbox ${name}`);
        this.logger?.debug({ container: name }, 'removing the earlier sandbox of this run');
        const earlier = this.docker.getContainer(name);
        await removeContainer(earlier);
        // Another worker's sweep may be removing it already (removal answers 409 then): the name
        // is free only once the container is gone.
        await waitUntilGone(earlier, REPLACE_WAIT_MS);
      }
    }
  }
}

class DockerSandbox implements RunningSandbox {
  private killed = false;

  constructor(
    private readonly container: Dockerode.Container,
    private readonly agent: StartedExec,
  ) {}

  get id(): string {
    return this.container.id;
  }

  get stdout() {
    return this.agent.stdout;
  }

  get stderr() {
    return this.agent.stderr;
  }

  /** The exit code, or null when this handle killed the process (SIGKILL: 137) or the sandbox is gone. */
  async wait(): Promise<{ exitCode: number | null }> {
    let code: number | null;
    try {
      code = await this.agent.exit;
    } catch (err) {
      throw toAppError(err, `could not wait for sandbox ${this.id.slice(0, 12)}`);
    }
    return { exitCode: this.killed && code === 137 ? null : code };
  }

  async kill(): Promise<void> {
    this.killed = true;
    await stopAgentProcesses(this.container);
  }

  async collect(dir: string, destDir: string, limits: CollectLimits): Promise<CollectResult> {
    return collectDirectory(this.container, dir, destDir, limits);
  }

  async exec(argv: string[], limits: ExecLimits): Promise<ExecResult> {
    const started = Date.now();
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    try {
      const proc = await startExec(this.container, {
        argv,
        user: AGENT_USER,
        workdir: limits.workdir ?? '/app',
        env: Object.entries(limits.env ?? {}).map(([k, v]) => `${k}=${v}`),
      });
      // Past the limit every process of the sandbox user goes, the command's children with it.
      timer = setTimeout(() => {
        timedOut = true;
        void stopAgentProcesses(this.container).catch(() => undefined);
      }, limits.timeoutMs);
      const [out, err] = await Promise.all([
        readBounded(proc.stdout, limits.maxOutput),
        readBounded(proc.stderr, limits.maxOutput),
      ]);
      const code = await proc.exit;
      return {
        exitCode: timedOut ? null : code,
        stdout: out.text,
        stderr: err.text,
        timedOut,
        truncated: out.size > limits.maxOutput || err.size > limits.maxOutput,
        durationMs: Date.now() - started,
      };
    } catch (err) {
      throw toAppError(err, `could not run a command in sandbox ${this.id.slice(0, 12)}`);
    } finally {
      clearTimeout(timer);
    }
  }

  async remove(): Promise<void> {
    await removeContainer(this.container);
  }
}

/** How long a retried run waits for its earlier attempt's container to be gone. */
const REPLACE_WAIT_MS = 15_000;

async function waitUntilGone(container: Dockerode.Container, ms: number): Promise<void> {
  for (const until = Date.now() + ms; Date.now() < until; ) {
    try {
      await container.inspect();
    } catch (err) {
      if (dockerStatus(err) === 404) return;
      throw toAppError(err, `could not inspect sandbox ${container.id}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Kills every process of the sandbox user (kill(-1) spares the caller and the holder, which is
 * another user). A sandbox already gone or stopped has nothing left to kill. Should the engine
 * refuse the exec, the whole container is killed instead: the agent must stop, even if its files
 * are lost with it.
 */
async function stopAgentProcesses(container: Dockerode.Container): Promise<void> {
  try {
    const res = await runExec(container, {
      argv: [...LAYER_SHELL, '-c', 'kill -9 -1; kill -9 -1; true'],
      user: AGENT_USER,
    });
    if (res.code === 0) return;
  } catch (err) {
    const status = dockerStatus(err);
    if (status === 404 || status === 409) return;
  }
  try {
    await container.kill({ signal: 'SIGKILL' });
  } catch (err) {
    const status = dockerStatus(err);
    if (status === 404 || status === 409) return;
    throw toAppError(err, `could not stop sandbox ${container.id.slice(0, 12)}`);
  }
}

async function removeContainer(container: Dockerode.Container): Promise<void> {
  try {
    await container.remove({ force: true, v: true });
  } catch (err) {
    // 404: already gone. 409: a removal is already in progress.
    const status = dockerStatus(err);
    if (status === 404 || status === 409) return;
    throw toAppError(err, `could not remove sandbox ${container.id.slice(0, 12)}`);
  }
}

function checkSpec(spec: SandboxSpec): void {
  if (!RUN_ID_PATTERN.test(spec.runId)) {
    throw badRequest(`run id ${JSON.stringify(spec.runId)} cannot name a container`, 'run_id');
  }
  // A relative bind source would silently name a Docker volume instead of the socket directory.
  if (!path.isAbsolute(spec.gatewaySocketDir)) {
    throw badRequest(
      `gatewaySocketDir must be an absolute host path, not ${spec.gatewaySocketDir}`,
      'gatewaySocketDir',
    );
  }
  for (const file of spec.files) checkSandboxPath(file.path);
}

/** The files and the layout's own directories, owned by the sandbox user, to unpack at `/`. */
async function filesArchive(files: SandboxFile[]): Promise<Buffer> {
  const pack = tar.pack();
  const mtime = new Date();
  const owner = { uid: SANDBOX_UID, gid: SANDBOX_GID, mtime };
  for (const dir of SANDBOX_DIRS)
    pack.entry({ ...owner, name: `${dir.slice(1)}/`, type: 'directory', mode: 0o755 });
  for (const file of files) {
    const content = typeof file.content === 'string' ? Buffer.from(file.content) : file.content;
    const name = checkSandboxPath(file.path).slice(1);
    pack.entry({ ...owner, name, type: 'file', mode: file.mode ?? 0o644, size: content.length }, content);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The probe's container: the sandbox's shape with small limits, no files, no run. */
function PROBE_SPEC(image: string) {
  return {
    image,
    runId: 'probe',
    limits: { cpus: 1, memoryBytes: 256 * 1024 * 1024, pids: 64, diskBytes: 64 * 1024 * 1024 },
    gatewaySocketDir: '',
    files: [],
  };
}

function environmentMissing(image: string, cause: unknown): AppError {
  return new AppError(
    `The image ${image} is not on this worker's Docker engine. Build or pull it there first (\`docker image ls ${image}\` shows it when it is), or run with a snapshot instead (GET /v1/snapshots).`,
    { status: 400, type: 'invalid_request_error', code: 'image_not_found', retryable: false, cause },
  );
}

function imageMissing(image: string, cause: unknown): AppError {
  return new AppError(
    `the sandbox image ${image} is not on this Docker engine; build it with \`${BUILD_COMMAND}\``,
    {
      status: 500,
      type: 'server_error',
      code: 'sandbox_image_missing',
      retryable: false,
      cause,
    },
  );
}
