import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { ChatOpenAI } from '@langchain/openai';
import { generateText, jsonSchema, streamText, tool } from 'ai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app.js';
import { createUser } from '../helpers/users.js';
import { startMockLlm, textReply, toolCallReply, type MockLlm } from '../mock-llm/server.js';
import { CLOUD, createKey, EMAIL, PHONE, startCdsa, upstreamChat, v1Url } from './helpers.js';

/**
 * Other OpenAI-speaking clients pointed at CDSA's /v1: the AI SDK's OpenAI-compatible provider, and LangChain's
 * ChatOpenAI. LangChain's @langchain/openai is pinned to 1.5.8 (with @langchain/core 1.2.10): the last release that
 * supports Node 20; from 1.5.9 on it needs Node 22.
 */
let mock: MockLlm;
let t: TestApp;
let key: string;

beforeAll(async () => {
  mock = await startMockLlm({ models: ['mock-model'] });
  t = await startCdsa(mock);
  const user = await createUser(t);
  key = (await createKey(t, user, ['chat'])).key;
});

afterAll(async () => {
  await t?.close();
  await mock?.close();
});

beforeEach(() => {
  mock.requests.length = 0;
});

const prompt = `Contact ${EMAIL} or ${PHONE} about the renewal.`;

describe('@ai-sdk/openai-compatible', () => {
  const provider = () => createOpenAICompatible({ name: 'cdsa', baseURL: v1Url(t), apiKey: key, includeUsage: true });

  it('generateText: redacted upstream, restored for the caller', async () => {
    mock.script(textReply(['Writing to [EMAIL_1] and calling [PHONE_1].'], { usage: [20, 8] }));
    const result = await generateText({ model: provider()(CLOUD), prompt, maxRetries: 0 });
    expect(result.text).toBe(`Writing to ${EMAIL} and calling ${PHONE}.`);
    expect(result.usage.inputTokens).toBe(20);
    expect(result.usage.outputTokens).toBe(8);
    const sent = upstreamChat(mock);
    expect(sent).not.toContain(EMAIL);
    expect(sent).not.toContain(PHONE);
    expect(sent).toContain('[EMAIL_1]');
  });

  it('streamText: the text stream is restored across chunk boundaries; usage from include_usage', async () => {
    mock.script(textReply(['Done: [EMA', 'IL_1', '] noted.'], { usage: [15, 4] }));
    const result = streamText({ model: provider()(CLOUD), prompt, maxRetries: 0 });
    let text = '';
    for await (const delta of result.textStream) text += delta;
    expect(text).toBe(`Done: ${EMAIL} noted.`);
    expect((await result.usage).outputTokens).toBe(4);
    expect((mock.chatRequests()[0]!.body as { stream?: boolean }).stream).toBe(true);
  });

  it('tool calls come back with restored arguments', async () => {
    mock.script(toolCallReply('notify', { to: '[EMAIL_1]' }, { id: 'call_n1' }));
    const result = await generateText({
      model: provider()(CLOUD),
      prompt,
      maxRetries: 0,
      tools: { notify: tool({ description: 'Notify someone', inputSchema: jsonSchema<{ to: string }>({ type: 'object', properties: { to: { type: 'string' } }, required: ['to'] }) }) },
    });
    expect(result.toolCalls).toHaveLength(1);
    expect(result.toolCalls[0]).toMatchObject({ toolName: 'notify', input: { to: EMAIL } });
    expect(result.finishReason).toBe('tool-calls');
    expect(upstreamChat(mock)).not.toContain(EMAIL);
  });
});

describe('@langchain/openai ChatOpenAI', () => {
  const chat = () => new ChatOpenAI({ model: CLOUD, apiKey: key, configuration: { baseURL: v1Url(t) }, maxRetries: 0 });

  it('invoke and stream: redacted upstream, restored for the caller', async () => {
    mock.script(textReply(['Reply sent to [EMAIL_1].'], { usage: [10, 5] }));
    const message = await chat().invoke(prompt);
    expect(message.content).toBe(`Reply sent to ${EMAIL}.`);

    mock.script(textReply(['Call [PHO', 'NE_1] now.']));
    let streamed = '';
    for await (const chunk of await chat().stream(prompt)) streamed += typeof chunk.content === 'string' ? chunk.content : '';
    expect(streamed).toBe(`Call ${PHONE} now.`);
    const sent = upstreamChat(mock);
    expect(sent).not.toContain(EMAIL);
    expect(sent).not.toContain(PHONE);
  });

  it('bound tools: the call is returned with restored arguments', async () => {
    mock.script(toolCallReply('notify', { to: '[EMAIL_1]' }, { id: 'call_lc1' }));
    const model = chat().bindTools([
      { type: 'function', function: { name: 'notify', description: 'Notify someone', parameters: { type: 'object', properties: { to: { type: 'string' } }, required: ['to'] } } },
    ]);
    const message = await model.invoke(prompt);
    expect(message.tool_calls).toHaveLength(1);
    expect(message.tool_calls![0]).toMatchObject({ name: 'notify', args: { to: EMAIL }, id: 'call_lc1' });
  });
});
