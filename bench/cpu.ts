// Where the CPU goes while a benchmark phase runs: the whole machine's busy time (/proc/stat), and
// each process's own (/proc/<pid>/stat utime + stime), sampled every `intervalMs` and summed by
// what the process is (the claude CLI, the worker, dockerd, …). A process is counted from its first
// sample to its last, so one that lives shorter than the interval, or the time after a process's
// last sample, is missed: the groups add up to a little less than the machine's total, and the
// difference is shown as "unattributed".
import { readdirSync, readFileSync } from 'node:fs';

/** Linux's USER_HZ: /proc times are in 1/100 s on every architecture Node runs on. */
const TICK_MS = 10;

export interface CpuUsage {
  /** Busy CPU time of the whole machine (all cores: user, nice, system, irq, softirq, steal). */
  machineMs: number;
  /** Busy CPU time of the processes seen, by group (see `groupOf`). */
  groups: Record<string, number>;
}

/** What a process is, from its name and command line, for the report's rows. */
export function groupOf(comm: string, cmdline: string, benchPid: number, pid: number): string {
  if (pid === benchPid) return 'bench client';
  if (/claude-max-api/.test(cmdline)) return 'proxy server';
  if (/server\.js --role worker|--role=worker/.test(cmdline)) return 'server: worker';
  if (/server\.js --role api|--role=api/.test(cmdline)) return 'server: api';
  if (/server\.js/.test(cmdline)) return 'server: api + worker';
  if (comm.startsWith('claude')) return 'claude CLI';
  // The sandbox's main process (src/sandbox/supervisor.ts), the gateway forwarder inside it.
  if (/jetty-sandbox-supervisor/.test(cmdline)) return 'sandbox: supervisor + forwarder';
  if (/forwarder\.js/.test(cmdline)) return 'sandbox: gateway forwarder';
  if (comm === 'dockerd') return 'dockerd';
  if (comm.startsWith('containerd-shim')) return 'containerd-shim';
  if (comm === 'containerd') return 'containerd';
  // runc re-executes itself (/proc/self/exe, a sealed memfd copy) to set up each container and exec.
  if (comm === 'runc' || comm.startsWith('runc:') || comm === 'exe' || comm.startsWith('memfd:'))
    return 'runc';
  if (comm === 'redis-server') return 'redis';
  if (comm === 'bash' || comm === 'sh' || comm === 'busybox') return 'shells (tool calls, scripts)';
  if (/^(kworker|ksoftirqd|rcu|migration|kdamond|kswapd|jbd2|kcompactd|khugepaged)/.test(comm))
    return 'kernel threads';
  if (comm === 'node') return 'other node processes';
  return 'other processes';
}

function machineBusyTicks(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = cpu;
  return user + nice + system + irq + softirq + steal;
}

interface Seen {
  group: string;
  /** Its time when first seen; 0 for a process started during the phase (all of its time is the phase's). */
  first: number;
  last: number;
}

/** utime + stime of one process, or null when it is gone. */
function processTicks(pid: number): { ticks: number; comm: string } | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The name is in parentheses and may hold spaces; the fields after it are positional.
  const close = stat.lastIndexOf(')');
  const comm = stat.slice(stat.indexOf('(') + 1, close);
  const rest = stat.slice(close + 2).split(' ');
  // Fields 14 and 15 (utime, stime) are at 11 and 12 after the state field (field 3).
  return { ticks: Number(rest[11]) + Number(rest[12]), comm };
}

function cmdlineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return '';
  }
}

/** Samples until `stop()`, which returns what was used meanwhile. */
export function startCpuSampler(intervalMs = 100): { stop(): CpuUsage } {
  const machineStart = machineBusyTicks();
  const seen = new Map<number, Seen>();
  let initial = true;
  const sample = () => {
    for (const name of readdirSync('/proc')) {
      const pid = Number(name);
      if (!Number.isInteger(pid)) continue;
      const t = processTicks(pid);
      if (!t) continue;
      const s = seen.get(pid);
      if (s) s.last = t.ticks;
      else
        seen.set(pid, {
          group: groupOf(t.comm, cmdlineOf(pid), process.pid, pid),
          first: initial ? t.ticks : 0,
          last: t.ticks,
        });
    }
  };
  // Processes alive at the start count from there: their earlier time is not this phase's.
  sample();
  initial = false;
  const timer = setInterval(sample, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      const groups: Record<string, number> = {};
      for (const s of seen.values()) {
        const ms = (s.last - s.first) * TICK_MS;
        if (ms > 0) groups[s.group] = (groups[s.group] ?? 0) + ms;
      }
      return { machineMs: (machineBusyTicks() - machineStart) * TICK_MS, groups };
    },
  };
}
