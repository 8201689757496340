import { randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Readable } from 'node:stream';
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
  type ExecOptions,
  readBounded,
  runExec,
  runProcess,
  type StartedExec,
  toAppError,
} from './docker-exec.js';
import {
  type AgentSpec,
  type CollectLimits,
  type CollectResult,
  type EnvironmentSpec,
  type ExecLimits,
  type ExecResult,
  GATEWAY_MOUNT,
  GATEWAY_SOCKET_NAME,
  type OwnedSandbox,
  type PreparedSandbox,
  type RunningSandbox,
  type SandboxDriver,
  type SandboxSpec,
  type StartedAgent,
} from './driver.js';
import {
  checkSandboxPath,
  HOLDER_UID,
  SANDBOX_DIRS,
  SANDBOX_GID,
  SANDBOX_UID,
  tmpfsMounts,
} from './layout.js';
import { mergeLines } from './merge-lines.js';
import { SUPERVISOR_SOURCE } from './supervisor.js';
import { SupervisorLink } from './supervisor-link.js';

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
  /** A warm pool's sandbox, with the name of the worker that keeps it (no run label). */
  pool: 'jetty.pool',
} as const;

const RUN_NAME = /^\/?jetty-run-(.+)$/;
const runContainerName = (runId: string) => `jetty-run-${runId}`;

/**
 * The gateway forwarder runs in the supervisor, beside the agent (the image's entrypoint is told
 * not to start one: JETTY_FORWARDER=0), and says "ready" once it listens; it stops when the agent
 * ends, as the agent's processes do. Its port and socket, unless the agent's env says otherwise:
 */
const DEFAULT_GATEWAY_PORT = 4100;
const FORWARDER_READY_MS = 5_000;

/** What the forwarder needs of the agent's environment: where to listen, where the gateway is. */
function gatewayEnvOf(env: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of ['JETTY_GATEWAY_PORT', 'JETTY_GATEWAY_SOCKET']) if (env[k] !== undefined) out[k] = env[k];
  return out;
}

const AGENT_USER = `${SANDBOX_UID}:${SANDBOX_GID}`;
/** /dev/shm, a tmpfs of its own outside SANDBOX_DISK (Docker's usual size). */
const SHM_BYTES = 64 * 1024 * 1024;
const BUILD_COMMAND = 'bash docker/build-images.sh';
/**
 * The agent's process, one process of the supervisor's: its stdin is the files' tar, exactly $1
 * bytes of it (GNU head never reads past what it was asked for), then the agent's own stdin. The
 * engine's archive API cannot be used for the files: it writes beneath the tmpfs mounts, where
 * nobody would see them; and one process instead of two starts the agent sooner. tar makes missing parent directories
 * itself, owned by the sandbox user; existing ones (a mount root such as /tmp) keep their owner
 * and mode. After the command, what it left behind (the forwarder, background jobs) is killed and
 * its exit code passed on: the run's processes end with the agent, as when the container was the
 * agent, and its output ends at once instead of when the last straggler lets go of it.
 *
 * $2 = 1: the forwarder was started beside the agent and may not listen yet. The command then
 * starts once it does (its socket in /proc/net/tcp, looked for every 10 ms, for at most 2 s), so
 * no CLI ever reaches for its model before the forwarder is there; the files go in meanwhile.
 */
const BUSYBOX = `${AGENT_MOUNT}/bin/busybox`;
const AGENT_SCRIPT = [
  `${LAYER_TOOLS}/head -c "$1" | ${LAYER_TOOLS}/tar -x -p -f - -C / || { echo "jetty-sandbox: could not place the run's files" >&2; exit 125; }`,
  'w=$2',
  'shift 2',
  'if [ "$w" = 1 ]; then',
  `  p=$(${BUSYBOX} printf '%04X' "\${JETTY_GATEWAY_PORT:-${DEFAULT_GATEWAY_PORT}}"); i=0`,
  `  while [ $i -lt 200 ] && ! ${BUSYBOX} grep -q "^ *[0-9]*: 0100007F:$p 00000000:0000 0A " /proc/net/tcp 2>/dev/null; do ${BUSYBOX} usleep 10000; i=$((i + 1)); done`,
  'fi',
  // Through a pipe of the shell's own: the supervisor's stdin is a socket, which the entrypoint
  // (and a CLI) cannot open as /dev/stdin. GNU head copies with read and write: busybox cat
  // splices, holding the pipe locked while it waits, so that opening /dev/stdin would wait for
  // the first input (and a warm CLI would not start until its run came).
  `${LAYER_TOOLS}/head -c ${Number.MAX_SAFE_INTEGER} | "$@"; code=$?`,
  'kill -9 -1 2>/dev/null',
  'exit $code',
].join('\n');
const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$/;

