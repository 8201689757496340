import type { Duplex } from 'node:stream';
import { PassThrough } from 'node:stream';
import type Dockerode from 'dockerode';
import { type ExecOptions, OUTPUT_BUFFER_BYTES, type StartedExec } from './docker-exec.js';
import { DOCKER_HEADER_BYTES, DOCKER_STDERR, FrameSplitter } from './frames.js';
import { FRAME, FRAME_HEADER_BYTES, frame, MAX_FRAME_PAYLOAD, type SpawnRequest } from './supervisor.js';

/** What the supervisor says on its own stderr is passed on up to this much per sandbox. */
const MAX_COMPLAINT_BYTES = 4096;

interface Channel {
  stdout: PassThrough;
  stderr: PassThrough;
  detached: boolean;
  settle(code: number | null): void;
}

/**
 * The worker's end of a sandbox's supervisor (src/sandbox/supervisor.ts): the container's attached
 * stdin and stdout, carrying the frames of every process started in it. A process looks to its
 * caller exactly as an exec did (StartedExec): its stdout and stderr apart, its stdin, its exit
 * code; null when the sandbox went away first.
 */
export class SupervisorLink {
  private readonly channels = new Map<number, Channel>();
  private nextId = 1;
  private closed = false;
  private complained = 0;
  /** Outputs waiting for their reader: the connection is paused while any is. */
  private blocked = 0;

  /** Attached before the container starts, so nothing the supervisor says is missed. */
  static async attach(
    container: Dockerode.Container,
    onComplaint: (text: string) => void,
  ): Promise<SupervisorLink> {
    const socket = (await container.attach({
      stream: true,
      stdin: true,
      stdout: true,
      stderr: true,
      hijack: true,
    })) as Duplex;
    return new SupervisorLink(socket, onComplaint);
  }

  /** `onComplaint` hears the supervisor's own failures (its stderr), bounded per sandbox. */
  constructor(
    private readonly socket: Duplex,
    private readonly onComplaint: (text: string) => void,
  ) {
    const ours = new FrameSplitter(FRAME_HEADER_BYTES, (head, payload) =>
      this.onFrame(head[0] as number, head.readUInt32BE(1), payload),
    );
    // Docker's own multiplexing first: stdout carries our frames, stderr the supervisor's complaints.
    const docker = new FrameSplitter(DOCKER_HEADER_BYTES, (head, payload) =>
      head[0] === DOCKER_STDERR ? this.complain(payload) : ours.push(payload),
    );
    socket.on('data', (chunk: Buffer) => docker.push(chunk));
    const shut = () => this.shut();
    socket.on('end', shut);
    socket.on('close', shut);
    socket.on('error', shut);
  }

  /** False once the connection has ended: the supervisor (the sandbox) is gone, or the link was closed. */
  get open(): boolean {
    return !this.closed;
  }

  start(opts: ExecOptions): StartedExec {
    const { id, proc } = this.channel();
    if (this.closed) return proc;
    const [uid, gid] = opts.user.split(':').map(Number);
    const req: SpawnRequest = {
      argv: opts.argv,
      env: envObject(opts.env ?? []),
      cwd: opts.workdir ?? '/',
      uid: uid ?? 0,
      gid: gid ?? uid ?? 0,
      stdin: opts.stdin !== undefined || opts.keepStdinOpen === true,
    };
    this.write(frame(FRAME.spawn, id, Buffer.from(JSON.stringify(req))));
    if (opts.stdin !== undefined) {
      this.input(id, opts.stdin);
      this.write(frame(FRAME.endInput, id));
    }
    return proc;
  }

  /**
   * The gateway forwarder, inside the supervisor: "ready" on its stdout once it listens on
   * 127.0.0.1:`port`, its complaints on stderr; ending its input stops it.
   */
  forward(port: number, socket: string): StartedExec {
    const { id, proc } = this.channel();
    if (!this.closed) this.write(frame(FRAME.forward, id, Buffer.from(JSON.stringify({ port, socket }))));
    return proc;
  }

