import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** What the figures were measured on: they mean little without it. */
export interface Machine {
  cores: number;
  memoryGiB: number;
  cpuModel: string;
  docker: string;
  node: string;
  os: string;
  /** 1, 5 and 15 minute load averages when the figures were taken: other work on the machine. */
  load: [number, number, number];
}

export async function describeMachine(): Promise<Machine> {
  return {
    cores: os.availableParallelism(),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    cpuModel: await cpuModel(),
    docker: await dockerVersion(),
    node: process.version,
    os: `${os.type()} ${os.release()} (${os.arch()})`,
    load: loadAverage(),
  };
}

async function cpuModel(): Promise<string> {
  try {
    const info = await readFile('/proc/cpuinfo', 'utf8');
    const m = /^model name\s*:\s*(.+)$/m.exec(info);
    if (m?.[1]) return m[1].trim();
  } catch {
    // Not Linux: fall through to what Node reports.
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

async function dockerVersion(): Promise<string> {
  try {
    const format = '{{.Server.Version}} {{.Client.Version}}';
    const { stdout } = await run('docker', ['version', '--format', format], { timeout: 10_000 });
    const [engine, client] = stdout.trim().split(' ');
    return `engine ${engine ?? '?'}, client ${client ?? '?'}`;
  } catch {
    return 'unknown (docker version failed)';
  }
}

export function loadAverage(): [number, number, number] {
  const [a = 0, b = 0, c = 0] = os.loadavg();
  return [a, b, c].map((n) => Math.round(n * 100) / 100) as [number, number, number];
}

/** One paragraph: when, on what, and how busy the machine was. */
export function renderMachine(m: Machine, date: Date): string {
  return (
    `Measured ${date.toISOString()} on ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB memory, ` +
    `${m.os}; Docker ${m.docker}; Node ${m.node}; load average ${m.load.join(' / ')} (1 / 5 / 15 min). ` +
    'The benchmark client runs on the same machine.'
  );
}
