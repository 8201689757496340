import type { SandboxFile } from '../runtimes/types.js';
import type {
  AgentSpec,
  EnvironmentSpec,
  PreparedSandbox,
  RunningSandbox,
  SandboxDriver,
  StartedAgent,
} from './driver.js';

/**
 * Warm sandboxes: started containers whose agent CLI already runs and waits for its prompt on
 * stdin, kept per pool key (a runtime and its environment image). A run claims one, binds it to
 * itself, gives it its files and prompt, and it serves that run only: a claimed sandbox never
 * comes back. What a warm sandbox is started with carries nothing of any run (a token of its own
 * that the gateway does not know until a run claims it; no secrets), so one that is never
 * claimed has nothing to leak.
 *
 * The pool is driven by the driver's phases (prepare, forwarder, agent) and knows nothing of
 * runtimes: the worker gives it a template per key (src/worker/warm-start.ts).
 */

/** Everything a warm sandbox of one key is started with. */
export interface WarmTemplate {
  environment: EnvironmentSpec;
  /** The agent as it waits: its stdin is held. */
  agent: Omit<AgentSpec, 'stdin' | 'holdStdin'>;
  forwarderEnv: Record<string, string>;
  /** The gateway token its CLI was started with; the gateway learns it when a run claims it. */
  token: string;
  /** What a run must match to take it over (compared by the worker, see WarmStarts). */
  signature: string;
}

export interface WarmSandbox {
  readonly key: string;
  readonly template: WarmTemplate;
  readonly prepared: PreparedSandbox;
  readonly agent: StartedAgent;
  readonly readyAt: number;
}

