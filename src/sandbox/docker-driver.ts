import { createHash } from 'node:crypto';
import { mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import Dockerode from 'dockerode';
import tar, { type Header } from 'tar-stream';
import { AppError, badRequest, infraError } from '../errors.js';
import type { SandboxFile } from '../runtimes/types.js';
import {
  type CollectedArtifact,
  GATEWAY_MOUNT,
  type OwnedSandbox,
  type RunningSandbox,
  type SandboxDriver,
  type SandboxSpec,
} from './driver.js';

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

/** The user every sandbox process runs as, whatever the image says (the images' `agent`). */
export const SANDBOX_UID = 1000;
export const SANDBOX_GID = 1000;

const BUILD_COMMAND = 'bash docker/build-images.sh';
const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$/;
/**
 * Output buffered per stream before the attach connection is paused. Docker sends frames of up to
 * 32 KiB: with the default 16 KiB every frame paused and resumed the connection, and a loud
 * sandbox was read ten times slower than Docker sends.
 */
const OUTPUT_BUFFER_BYTES = 1024 * 1024;

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
  /** collect() refuses a directory holding more than this many bytes (default 1 GiB). */
  maxCollectBytes?: number;
}

export class DockerSandboxDriver implements SandboxDriver {
  private readonly docker: Dockerode;
  private readonly instance: string;
  private readonly deployment: DockerSandboxDriverOptions['deployment'];
  private readonly worker: string | undefined;
  private readonly logger: DriverLogger | undefined;
  private readonly maxCollectBytes: number;

  constructor(opts: DockerSandboxDriverOptions) {
    this.docker = opts.docker ?? new Dockerode();
    this.instance = opts.instance;
    this.deployment = opts.deployment;
    this.worker = opts.worker;
    this.logger = opts.logger;
    this.maxCollectBytes = opts.maxCollectBytes ?? 1024 ** 3;
  }

