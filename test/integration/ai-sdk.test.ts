/**
 * `@strata-memory/strata/ai` with the real AI SDK runtime (`ai` 6) and its mock language model:
 * generateText and streamText with a tool round (a `tool()` with a zod schema), saved to Strata
 * and loaded back equal, in-process and over HTTP against a server on a loopback port; both
 * conversions on every message kind. `npm run typecheck` checks that `toModelMessages` gives a
 * `ModelMessage[]` without a cast.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateText, stepCountIs, streamText, tool } from 'ai';
import type { ModelMessage } from 'ai';
import { MockLanguageModelV3, convertArrayToReadableStream } from 'ai/test';
import { z } from 'zod';
import type { ConversationMemory, NewMessage } from '../../src/cache/api.js';
import { isStrataError } from '../../src/errors.js';
import { fromModelMessages, toModelMessages, withStrataMemory } from '../../src/integrations/ai.js';
import type { StrataSource } from '../../src/integrations/ai.js';
import type { Turn } from '../../src/types.js';
import { closeAfter, openStrata, tempDir } from '../helpers/strata.js';
import { KEY_A, startHarness } from './http-harness.js';

type T = Parameters<typeof tempDir>[0];

const usage = { inputTokens: { total: 10, noCache: 10, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 5, text: 5, reasoning: 0 } };
const toolStep = (toolCallId: string, city: string) => ({
  content: [{ type: 'tool-call' as const, toolCallId, toolName: 'weather', input: JSON.stringify({ city }) }],
  finishReason: { unified: 'tool-calls' as const, raw: 'tool_calls' },
  usage,
  warnings: [],
});
const textStep = (text: string) => ({ content: [{ type: 'text' as const, text }], finishReason: { unified: 'stop' as const, raw: 'stop' }, usage, warnings: [] });

function weatherTool(calls: string[]) {
  return tool({
    description: 'Current weather in a city',
    inputSchema: z.object({ city: z.string() }),
    execute: async ({ city }) => {
      calls.push(city);
      return { city, celsius: city === 'Lisbon' ? 21 : 17 };
    },
  });
}

interface Mode {
  source: StrataSource;
  memory: ConversationMemory;
  tenant: string;
}

const modes: Record<string, (t: T) => Promise<Mode>> = {
  'in-process': async (t) => {
    const strata = await openStrata(await tempDir(t));
    closeAfter(t, () => strata.close());
    return { source: { memory: strata }, memory: strata, tenant: 'default' };
  },
  http: async (t) => {
    const { app, memory } = await startHarness(t);
    const baseUrl = await app.listen({ host: '127.0.0.1', port: 0 });
    return { source: { baseUrl, apiKey: KEY_A }, memory, tenant: 'tenantA' };
  },
};

async function stored(memory: ConversationMemory, sessionId: string, tenant: string): Promise<Array<Omit<Turn, 'turnId' | 'createdAt' | 'tokens'>>> {
  const { messages } = await memory.getMessages(sessionId, { tenant, limit: 1000 });
  return messages.map(({ turnId: _id, createdAt: _at, tokens: _tokens, ...rest }) => rest);
}

/**
 * JSON equality: what Strata can promise (the AI SDK's own messages carry keys set to undefined,
 * e.g. `providerOptions: undefined`, which no store keeps).
 */
function assertJsonEqual(actual: unknown, expected: unknown, message?: string): void {
  assert.deepEqual(JSON.parse(JSON.stringify(actual)), JSON.parse(JSON.stringify(expected)), message);
}

/** Every tool call in `messages` has its result and every result its call. */
function toolCallsPaired(messages: ModelMessage[]): boolean {
  const calls = new Set<string>();
  const results = new Set<string>();
  for (const m of messages) {
    if (typeof m.content === 'string') continue;
    for (const p of m.content) {
      if (p.type === 'tool-call') calls.add(p.toolCallId);
      if (p.type === 'tool-result') results.add(p.toolCallId);
    }
  }
  return calls.size === results.size && [...calls].every((id) => results.has(id));
}

