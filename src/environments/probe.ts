/**
 * What an environment image is, as far as a run cares: whether it can host the agent layer
 * (a shell, a glibc that resolves the layer's programs) and which commands it has. Read by the
 * worker once per image and agent layer, from the output of /opt/jetty/probe.sh
 * (docker/agents/toolset/probe.sh) run inside a sandbox of that image.
 */

export interface EnvironmentReport {
  /** The image as the run named it, and the engine's id of it. */
  image: string;
  imageId: string;
  /** The agent layer mounted while probing (its volume's name). */
  layer: string;
  shell: boolean;
  /** The environment's glibc version; null when it has none (musl, static, scratch). */
  glibc: string | null;
  /** Programs of the agent layer the environment's loader cannot resolve, each with the reason. */
  unresolved: string[];
  /** Commands on the environment's PATH, sorted. */
  commands: string[];
  /** True when the listing was longer than the probe's bound: `commands` is then partial. */
  commandsTruncated: boolean;
  probedAt: string;
}

export type ProbeFacts = Pick<
  EnvironmentReport,
  'shell' | 'glibc' | 'unresolved' | 'commands' | 'commandsTruncated'
>;

/** Reads probe.sh's lines (`sh yes`, `glibc 2.36`, `unresolved <file> <why>`, `cmd <name>`). */
export function parseProbeOutput(text: string, truncated: boolean): ProbeFacts {
  let shell = false;
  let glibc: string | null = null;
  const unresolved: string[] = [];
  const commands = new Set<string>();
  const lines = text.split('\n');
  // A cut output ends in a partial line: drop it.
  if (truncated) lines.pop();
  for (const line of lines) {
    const sp = line.indexOf(' ');
    if (sp < 0) continue;
    const key = line.slice(0, sp);
    const value = line.slice(sp + 1).trim();
    if (key === 'sh') shell = value === 'yes';
    else if (key === 'glibc') glibc = value === 'none' ? null : value;
    else if (key === 'unresolved' && unresolved.length < 20) unresolved.push(value.slice(0, 300));
    else if (key === 'cmd' && value !== '' && !value.includes('/')) commands.add(value);
  }
  return { shell, glibc, unresolved, commands: [...commands].sort(), commandsTruncated: truncated };
}

/** Why the environment cannot host the agent, for the user; null when it can. */
export function unusableReason(
  r: Pick<EnvironmentReport, 'image' | 'shell' | 'glibc' | 'unresolved'>,
): string | null {
  const what = `The image ${r.image} cannot host the agent`;
  if (r.glibc === null) {
    return `${what}: it has no glibc (no /lib64/ld-linux-x86-64.so.2; musl-based, static or empty images cannot run the agent CLIs). Use a glibc-based image, such as one built on Debian or Ubuntu.`;
  }
  if (!r.shell) {
    return `${what}: it has no /bin/sh, which the agent's tools run commands with. Use an image with a shell.`;
  }
  if (r.unresolved.length > 0) {
    return `${what}: its glibc ${r.glibc} cannot load the agent's programs (${r.unresolved[0]}). Use an image with glibc 2.35 or newer (Debian 12, Ubuntu 22.04 or later).`;
  }
  return null;
}
