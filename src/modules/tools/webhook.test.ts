import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { scrubSecret } from './secret-scrub.js';
import { isReservedWebhookHeader, webhookSignature } from './webhook.js';

describe('webhook signature', () => {
  it('is the hex HMAC-SHA256 of the exact body, prefixed sha256=', () => {
    const body = '{"tool":"t","args":{"a":"é"},"execution_id":"x"}';
    expect(webhookSignature('k3y', body)).toBe(`sha256=${createHmac('sha256', 'k3y').update(Buffer.from(body, 'utf8')).digest('hex')}`);
    expect(webhookSignature('k3y', `${body} `)).not.toBe(webhookSignature('k3y', body));
  });

  it('cannot be overridden by a tool’s static headers', () => {
    expect(isReservedWebhookHeader('x-cdsa-signature')).toBe(true);
    expect(isReservedWebhookHeader('Content-Type')).toBe(true);
    expect(isReservedWebhookHeader('X-Team')).toBe(false);
  });
});

describe('scrubSecret', () => {
  it('removes a secret echoed back, raw or JSON-escaped', () => {
    expect(scrubSecret('auth: Bearer s3cr3t-value!', 's3cr3t-value!')).toBe('auth: Bearer [REDACTED]');
    expect(scrubSecret('{"h":"a\\"quoted\\"secret"}', 'a"quoted"secret')).toBe('{"h":"[REDACTED]"}');
    expect(scrubSecret('short ab', 'ab')).toBe('short ab');
    expect(scrubSecret('nothing', undefined)).toBe('nothing');
  });
});
