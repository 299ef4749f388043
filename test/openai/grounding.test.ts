import OpenAI, { type APIError } from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { startMockLlm, textReply, toolCallReply, type MockLlm } from '../mock-llm/server.js';
import { uploadIndexed } from '../documents/helpers.js';
import { CLOUD, createKey, LOCAL, startCdsa, upstreamChat, v1Url } from './helpers.js';

/**
 * The `cdsa` extension of /v1: grounding in documents with the key owner's clearance, citations in `cdsa.citations`,
 * sensitivity routing (routed to the local fallback, or refused with an OpenAI-shaped 403), and the daily token
 * budget and per-user rate limit as OpenAI's 429s.
 */
const SLOW = 240_000;
let mock: MockLlm;
/** LOCAL_FALLBACK_MODEL is the Ollama mock. */
let routed: TestApp;
/** No fallback: above CLOUD_MAX_LABEL is refused. A small budget and rate limit. */
let strict: TestApp;

const policy = { CLOUD_MAX_LABEL: 'INTERNAL', DOCUMENT_CHUNK_TOKENS: '50', DOCUMENT_CHUNK_OVERLAP: '0' };

beforeAll(async () => {
  mock = await startMockLlm({ models: ['mock-model'] });
  routed = await startCdsa(mock, { ...policy, LOCAL_FALLBACK_MODEL: LOCAL }, { processJobs: true });
  strict = await startCdsa(mock, { ...policy, LLM_DAILY_TOKEN_BUDGET: '100', CHAT_RATE_LIMIT_REQUESTS: '3', CHAT_RATE_LIMIT_PERIOD: '600' }, { processJobs: true });
}, SLOW);

afterAll(async () => {
  await routed?.close();
  await strict?.close();
  await mock?.close();
});

beforeEach(() => {
  mock.requests.length = 0;
});

async function keyed(t: TestApp, role: 'ANALYST' | 'MANAGER' = 'ANALYST'): Promise<{ user: TestUser; client: OpenAI; keyId: string }> {
  const user = await createUser(t, { role });
  const key = await createKey(t, user, ['chat']);
  return { user, keyId: key.id, client: new OpenAI({ apiKey: key.key, baseURL: v1Url(t), maxRetries: 0 }) };
}

/** A request body with the CDSA extension, which OpenAI's types do not know. */
const withCdsa = <T extends object>(body: T, cdsa: Record<string, unknown>): T => ({ ...body, cdsa }) as T;

type WithCdsa = { cdsa?: { citations: Array<{ n: number; document_id: string; title: string }>; label: string; routed_to: string | null } };

