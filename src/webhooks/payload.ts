import { type JettyTrajectory, jettyTrajectory, type RunInput } from '../jetty/trajectory.js';
import type { RunLabel, RunView } from '../queue/run-service.js';

/**
 * The body POSTed to a run's webhook: the run's trajectory, as Jetty sends it to its callbacks
 * and exactly as GET /api/v1/db/trajectory/{c}/{t}/{id} returns it once the run has ended (one
 * step, `run`, whose outputs list the files by storage key).
 */
export function buildWebhookPayload(run: RunView, input: RunInput, labels: RunLabel[] = []): JettyTrajectory {
  return jettyTrajectory(run, input, labels);
}