/** The subset of a pino logger the driver uses. Container env is never passed to it. */
export interface DriverLogger {
  debug(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
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
 * sized tmpfs mounts where the sandbox user writes, no network, and as its main process the
 * supervisor (src/sandbox/supervisor.ts), of another user than the agent's. Everything else is a
 * process the supervisor starts as the sandbox user, on the worker's word over the container's
 * attached stdin and stdout: the files going in (tar -x), the agent, stopping (kill -9 -1), the
 * results coming out (find, tar -c). So the sandbox's writes never touch the host's disk, its files
 * can still be read after the agent has gone, and no step costs the engine an exec.
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
    const env = await this.prepareContainer({ ...spec, runId: spec.runId });
    try {
      // The forwarder and the CLI start together: no CLI reaches for its model before the
      // forwarder (a Node script of a few ms) listens.
      const forwarding = env.startForwarder(gatewayEnvOf(spec.env), { waitReady: false });
      const [agent] = await Promise.all([
        env.startAgent({ ...spec, ...(spec.stdin !== undefined ? { stdin: spec.stdin } : {}) }),
        forwarding,
      ]);
      this.logger?.debug(env.log, 'sandbox started');
      return agent.sandbox;
    } catch (err) {
      await env.remove().catch(() => undefined);
      throw toAppError(err, `could not start the sandbox of run ${spec.runId}`);
    }
  }

  async prepare(spec: EnvironmentSpec, pool: string): Promise<PreparedSandbox> {
    if (spec.runId !== undefined) checkSpec({ ...spec, runId: spec.runId });
    return this.prepareContainer(spec, pool);
  }