describe('cdsa.document_ids', () => {
  it('grounds the answer in a readable document and returns its citations; another user’s document is a 404, nothing sent', async () => {
    const { user, client } = await keyed(routed);
    const doc = await uploadIndexed(routed, user, 'ospray.txt', 'The OSPREY-7731 project ships in March. It is led by the platform team.', {}, SLOW / 2);
    expect(doc.status).toBe('indexed');

    mock.script(textReply(['It ships in March [1].']));
    const completion = (await client.chat.completions.create(
      withCdsa(
        {
          model: CLOUD,
          messages: [{ role: 'user', content: 'When does it ship?' }],
        },
        { document_ids: [doc.id] },
      ),
    )) as OpenAI.Chat.Completions.ChatCompletion & WithCdsa;
    expect(completion.choices[0]!.message.content).toBe('It ships in March [1].');
    expect(completion.cdsa!.citations).toEqual([expect.objectContaining({ n: 1, document_id: doc.id })]);
    expect(completion.cdsa).toMatchObject({ label: 'INTERNAL', routed_to: null });
    expect(upstreamChat(mock)).toContain('OSPREY-7731');

    // Streaming: the citations ride on the last chunk.
    mock.script(textReply(['March [1].']));
    const stream = await client.chat.completions.create(
      withCdsa(
        {
          model: CLOUD,
          messages: [{ role: 'user', content: 'When?' }],
          stream: true,
        },
        { document_ids: [doc.id] },
      ),
    );
    const chunks: Array<OpenAI.Chat.Completions.ChatCompletionChunk & WithCdsa> = [];
    for await (const chunk of stream) chunks.push(chunk);
    const final = chunks.find((c) => c.choices[0]?.finish_reason === 'stop')!;
    expect(final.cdsa!.citations.map((c) => c.document_id)).toEqual([doc.id]);
    expect(chunks.filter((c) => c.cdsa).length).toBe(1);

    mock.requests.length = 0;
    const other = await keyed(routed);
    const refused = await other.client.chat.completions
      .create(
        withCdsa(
          {
            model: CLOUD,
            messages: [{ role: 'user', content: 'Summarise' }],
          },
          { document_ids: [doc.id] },
        ),
      )
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.NotFoundError);
    expect(mock.chatRequests()).toHaveLength(0);
  }, SLOW);

  it('CONFIDENTIAL context goes to the local fallback (cdsa.routed_to, LLM_ROUTED with the key id), never to the cloud', async () => {
    const { user, client, keyId } = await keyed(routed, 'MANAGER');
    const doc = await uploadIndexed(routed, user, 'heron.txt', 'The HERON-CONF-4471 dossier: figures for the board.', { label: 'CONFIDENTIAL' }, SLOW / 2);
    mock.script(textReply(['The dossier [1].']));
    const completion = (await client.chat.completions.create(
      withCdsa(
        {
          model: CLOUD,
          messages: [{ role: 'user', content: 'What does the dossier say?' }],
        },
        { document_ids: [doc.id] },
      ),
    )) as OpenAI.Chat.Completions.ChatCompletion & WithCdsa;
    expect(completion.model).toBe(LOCAL);
    expect(completion.cdsa).toMatchObject({ routed_to: LOCAL, label: 'CONFIDENTIAL' });
    expect(mock.chatRequests().map((r) => r.wire)).toEqual(['ollama']);
    const routedEvents = (await auditEvents(routed, 'LLM_ROUTED')).filter((e) => e.details.api_key_id === keyId);
    expect(routedEvents).toHaveLength(1);
    expect(routedEvents[0]!.details).toMatchObject({ action: 'route', from: CLOUD, to: LOCAL, label: 'CONFIDENTIAL' });
  }, SLOW);

  it('without a fallback the request is refused with an OpenAI-shaped 403 before anything is sent', async () => {
    const { user, client, keyId } = await keyed(strict, 'MANAGER');
    const doc = await uploadIndexed(strict, user, 'kite.txt', 'The KITE-CONF-9 memo.', { label: 'CONFIDENTIAL' }, SLOW / 2);
    const refused = await client.chat.completions
      .create(
        withCdsa(
          {
            model: CLOUD,
            messages: [{ role: 'user', content: 'Summarise' }],
            stream: true,
          },
          { document_ids: [doc.id] },
        ),
      )
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(refused as APIError).toMatchObject({ type: 'permission_error', code: 'sensitivity_routing_refused' });
    expect(mock.chatRequests()).toHaveLength(0);
    const events = (await auditEvents(strict, 'LLM_ROUTED')).filter((e) => e.details.api_key_id === keyId);
    expect(events.map((e) => e.details.action)).toEqual(['refuse']);
  }, SLOW);
});

describe('tools on /v1', () => {
  it("CDSA's own tools are never offered, with knowledge auto or not: only the client's", async () => {
    const { user, client } = await keyed(routed);
    const listed = await routed.app.inject({ method: 'GET', url: '/api/v1/tools', headers: user.headers });
    expect(listed.json().items.map((tool: { name: string }) => tool.name)).toContain('redact_text');
    const tools: OpenAI.Chat.Completions.ChatCompletionTool[] = [{ type: 'function', function: { name: 'local_only', parameters: { type: 'object', properties: {} } } }];
    for (const knowledge of ['auto', 'none'] as const) {
      mock.script(textReply(['ok']));
      await client.chat.completions.create(withCdsa({ model: CLOUD, messages: [{ role: 'user', content: 'hi' }], tools }, { knowledge }));
    }
    const offered = mock.chatRequests().map((r) => ((r.body as { tools?: Array<{ function: { name: string } }> }).tools ?? []).map((t) => t.function.name));
    // search_documents is the one CDSA tool knowledge "auto" adds.
    for (const names of offered) expect(names.filter((name) => name !== 'search_documents')).toEqual(['local_only']);
    expect(offered[1]).toEqual(['local_only']);
  });
});