  async start(spec: SandboxSpec): Promise<RunningSandbox> {
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
    const name = `jetty-run-${spec.runId}`;
    const container = await this.createReplacing(name, this.createOptions(name, spec));
    const log = { runId: spec.runId, container: container.id.slice(0, 12), image: spec.image };
    this.logger?.debug(log, 'sandbox created');

    try {
      if (spec.files.length > 0) {
        const archive = await buildFilesArchive(container, spec.files);
        await container.putArchive(archive, { path: '/' });
      }
      // Attach before start so not one byte of output is missed; no TTY, so the stream is multiplexed.
      const raw = await container.attach({ stream: true, stdout: true, stderr: true });
      const stdout = new PassThrough({ highWaterMark: OUTPUT_BUFFER_BYTES });
      const stderr = new PassThrough({ highWaterMark: OUTPUT_BUFFER_BYTES });
      demultiplex(raw, stdout, stderr);
      await container.start();
      this.logger?.debug(log, 'sandbox started');
      return new DockerSandbox(container, stdout, stderr, this.maxCollectBytes);
    } catch (err) {
      await container.remove({ force: true, v: true }).catch(() => undefined);
      throw toAppError(err, `could not start the sandbox of run ${spec.runId}`);
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

  private createOptions(name: string, spec: SandboxSpec): Dockerode.ContainerCreateOptions {
    const env = Object.entries(spec.env).map(([key, value]) => `${key}=${value}`);
    if (spec.stdinFile !== undefined) env.push(`JETTY_STDIN_FILE=${spec.stdinFile}`);
    return {
      name,
      Image: spec.image,
      Cmd: spec.argv,
      Env: env,
      User: `${SANDBOX_UID}:${SANDBOX_GID}`,
      WorkingDir: '/app',
      Tty: false,
      OpenStdin: false,
      AttachStdin: false,
      AttachStdout: true,
      AttachStderr: true,
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
        NetworkMode: spec.network === 'bridge' ? 'bridge' : 'none',
        Binds: [`${spec.gatewaySocketDir}:${GATEWAY_MOUNT}:ro`],
        // A tiny init as PID 1 reaps the zombies that agent tools leave; with a pids limit they count.
        Init: true,
        LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '1' } },
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
          throw new AppError(
            `the sandbox image ${options.Image} is not on this Docker engine; build it with \`${BUILD_COMMAND}\``,
            {
              status: 500,
              type: 'server_error',
              code: 'sandbox_image_missing',
              retryable: false,
              cause: err,
            },
          );
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
  private readonly exit: Promise<{ code: number } | { error: unknown }>;

  constructor(
    private readonly container: Dockerode.Container,
    readonly stdout: PassThrough,
    readonly stderr: PassThrough,
    private readonly maxCollectBytes: number,
  ) {
    // Started now, so an exit is seen even if nobody waits yet; settled, so it never goes unhandled.
    this.exit = container.wait().then(
      (res: { StatusCode: number }) => ({ code: res.StatusCode }),
      (error: unknown) => ({ error }),
    );
  }

  get id(): string {
    return this.container.id;
  }

  /** The exit code, or null when this handle killed the process (SIGKILL: 137). */
  async wait(): Promise<{ exitCode: number | null }> {
    const res = await this.exit;
    if ('error' in res) throw toAppError(res.error, `could not wait for sandbox ${this.id.slice(0, 12)}`);
    return { exitCode: this.killed && res.code === 137 ? null : res.code };
  }

  async kill(): Promise<void> {
    this.killed = true;
    try {
      await this.container.kill({ signal: 'SIGKILL' });
    } catch (err) {
      // Already stopped (409) or already removed (404): the goal is reached.
      const status = dockerStatus(err);
      if (status === 409 || status === 404) return;
      throw toAppError(err, `could not kill sandbox ${this.id.slice(0, 12)}`);
    }
  }

  async collect(dir: string, destDir: string): Promise<CollectedArtifact[]> {
    const source = path.posix.normalize(dir).replace(/\/+$/, '');
    if (!source.startsWith('/') || source === '') {
      throw badRequest(`cannot collect ${JSON.stringify(dir)}: an absolute directory is needed`, 'dir');
    }
    let archive: Readable;
    try {
      // The engine's HTTP response: a Node Readable, whatever the typings say.
      archive = (await this.container.getArchive({ path: source })) as Readable;
    } catch (err) {
      if (dockerStatus(err) === 404 && /could not find the file/i.test(dockerMessage(err))) return [];
      throw toAppError(err, `could not read ${source} from sandbox ${this.id.slice(0, 12)}`);
    }
    try {
      return await extractRegularFiles(archive, path.posix.basename(source), destDir, this.maxCollectBytes);
    } catch (err) {
      throw toAppError(err, `could not collect ${source} from sandbox ${this.id.slice(0, 12)}`);
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

/** Splits Docker's multiplexed attach stream (8-byte frame headers) into stdout and stderr. */
function demultiplex(source: NodeJS.ReadableStream, stdout: PassThrough, stderr: PassThrough): void {
  let pending: Buffer = Buffer.alloc(0);
  let blocked = 0;
  source.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let offset = 0;
    while (pending.length - offset >= 8) {
      const size = pending.readUInt32BE(offset + 4);
      if (pending.length - offset - 8 < size) break;
      const target = pending[offset] === 2 ? stderr : stdout;
      if (!target.destroyed) target.write(pending.subarray(offset + 8, offset + 8 + size));
      offset += 8 + size;
    }
    pending = pending.subarray(offset);
    // Honour backpressure: a slow reader slows the container instead of growing our memory.
    // Both streams must therefore be read (or resumed, or destroyed) by the caller.
    for (const out of [stdout, stderr]) {
      if (!out.writableNeedDrain || out.destroyed) continue;
      if (blocked === 0) source.pause();
      blocked += 1;
      const free = () => {
        out.off('drain', free);
        out.off('close', free);
        blocked -= 1;
        if (blocked === 0) source.resume();
      };
      out.on('drain', free);
      out.on('close', free);
    }
  });
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    stdout.end();
    stderr.end();
  };
  source.on('end', finish);
  source.on('close', finish);
  // A broken attach connection ends the output early; wait() still reports the exit code.
  source.on('error', finish);
}

/** Normalised absolute path inside the sandbox, or a typed error. */
function checkSandboxPath(p: string): string {
  if (!p.startsWith('/') || p.split('/').some((seg) => seg === '..') || p.includes('\0')) {
    throw badRequest(`sandbox file path ${JSON.stringify(p)} must be absolute and free of '..'`, 'files');
  }
  return path.posix.normalize(p);
}

/**
 * A tar of the files, owned by the sandbox user, to unpack at `/`. Missing parent directories get
 * entries of their own (also owned by the sandbox user: e.g. ~/.codex must stay writable); existing
 * ones get none, so their owner and mode (think /tmp) are left alone.
 */
async function buildFilesArchive(container: Dockerode.Container, files: SandboxFile[]): Promise<Buffer> {
  const exists = new Map<string, boolean>([['/', true]]);
  const dirExists = async (dir: string): Promise<boolean> => {
    let known = exists.get(dir);
    if (known === undefined) {
      try {
        await container.infoArchive({ path: dir });
        known = true;
      } catch (err) {
        if (dockerStatus(err) !== 404) throw err;
        known = false;
      }
      exists.set(dir, known);
    }
    return known;
  };

  const missing = new Set<string>();
  for (const file of files) {
    const chain: string[] = [];
    for (
      let dir = path.posix.dirname(checkSandboxPath(file.path));
      dir !== '/';
      dir = path.posix.dirname(dir)
    ) {
      if (missing.has(dir) || (await dirExists(dir))) break;
      chain.push(dir);
    }
    for (const dir of chain) missing.add(dir);
  }

  const pack = tar.pack();
  const mtime = new Date();
  const owner = { uid: SANDBOX_UID, gid: SANDBOX_GID, mtime };
  // Parents sort before their children, which is the order tar needs.
  for (const dir of [...missing].sort()) {
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

/**
 * Unpacks the regular files of a `docker cp`-style archive (entries start with `top/`) into
 * destDir. Anything else (links, devices, fifos, odd names) is skipped: the sandbox is not trusted.
 */
async function extractRegularFiles(
  archive: Readable,
  top: string,
  destDir: string,
  maxBytes: number,
): Promise<CollectedArtifact[]> {
  const root = path.resolve(destDir);
  await mkdir(root, { recursive: true });
  const artifacts: CollectedArtifact[] = [];
  let total = 0;
  const extract = tar.extract();
  archive.on('error', (err: Error) => extract.destroy(err));
  archive.pipe(extract);
  try {
    for await (const entry of extract) {
      const rel = regularFilePath(entry.header, top);
      const localPath = rel === null ? null : path.join(root, ...rel.split('/'));
      if (rel === null || localPath === null || !localPath.startsWith(root + path.sep)) {
        entry.resume();
        continue;
      }
      await mkdir(path.dirname(localPath), { recursive: true });
      const hash = createHash('sha256');
      let size = 0;
      const file = await open(localPath, 'w');
      try {
        for await (const chunk of entry as AsyncIterable<Buffer>) {
          size += chunk.length;
          total += chunk.length;
          if (total > maxBytes) {
            throw new AppError(`the results are larger than ${maxBytes} bytes`, {
              status: 500,
              type: 'server_error',
              code: 'artifacts_too_large',
            });
          }
          hash.update(chunk);
          await file.write(chunk);
        }
      } finally {
        await file.close();
      }
      artifacts.push({
        path: rel,
        size,
        sha256: hash.digest('hex'),
        content_type: contentType(rel),
        localPath,
      });
    }
  } finally {
    // On an early exit, stop reading from the engine.
    if (!archive.readableEnded) archive.destroy();
  }
  return artifacts.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The path below `top` of a regular file entry, with forward slashes; null to skip the entry. */
function regularFilePath(header: Header, top: string): string | null {
  if (header.type !== 'file' && header.type !== 'contiguous-file') return null;
  const name = header.name;
  if (name.startsWith('/') || name.includes('\\') || name.includes('\0')) return null;
  const segments = name.split('/').filter((seg) => seg !== '' && seg !== '.');
  if (segments.length < 2 || segments[0] !== top || segments.includes('..')) return null;
  return segments.slice(1).join('/');
}

const CONTENT_TYPES: Record<string, string> = {
  txt: 'text/plain',
  log: 'text/plain',
  md: 'text/markdown',
  csv: 'text/csv',
  tsv: 'text/tab-separated-values',
  html: 'text/html',
  htm: 'text/html',
  css: 'text/css',
  js: 'text/javascript',
  mjs: 'text/javascript',
  ts: 'text/plain',
  py: 'text/x-python',
  sh: 'text/x-shellscript',
  json: 'application/json',
  jsonl: 'application/x-ndjson',
  ndjson: 'application/x-ndjson',
  xml: 'application/xml',
  yaml: 'application/yaml',
  yml: 'application/yaml',
  pdf: 'application/pdf',
  zip: 'application/zip',
  gz: 'application/gzip',
  tar: 'application/x-tar',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  svg: 'image/svg+xml',
  mp3: 'audio/mpeg',
  wav: 'audio/wav',
  mp4: 'video/mp4',
};

export function contentType(filePath: string): string {
  const ext = path.posix.extname(filePath).slice(1).toLowerCase();
  return CONTENT_TYPES[ext] ?? 'application/octet-stream';
}

function dockerStatus(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** Docker's own words when it sent any (dockerode's message also carries a generic prefix). */
function dockerMessage(err: unknown): string {
  const e = err as { json?: { message?: unknown }; message?: unknown } | null;
  const message = e?.json?.message ?? e?.message;
  return typeof message === 'string' ? message.trim() : String(err);
}

function toAppError(err: unknown, what: string): AppError {
  if (err instanceof AppError) return err;
  return infraError(`${what}: ${dockerMessage(err)}`, 'docker_error', err);
}