for (const [name, open] of Object.entries(modes)) {
  describe(`AI SDK memory, ${name}`, () => {
    test('generateText with a tool round: saved, loaded back equal, and seen by the next call', async (t) => {
      const { source, memory, tenant } = await open(t);
      const chat = withStrataMemory({ ...source, sessionId: 'trip', userId: 'ada' });
      assert.deepEqual(await chat.load(), [], 'a new session is empty');
      const model = new MockLanguageModelV3({ doGenerate: [toolStep('call-1', 'Lisbon'), textStep('It is 21 °C in Lisbon.'), textStep('You asked about Lisbon.')] });
      const cities: string[] = [];
      const tools = { weather: weatherTool(cities) };

      const first: ModelMessage = { role: 'user', content: 'What is the weather in Lisbon?' };
      const r1 = await generateText({ model, tools, stopWhen: stepCountIs(3), messages: [...(await chat.load()), first] });
      assert.equal(r1.text, 'It is 21 °C in Lisbon.');
      assert.deepEqual(cities, ['Lisbon']);
      assert.deepEqual(await chat.save([first, ...r1.response.messages]), [1, 2, 3, 4]);

      const loaded = await chat.load();
      assertJsonEqual(loaded, [first, ...r1.response.messages]);
      assert.deepEqual(
        loaded.map((m) => m.role),
        ['user', 'assistant', 'tool', 'assistant'],
      );
      // Stored in the OpenAI form, which every other client of the session reads.
      const turns = await stored(memory, 'trip', tenant);
      assert.deepEqual(turns[1], { role: 'assistant', content: null, tool_calls: [{ id: 'call-1', type: 'function', function: { name: 'weather', arguments: '{"city":"Lisbon"}' } }] });
      assert.deepEqual(turns[2], { role: 'tool', tool_call_id: 'call-1', name: 'weather', content: '{"city":"Lisbon","celsius":21}' });
      assert.equal((await memory.getSession('trip', { tenant })).userId, 'ada');

      const second: ModelMessage = { role: 'user', content: 'Which city did I ask about?' };
      const r2 = await generateText({ model, tools, stopWhen: stepCountIs(3), messages: [...(await chat.load()), second] });
      assert.equal(r2.text, 'You asked about Lisbon.');
      // The model was sent the first exchange, tool call and result included.
      const prompt = model.doGenerateCalls[2]!.prompt;
      assert.deepEqual(
        prompt.map((m) => m.role),
        ['user', 'assistant', 'tool', 'assistant', 'user'],
      );
      assertJsonEqual(prompt[1]!.content, [{ type: 'tool-call', toolCallId: 'call-1', toolName: 'weather', input: { city: 'Lisbon' } }]);
      const tool = prompt[2]!;
      assert.ok(tool.role === 'tool');
      const result = tool.content[0];
      assert.ok(result?.type === 'tool-result');
      assert.deepEqual(result.output, { type: 'json', value: { city: 'Lisbon', celsius: 21 } });
      await chat.save([second, ...r2.response.messages]);
      assert.equal((await chat.load()).length, 6);
      await chat.clear();
      assert.deepEqual(await chat.load(), []);
      await chat.clear();
    });

    test('streamText with a tool round: streamed, saved, loaded back equal', async (t) => {
      const { source } = await open(t);
      const chat = withStrataMemory({ ...source, sessionId: 'stream' });
      const model = new MockLanguageModelV3({
        doStream: [
          { stream: convertArrayToReadableStream([{ type: 'tool-call' as const, toolCallId: 'call-p', toolName: 'weather', input: '{"city":"Porto"}' }, { type: 'finish' as const, finishReason: { unified: 'tool-calls' as const, raw: 'tool_calls' }, usage }]) },
          {
            stream: convertArrayToReadableStream([
              { type: 'text-start' as const, id: 't' },
              { type: 'text-delta' as const, id: 't', delta: 'Porto: ' },
              { type: 'text-delta' as const, id: 't', delta: '17 °C.' },
              { type: 'text-end' as const, id: 't' },
              { type: 'finish' as const, finishReason: { unified: 'stop' as const, raw: 'stop' }, usage },
            ]),
          },
        ],
      });
      const cities: string[] = [];
      const user: ModelMessage = { role: 'user', content: [{ type: 'text', text: 'Weather in Porto?' }] };
      const result = streamText({ model, tools: { weather: weatherTool(cities) }, stopWhen: stepCountIs(3), messages: [...(await chat.load()), user] });
      const deltas: string[] = [];
      for await (const delta of result.textStream) deltas.push(delta);
      assert.deepEqual(deltas, ['Porto: ', '17 °C.']);
      assert.deepEqual(cities, ['Porto']);
      const { messages } = await result.response;
      await chat.save([user, ...messages]);
      assertJsonEqual(await chat.load(), [user, ...messages]);
      assert.deepEqual(
        messages.map((m) => m.role),
        ['assistant', 'tool', 'assistant'],
      );
    });

    test('load() with maxTokens: smart context within the budget, a tool call never without its result', async (t) => {
      const { source, memory, tenant } = await open(t);
      const filler: NewMessage[] = Array.from({ length: 30 }, (_, i) => [
        { role: 'user' as const, content: `Tell me about market number ${i} and what it sells on Saturdays.` },
        { role: 'assistant' as const, content: `Market ${i} sells fish, bread and flowers on Saturdays.` },
      ]).flat();
      const toolRound: NewMessage[] = [
        { role: 'user', content: 'What is the weather in Lisbon?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c-w', type: 'function', function: { name: 'weather', arguments: '{"city":"Lisbon"}' } }] },
        { role: 'tool', tool_call_id: 'c-w', name: 'weather', content: '{"celsius":21}' },
        { role: 'assistant', content: 'It is 21 °C.' },
      ];
      await memory.addMessages('long', [...toolRound, ...filler, ...toolRound.map((m) => (m.tool_call_id ? { ...m, tool_call_id: 'c-w2' } : m.tool_calls ? { ...m, tool_calls: [{ ...m.tool_calls[0]!, id: 'c-w2' }] } : m))], { tenant });
      await memory.flush('long', { tenant });
      const chat = withStrataMemory({ ...source, sessionId: 'long', maxTokens: 250 });
      const loaded = await chat.load('weather in Lisbon');
      const context = await memory.getContext('long', { tenant, type: 'smart', maxTokens: 250, query: 'weather in Lisbon' });
      assert.ok(context.tokens <= 250);
      assert.deepEqual(loaded, toModelMessages(context));
      assert.ok(loaded.length < 30, `${loaded.length} of 68 messages`);
      assert.ok(loaded.some((m) => m.role === 'tool'), 'the tool round is in');
      assert.ok(toolCallsPaired(loaded));
      // The AI SDK accepts it as a prompt (it refuses a tool call without its result).
      const model = new MockLanguageModelV3({ doGenerate: textStep('ok') });
      await generateText({ model, allowSystemInMessages: true, messages: [...loaded, { role: 'user', content: 'thanks' }] });
      assert.equal(model.doGenerateCalls.length, 1);
    });
  });
}

