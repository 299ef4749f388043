import { sql } from 'drizzle-orm';
import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { mockEmbedding, startMockLlm, textReply, toolCallReply, type MockLlm } from '../mock-llm/server.js';
import { CLOUD, createKey, EMAIL, EMBED, IBAN, LOCAL, PHONE, startCdsa, upstreamChat, v1Url } from './helpers.js';

/**
 * The official `openai` npm client against CDSA's /v1 in front of the mock provider: what the provider receives is
 * redacted, what the client gets is restored, and every error arrives as the client's own typed error.
 */
let mock: MockLlm;
let t: TestApp;
let admin: TestUser;

beforeAll(async () => {
  mock = await startMockLlm({ models: ['mock-model', 'embed-model', 'other-model'] });
  t = await startCdsa(mock);
  admin = await createUser(t, { role: 'ADMIN' });
});

afterAll(async () => {
  await t?.close();
  await mock?.close();
});

beforeEach(() => {
  mock.requests.length = 0;
  mock.setDefault(null);
});

async function clientFor(who?: TestUser, scopes?: string[]): Promise<{ client: OpenAI; key: { id: string; key: string }; user: TestUser }> {
  const user = who ?? (await createUser(t));
  const key = await createKey(t, user, scopes);
  return { client: new OpenAI({ apiKey: key.key, baseURL: v1Url(t), maxRetries: 0 }), key, user };
}

const eventsFor = async (type: string, keyId: string) => (await auditEvents(t, type)).filter((e) => e.details.api_key_id === keyId);

