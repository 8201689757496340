import type { EnvironmentReport } from '../environments/probe.js';
import { unusableReason } from '../environments/probe.js';
import { SNAPSHOTS } from '../environments/snapshots.js';
import type { EnvironmentStore, SnapshotInfo } from '../environments/store.js';
import { AppError } from '../errors.js';
import type { SandboxDriver } from '../sandbox/driver.js';

/** Reports kept in this process (the store keeps them for every worker). */
const MEMO_ENTRIES = 256;

/**
 * The worker's side of environments: before a run's agent starts, the environment image is found
 * on this worker's engine (a missing one fails the run, naming it), its report is read (probed
 * once per image id and agent layer, shared through Redis), and an image that cannot host the
 * agent fails the run with the reason. Done in the worker, not at pre-flight: the API process may
 * have no Docker engine, and each worker may have its own.
 */
export class WorkerEnvironments {
  private readonly memo = new Map<string, Promise<EnvironmentReport>>();

  constructor(
    private readonly driver: SandboxDriver,
    private readonly store: EnvironmentStore | undefined,
    private readonly maxProbeBytes: number,
  ) {}

  /** The environment's report; null when the driver has no environments (a test driver). */
  async prepare(image: string, agentImage: string): Promise<EnvironmentReport | null> {
    const d = this.driver;
    if (!d.environmentId || !d.agentLayer || !d.describeEnvironment) return null;
    const imageId = await d.environmentId(image);
    const layer = await d.agentLayer(agentImage);
    const key = `${imageId}:${layer}`;
    let p = this.memo.get(key);
    if (!p) {
      p = this.load(image, agentImage, imageId, layer);
      this.remember(key, p);
    }
    const report = { ...(await p), image };
    const reason = unusableReason(report);
    if (reason) {
      throw new AppError(reason, {
        status: 422,
        type: 'invalid_request_error',
        code: 'image_unusable',
        retryable: false,
      });
    }
    return report;
  }

  private async load(
    image: string,
    agentImage: string,
    imageId: string,
    layer: string,
  ): Promise<EnvironmentReport> {
    const known = await this.store?.getProbe(imageId, layer).catch(() => null);
    if (known) return known;
    const report = await this.driver.describeEnvironment!(image, agentImage, this.maxProbeBytes);
    await this.store?.putProbe(report).catch(() => undefined);
    return report;
  }

  private remember(key: string, p: Promise<EnvironmentReport>): void {
    this.memo.set(key, p);
    // A failed probe is not remembered: the next run tries again.
    p.catch(() => this.memo.delete(key));
    if (this.memo.size > MEMO_ENTRIES) this.memo.delete(this.memo.keys().next().value!);
  }

  /**
   * Tells the API what this worker's engine has of each served snapshot: image id, size, labels,
   * and which runtimes were found able to run on it (probes already made, by any worker).
   */
  async reportSnapshots(
    served: readonly string[],
    runtimes: readonly { name: string; image: string }[],
    survey: boolean,
  ): Promise<void> {
    const d = this.driver;
    if (!this.store || !d.imageInfo || !d.agentLayer) return;
    for (const snap of SNAPSHOTS.filter((s) => served.includes(s.name))) {
      const info = await d.imageInfo(snap.image);
      const ok: string[] = [];
      if (info) {
        for (const rt of runtimes) {
          if (await this.runsOn(snap.image, info.id, rt.image, survey)) ok.push(rt.name);
        }
      }
      const entry: SnapshotInfo = {
        name: snap.name,
        image: snap.image,
        imageId: info?.id ?? null,
        sizeBytes: info?.sizeBytes ?? null,
        labels: jettyLabels(info?.labels ?? {}),
        runtimes: ok,
        reportedAt: new Date().toISOString(),
      };
      await this.store.putSnapshot(entry);
    }
  }

  /** Whether a runtime's layer was found able to run on an image (probing it when `survey`). */
  private async runsOn(
    image: string,
    imageId: string,
    agentImage: string,
    survey: boolean,
  ): Promise<boolean> {
    const layer = await this.driver.agentLayer!(agentImage).catch(() => null);
    if (!layer) return false;
    let probe = await this.store!.getProbe(imageId, layer);
    if (!probe && survey) {
      const key = `${imageId}:${layer}`;
      const p = this.memo.get(key) ?? this.load(image, agentImage, imageId, layer);
      this.remember(key, p);
      probe = await p.catch(() => null);
    }
    return probe !== null && unusableReason({ ...probe, image }) === null;
  }
}

function jettyLabels(labels: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) {
    if (k.startsWith('jetty.') && k !== 'jetty.inputs') out[k.slice('jetty.'.length)] = v;
  }
  return out;
}