describe('the routing policy in GET /llm/config', () => {
  it('reports CLOUD_MAX_LABEL and LOCAL_FALLBACK_MODEL as this instance applies them, read-only', async () => {
    for (const [t, fallback] of [[routed, LOCAL], [strict, null]] as const) {
      const admin = await createUser(t, { role: 'ADMIN' });
      const config = await t.app.inject({ url: '/api/v1/llm/config', headers: admin.headers });
      expect(config.json().routing).toEqual({ cloud_max_label: 'INTERNAL', local_fallback_model: fallback });
      const put = await t.app.inject({ method: 'PUT', url: '/api/v1/llm/config', headers: admin.headers, payload: { routing: { cloud_max_label: 'CONFIDENTIAL' } } });
      // Not a setting of the API: an unknown field of the update, refused as invalid.
      expect(put.statusCode).toBe(422);
    }
  });
});

describe('cdsa.knowledge auto', () => {
  it('offers search_documents, runs it inside the turn with the key owner’s clearance, and returns the citation', async () => {
    const { user, client } = await keyed(routed);
    const other = await createUser(routed);
    const doc = await uploadIndexed(routed, user, 'heron.txt', 'The HERON-5512 programme budget was approved in March by the board.', {}, SLOW / 2);
    await uploadIndexed(routed, other, 'heron-other.txt', 'HERON-5512 programme budget notes that only their owner may read.', {}, SLOW / 2);
    expect(doc.status).toBe('indexed');

    mock.script(toolCallReply('search_documents', { query: 'HERON-5512 programme budget' }, { id: 'call_search' }), textReply(['Approved in March [1].']));
    const completion = (await client.chat.completions.create(
      withCdsa({ model: CLOUD, messages: [{ role: 'user', content: 'When was the HERON-5512 budget approved?' }] }, { knowledge: 'auto' }),
    )) as OpenAI.Chat.Completions.ChatCompletion & WithCdsa;

    expect(completion.choices[0]!.message.content).toBe('Approved in March [1].');
    expect(completion.cdsa?.citations).toEqual([expect.objectContaining({ n: 1, document_id: doc.id })]);
    const [first, second] = mock.chatRequests();
    expect(JSON.stringify((first!.body as { tools?: unknown }).tools)).toContain('search_documents');
    // The search result went up as the tool's answer: the caller's passage, never the other user's.
    const fed = JSON.stringify((second!.body as { messages: unknown[] }).messages);
    expect(fed).toContain('approved in March by the board');
    expect(fed).not.toContain('only their owner may read');
  });
});

describe('budgets and rate limits are OpenAI 429s', () => {
  it('the daily token budget: insufficient_quota with Retry-After, nothing sent', async () => {
    const { client } = await keyed(strict);
    mock.script(textReply(['long answer'], { usage: [80, 40] }));
    await client.chat.completions.create({ model: CLOUD, messages: [{ role: 'user', content: 'hi' }] });
    mock.requests.length = 0;
    const over = await client.chat.completions.create({ model: CLOUD, messages: [{ role: 'user', content: 'again' }] }).catch((e: unknown) => e);
    expect(over).toBeInstanceOf(OpenAI.RateLimitError);
    expect(over as APIError).toMatchObject({ type: 'insufficient_quota', code: 'insufficient_quota' });
    expect(Number((over as APIError).headers?.get('retry-after'))).toBeGreaterThan(0);
    expect(mock.chatRequests()).toHaveLength(0);
  });

  it('the per-user chat rate limit: rate_limit_exceeded', async () => {
    const { client } = await keyed(strict);
    mock.setDefault(textReply(['.'], { usage: [1, 1] }));
    try {
      const outcomes: unknown[] = [];
      for (let i = 0; i < 4; i += 1) {
        outcomes.push(await client.chat.completions.create({ model: CLOUD, messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e));
      }
      expect(outcomes.slice(0, 3).every((o) => !(o instanceof Error))).toBe(true);
      expect(outcomes[3]).toBeInstanceOf(OpenAI.RateLimitError);
      expect(outcomes[3] as APIError).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded' });
    } finally {
      mock.setDefault(null);
    }
  });
});
