import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { withoutMarkers } from '../../conversations/marker.js';
import { notFound, quoted } from '../../errors.js';
import { TERMINAL_STATUSES } from '../../events/types.js';
import { collectionOf } from '../auth.js';
import type { AppDeps } from '../deps.js';
import { errorEnvelopeSchema } from '../schemas.js';

/** A turn's message and answer as the conversation view shows them: enough to read, not the whole run. */
const TEXT_MAX = 4000;

const turnSchema = z.object({
  run_id: z.string(),
  turn: z.number(),
  parent_run_id: z.string().nullable(),
  status: z.string(),
  created_at: z.string(),
  ended_at: z.string().nullable(),
  message: z.string().describe("The user's input of this turn (cut at 4000 characters)"),
  answer: z.string().nullable().describe("The agent's final text (cut at 4000 characters)"),
  session_id: z.string().nullable().describe("The agent CLI's session id"),
  resumed: z.boolean().describe("Whether the turn resumed the previous turn's CLI session"),
});

const conversationSchema = z.object({
  id: z.string(),
  object: z.literal('conversation'),
  task: z.string().nullable(),
  agent: z.string(),
  model: z.string(),
  created_at: z.string(),
  active_run_id: z.string().nullable().describe('The turn under way, if one is: the next must wait for it'),
  turns: z.array(turnSchema),
});

export function conversationRoutes(app: FastifyInstance, deps: AppDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/v1/conversations/:id',
    {
      schema: {
        summary: "A conversation's turns, oldest first",
        description:
          "Every run started by /v1/chat/completions is a turn of a conversation whose id is its first turn's run id (`jetty_metadata.conversation_id`). A follow-up turn continues its parent (`parent_run_id`) in a new sandbox holding the parent's files, with the agent CLI's session resumed where the runtime can.",
        tags: ['runs'],
        params: z.object({ id: z.string().min(1).max(64) }),
        response: { 200: conversationSchema, 404: errorEnvelopeSchema },
      },
    },
    async (req) => {
      const collection = collectionOf(req);
      const conv = await deps.runs.conversations.get(req.params.id);
      if (!conv || conv.collection !== collection) {
        throw notFound(
          `No conversation ${quoted(req.params.id)} in this collection. Its id is jetty_metadata.conversation_id of its first answer.`,
          'conversation_not_found',
        );
      }
      const turns = [];
      let active: string | null = null;
      for (const id of await deps.runs.conversations.turns(conv.id)) {
        const run = await deps.runs.get(id, collection);
        if (!run) continue;
        if (!TERMINAL_STATUSES.includes(run.status)) active = run.id;
        const input = await deps.runs.input(run.id);
        const message = input && 'instruction' in input ? input.instruction : '';
        turns.push({
          run_id: run.id,
          turn: run.turn ?? 1,
          parent_run_id: run.parent_run_id ?? null,
          status: run.status,
          created_at: run.created_at,
          ended_at: run.ended_at,
          message: cut(message),
          answer: run.final_text === null ? null : cut(withoutMarkers(run.final_text)),
          session_id: run.session_id ?? null,
          resumed: run.resumed === true,
        });
      }
      return {
        id: conv.id,
        object: 'conversation' as const,
        task: conv.task,
        agent: conv.base.agent,
        model: conv.base.model,
        created_at: conv.created_at,
        active_run_id: active,
        turns,
      };
    },
  );
}

function cut(text: string): string {
  return text.length > TEXT_MAX ? `${text.slice(0, TEXT_MAX - 1)}…` : text;
}
