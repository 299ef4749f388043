import { expect } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { baseUrl } from '../helpers/sse.js';
import type { TestUser } from '../helpers/users.js';
import { mockEnv } from '../chat/helpers.js';
import type { MockLlm, RecordedRequest } from '../mock-llm/server.js';

export const CLOUD = 'openai/mock-model';
export const LOCAL = 'ollama/mock-model';
export const EMBED = 'openai/embed-model';

/** Valid by their checksums, so the redactor must catch them. */
export const EMAIL = 'jane.doe@example.com';
export const PHONE = '+1 415 555 0134';
export const IBAN = 'DE89 3704 0044 0532 0130 00';

/** CDSA in front of the mock provider, listening (OpenAI clients need a real port): OpenAI is the cloud provider. */
export async function startCdsa(mock: MockLlm, env: Record<string, string> = {}, options: { processJobs?: boolean } = {}): Promise<TestApp> {
  const t = await buildTestApp({
    env: mockEnv(mock.url, { OPENAI_LOCAL: 'false', REDACT_CLOUD_PROMPTS: 'true', EMBEDDING_MODEL: EMBED, ...env }),
    processJobs: options.processJobs ?? false,
  });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  return t;
}

/** The base URL OpenAI clients are given. */
export const v1Url = (t: TestApp): string => `${baseUrl(t.app)}/v1`;

export async function createKey(t: TestApp, who: TestUser, scopes: string[] = ['chat', 'embeddings']): Promise<{ id: string; key: string }> {
  const response = await t.app.inject({ method: 'POST', url: '/api/v1/api-keys', headers: who.headers, payload: { name: 'client', scopes } });
  expect(response.statusCode, response.body).toBe(201);
  return response.json() as { id: string; key: string };
}

/** Everything the upstream mock received for chat, as one string (to look for originals and placeholders). */
export const upstreamChat = (mock: MockLlm): string => JSON.stringify(mock.chatRequests().map((request: RecordedRequest) => request.body));
