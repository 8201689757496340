/**
 * The simulated model provider: a real wire protocol with scripted answers, so a real agent CLI in
 * a real sandbox executes real tool calls without any model behind it. The script comes from the
 * runbook's `simulate` block, or a default dry run that writes the required output files.
 *
 * It is stateless: every answer is decided from the request alone (turn N = the request carrying N
 * tool results), so retries replay their turn and one provider can serve any number of requests.
 */
import { anthropicProtocol } from './anthropic.js';
import { defaultSteps } from './default-policy.js';
import { geminiProtocol } from './gemini.js';
import { openaiChatProtocol } from './openai-chat.js';
import { openaiResponsesProtocol } from './openai-responses.js';
import type { TurnPlan } from './plan.js';
import { compileTurns } from './plan.js';
import type { Protocol } from './protocol.js';
import { parseSimulateScript } from './script.js';

export type { Turn, TurnItem, TurnPlan } from './plan.js';
export { compileTurns } from './plan.js';
export type { SimStep, SimulateScriptValidation } from './script.js';
export { MAX_SLEEP_MS, parseSimulateScript, SimulateScriptError, validateSimulateScript } from './script.js';

export interface SimulationContext {
  /** The templated runbook text; a fenced block with info string `simulate` holds the script. */
  runbook: string;
  /** Absolute paths the runbook requires (REQUIRED OUTPUT FILES and primary_outputs), for the default policy. */
  requiredOutputs: string[];
  /** e.g. /app/results */
  resultsDir: string;
  /** e.g. /app; relative required outputs are resolved against it. */
  workdir: string;
}

export interface SimulatedProvider {
  /** Same contract as fetch: the gateway calls it instead of a real upstream. */
  fetch(request: Request): Promise<Response>;
  /** The turns this provider answers, in order (for logs and dry-run previews). */
  readonly plan: TurnPlan;
}

/** Protocols in the order their routes are tried; the first one also shapes 404s. */
const PROTOCOLS: readonly Protocol[] = [
  anthropicProtocol,
  geminiProtocol,
  openaiResponsesProtocol,
  openaiChatProtocol,
];

/**
 * Throws SimulateScriptError (422) when the runbook's script is invalid; callers should have
 * rejected such a runbook with validateSimulateScript before queueing it.
 */
export function createSimulatedProvider(ctx: SimulationContext): SimulatedProvider {
  const steps = parseSimulateScript(ctx.runbook) ?? defaultSteps(ctx);
  const plan = compileTurns(steps);
  return {
    plan,
    async fetch(request) {
      request.signal.throwIfAborted();
      const url = new URL(request.url);
      // CLIs probe the base URL before their first call (claude sends `HEAD /`).
      if (request.method === 'HEAD') return new Response(null, { status: 200 });
      if (request.method === 'GET' && url.pathname === '/') return new Response(null, { status: 200 });
      for (const protocol of PROTOCOLS) {
        const handler = protocol.route(request.method, url.pathname);
        if (handler !== undefined) return handler(request, plan);
      }
      return PROTOCOLS[0]!.notFound(request.method, url.pathname);
    },
  };
}
