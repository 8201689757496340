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