describe('chat completions', () => {
  it('non-streaming: the provider gets placeholders, the client the originals; audited with the key id', async () => {
    const { client, key, user } = await clientFor();
    mock.script(textReply(['I will write to [EMA', 'IL_1] and call [PHONE_1].'], { usage: [30, 9] }));

    const completion = await client.chat.completions.create({
      model: CLOUD,
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: `Contact ${EMAIL} or ${PHONE}; pay ${IBAN}.` },
      ],
    });

    expect(completion.object).toBe('chat.completion');
    expect(completion.id).toMatch(/^chatcmpl-/);
    expect(completion.model).toBe(CLOUD);
    expect(completion.choices[0]!.message.content).toBe(`I will write to ${EMAIL} and call ${PHONE}.`);
    expect(completion.choices[0]!.finish_reason).toBe('stop');
    expect(completion.usage).toEqual({ prompt_tokens: 30, completion_tokens: 9, total_tokens: 39 });
    const sent = upstreamChat(mock);
    for (const original of [EMAIL, PHONE, IBAN]) expect(sent).not.toContain(original);
    expect(sent).toContain('Contact [EMAIL_1] or [PHONE_1]; pay [IBAN_1].');
    expect(sent).toContain('You are terse.');

    const [query] = await eventsFor('USER_QUERY', key.id);
    expect(query).toMatchObject({ user_id: user.user.id, details: { model: CLOUD, stateless: true, api_key_id: key.id } });
    expect(JSON.stringify(query)).not.toContain(EMAIL);
    const [request] = await eventsFor('LLM_REQUEST', key.id);
    expect(request!.details).toMatchObject({ model: CLOUD, redacted: true, status: 'completed', api_key_id: key.id });
    const [redacted] = await eventsFor('PII_REDACTED', key.id);
    expect(redacted!.details).toMatchObject({ total: 3, api_key_id: key.id });
  });

  it('streaming: chat.completion.chunk deltas restored across chunk boundaries, the usage chunk last', async () => {
    const { client } = await clientFor();
    mock.script(textReply(['Sure, [EM', 'AIL_', '1] it is.'], { usage: [12, 5] }));

    const stream = await client.chat.completions.create({
      model: CLOUD,
      messages: [{ role: 'user', content: `Mail ${EMAIL}` }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);

    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0]!.id)).toBe(true);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe(`Sure, ${EMAIL} it is.`);
    expect(chunks.some((c) => (c.choices[0]?.delta.content ?? '').includes('['))).toBe(false);
    const finish = chunks.filter((c) => c.choices[0]?.finish_reason);
    expect(finish.map((c) => c.choices[0]!.finish_reason)).toEqual(['stop']);
    const last = chunks[chunks.length - 1]!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual({ prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 });
    expect(upstreamChat(mock)).not.toContain(EMAIL);
  });

  it('without include_usage there is no usage chunk; the stream is data-only SSE ending with [DONE]', async () => {
    const { key } = await clientFor();
    mock.script(textReply(['Hello', ' there']));
    const response = await fetch(`${v1Url(t)}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: CLOUD, messages: [{ role: 'user', content: 'hi' }], stream: true }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    expect(response.headers.get('x-request-id')).toBeTruthy();
    const raw = await response.text();
    expect(raw).not.toMatch(/^event:/m);
    const data = raw.split('\n').filter((line) => line.startsWith('data: ')).map((line) => line.slice(6));
    expect(data[data.length - 1]).toBe('[DONE]');
    const chunks = data.slice(0, -1).map((line) => JSON.parse(line) as { choices: unknown[]; usage?: unknown });
    expect(chunks.every((c) => c.usage === undefined && c.choices.length === 1)).toBe(true);
  });

  it('client tools: the call is handed back with its arguments restored, streaming and not; the tool result goes up redacted', async () => {
    const { client } = await clientFor();
    const tools: OpenAI.Chat.Completions.ChatCompletionTool[] = [
      {
        type: 'function',
        function: { name: 'send_mail', description: 'Sends a mail', parameters: { type: 'object', properties: { to: { type: 'string' }, body: { type: 'string' } }, required: ['to'] } },
      },
    ];
    const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [{ role: 'user', content: `Write to ${EMAIL} about the invoice` }];

    mock.script(toolCallReply('send_mail', { to: '[EMAIL_1]', body: 'About [EMAIL_1]' }, { id: 'call_mail_1', fragments: 4 }));
    const completion = await client.chat.completions.create({ model: CLOUD, messages, tools });
    const choice = completion.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toHaveLength(1);
    const call = choice.message.tool_calls![0]! as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;
    expect(call).toMatchObject({ id: 'call_mail_1', type: 'function', function: { name: 'send_mail' } });
    expect(JSON.parse(call.function.arguments)).toEqual({ to: EMAIL, body: `About ${EMAIL}` });
    const offered = JSON.stringify((mock.chatRequests()[0]!.body as { tools: unknown }).tools);
    expect(offered).toContain('send_mail');

    // Streaming: the call arrives as tool_calls deltas, restored.
    mock.script(toolCallReply('send_mail', { to: '[EMAIL_1]' }, { id: 'call_mail_2' }));
    const stream = await client.chat.completions.create({ model: CLOUD, messages, tools, stream: true });
    let args = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      for (const delta of chunk.choices[0]?.delta.tool_calls ?? []) args += delta.function?.arguments ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(JSON.parse(args)).toEqual({ to: EMAIL });
    expect(finish).toBe('tool_calls');

    // The client runs the tool and sends its result: redacted on the way up, the answer restored on the way down.
    mock.script(textReply(['Sent to [EMAIL_1].']));
    mock.requests.length = 0;
    const followUp = await client.chat.completions.create({
      model: CLOUD,
      tools,
      messages: [
        ...messages,
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_mail_1', type: 'function', function: { name: 'send_mail', arguments: JSON.stringify({ to: EMAIL }) } }] },
        { role: 'tool', tool_call_id: 'call_mail_1', content: `delivered to ${EMAIL}` },
      ],
    });
    expect(followUp.choices[0]!.message.content).toBe(`Sent to ${EMAIL}.`);
    const sent = upstreamChat(mock);
    expect(sent).not.toContain(EMAIL);
    expect(sent).toContain('delivered to [EMAIL_1]');
    expect(sent).toContain('call_mail_1');
  });

  it('response_format is passed through to the provider', async () => {
    const { client } = await clientFor();
    mock.script(textReply(['{"ok":true}']));
    const completion = await client.chat.completions.create({
      model: CLOUD,
      messages: [{ role: 'user', content: 'Answer in JSON' }],
      response_format: {
        type: 'json_schema',
        json_schema: { name: 'answer', schema: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'], additionalProperties: false } },
      },
    });
    expect(completion.choices[0]!.message.content).toBe('{"ok":true}');
    const body = mock.chatRequests()[0]!.body as { response_format?: { type: string; json_schema?: { name: string } } };
    expect(body.response_format?.type).toBe('json_schema');
    expect(body.response_format?.json_schema?.name).toBe('answer');
  });

  it('a local model gets the text as it is', async () => {
    const { client } = await clientFor();
    mock.script(textReply(['Noted.']));
    await client.chat.completions.create({ model: LOCAL, messages: [{ role: 'user', content: `Mail ${EMAIL}` }] });
    expect(mock.chatRequests()[0]!.wire).toBe('ollama');
    expect(upstreamChat(mock)).toContain(EMAIL);
  });
});

describe('embeddings', () => {
  it('float and base64 (the client default): the cloud provider gets redacted text; audited with the key id', async () => {
    const { client, key } = await clientFor();
    const texts = [`Customer ${EMAIL} called`, 'quarterly figures'];

    const floats = await client.embeddings.create({ model: EMBED, input: texts, encoding_format: 'float' });
    expect(floats.object).toBe('list');
    expect(floats.data.map((d) => d.index)).toEqual([0, 1]);
    expect(floats.data[1]!.embedding).toEqual(mockEmbedding('quarterly figures', 64));
    expect(floats.data[0]!.embedding).toEqual(mockEmbedding('Customer [EMAIL_1] called', 64));
    expect(floats.usage.prompt_tokens).toBeGreaterThan(0);

    // The SDK asks for base64 unless told otherwise and decodes it itself.
    const decoded = await client.embeddings.create({ model: EMBED, input: 'quarterly figures' });
    const expected = mockEmbedding('quarterly figures', 64);
    decoded.data[0]!.embedding.forEach((x, i) => expect(x).toBeCloseTo(expected[i]!, 5));

    const sent = JSON.stringify(mock.embeddingRequests().map((r) => r.body));
    expect(sent).not.toContain(EMAIL);
    expect(sent).toContain('[EMAIL_1]');
    const requests = await eventsFor('LLM_REQUEST', key.id);
    expect(requests.map((e) => e.details.kind)).toEqual(['embeddings', 'embeddings']);
    expect(requests[0]!.details).toMatchObject({ model: EMBED, redacted: true, inputs: 2, status: 'completed' });
    expect((await eventsFor('PII_REDACTED', key.id))[0]!.details).toMatchObject({ kind: 'embeddings', total: 1 });
  });

  it('needs the embeddings scope; chat needs the chat scope', async () => {
    const chatOnly = await clientFor(undefined, ['chat']);
    await expect(chatOnly.client.embeddings.create({ model: EMBED, input: 'x' })).rejects.toBeInstanceOf(OpenAI.PermissionDeniedError);
    const embedOnly = await clientFor(undefined, ['embeddings']);
    await expect(embedOnly.client.chat.completions.create({ model: CLOUD, messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(
      OpenAI.PermissionDeniedError,
    );
    // Listing models works with either.
    expect((await embedOnly.client.models.list()).data.length).toBeGreaterThan(0);
    expect(mock.chatRequests()).toHaveLength(0);
    expect(mock.embeddingRequests()).toHaveLength(0);
  });
});

describe('errors arrive as the client’s typed errors, in OpenAI’s shape', () => {
  it('401 for an unknown key, 404 for an unknown model (nothing sent), 400 for an invalid request', async () => {
    const bogus = new OpenAI({ apiKey: 'cdsa_0000000000000000000000000000000000000000000', baseURL: v1Url(t), maxRetries: 0 });
    const unauthorized = await bogus.models.list().catch((e: unknown) => e);
    expect(unauthorized).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((unauthorized as APIError).error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_api_key' });

    const { client } = await clientFor();
    const unknown = await client.chat.completions.create({ model: 'openai/no-such-model', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
    expect(unknown as APIError).toMatchObject({ code: 'model_not_found', param: 'model', type: 'invalid_request_error' });
    expect(mock.chatRequests()).toHaveLength(0);

    const invalid = await client.chat.completions.create({ model: CLOUD, messages: [{ role: 'user', content: 'x' }], temperature: 7 }).catch((e: unknown) => e);
    expect(invalid).toBeInstanceOf(OpenAI.BadRequestError);
    expect((invalid as APIError).param).toBe('temperature');
    const empty = await client.chat.completions.create({ model: CLOUD, messages: [] }).catch((e: unknown) => e);
    expect(empty).toBeInstanceOf(OpenAI.BadRequestError);
    expect(mock.chatRequests()).toHaveLength(0);
  });

  it('malformed JSON, an over-long body and unknown paths are OpenAI-shaped too, never problem details', async () => {
    const { key } = await clientFor();
    const headers = { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' };
    const malformed = await t.app.inject({ method: 'POST', url: '/v1/chat/completions', headers, payload: '{"model":' });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.headers['content-type']).toContain('application/json');
    expect(malformed.json()).toEqual({ error: { message: expect.any(String), type: 'invalid_request_error', param: null, code: 'invalid_json' } });

    const huge = await t.app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers,
      payload: JSON.stringify({ model: CLOUD, messages: [{ role: 'user', content: 'x'.repeat(2_000_000) }] }),
    });
    expect(huge.statusCode).toBe(413);
    expect(huge.json().error).toMatchObject({ type: 'invalid_request_error', code: 'request_too_large' });

    for (const method of ['GET', 'POST'] as const) {
      const missing = await t.app.inject({ method, url: '/v1/no-such-route', headers });
      expect(missing.statusCode).toBe(404);
      expect(missing.json().error).toMatchObject({ type: 'invalid_request_error', code: 'not_found' });
    }
    const noKey = await t.app.inject({ method: 'GET', url: '/v1/models' });
    expect(noKey.statusCode).toBe(401);
    expect(noKey.headers['www-authenticate']).toBe('Bearer');
    expect(noKey.json().error.code).toBe('invalid_api_key');
    // An access token is not an API key.
    const jwt = await t.app.inject({ method: 'GET', url: '/v1/models', headers: admin.headers });
    expect(jwt.statusCode).toBe(401);
    // /api/v1 keeps RFC 9457.
    const problem = await t.app.inject({ method: 'GET', url: '/api/v1/no-such-route' });
    expect(problem.headers['content-type']).toContain('application/problem+json');
  });

  it('a provider failure before any output is an HTTP error (502 api_error), not a 200 stream', async () => {
    const { client } = await clientFor();
    mock.script([{ type: 'error', status: 500, message: 'upstream exploded' }]);
    const failed = await client.chat.completions.create({ model: CLOUD, messages: [{ role: 'user', content: 'x' }], stream: true }).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(APIError);
    expect((failed as APIError).status).toBeGreaterThanOrEqual(500);
    expect((failed as APIError).type).toBe('api_error');
  });
});

describe('keys take effect on the next request', () => {
  it('revocation, expiry and deactivation each stop a key at once', async () => {
    mock.setDefault(textReply(['ok']));
    const ask = (client: OpenAI) => client.chat.completions.create({ model: CLOUD, messages: [{ role: 'user', content: 'x' }] });

    const revoked = await clientFor();
    await ask(revoked.client);
    expect((await t.app.inject({ method: 'DELETE', url: `/api/v1/api-keys/${revoked.key.id}`, headers: revoked.user.headers })).statusCode).toBe(204);
    await expect(ask(revoked.client)).rejects.toBeInstanceOf(OpenAI.AuthenticationError);

    const expired = await clientFor();
    await ask(expired.client);
    await t.app.infra.database.db.execute(sql`UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = ${expired.key.id}`);
    await expect(ask(expired.client)).rejects.toBeInstanceOf(OpenAI.AuthenticationError);

    const deactivated = await clientFor();
    await ask(deactivated.client);
    const patched = await t.app.inject({ method: 'PATCH', url: `/api/v1/users/${deactivated.user.user.id}`, headers: admin.headers, payload: { is_active: false } });
    expect(patched.statusCode).toBe(200);
    await expect(ask(deactivated.client)).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    await expect(deactivated.client.embeddings.create({ model: EMBED, input: 'x' })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it("a role change applies to the key's next request (model access follows the user's role)", async () => {
    const user = await createUser(t);
    const { client } = await clientFor(user);
    await setModelAccess({ 'openai/other-model': ['MANAGER', 'ADMIN'] });
    try {
      expect((await client.models.list()).data.map((m) => m.id)).not.toContain('openai/other-model');
      expect((await t.app.inject({ method: 'PATCH', url: `/api/v1/users/${user.user.id}`, headers: admin.headers, payload: { role: 'MANAGER' } })).statusCode).toBe(200);
      expect((await client.models.list()).data.map((m) => m.id)).toContain('openai/other-model');
    } finally {
      await setModelAccess(null);
    }
  });
});

async function setModelAccess(access: Record<string, string[]> | null): Promise<void> {
  const response = await t.app.inject({ method: 'PUT', url: '/api/v1/llm/config', headers: admin.headers, payload: { model_access: access } });
  expect(response.statusCode, response.body).toBe(200);
}

describe('model access (admins, /llm/config), applied on /api/v1/chat and /v1', () => {
  it('GET /v1/models lists only what the role may use; a closed model is 404 on /v1 and 403 on /api/v1, nothing sent', async () => {
    const analyst = await createUser(t);
    const { client } = await clientFor(analyst);
    const before = (await client.models.list()).data;
    expect(before.map((m) => m.id)).toEqual(expect.arrayContaining([CLOUD, LOCAL, 'openai/other-model']));
    expect(before[0]).toMatchObject({ object: 'model', owned_by: expect.any(String) });

    // Only admins configure it; the stored form is returned by GET /llm/config.
    const manager = await createUser(t, { role: 'MANAGER' });
    const denied = await t.app.inject({ method: 'PUT', url: '/api/v1/llm/config', headers: manager.headers, payload: { model_access: { [CLOUD]: ['ADMIN'] } } });
    expect(denied.statusCode).toBe(403);
    const invalid = await t.app.inject({ method: 'PUT', url: '/api/v1/llm/config', headers: admin.headers, payload: { model_access: { [CLOUD]: ['ROOT'] } } });
    expect(invalid.statusCode).toBe(422);
    await setModelAccess({ [CLOUD]: ['MANAGER', 'ADMIN'] });
    try {
      const config = await t.app.inject({ method: 'GET', url: '/api/v1/llm/config', headers: analyst.headers });
      expect(config.json().model_access).toEqual({ [CLOUD]: ['MANAGER', 'ADMIN'] });
      const changed = (await auditEvents(t, 'LLM_CONFIG_CHANGED')).at(-1)!;
      expect(JSON.stringify(changed.details)).toContain('model_access');

      const listed = (await client.models.list()).data.map((m) => m.id);
      expect(listed).not.toContain(CLOUD);
      expect(listed).toContain(LOCAL);
      const refused = await client.chat.completions.create({ model: CLOUD, messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(OpenAI.NotFoundError);
      expect((refused as APIError).code).toBe('model_not_found');

      const api = await t.app.inject({ method: 'POST', url: '/api/v1/chat/stream', headers: analyst.headers, payload: { message: 'x', model: CLOUD } });
      expect(api.statusCode).toBe(403);
      expect(api.headers['content-type']).toContain('application/problem+json');
      // The default model (LLM_DEFAULT_MODEL is the closed one) is refused as well.
      expect((await t.app.inject({ method: 'POST', url: '/api/v1/chat/stream', headers: analyst.headers, payload: { message: 'x' } })).statusCode).toBe(403);
      expect(mock.chatRequests()).toHaveLength(0);

      // A manager may.
      const managerKey = await clientFor(manager);
      mock.script(textReply(['fine']));
      expect((await managerKey.client.chat.completions.create({ model: CLOUD, messages: [{ role: 'user', content: 'x' }] })).choices[0]!.message.content).toBe('fine');
    } finally {
      await setModelAccess(null);
    }
    expect((await client.models.list()).data.map((m) => m.id)).toContain(CLOUD);
  });
});