  /** A new process's channel, as its caller sees it; settled at once when the link is closed. */
  private channel(): { id: number; proc: StartedExec } {
    const id = this.nextId++;
    const stdout = new PassThrough({ highWaterMark: OUTPUT_BUFFER_BYTES });
    const stderr = new PassThrough({ highWaterMark: OUTPUT_BUFFER_BYTES });
    let resolve!: (code: number | null) => void;
    const exit = new Promise<number | null>((r) => {
      resolve = r;
    });
    const channel: Channel = {
      stdout,
      stderr,
      detached: false,
      settle: (code) => {
        this.channels.delete(id);
        stdout.end();
        stderr.end();
        resolve(code);
      },
    };
    if (this.closed) channel.settle(null);
    else this.channels.set(id, channel);
    const proc: StartedExec = {
      stdout,
      stderr,
      exit,
      input: {
        write: (data) => this.input(id, data),
        end: (data) => {
          if (data !== undefined) this.input(id, data);
          this.write(frame(FRAME.endInput, id));
        },
      },
      detach: () => {
        // Like closing an exec's connection: no more output, the process goes on.
        channel.detached = true;
        this.write(frame(FRAME.detach, id));
        stdout.end();
        stderr.end();
      },
    };
    return { id, proc };
  }

  /**
   * Kills every process of `uid` (SIGKILL, twice), by the supervisor itself: it starts no
   * process, so it works when the sandbox is at its pids limit. Resolves to 0 when done, else
   * non-zero, or null when the sandbox is gone.
   */
  async killAll(uid: number): Promise<number | null> {
    const id = this.nextId++;
    if (this.closed) return null;
    const exit = new Promise<number | null>((resolve) => {
      this.channels.set(id, {
        stdout: new PassThrough(),
        stderr: new PassThrough(),
        detached: true,
        settle: (code) => {
          this.channels.delete(id);
          resolve(code);
        },
      });
    });
    this.write(frame(FRAME.kill, id, Buffer.from(JSON.stringify({ uid }))));
    return exit;
  }

  /** Closes the connection (the supervisor goes on: its container is removed by its owner). */
  close(): void {
    this.socket.destroy();
    this.shut();
  }

  private input(id: number, data: string | Buffer): void {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    for (let at = 0; at < buf.length; at += MAX_FRAME_PAYLOAD) {
      this.write(frame(FRAME.input, id, buf.subarray(at, at + MAX_FRAME_PAYLOAD)));
    }
  }

  private write(buf: Buffer): void {
    if (!this.closed) this.socket.write(buf);
  }

  private onFrame(type: number, id: number, payload: Buffer): void {
    const channel = this.channels.get(id);
    if (!channel) return;
    if (type === FRAME.exit) {
      const code = payload.length >= 4 ? payload.readInt32BE(0) : -1;
      channel.settle(code < 0 ? null : code);
      return;
    }
    const target = type === FRAME.stdout ? channel.stdout : type === FRAME.stderr ? channel.stderr : null;
    if (!target || channel.detached || target.destroyed || target.writableEnded) return;
    target.write(payload);
    if (!target.writableNeedDrain) return;
    // Backpressure: a slow reader slows the sandbox instead of growing our memory; so every
    // output must be read (or resumed, or destroyed) by its caller, as with an exec.
    if (this.blocked === 0) this.socket.pause();
    this.blocked += 1;
    const free = () => {
      target.off('drain', free);
      target.off('close', free);
      this.blocked -= 1;
      if (this.blocked === 0) this.socket.resume();
    };
    target.on('drain', free);
    target.on('close', free);
  }

  private complain(body: Buffer): void {
    const room = MAX_COMPLAINT_BYTES - this.complained;
    if (room <= 0) return;
    const text = body.subarray(0, room).toString('utf8').trimEnd();
    this.complained += Math.min(body.length, room);
    if (text !== '') this.onComplaint(text);
  }

  private shut(): void {
    if (this.closed) return;
    this.closed = true;
    for (const channel of [...this.channels.values()]) channel.settle(null);
  }
}

function envObject(pairs: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq > 0) env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}
