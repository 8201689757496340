import { MIN_SANDBOX_DISK, parseBytes } from '../config/index.js';
import { commandsOfRunbook } from '../environments/commands.js';
import { DEFAULT_SNAPSHOT, snapshotByName } from '../environments/snapshots.js';
import { badRequest, quoted } from '../errors.js';
import type { RunJob } from '../queue/catalog.js';
import type { RunbookFrontmatter } from '../runbook/schema.js';
import type { AppDeps } from './deps.js';
import type { ChatRequest } from './schemas.js';

type Jetty = NonNullable<ChatRequest['jetty']>;
type SandboxDefaults = AppDeps['defaults']['sandbox'];

/** An image reference as the engine takes it: [registry/]name[:tag][@digest], bounded. */
const IMAGE_REF = /^[a-z0-9][a-z0-9._\-/:]*(@sha256:[a-f0-9]{64})?$/;
export const MAX_IMAGE_REF_CHARS = 256;

/**
 * The run's environment: `image` (a custom image) or `snapshot`, from jetty (which wins) or the
 * frontmatter; neither: the lean default. An unknown snapshot is a 400 listing the served ones.
 * Whether a custom image exists and can host the agent is decided by the worker, on its engine
 * (the API may have none, and each worker may have another engine): see src/worker/environment.ts.
 */
export function planEnvironment(
  jetty: Jetty,
  fm: RunbookFrontmatter,
  max: SandboxDefaults,
  sysIndex: number,
): RunJob['environment'] {
  const fmParam = (key: string) => `messages[${sysIndex}].content.frontmatter.${key}`;
  const image = jetty.image ?? (jetty.snapshot === undefined ? fm.image : undefined);
  if (image !== undefined) {
    const param = jetty.image !== undefined ? 'jetty.image' : fmParam('image');
    if (!max.allowCustomImages) {
      throw badRequest(
        `This server runs only its snapshots, not images named by a run (SANDBOX_ALLOW_CUSTOM_IMAGES is off). Use \`snapshot\` instead: ${max.snapshots.join(', ')}.`,
        param,
        'custom_image_disabled',
      );
    }
    if (image.length > MAX_IMAGE_REF_CHARS || !IMAGE_REF.test(image)) {
      throw badRequest(
        `${param} must be an image reference such as "acme/runner:1.2" (lower-case name, optional tag or @sha256 digest, at most ${MAX_IMAGE_REF_CHARS} characters); got ${quoted(image, 80)}.`,
        param,
        'invalid_image',
      );
    }
    return { snapshot: null, image };
  }
  const name = jetty.snapshot ?? fm.snapshot ?? DEFAULT_SNAPSHOT;
  const spec = snapshotByName(name);
  if (!spec || !max.snapshots.includes(name)) {
    throw badRequest(
      `Unknown snapshot ${quoted(name, 80)}. This server serves ${max.snapshots.join(', ')} (GET /v1/snapshots says what each has); leave it out for ${DEFAULT_SNAPSHOT}.`,
      jetty.snapshot !== undefined ? 'jetty.snapshot' : fmParam('snapshot'),
      'unknown_snapshot',
    );
  }
  return { snapshot: spec.name, image: spec.image };
}

/** The commands the runbook calls, for the worker's environment check. */
export function plannedCommands(renderedRunbook: string): string[] {
  return commandsOfRunbook(renderedRunbook);
}

/**
 * CPUs, memory and disk of the run: jetty wins over the frontmatter, each within the operator's
 * maximum (over it: a 400 naming the field and the maximum). The disk lives in memory, so it may
 * not exceed the run's memory either.
 */
export function planResources(
  jetty: Jetty,
  fm: RunbookFrontmatter,
  max: SandboxDefaults,
  sysIndex: number,
): RunJob['limits'] {
  const from = (key: 'cpus' | 'memory' | 'disk') =>
    jetty[key] !== undefined
      ? { value: jetty[key], param: `jetty.${key}` }
      : fm[key] !== undefined
        ? { value: fm[key], param: `messages[${sysIndex}].content.frontmatter.${key}` }
        : undefined;
  const cpus = cpusOf(from('cpus'), max);
  const memoryBytes = sizeOf(from('memory'), {
    def: max.memoryBytes,
    max: max.maxMemoryBytes,
    min: 128 * 1024 ** 2,
    setting: 'SANDBOX_MAX_MEMORY',
    example: '"4g"',
  });
  const disk = from('disk');
  const diskBytes = sizeOf(disk, {
    def: max.diskBytes,
    max: max.maxDiskBytes,
    min: MIN_SANDBOX_DISK,
    setting: 'SANDBOX_MAX_DISK',
    example: '"2g"',
  });
  if (diskBytes > memoryBytes) {
    throw badRequest(
      `The run's disk (${diskBytes} bytes) exceeds its memory (${memoryBytes} bytes): the sandbox's files live in memory and count against it. Ask for more memory (up to ${max.maxMemoryBytes}, SANDBOX_MAX_MEMORY) or less disk.`,
      disk?.param ?? from('memory')?.param ?? 'jetty.memory',
    );
  }
  return { cpus, memoryBytes, pids: max.pids, diskBytes };
}

function cpusOf(given: { value: unknown; param: string } | undefined, max: SandboxDefaults): number {
  if (given === undefined) return max.cpus;
  const n = typeof given.value === 'string' ? Number(given.value) : given.value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0.1) {
    throw badRequest(
      `\`${given.param}\` must be a number of CPUs of at least 0.1, such as 2; got ${quoted(given.value)}.`,
      given.param,
    );
  }
  if (n > max.maxCpus) {
    throw badRequest(
      `\`${given.param}\` asks for ${n} CPUs; this server allows at most ${max.maxCpus} (SANDBOX_MAX_CPUS). Ask for fewer or leave it out (default ${max.cpus}).`,
      given.param,
    );
  }
  return n;
}

function sizeOf(
  given: { value: unknown; param: string } | undefined,
  o: { def: number; max: number; min: number; setting: string; example: string },
): number {
  if (given === undefined) return o.def;
  const v = given.value;
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.length <= 32 ? parseBytes(v) : null;
  if (n === null || !Number.isSafeInteger(n) || n < o.min) {
    throw badRequest(
      `\`${given.param}\` must be a size of at least ${Math.round(o.min / 1024 ** 2)}m, such as ${o.example}, "512m" or a number of bytes; got ${quoted(v)}.`,
      given.param,
    );
  }
  if (n > o.max) {
    throw badRequest(
      `\`${given.param}\` asks for ${n} bytes; this server allows at most ${o.max} (${o.setting}). Ask for less or leave it out (default ${o.def}).`,
      given.param,
    );
  }
  return n;
}