  /** The agent layer's volume, then the container (the environment with its supervisor): no agent yet. */
  private async prepareContainer(spec: EnvironmentSpec, pool?: string): Promise<PreparedDockerSandbox> {
    const volume = await this.volumes.volumeFor(spec.agentImage);
    const name = spec.runId !== undefined ? runContainerName(spec.runId) : `jetty-warm-${randomUUID()}`;
    const container = await this.createReplacing(
      name,
      supervised(this.createOptions(name, spec, volume, pool)),
    );
    const log = { runId: spec.runId, container: container.id.slice(0, 12), image: spec.image };
    this.logger?.debug(log, 'sandbox created');
    let link: SupervisorLink | undefined;
    try {
      // Its own failures (a kill refused, a bad request, a gateway its forwarder cannot reach).
      link = await SupervisorLink.attach(container, (said) =>
        this.logger?.warn({ ...log, said }, 'the sandbox supervisor reported a failure'),
      );
      await container.start();
    } catch (err) {
      link?.close();
      await container.remove({ force: true, v: true }).catch(() => undefined);
      throw toAppError(err, `could not start the sandbox ${name}`);
    }
    return new PreparedDockerSandbox(container, link, log, (runId) =>
      this.renameReplacing(container, runContainerName(runId)),
    );
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
      return containers.map((c) => {
        // A warm sandbox carries no run label: a run that claims it renames it to its own name.
        const named = c.Names?.map((n) => RUN_NAME.exec(n)?.[1]).find(Boolean);
        const poolWorker = c.Labels[SANDBOX_LABELS.pool];
        return {
          id: c.Id,
          runId: c.Labels[SANDBOX_LABELS.runId] ?? named ?? '',
          running: c.State === 'running',
          ...(poolWorker ? { poolWorker } : {}),
        };
      });
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

  /** Renames a claimed warm sandbox to its run's name; an earlier attempt's sandbox goes first. */
  private async renameReplacing(container: Dockerode.Container, name: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await container.rename({ name });
        return;
      } catch (err) {
        if (dockerStatus(err) !== 409 || attempt >= 3)
          throw toAppError(err, `could not rename a sandbox to ${name}`);
        const earlier = this.docker.getContainer(name);
        await removeContainer(earlier);
        await waitUntilGone(earlier, REPLACE_WAIT_MS);
      }
    }
  }

  private createOptions(
    name: string,
    spec: Pick<EnvironmentSpec, 'image' | 'runId' | 'limits' | 'gatewaySocketDir' | 'files'>,
    volume: string,
    pool?: string,
  ): Dockerode.ContainerCreateOptions {
    return {
      name,
      Image: spec.image,
      // PID 1 is the engine's tiny init (it reaps what agent tools leave behind, which the pids
      // limit counts). Its child here is a holder that sleeps, as a user the agent cannot signal,
      // with the layer's static busybox so that any image can hold it: the probe's container. A
      // sandbox's is the supervisor instead (supervised()).
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
        ...(spec.runId !== undefined ? { [SANDBOX_LABELS.runId]: spec.runId } : {}),
        ...(pool !== undefined ? { [SANDBOX_LABELS.pool]: pool } : {}),
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

/** A started container: the forwarder, the files and the agent go in one by one. */
class PreparedDockerSandbox implements PreparedSandbox {
  /** The forwarder's exec, set as soon as it is asked for (it may still be starting). */
  private forwarder: Promise<StartedExec> | undefined;
  /** The forwarder said it listens (else an agent started now waits for it in the sandbox). */
  private forwarderReady = false;

  constructor(
    private readonly container: Dockerode.Container,
    private readonly link: SupervisorLink,
    readonly log: { runId?: string; container: string; image: string },
    private readonly bind: (runId: string) => Promise<void>,
  ) {}

  get id(): string {
    return this.container.id;
  }

  private readonly start = async (opts: ExecOptions): Promise<StartedExec> => this.link.start(opts);

  async startForwarder(env: Record<string, string>, opts: { waitReady?: boolean } = {}): Promise<void> {
    this.forwarder = Promise.resolve(
      this.link.forward(
        Number(env.JETTY_GATEWAY_PORT ?? DEFAULT_GATEWAY_PORT),
        env.JETTY_GATEWAY_SOCKET ?? `${GATEWAY_MOUNT}/${GATEWAY_SOCKET_NAME}`,
      ),
    );
    const forwarder = await this.forwarder;
    if (opts.waitReady === false) {
      // Its stdout carries only "ready": drained, so it can never fill up.
      forwarder.stdout.resume();
      return;
    }
    await readyLine(forwarder);
    this.forwarderReady = true;
  }

  async startAgent(spec: AgentSpec): Promise<StartedAgent> {
    const files = await filesArchive(spec.files);
    const env = [
      ...Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
      // The layer's entrypoint feeds the CLI from this file: here, the exec's own stdin.
      'JETTY_STDIN_FILE=/dev/stdin',
      // The driver runs the forwarder itself (startForwarder), beside the agent.
      'JETTY_FORWARDER=0',
    ];
    const argv = [
      ...LAYER_SHELL,
      '-c',
      AGENT_SCRIPT,
      'jetty-agent',
      String(files.length),
      this.forwarder && !this.forwarderReady ? '1' : '0',
      ...LAYER_ENTRYPOINT,
      ...spec.argv,
    ];
    const base = { argv, user: AGENT_USER, workdir: '/app', env };
    const agent = spec.holdStdin
      ? await this.start({ ...base, keepStdinOpen: true })
      : await this.start({
          ...base,
          stdin: Buffer.concat([files, Buffer.from(spec.stdin ?? '')]),
        });
    // Held: the files go in now, the agent's own stdin when a run gives it.
    if (spec.holdStdin) agent.input.write(files);
    let exited = false;
    void agent.exit.finally(() => {
      exited = true;
    });
    // The forwarder's stderr joins the agent's (it says when the gateway cannot be reached), so
    // the agent's sandbox is made once the forwarder's exec exists, even when both start together.
    const forwarder = await this.forwarder?.catch(() => undefined);
    const sandbox = new DockerSandbox(this.container, this.link, agent, forwarder);
    return {
      sandbox,
      get exited() {
        return exited;
      },
      giveInput: (data) => agent.input.end(data),
    };
  }

  async placeFiles(files: SandboxFile[]): Promise<void> {
    if (files.length === 0) return;
    const archive = await filesArchive(files, { dirs: false });
    const res = await runProcess(this.start, {
      argv: [`${LAYER_TOOLS}/tar`, '-x', '-p', '-f', '-', '-C', '/'],
      user: AGENT_USER,
      stdin: archive,
    });
    if (res.code !== 0) {
      throw infraError(
        `could not place the run's files in sandbox ${this.id.slice(0, 12)}: ${res.stderr.trim().slice(0, 300)}`,
        'docker_error',
      );
    }
  }

  async bindToRun(runId: string): Promise<void> {
    await this.bind(runId);
  }

  async remove(): Promise<void> {
    await removeContainer(this.container);
    this.link.close();
  }
}

/** Waits for the forwarder's "ready" line. */
async function readyLine(proc: StartedExec): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      let seen = '';
      timer = setTimeout(() => reject(new Error('the gateway forwarder did not start')), FORWARDER_READY_MS);
      proc.stdout.on('data', (chunk: Buffer) => {
        seen += chunk.toString('utf8');
        if (seen.includes('ready\n')) resolve();
      });
      proc.stdout.on('end', () => reject(new Error('the gateway forwarder ended before it was ready')));
    });
  } finally {
    clearTimeout(timer);
    proc.stdout.resume();
  }
}

