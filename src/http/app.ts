import { randomUUID } from 'node:crypto';
import fastifyMultipart from '@fastify/multipart';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { jsonTooDeep } from '../errors.js';
import { jsonNestingDepth } from '../json.js';
import { registerAuth } from './auth.js';
import type { AppDeps } from './deps.js';
import { registerErrorHandling } from './errors.js';
import { clientErrorHandler, frameworkErrorHandler, MAX_PATH_SEGMENT } from './framework-errors.js';
import { ADMIN_TOKEN_SCHEME, openApiTransform } from './openapi-transform.js';
import { operationsRoutes, registerEdges } from './operations.js';
import { RequestLog } from './request-log.js';
import { apiV1CollectionRoutes } from './routes/api-v1-collections.js';
import { apiV1RunRoutes } from './routes/api-v1-runs.js';
import { chatRoutes } from './routes/chat.js';
import { collectionSettingsRoutes } from './routes/collection-settings.js';
import { conversationRoutes } from './routes/conversations.js';
import { evaluateRoutes } from './routes/evaluate.js';
import { experimentRoutes } from './routes/experiments.js';
import { keyRoutes } from './routes/keys.js';
import { metaRoutes } from './routes/meta.js';
import { runRoutes } from './routes/runs.js';
import { uiRoutes } from './routes/ui.js';
import { OpenStreams } from './streams.js';

export const API_VERSION = '0.1.0';

/**
 * JSON bodies: nesting is measured before parsing, since the code after the parser (validation,
 * JSON.stringify of template variables) recurses and overflows the stack on a deep enough body;
 * and an empty body is no body, as clients send on bodyless POSTs such as cancel.
 */
function registerJsonParser(app: FastifyInstance, maxDepth: number): void {
  // Fastify's own parser, with its protection against __proto__ and constructor.prototype keys.
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const text = body as string;
    if (text.trim() === '') return done(null, undefined);
    if (jsonNestingDepth(text, maxDepth) > maxDepth)
      return done(jsonTooDeep('The JSON body', maxDepth), undefined);
    parse(req, text, done);
  });
}

/**
 * Builds the HTTP API without listening: tests call inject() on it or listen on port 0; src/main
 * listens. Every response carries x-request-id (the caller's, when it sent a sane one).
 */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger | undefined,
    logController: new RequestLog(),
    bodyLimit: deps.maxBodyBytes,
    maxParamLength: MAX_PATH_SEGMENT,
    http: { maxHeaderSize: deps.maxHeaderBytes },
    frameworkErrors: frameworkErrorHandler,
    clientErrorHandler: clientErrorHandler(deps.maxHeaderBytes),
    // Jetty's clients: GET /api/v1/collections/ has its slash, POST /api/v1/tasks/{c} has none, and
    // the SDK turns a base URL ending in "/" into //api/v1/...; each is served where it lands.
    routerOptions: { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true },
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[A-Za-z0-9._-]{1,128}$/.test(given)
        ? given
        : `req_${randomUUID()}`;
    },
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.addHook('onRequest', async (req, reply) => {
    void reply.header('x-request-id', req.id);
  });
  // An answer given before the body was all read (an upload past its limit): the rest of the body
  // is still on the connection, and a next request sent on it would wait behind it forever.
  app.addHook('onSend', async (req, reply, payload) => {
    if (!req.raw.complete) void reply.header('connection', 'close');
    return payload;
  });
  registerErrorHandling(app);
  registerJsonParser(app, deps.maxJsonDepth);
  // CORS preflights and the rate limit come before the key check (see src/http/operations.ts).
  await registerEdges(app, deps.operations);
  registerAuth(app, { tenancy: deps.tenancy, adminToken: deps.adminToken });
  await app.register(fastifyMultipart, {
    throwFileSizeLimit: false,
    limits: {
      fileSize: deps.uploads.limits.maxFileBytes,
      files: deps.uploads.limits.maxFiles,
      fields: 20,
      // init_params may hold a whole runbook: as much as a JSON request body may.
      fieldSize: deps.maxBodyBytes,
      parts: deps.uploads.limits.maxFiles + 20,
    },
  });

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Runbook runtime server',
        description:
          'Runs coding agents on runbooks in sandboxes and streams what they do, behind an OpenAI-compatible API.',
        version: API_VERSION,
      },
      tags: [
        { name: 'chat', description: 'OpenAI-compatible chat completions that run runbooks' },
        { name: 'runs', description: 'Runs (trajectories): records, events, artifacts, cancel' },
        { name: 'runtimes', description: 'Agent runtimes and models' },
        { name: 'keys', description: 'Your collection’s API keys: list, create, revoke' },
        { name: 'health', description: 'Liveness and readiness' },
        {
          name: 'jetty',
          description:
            "Jetty's /api/v1: what @jetty/sdk and jetty-mcp-server call (collections, environment, tasks, runs, trajectories, labels, files)",
        },
      ],
      components: {
        securitySchemes: {
          collectionKey: {
            type: 'http',
            scheme: 'bearer',
            description:
              'An API key of your collection (jrk_…); /healthz, /readyz, /api/v1/health and this document need none.',
          },
          adminToken: ADMIN_TOKEN_SCHEME,
        },
      },
      security: [{ collectionKey: [] }],
    },
    transform: openApiTransform,
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true }, config: { auth: 'public' } }, async () => app.swagger());

  const streams = new OpenStreams(deps.heartbeatMs);
  streams.register(app);
  metaRoutes(app, deps);
  runRoutes(app, deps, streams);
  evaluateRoutes(app, deps);
  experimentRoutes(app, deps, streams);
  chatRoutes(app, deps, streams);
  conversationRoutes(app, deps);
  keyRoutes(app, deps);
  collectionSettingsRoutes(app, deps);
  apiV1CollectionRoutes(app, deps);
  apiV1RunRoutes(app, deps);
  uiRoutes(app, deps.ui);
  await operationsRoutes(app, deps.operations, {
    adminToken: deps.adminToken,
    streams,
    follows: () => deps.runs.events.followStats(),
  });
  return app;
}
