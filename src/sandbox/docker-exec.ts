import type { Duplex } from 'node:stream';
import { PassThrough } from 'node:stream';
import type Dockerode from 'dockerode';
import { AppError, infraError } from '../errors.js';
import { DOCKER_HEADER_BYTES, DOCKER_STDERR, FrameSplitter } from './frames.js';

/**
 * Processes in a running container, with stdout and stderr apart and an exit code. A run's sandbox
 * starts its processes through its supervisor (src/sandbox/supervisor-link.ts); exec (here, with
 * the exit code read back from the engine) is left for the containers that have none: the probe
 * of an environment image.
 */

export interface ExecOptions {
  argv: string[];
  /** `uid:gid` */
  user: string;
  env?: string[];
  workdir?: string;
  /** Written to the process's stdin, which is then closed. Undefined: no stdin at all. */
  stdin?: string | Buffer;
  /** Attach stdin and leave it to the caller (StartedExec.input), who must end it. */
  keepStdinOpen?: boolean;
}

export interface StartedExec {
  stdout: PassThrough;
  stderr: PassThrough;
  /** The exit code once the process has ended; null when the sandbox went away first. */
  exit: Promise<number | null>;
  /** The process's stdin, when it was kept open: write to it, then end() it (with or without a last chunk). */
  input: { write(data: string | Buffer): void; end(data?: string | Buffer): void };
  /** Closes the connection: the caller wants no more output (the process is not signalled). */
  detach(): void;
}

/**
 * Output buffered per stream before the exec's connection is paused. Docker sends frames of up to
 * 32 KiB: with the default 16 KiB every frame paused and resumed the connection, and a loud
 * sandbox was read ten times slower than Docker sends.
 */
export const OUTPUT_BUFFER_BYTES = 1024 * 1024;

export async function startExec(container: Dockerode.Container, opts: ExecOptions): Promise<StartedExec> {
  const attachStdin = opts.stdin !== undefined || opts.keepStdinOpen === true;
  const exec = await container.exec({
    Cmd: opts.argv,
    User: opts.user,
    Env: opts.env ?? [],
    WorkingDir: opts.workdir ?? '/',
    AttachStdin: attachStdin,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
  });
  const socket = (await exec.start({ hijack: true, stdin: attachStdin })) as Duplex;
  const stdout = new PassThrough({ highWaterMark: OUTPUT_BUFFER_BYTES });
  const stderr = new PassThrough({ highWaterMark: OUTPUT_BUFFER_BYTES });
  const ended = new Promise<void>((resolve) => demultiplex(socket, stdout, stderr, resolve));
  // Half-close after the input: the process reads EOF, its output keeps coming.
  if (opts.stdin !== undefined) socket.end(opts.stdin);
  const exit = ended.then(() => exitCodeOf(exec));
  // Settled here so that an exit nobody awaits never becomes an unhandled rejection.
  exit.catch(() => undefined);
  return {
    stdout,
    stderr,
    exit,
    input: {
      write: (data) => void socket.write(data),
      end: (data) => (data === undefined ? socket.end() : socket.end(data)),
    },
    detach: () => socket.destroy(),
  };
}

/** Starts a process in a sandbox: by exec, or by the sandbox's supervisor (src/sandbox/supervisor-link.ts). */
export type ProcessStarter = (opts: ExecOptions) => Promise<StartedExec>;

/** Runs a short helper to its end (exec'd); its output is kept up to `maxOutput` bytes per stream. */
export async function runExec(
  container: Dockerode.Container,
  opts: ExecOptions,
  maxOutput = 64 * 1024,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runProcess((o) => startExec(container, o), opts, maxOutput);
}

/** Runs a short helper to its end; its output is kept up to `maxOutput` bytes per stream. */
export async function runProcess(
  start: ProcessStarter,
  opts: ExecOptions,
  maxOutput = 64 * 1024,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = await start(opts);
  const [stdout, stderr] = await Promise.all([
    readBounded(proc.stdout, maxOutput),
    readBounded(proc.stderr, maxOutput),
  ]);
  return { code: await proc.exit, stdout: stdout.text, stderr: stderr.text };
}

/** Reads a stream to its end, keeping its first `max` bytes; `size` counts them all. */
export async function readBounded(stream: PassThrough, max: number): Promise<{ text: string; size: number }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    if (size < max) chunks.push(chunk.subarray(0, max - size));
    size += chunk.length;
  }
  return { text: Buffer.concat(chunks).toString('utf8'), size };
}

/**
 * The engine ends the output when the process exits (or 2 s later, when a child it left still
 * holds it open), and only after recording the exit code. Output closed early by a process that
 * goes on running is waited out by polling, slower and slower.
 */
async function exitCodeOf(exec: Dockerode.Exec): Promise<number | null> {
  for (let delay = 10; ; delay = Math.min(delay * 2, 1000)) {
    let info: Dockerode.ExecInspectInfo;
    try {
      info = await exec.inspect();
    } catch (err) {
      if (dockerStatus(err) === 404) return null;
      throw toAppError(err, 'could not read the exit code of a sandbox process');
    }
    if (!info.Running) return info.ExitCode ?? null;
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** Splits Docker's multiplexed stream (8-byte frame headers) into stdout and stderr. */
function demultiplex(source: Duplex, stdout: PassThrough, stderr: PassThrough, onEnd: () => void): void {
  const frames = new FrameSplitter(DOCKER_HEADER_BYTES, (head, payload) => {
    const target = head[0] === DOCKER_STDERR ? stderr : stdout;
    if (!target.destroyed) target.write(payload);
  });
  let blocked = 0;
  source.on('data', (chunk: Buffer) => {
    frames.push(chunk);
    // Honour backpressure: a slow reader slows the sandbox instead of growing our memory.
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
    onEnd();
  };
  source.on('end', finish);
  source.on('close', finish);
  // A broken connection ends the output early; the exit code is still read from the engine.
  source.on('error', finish);
}

export function dockerStatus(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** Docker's own words when it sent any (dockerode's message also carries a generic prefix). */
export function dockerMessage(err: unknown): string {
  const e = err as { json?: { message?: unknown }; message?: unknown } | null;
  const message = e?.json?.message ?? e?.message;
  return typeof message === 'string' ? message.trim() : String(err);
}

export function toAppError(err: unknown, what: string): AppError {
  if (err instanceof AppError) return err;
  return infraError(`${what}: ${dockerMessage(err)}`, 'docker_error', err);
}