class DockerSandbox implements RunningSandbox {
  private killed = false;
  readonly stderr: Readable;

  constructor(
    private readonly container: Dockerode.Container,
    private readonly link: SupervisorLink,
    private readonly agent: StartedExec,
    forwarder?: StartedExec,
  ) {
    // The forwarder's complaints (a gateway it cannot reach) belong with the agent's stderr.
    this.stderr = forwarder ? mergeLines(agent.stderr, forwarder.stderr) : agent.stderr;
    // It ends with the agent, as the agent's own processes do (the checks after it get none).
    if (forwarder) void agent.exit.finally(() => forwarder.input.end());
  }

  get id(): string {
    return this.container.id;
  }

  get stdout() {
    return this.agent.stdout;
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
    await stopAgentProcesses(this.container, this.link);
  }

  async collect(dir: string, destDir: string, limits: CollectLimits): Promise<CollectResult> {
    return collectDirectory(async (opts) => this.link.start(opts), dir, destDir, limits);
  }

  async exec(argv: string[], limits: ExecLimits): Promise<ExecResult> {
    const started = Date.now();
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    try {
      const proc = this.link.start({
        argv,
        user: AGENT_USER,
        workdir: limits.workdir ?? '/app',
        env: Object.entries(limits.env ?? {}).map(([k, v]) => `${k}=${v}`),
      });
      // Past the limit every process of the sandbox user goes, the command's children with it.
      timer = setTimeout(() => {
        timedOut = true;
        void stopAgentProcesses(this.container, this.link).catch(() => undefined);
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
    this.link.close();
  }
}

/**
 * A run's (or a warm) sandbox: the container's main process is the supervisor instead of the
 * holder, as root with only what it needs to start processes as the sandbox user; its stdin and
 * stdout are the worker's link to it. Nothing it carries is logged (the frames are the run's own
 * output and files), so the engine keeps no log of it.
 */
function supervised(options: Dockerode.ContainerCreateOptions): Dockerode.ContainerCreateOptions {
  return {
    ...options,
    Entrypoint: [`${AGENT_MOUNT}/bin/node`],
    Cmd: ['--max-old-space-size=64', '-e', SUPERVISOR_SOURCE],
    User: '0:0',
    OpenStdin: true,
    StdinOnce: false,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    HostConfig: {
      ...options.HostConfig,
      CapAdd: ['SETUID', 'SETGID'],
      LogConfig: { Type: 'none', Config: {} },
    },
  };
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
 * Kills every process of the sandbox user (kill(-1) spares the caller and the supervisor, which is
 * another user). A sandbox already gone or stopped has nothing left to kill. Should the supervisor
 * be gone or fail, the whole container is killed instead: the agent must stop, even if its files
 * are lost with it.
 */
async function stopAgentProcesses(container: Dockerode.Container, link: SupervisorLink): Promise<void> {
  if ((await link.killAll(SANDBOX_UID)) === 0) return;
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

function checkSpec(spec: Pick<SandboxSpec, 'runId' | 'gatewaySocketDir' | 'files'>): void {
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

/** The files (and the layout's own directories), owned by the sandbox user, to unpack at `/`. */
async function filesArchive(files: SandboxFile[], opts: { dirs?: boolean } = {}): Promise<Buffer> {
  const pack = tar.pack();
  const mtime = new Date();
  const owner = { uid: SANDBOX_UID, gid: SANDBOX_GID, mtime };
  if (opts.dirs !== false) {
    for (const dir of SANDBOX_DIRS)
      pack.entry({ ...owner, name: `${dir.slice(1)}/`, type: 'directory', mode: 0o755 });
  }
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