describe('conversions', () => {
  test('Strata turns → ModelMessage[] (typed, accepted by generateText) → Strata messages, unchanged', async (t) => {
    const strata = await openStrata(await tempDir(t));
    closeAfter(t, () => strata.close());
    const sent: NewMessage[] = [
      { role: 'system', content: 'You are a travel agent.' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Weather there, and is this photo from Lisbon?' },
          { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==', detail: 'low' } },
          { type: 'image_url', image_url: { url: 'https://example.com/tram.jpg' } },
          { type: 'file', file: { url: 'https://example.com/itinerary.pdf', filename: 'itinerary.pdf' } },
          { type: 'file', file: { file_data: 'data:text/plain;base64,aGVsbG8=', filename: 'notes.txt' } },
        ],
      },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_w', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Lisbon"}' } },
          { id: 'call_g', type: 'function', function: { name: 'locate_photo', arguments: '{ "hint" : "tram 28" }' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_w', name: 'get_weather', content: '{"temp":21}' },
      { role: 'tool', tool_call_id: 'call_g', name: 'locate_photo', content: 'Alfama' },
      { role: 'assistant', content: 'It is 21 °C; the photo is from Alfama.' },
    ];
    await strata.addMessages('s', sent);
    const { messages: turns } = await strata.getMessages('s');

    const messages: ModelMessage[] = toModelMessages(turns);
    assert.deepEqual(messages, [
      { role: 'system', content: 'You are a travel agent.' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Weather there, and is this photo from Lisbon?' },
          { type: 'image', image: 'iVBORw0KGgoAAAANSUhEUg==', mediaType: 'image/png', providerOptions: { openai: { imageDetail: 'low' } } },
          { type: 'image', image: new URL('https://example.com/tram.jpg') },
          { type: 'file', data: new URL('https://example.com/itinerary.pdf'), mediaType: 'application/pdf', filename: 'itinerary.pdf' },
          { type: 'file', data: 'aGVsbG8=', mediaType: 'text/plain', filename: 'notes.txt' },
        ],
      },
      {
        role: 'assistant',
        content: [
          { type: 'tool-call', toolCallId: 'call_w', toolName: 'get_weather', input: { city: 'Lisbon' } },
          // The model's text, kept where parsing would lose its spacing.
          { type: 'tool-call', toolCallId: 'call_g', toolName: 'locate_photo', input: { hint: 'tram 28' }, providerOptions: { strata: { arguments: '{ "hint" : "tram 28" }' } } },
        ],
      },
      {
        role: 'tool',
        content: [
          { type: 'tool-result', toolCallId: 'call_w', toolName: 'get_weather', output: { type: 'json', value: { temp: 21 } } },
          { type: 'tool-result', toolCallId: 'call_g', toolName: 'locate_photo', output: { type: 'text', value: 'Alfama' } },
        ],
      },
      { role: 'assistant', content: 'It is 21 °C; the photo is from Alfama.' },
    ]);
    assert.deepEqual(fromModelMessages(messages), sent);

    // The AI SDK takes them as a prompt as they are (URLs passed through, not downloaded).
    const model = new MockLanguageModelV3({ doGenerate: textStep('ok'), supportedUrls: { '*/*': [/^https:\/\//] } });
    await generateText({ model, messages, allowSystemInMessages: true });
    const prompt = model.doGenerateCalls[0]!.prompt;
    assert.deepEqual(
      prompt.map((m) => m.role),
      ['system', 'user', 'assistant', 'tool', 'assistant'],
    );
    const user = prompt[1]!;
    assert.ok(user.role === 'user');
    const image = user.content[1];
    assert.ok(image?.type === 'file');
    assert.deepEqual([image.mediaType, image.data], ['image/png', 'iVBORw0KGgoAAAANSUhEUg==']);
  });

  test('AI SDK messages of every kind → Strata → back equal; a context summary leads as a system message', async (t) => {
    const strata = await openStrata(await tempDir(t));
    closeAfter(t, () => strata.close());
    const messages: ModelMessage[] = [
      { role: 'system', content: 'Be brief.' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Read these' },
          { type: 'image', image: 'R0lGODlhAQABAAAAACw=', mediaType: 'image/gif' },
          { type: 'image', image: new URL('https://example.com/a.webp'), providerOptions: { openai: { imageDetail: 'high' } } },
          { type: 'file', data: 'JVBERi0xLjQ=', mediaType: 'application/pdf', filename: 'a.pdf' },
          { type: 'file', data: 'file-abc123', mediaType: 'application/pdf', filename: 'b.pdf', providerOptions: { strata: { fileId: true } } },
        ],
      },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Checking.' },
          { type: 'tool-call', toolCallId: 't1', toolName: 'count', input: { n: [1, 2] } },
          { type: 'tool-call', toolCallId: 't2', toolName: 'echo', input: { text: 'hi' } },
          { type: 'tool-call', toolCallId: 't3', toolName: 'fail', input: {} },
          { type: 'tool-call', toolCallId: 't4', toolName: 'danger', input: { all: true } },
          { type: 'tool-call', toolCallId: 't5', toolName: 'pages', input: {} },
          { type: 'tool-call', toolCallId: 't6', toolName: 'oops', input: {} },
        ],
      },
      {
        role: 'tool',
        content: [
          { type: 'tool-result', toolCallId: 't1', toolName: 'count', output: { type: 'json', value: 2 } },
          { type: 'tool-result', toolCallId: 't2', toolName: 'echo', output: { type: 'text', value: '{"looks":"like json"}' } },
          { type: 'tool-result', toolCallId: 't3', toolName: 'fail', output: { type: 'error-text', value: 'boom' } },
          { type: 'tool-result', toolCallId: 't4', toolName: 'danger', output: { type: 'execution-denied', reason: 'not allowed' } },
          { type: 'tool-result', toolCallId: 't5', toolName: 'pages', output: { type: 'content', value: [{ type: 'text', text: 'page 1' }, { type: 'text', text: 'page 2' }] } },
          { type: 'tool-result', toolCallId: 't6', toolName: 'oops', output: { type: 'error-json', value: { code: 7 } } },
        ],
      },
      { role: 'assistant', content: [{ type: 'text', text: 'Done.' }] },
    ];
    const { turnIds } = await strata.addMessages('every-kind', fromModelMessages(messages));
    assert.equal(turnIds.length, 10, 'one tool turn per result');
    const { messages: turns } = await strata.getMessages('every-kind');
    assert.deepEqual(toModelMessages(turns), messages);
    // Reasoning is the model's scratchpad: not stored.
    assert.deepEqual(fromModelMessages([{ role: 'assistant', content: [{ type: 'reasoning', text: 'hmm' }, { type: 'text', text: 'Yes.' }] }]), [{ role: 'assistant', content: [{ type: 'text', text: 'Yes.' }] }]);
    // Bytes become inline data.
    assert.deepEqual(fromModelMessages([{ role: 'user', content: [{ type: 'image', image: new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]) }] }]), [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }] }]);
    assert.deepEqual(toModelMessages({ messages: turns.slice(-1), summary: 'Earlier: the user shared two PDFs.' }), [
      { role: 'system', content: 'Earlier: the user shared two PDFs.' },
      { role: 'assistant', content: [{ type: 'text', text: 'Done.' }] },
    ]);
  });

  test('parts Strata cannot store are refused by field, before anything is written', async (t) => {
    const strata = await openStrata(await tempDir(t));
    closeAfter(t, () => strata.close());
    const chat = withStrataMemory({ memory: strata, sessionId: 'refused' });
    const user: ModelMessage = { role: 'user', content: 'hi' };
    const cases: Array<[ModelMessage, string]> = [
      [{ role: 'assistant', content: [{ type: 'file', data: 'aGk=', mediaType: 'image/png' }] }, 'messages[1].content[0].type'],
      [{ role: 'assistant', content: [{ type: 'tool-call', toolCallId: 'w', toolName: 'web_search', input: {}, providerExecuted: true }] }, 'messages[1].content[0].providerExecuted'],
      [{ role: 'tool', content: [{ type: 'tool-approval-response', approvalId: 'a1', approved: true }] }, 'messages[1].content[0].type'],
      [{ role: 'tool', content: [{ type: 'tool-result', toolCallId: 'x', toolName: 'shot', output: { type: 'content', value: [{ type: 'image-data', data: 'aGk=', mediaType: 'image/png' }] } }] }, 'messages[1].content[0].output.value[0].type'],
    ];
    for (const [bad, field] of cases) {
      await assert.rejects(chat.save([user, bad]), (e) => isStrataError(e, 'STRATA_ERR_VALIDATION') && (e as { details?: { field?: string } }).details?.field === field, field);
    }
    assert.deepEqual(await chat.load(), []);
    assert.throws(() => withStrataMemory({ memory: strata, sessionId: 'x', maxTokens: 0 }), (e) => isStrataError(e, 'STRATA_ERR_VALIDATION'));
  });
});
