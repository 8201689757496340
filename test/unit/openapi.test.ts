import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { generateOpenApi } from '../../src/http/openapi.js';

describe('the committed OpenAPI document', () => {
  it('matches what the route schemas generate (run `npm run build && npm run openapi` after changing a route)', async () => {
    const committed = await readFile(new URL('../../openapi/openapi.json', import.meta.url), 'utf8');
    expect(JSON.parse(committed)).toEqual(JSON.parse(await generateOpenApi()));
  });

  it('documents the runbook routes with their request schema', async () => {
    const doc = JSON.parse(await generateOpenApi());
    expect(doc.openapi).toBe('3.1.0');
    const chat = doc.paths['/v1/chat/completions'].post;
    expect(chat.requestBody.content['application/json'].schema.properties.jetty).toBeDefined();
    for (const p of [
      '/v1/runs/{id}',
      '/v1/runs/{id}/events',
      '/v1/runs/{id}/cancel',
      '/v1/runs/{id}/artifacts',
      '/v1/runtimes',
    ]) {
      expect(doc.paths[p], p).toBeDefined();
    }
  });
});

describe('the OpenAPI document as Swagger UI shows it', () => {
  it('shows no padlock on routes open to anyone, and both keys where the admin token also opens', async () => {
    const doc = JSON.parse(await generateOpenApi());
    expect(doc.security).toEqual([{ collectionKey: [] }]);
    for (const p of ['/healthz', '/readyz', '/metrics', '/api/v1/health']) {
      expect(doc.paths[p].get.security, p).toEqual([]);
    }
    expect(doc.paths['/v1/runs'].get.security).toBeUndefined();
    expect(doc.paths['/api/v1/collections/'].get.security).toEqual([
      { collectionKey: [] },
      { adminToken: [] },
    ]);
    expect(doc.components.securitySchemes.adminToken).toMatchObject({ type: 'http', scheme: 'bearer' });
  });

  it('names wildcard path segments instead of showing {*}', async () => {
    const doc = JSON.parse(await generateOpenApi());
    expect(Object.keys(doc.paths).filter((p) => p.includes('{*}'))).toEqual([]);
    const download = doc.paths['/v1/runs/{id}/artifacts/{path}'].get;
    expect(download.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`)).toEqual([
      'path:id',
      'path:path',
    ]);
    expect(doc.paths['/api/v1/file/{path}']).toBeDefined();
  });

  it('documents the streams as text/event-stream and /metrics as text', async () => {
    const doc = JSON.parse(await generateOpenApi());
    const events = doc.paths['/v1/runs/{id}/events'].get.responses['200'].content;
    expect(Object.keys(events)).toEqual(['text/event-stream']);
    const chat = doc.paths['/v1/chat/completions'].post.responses['200'].content;
    expect(Object.keys(chat).sort()).toEqual(['application/json', 'text/event-stream']);
    expect(chat['application/json'].schema).toMatchObject({ type: 'object' });
    const metrics = doc.paths['/metrics'].get.responses['200'].content;
    expect(Object.keys(metrics)).toEqual(['text/plain; version=0.0.4']);
  });
});
