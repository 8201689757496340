import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { AppError, notFound } from '../../errors.js';
import { indexHtml, STYLE_CSS, type UiSettings } from '../ui-page.js';

/**
 * The page is public (it holds nothing of anyone's); the API calls it makes carry the key, which
 * the page keeps in sessionStorage and sends as a Bearer header, never in a URL. Its policy allows
 * scripts and styles from this server only and connections to this server only; nothing else.
 */
export const UI_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export const UI_DEFAULTS: UiSettings = { previewMaxBytes: 2 * 1024 * 1024, maxTimelineEvents: 5000 };

/** dist/ui (the compiled modules), whether this file runs from dist/ or from src/ under a test runner. */
function uiDir(): string | null {
  const here = import.meta.dirname;
  for (const dir of [path.resolve(here, '../../../ui'), path.resolve(here, '../../../dist/ui')]) {
    if (existsSync(path.join(dir, 'web', 'app.js'))) return dir;
  }
  return null;
}

/** The compiled modules, read once: "web/app.js" → its text. Only these names are ever served. */
function loadModules(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const sub of ['web', 'events']) {
    const d = path.join(dir, sub);
    if (!existsSync(d)) continue;
    for (const name of readdirSync(d)) {
      if (name.endsWith('.js')) files.set(`${sub}/${name}`, readFileSync(path.join(d, name), 'utf8'));
    }
  }
  return files;
}

function secure(reply: FastifyReply, type: string): FastifyReply {
  return reply
    .header('content-type', type)
    .header('content-security-policy', UI_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY')
    .header('cache-control', 'no-cache');
}

export function uiRoutes(app: FastifyInstance, settings: UiSettings = UI_DEFAULTS): void {
  const dir = uiDir();
  const modules = dir ? loadModules(dir) : new Map<string, string>();
  const page = indexHtml(settings);
  const hidden = { schema: { hide: true }, config: { auth: 'public' as const } };

  app.get('/ui', hidden, async (_req, reply) => {
    if (!modules.size) {
      throw new AppError(
        'The web page is not built: run `npm run build` (it compiles src/web into dist/ui).',
        {
          status: 503,
          type: 'service_unavailable',
          code: 'ui_not_built',
        },
      );
    }
    return secure(reply, 'text/html; charset=utf-8').send(page);
  });
  app.get('/ui/style.css', hidden, async (_req, reply) =>
    secure(reply, 'text/css; charset=utf-8').send(STYLE_CSS),
  );
  app.get('/ui/*', hidden, async (req, reply) => {
    const name = (req.params as { '*': string })['*'];
    const body = modules.get(name);
    if (body === undefined)
      throw notFound(`The web page has no file "${name}". Open /ui.`, 'ui_file_not_found');
    return secure(reply, 'text/javascript; charset=utf-8').send(body);
  });
}
