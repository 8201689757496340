import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signWebhook, webhookHeaders } from '../../src/webhooks/signing.js';

const SECRET = 'whsec_test-secret';
const BODY = '{"trajectory_id":"0123456789abcdef","status":"completed"}';

describe('webhook signatures', () => {
  it('are the hex HMAC-SHA256 of "{timestamp}.{body}" keyed with the secret (vector from openssl dgst -hmac)', () => {
    expect(signWebhook(SECRET, 1700000000, BODY)).toBe(
      '5e1ce8fbffd961c8f59a2836d3469a99d9e27d1d8810ef3da3b5c0c6cf0ec6e6',
    );
    // Non-ASCII bodies are signed as their UTF-8 bytes, the bytes sent.
    expect(signWebhook(SECRET, 1700000000, '{"note":"café ✓"}')).toBe(
      '1c6359475955050d98d7eb5a520ff8d4db23d3891ede5cbd16c67cb23d92b4c9',
    );
  });

  it('match what a receiver computes with node:crypto', () => {
    const ts = 1767225600;
    const expected = createHmac('sha256', SECRET).update(`${ts}.${BODY}`).digest('hex');
    expect(signWebhook(SECRET, ts, BODY)).toBe(expected);
    // Another timestamp, another secret or another body: another signature.
    expect(signWebhook(SECRET, ts + 1, BODY)).not.toBe(expected);
    expect(signWebhook(`${SECRET}x`, ts, BODY)).not.toBe(expected);
    expect(signWebhook(SECRET, ts, `${BODY} `)).not.toBe(expected);
  });

  it('go in X-Mise-Signature beside X-Mise-Timestamp and X-Mise-Trajectory-Id', () => {
    const h = webhookHeaders({ runId: 'abc123', body: BODY, timestamp: 1700000000, secret: SECRET });
    expect(h).toMatchObject({
      'content-type': 'application/json',
      'X-Mise-Timestamp': '1700000000',
      'X-Mise-Trajectory-Id': 'abc123',
      'X-Mise-Signature': '5e1ce8fbffd961c8f59a2836d3469a99d9e27d1d8810ef3da3b5c0c6cf0ec6e6',
    });
    expect(JSON.stringify(h)).not.toContain(SECRET);
  });

  it('are left out when the run has no secret', () => {
    const h = webhookHeaders({ runId: 'abc123', body: BODY, timestamp: 1700000000, secret: undefined });
    expect(h['X-Mise-Signature']).toBeUndefined();
    expect(h['X-Mise-Timestamp']).toBe('1700000000');
  });
});