export interface WarmPoolOptions {
  driver: SandboxDriver;
  /** The worker keeping the pool: its sandboxes are labelled with it. */
  worker: string;
  /** Warm sandboxes kept per key (WARM_POOL_SIZE). 0: no pool. */
  size: number;
  /** Memory all warm sandboxes may hold, counted at their memory limit (WARM_POOL_MEMORY). */
  memoryBytes: number;
  /** A warm sandbox unclaimed this long is removed, and a key unused this long is not refilled (WARM_POOL_IDLE_SEC; 0: never). */
  idleMs: number;
  /** The template of a new warm sandbox of `key` (a fresh token each time); null: none for it. */
  template(key: string): WarmTemplate | null;
  logger: { debug(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
}

/** After a warm sandbox of a key failed to start, none is tried again for so long. */
const FAILURE_BACKOFF_MS = 30_000;

/** A taken warm sandbox is replaced when its run has ended (WarmPool.refill), or this long after. */
export const REFILL_WAIT_MS = 2_000;

export class WarmPool {
  private readonly ready = new Map<string, WarmSandbox[]>();
  private readonly starting = new Map<string, number>();
  private readonly lastWanted = new Map<string, number>();
  private readonly failedAt = new Map<string, number>();
  /** The signature runs of a key now want (set by retire): one started before it is of no use. */
  private readonly wanted = new Map<string, string>();
  /** Containers of this pool that no run has been bound to yet: the sweep must spare them. */
  private readonly unbound = new Set<string>();
  private readonly removing = new Set<Promise<unknown>>();
  /** Keys whose taken sandboxes are replaced once their run has ended (refillLater). */
  private readonly refillTimers = new Map<string, NodeJS.Timeout>();
  private heldBytes = 0;
  /** Keys the memory budget kept from being filled (said once each). */
  private readonly overBudgetKeys = new Set<string>();
  private closed = false;
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: WarmPoolOptions) {
    if (opts.idleMs > 0) {
      this.timer = setInterval(() => this.expire(), Math.min(opts.idleMs, 10_000));
      this.timer.unref();
    }
  }

  get enabled(): boolean {
    return this.opts.size > 0 && this.opts.memoryBytes > 0 && this.opts.driver.prepare !== undefined;
  }

  /** Warm sandboxes ready now, per key. */
  stats(): Record<string, { ready: number; starting: number }> {
    const out: Record<string, { ready: number; starting: number }> = {};
    for (const key of new Set([...this.ready.keys(), ...this.starting.keys()])) {
      out[key] = { ready: this.ready.get(key)?.length ?? 0, starting: this.starting.get(key) ?? 0 };
    }
    return out;
  }

  /**
   * Whether `containerId` may be a warm sandbox of this pool that no run holds yet: one it knows,
   * or any while one is being made (its id is known only once its container has started).
   */
  holds(containerId: string): boolean {
    return this.unbound.has(containerId) || [...this.starting.values()].some((n) => n > 0);
  }

  /** Marks `key` as wanted and fills its pool in the background. */
  want(key: string): void {
    if (!this.enabled || this.closed) return;
    this.lastWanted.set(key, Date.now());
    this.fill(key);
  }

  /**
   * A ready warm sandbox of `key`, taken out of the pool (or undefined: start cold). Never waits:
   * one still starting is left to start. The pool refills behind it once its run has ended
   * (refill, at most REFILL_WAIT_MS later), or at once when none was ready.
   */
  take(key: string): WarmSandbox | undefined {
    if (!this.enabled || this.closed) return undefined;
    const list = this.ready.get(key) ?? [];
    let w = list.shift();
    // One whose CLI died while it waited is of no use to anyone.
    while (w?.agent.exited) {
      this.drop(w, 'its agent exited while it waited');
      w = list.shift();
    }
    if (!w) {
      this.want(key);
      return undefined;
    }
    this.release(w);
    this.refillLater(key);
    return w;
  }

  /**
   * The run that took a warm sandbox of `key` has ended: the key's pool refills now rather than
   * at REFILL_WAIT_MS.
   */
  refill(key: string): void {
    const timer = this.refillTimers.get(key);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.refillTimers.delete(key);
    this.want(key);
  }

  /**
   * Binds a taken warm sandbox to its run and starts the run on it: the run's files go in, then its
   * prompt. From here on it is the run's sandbox, removed with the run like any other.
   */
  async claim(
    w: WarmSandbox,
    runId: string,
    files: SandboxFile[],
    stdin: string | Buffer,
  ): Promise<RunningSandbox> {
    try {
      await w.prepared.placeFiles(files);
      // The prompt before the rename (a Docker call of 10-30 ms): the CLI starts on it meanwhile.
      // Should the rename fail, the sandbox is removed as before and the run starts cold with the
      // same token; a model call the CLI made in between is the run's, and counted as such.
      w.agent.giveInput(stdin);
      await w.prepared.bindToRun(runId);
      this.unbound.delete(w.prepared.id);
      return w.agent.sandbox;
    } catch (err) {
      this.unbound.delete(w.prepared.id);
      await w.prepared.remove().catch(() => undefined);
      throw err;
    }
  }

  /** A taken warm sandbox the run could not use: removed. */
  discard(w: WarmSandbox, why: string): void {
    this.opts.logger.debug(
      { key: w.key, sandbox: w.prepared.id.slice(0, 12), why },
      'warm sandbox discarded',
    );
    this.unbound.delete(w.prepared.id);
    this.track(w.prepared.remove());
  }

  /** Removes every warm sandbox of `key` that does not carry `signature` (the runs want another). */
  retire(key: string, signature: string): void {
    this.wanted.set(key, signature);
    const list = this.ready.get(key) ?? [];
    const keep = list.filter((w) => w.template.signature === signature);
    for (const w of list) if (!keep.includes(w)) this.drop(w, 'runs of its key now want another start');
    this.ready.set(key, keep);
    this.fill(key);
  }

  /** Removes every warm sandbox; none is made after. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const t of this.refillTimers.values()) clearTimeout(t);
    this.refillTimers.clear();
    for (const list of this.ready.values()) for (const w of [...list]) this.drop(w, 'the worker stops');
    this.ready.clear();
    // Those still starting remove themselves when they are done (closed is set).
    while (this.removing.size > 0 || [...this.starting.values()].some((n) => n > 0)) {
      await Promise.allSettled([...this.removing]);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private fill(key: string): void {
    if (this.closed || (this.starting.get(key) ?? 0) > 0) return;
    const have = this.ready.get(key)?.length ?? 0;
    if (have >= this.opts.size) return;
    if (Date.now() - (this.failedAt.get(key) ?? 0) < FAILURE_BACKOFF_MS) return;
    const template = this.opts.template(key);
    if (!template) return;
    const bytes = template.environment.limits.memoryBytes;
    if (this.heldBytes + bytes > this.opts.memoryBytes) {
      this.overBudget(key, bytes);
      return;
    }
    // One at a time per key: a refill must not take the CPU from the runs under way all at once.
    this.starting.set(key, 1);
    this.heldBytes += bytes;
    void this.startOne(key, template)
      .then((w) => {
        if (this.closed) {
          this.heldBytes -= bytes;
          this.discard(w, 'the worker stops');
          return;
        }
        const wanted = this.wanted.get(key);
        if (wanted !== undefined && wanted !== w.template.signature) {
          this.drop(w, 'runs of its key now want another start');
          return;
        }
        const list = this.ready.get(key) ?? [];
        list.push(w);
        this.ready.set(key, list);
      })
      .catch((err: unknown) => {
        this.heldBytes -= bytes;
        this.failedAt.set(key, Date.now());
        this.opts.logger.warn(
          { err, key },
          'a warm sandbox could not be started; runs of this key start cold',
        );
      })
      .finally(() => {
        this.starting.set(key, 0);
        this.fill(key);
      });
  }

  /**
   * A taken sandbox's replacement waits for its run to end (refill(key)), at most REFILL_WAIT_MS:
   * making one (a container, the forwarder, a CLI that boots for about a second of CPU) would
   * otherwise take the CPU from the run that just took the warm one, on a small host doubling the
   * time to its first model call and delaying its end.
   */
  private refillLater(key: string): void {
    this.lastWanted.set(key, Date.now());
    if (this.refillTimers.has(key)) return;
    const timer = setTimeout(() => {
      this.refillTimers.delete(key);
      this.want(key);
    }, REFILL_WAIT_MS);
    timer.unref();
    this.refillTimers.set(key, timer);
  }

  /** Says once per key that WARM_POOL_MEMORY keeps it from being warm: runs of it start cold. */
  private overBudget(key: string, bytes: number): void {
    if (this.overBudgetKeys.has(key)) return;
    this.overBudgetKeys.add(key);
    this.opts.logger.warn(
      { key, heldBytes: this.heldBytes, needBytes: bytes, memoryBytes: this.opts.memoryBytes },
      'WARM_POOL_MEMORY is taken up by other warm sandboxes: runs of this key start cold (raise WARM_POOL_MEMORY, or list fewer WARM_POOL_RUNTIMES)',
    );
  }

  private async startOne(key: string, t: WarmTemplate): Promise<WarmSandbox> {
    const driver = this.opts.driver;
    if (!driver.prepare) throw new Error('this sandbox driver cannot keep warm sandboxes');
    const prepared = await driver.prepare(t.environment, this.opts.worker);
    this.unbound.add(prepared.id);
    try {
      await prepared.startForwarder(t.forwarderEnv);
      const agent = await prepared.startAgent({ ...t.agent, holdStdin: true });
      this.opts.logger.debug({ key, sandbox: prepared.id.slice(0, 12) }, 'warm sandbox ready');
      return { key, template: t, prepared, agent, readyAt: Date.now() };
    } catch (err) {
      this.unbound.delete(prepared.id);
      await prepared.remove().catch(() => undefined);
      throw err;
    }
  }

  /** Takes `w` out of the memory count (it leaves the pool: claimed or dropped). */
  private release(w: WarmSandbox): void {
    this.heldBytes -= w.template.environment.limits.memoryBytes;
  }

  private drop(w: WarmSandbox, why: string): void {
    this.release(w);
    this.discard(w, why);
  }

  private track(p: Promise<unknown>): void {
    const q = p.catch((err: unknown) => this.opts.logger.warn({ err }, 'removing a warm sandbox failed'));
    this.removing.add(q);
    void q.finally(() => this.removing.delete(q));
  }

  /** Idle expiry: sandboxes unclaimed for idleMs go; keys unused for idleMs are not refilled. */
  private expire(): void {
    const now = Date.now();
    for (const [key, list] of this.ready) {
      const keep = list.filter((w) => now - w.readyAt < this.opts.idleMs);
      for (const w of list) if (!keep.includes(w)) this.drop(w, 'idle expiry');
      this.ready.set(key, keep);
      if (now - (this.lastWanted.get(key) ?? 0) < this.opts.idleMs) this.fill(key);
    }
  }
}
