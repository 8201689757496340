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

  it('documents every event stream, the experiments one too, as text/event-stream only', async () => {
    const doc = JSON.parse(await generateOpenApi());
    const streams = Object.keys(doc.paths).filter((p) => p.endsWith('/events'));
    expect(streams.sort()).toEqual(['/v1/experiments/{id}/events', '/v1/runs/{id}/events']);
    for (const p of streams) {
      const ok = doc.paths[p].get.responses['200'];
      expect(Object.keys(ok?.content ?? {}), p).toEqual(['text/event-stream']);
      expect(ok.content['text/event-stream'].schema.description, p).toMatch(/`data:`/);
      // A stream that cannot start answers JSON, like every error.
      expect(Object.keys(doc.paths[p].get.responses['404'].content), p).toEqual(['application/json']);
    }
  });

  it('documents file downloads as bytes, not as an empty default response', async () => {
    const doc = JSON.parse(await generateOpenApi());
    for (const p of ['/v1/runs/{id}/artifacts/{path}', '/api/v1/file/{path}']) {
      const ok = doc.paths[p].get.responses['200'];
      expect(ok.content, p).toEqual({
        'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
      });
      expect(ok.description, p).not.toBe('Default Response');
    }
  });

  it('every /v1 operation documents what its success answers', async () => {
    const doc = JSON.parse(await generateOpenApi());
    const bare: string[] = [];
    for (const [p, ops] of Object.entries<Record<string, { responses: Record<string, any> }>>(doc.paths)) {
      if (!p.startsWith('/v1/')) continue;
      for (const [method, op] of Object.entries(ops)) {
        const ok = Object.entries(op.responses).find(([code]) => /^2\d\d$/.test(code))?.[1];
        if (!ok?.content) bare.push(`${method.toUpperCase()} ${p}`);
      }
    }
    expect(bare).toEqual([]);
  });

  it('names every path parameter its template has, and no other', async () => {
    const doc = JSON.parse(await generateOpenApi());
    for (const [p, ops] of Object.entries<Record<string, { parameters?: { in: string; name: string }[] }>>(
      doc.paths,
    )) {
      const inTemplate = [...p.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
      for (const [method, op] of Object.entries(ops)) {
        const declared = (op.parameters ?? [])
          .filter((x) => x.in === 'path')
          .map((x) => x.name)
          .sort();
        expect(declared, `${method.toUpperCase()} ${p}`).toEqual(inTemplate);
      }
    }
  });

  it('the evaluation and experiment routes need a collection key (the padlock), like the runs', async () => {
    const doc = JSON.parse(await generateOpenApi());
    const routes: [string, string][] = [
      ['/v1/runs/{id}/evaluate', 'post'],
      ['/v1/experiments', 'post'],
      ['/v1/experiments/{id}', 'get'],
      ['/v1/experiments/{id}/cancel', 'post'],
      ['/v1/experiments/{id}/events', 'get'],
    ];
    for (const [p, m] of routes) {
      expect(doc.paths[p]?.[m], `${m} ${p}`).toBeDefined();
      expect(doc.paths[p][m].security, `${m} ${p}`).toBeUndefined();
    }
  });
});
