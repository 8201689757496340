import type { Logger } from 'pino';
import type { EgressPolicy } from '../egress/policy.js';
import type { EnvironmentStore } from '../environments/store.js';
import type { JudgeDefaults } from '../evaluation/plan.js';
import type { AgentName } from '../events/types.js';
import type { TaskStore } from '../jetty/tasks.js';
import type { UploadStore } from '../jetty/uploads.js';
import type { RealProvider } from '../providers/upstreams.js';
import type { RunService } from '../queue/run-service.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { TenancyStore } from '../tenancy/store.js';
import type { OperationsDeps } from './operations.js';
import type { UiSettings } from './ui-page.js';

/** What buildApp needs. Everything is passed in: the app reads no environment and opens nothing. */
export interface AppDeps {
  runs: RunService;
  blobs: BlobStore;
  tenancy: TenancyStore;
  /** The operator's token that may create and list collections (JETTY_ADMIN_TOKEN). */
  adminToken: string | undefined;
  uploads: UploadStore;
  tasks: TaskStore;
  /** What workers found of the snapshots' images (GET /v1/snapshots); absent: names only. */
  environments?: Pick<EnvironmentStore, 'listSnapshots'>;
  logger?: Logger;
  heartbeatMs: number;
  maxBodyBytes: number;
  /** The web page's bounds (UI_PREVIEW_MAX_BYTES, UI_MAX_TIMELINE_EVENTS); defaults when absent. */
  ui?: UiSettings;
  /** How deep JSON may nest (MAX_JSON_DEPTH): bodies and JSON form fields past it are a 400. */
  maxJsonDepth: number;
  /** Bytes of request headers read at most (MAX_HEADER_BYTES); past it, a 431. */
  maxHeaderBytes: number;
  defaults: {
    agent: AgentName;
    timeoutSec: number;
    maxTimeoutSec: number;
    timeoutHintSec: number;
    sandbox: {
      cpus: number;
      memoryBytes: number;
      pids: number;
      diskBytes: number;
      maxDiskBytes: number;
      /** What a run may ask for with cpus and memory. */
      maxCpus: number;
      maxMemoryBytes: number;
      /** Snapshot names this server serves (lean always among them). */
      snapshots: string[];
      allowCustomImages: boolean;
    };
    /** The operator's egress policy: every collection's default and ceiling (EGRESS_POLICY, EGRESS_ALLOW). */
    egress: EgressPolicy;
    /** The operator's maximum budget of a run, and the budget of a run that names none. */
    budget: { maxCostUsd: number; maxTokens: number };
    /** The judge of rubric runbooks that name none (JUDGE_MODEL, JUDGE_PROVIDER), and re-grade waits. */
    evaluation?: { judge: JudgeDefaults; regradeWaitSec: number };
    /** A/B experiments' bounds (EXPERIMENT_MAX_RUNS, EXPERIMENT_MAX_VARIANTS). */
    experiments?: { maxRuns: number; maxVariants: number };
  };
  /** Provider keys the server itself holds (shared by every collection without its own). */
  serverProviderKeys: Partial<Record<RealProvider, string>>;
  simulatedProvider: boolean;
  /** A provider's base URL. */
  upstreamUrl: (provider: RealProvider) => string;
  /** Metrics, CORS, the rate limit and the queue dashboard (src/http/operations.ts); absent: all off. */
  operations?: OperationsDeps;
  /** Readiness of each dependency, for /readyz. */
  readiness: () => Promise<Record<string, boolean>>;
}
