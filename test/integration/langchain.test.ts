/**
 * `@strata-memory/strata/langchain` with the real @langchain/core runtime: RunnableWithMessageHistory
 * over a FakeListChatModel (invoke and stream, two turns), in-process over a real core and over
 * HTTP against a server listening on a loopback port; every message kind round-trips.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { BaseMessage } from '@langchain/core/messages';
import { AIMessage, AIMessageChunk, ChatMessage, FunctionMessage, HumanMessage, SystemMessage, ToolMessage } from '@langchain/core/messages';
import { ChatPromptTemplate, MessagesPlaceholder } from '@langchain/core/prompts';
import { RunnableWithMessageHistory } from '@langchain/core/runnables';
import { FakeListChatModel } from '@langchain/core/utils/testing';
import type { ConversationMemory } from '../../src/cache/api.js';
import { StrataClient } from '../../src/client/index.js';
import { isStrataError } from '../../src/errors.js';
import { StrataChatMessageHistory, StrataContextHistory } from '../../src/integrations/langchain.js';
import type { StrataSource } from '../../src/integrations/langchain.js';
import type { Turn } from '../../src/types.js';
import { closeAfter, openStrata, tempDir } from '../helpers/strata.js';
import { KEY_A, KEY_B, startHarness } from './http-harness.js';

type T = Parameters<typeof tempDir>[0];

interface Mode {
  /** Where the history under test reads and writes. */
  source: StrataSource;
  /** The core behind it, read directly to see what was stored. */
  memory: ConversationMemory;
  /** The tenant the source writes as. */
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

/** What a LangChain message says, field by field (the class included). */
function view(m: BaseMessage): Record<string, unknown> {
  const out: Record<string, unknown> = { type: m.type, content: m.content, name: m.name, id: m.id, additional_kwargs: m.additional_kwargs };
  if (AIMessage.isInstance(m)) Object.assign(out, { tool_calls: m.tool_calls, invalid_tool_calls: m.invalid_tool_calls });
  if (ToolMessage.isInstance(m)) Object.assign(out, { tool_call_id: m.tool_call_id, status: m.status });
  return out;
}

/** One of each kind, as models and tools produce them. */
function everyKind(): BaseMessage[] {
  return [
    new SystemMessage('You are a travel agent. Use tools.'),
    new HumanMessage({ content: 'What is the weather in Lisbon?', name: 'ada', id: 'human-1' }),
    new HumanMessage({
      content: [
        { type: 'text', text: 'And is this photo from there?' },
        { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==', detail: 'low' } },
        { type: 'image_url', image_url: { url: 'https://example.com/tram.jpg' } },
      ],
    }),
    // A tool-only answer whose calls LangChain also carries in OpenAI's form, with the model's
    // own spacing in the second call's arguments.
    new AIMessage({
      id: 'run-1',
      content: '',
      tool_calls: [
        { type: 'tool_call', id: 'call_weather', name: 'get_weather', args: { city: 'Lisbon', unit: 'celsius' } },
        { type: 'tool_call', id: 'call_geo', name: 'locate_photo', args: { hint: 'tram 28' } },
      ],
      additional_kwargs: {
        tool_calls: [
          { id: 'call_weather', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Lisbon","unit":"celsius"}' } },
          { id: 'call_geo', type: 'function', function: { name: 'locate_photo', arguments: '{ "hint" : "tram 28" }' } },
        ],
      },
    }),
    new ToolMessage({ content: '{"temp":21,"sky":"clear"}', tool_call_id: 'call_weather', name: 'get_weather' }),
    new ToolMessage({ content: [{ type: 'text', text: 'Alfama, Lisbon' }], tool_call_id: 'call_geo', status: 'success' }),
    // A call whose arguments the model garbled: LangChain keeps them as an invalid tool call.
    new AIMessage({ content: 'Let me check the forecast too.', tool_calls: [], invalid_tool_calls: [{ type: 'invalid_tool_call', id: 'call_bad', name: 'forecast', args: '{"city": "Lis', error: 'Malformed args.' }] }),
    new ToolMessage({ content: 'error: arguments are not JSON', tool_call_id: 'call_bad', name: 'forecast', status: 'error' }),
    // Calls in both forms, all canonical: the OpenAI form still comes back (ChatOpenAI's shape).
    new AIMessage({
      content: [{ type: 'text', text: 'One more look at the map.' }],
      tool_calls: [{ type: 'tool_call', id: 'call_map', name: 'map', args: { q: 'Alfama' } }],
      additional_kwargs: { tool_calls: [{ id: 'call_map', type: 'function', function: { name: 'map', arguments: '{"q":"Alfama"}' } }] },
    }),
    new ToolMessage({ content: 'a hill by the river', tool_call_id: 'call_map', name: 'map' }),
    new AIMessage({ content: 'It is 21 °C and clear in Lisbon; the photo is from Alfama.', id: 'run-2' }),
  ];
}

/** The turns of a session as stored, without Strata's own fields. */
async function stored(memory: ConversationMemory, sessionId: string, tenant: string): Promise<Array<Omit<Turn, 'turnId' | 'createdAt' | 'tokens'>>> {
  const { messages } = await memory.getMessages(sessionId, { tenant, limit: 1000 });
  return messages.map(({ turnId: _id, createdAt: _at, tokens: _tokens, ...rest }) => rest);
}

function chain(history: (sessionId: string) => StrataChatMessageHistory, responses: string[]) {
  const model = new FakeListChatModel({ responses });
  const prompt = ChatPromptTemplate.fromMessages([['system', 'You are a helpful assistant.'], new MessagesPlaceholder('history'), ['human', '{input}']]);
  const prompts: string[][] = [];
  const runnable = new RunnableWithMessageHistory({ runnable: prompt.pipe(model), getMessageHistory: history, inputMessagesKey: 'input', historyMessagesKey: 'history' });
  // What the model was sent, call by call.
  const callbacks = [{ handleChatModelStart: (_llm: unknown, messages: BaseMessage[][]) => void prompts.push((messages[0] ?? []).map((m) => `${m.type}: ${String(m.content)}`)) }];
  return { runnable, prompts, callbacks };
}

for (const [name, open] of Object.entries(modes)) {
  describe(`StrataChatMessageHistory, ${name}`, () => {
    test('RunnableWithMessageHistory: invoke then stream, the second call sees the first', async (t) => {
      const { source, memory, tenant } = await open(t);
      const { runnable, prompts, callbacks } = chain((sessionId) => new StrataChatMessageHistory({ ...source, sessionId, userId: 'ada' }), ['Nice to meet you, Ada.', 'Your name is Ada.']);
      const config = { configurable: { sessionId: 'chat@example.com' }, callbacks };

      const first = await runnable.invoke({ input: 'Hi, I am Ada.' }, config);
      assert.equal(first.content, 'Nice to meet you, Ada.');
      assert.deepEqual(prompts[0], ['system: You are a helpful assistant.', 'human: Hi, I am Ada.'], 'a new session has no history');

      let streamed = '';
      let chunks = 0;
      for await (const chunk of await runnable.stream({ input: 'What is my name?' }, config)) {
        streamed += String(chunk.content);
        chunks++;
      }
      assert.equal(streamed, 'Your name is Ada.');
      assert.ok(chunks > 1, 'the answer came in chunks');
      assert.deepEqual(prompts[1], ['system: You are a helpful assistant.', 'human: Hi, I am Ada.', 'ai: Nice to meet you, Ada.', 'human: What is my name?']);

      // Stored in Strata, in order, under the session owner: four turns any other client reads.
      const turns = await stored(memory, 'chat@example.com', tenant);
      assert.deepEqual(
        turns.map((m) => [m.role, m.content]),
        [
          ['user', 'Hi, I am Ada.'],
          ['assistant', 'Nice to meet you, Ada.'],
          ['user', 'What is my name?'],
          ['assistant', 'Your name is Ada.'],
        ],
      );
      assert.equal((await memory.getSession('chat@example.com', { tenant })).userId, 'ada');
      const history = await new StrataChatMessageHistory({ ...source, sessionId: 'chat@example.com' }).getMessages();
      assert.deepEqual(history.map((m) => m.type), ['human', 'ai', 'human', 'ai']);
    });

    test('every message kind comes back equal, and Strata keeps the OpenAI form', async (t) => {
      const { source, memory, tenant } = await open(t);
      const history = new StrataChatMessageHistory({ ...source, sessionId: 'kinds' });
      const sent = everyKind();
      await history.addMessages(sent);
      const back = await history.getMessages();
      assert.deepEqual(back.map(view), sent.map(view));
      assert.ok(back[3] instanceof AIMessage && back[4] instanceof ToolMessage && back[0] instanceof SystemMessage && back[1] instanceof HumanMessage);

      const turns = await stored(memory, 'kinds', tenant);
      assert.equal(turns.length, sent.length, 'one batch, one turn per message');
      assert.deepEqual(turns[3]?.tool_calls, [
        { id: 'call_weather', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Lisbon","unit":"celsius"}' } },
        { id: 'call_geo', type: 'function', function: { name: 'locate_photo', arguments: '{ "hint" : "tram 28" }' } },
      ]);
      assert.equal(turns[3]?.content, '');
      assert.deepEqual(turns[6]?.tool_calls, [{ id: 'call_bad', type: 'function', function: { name: 'forecast', arguments: '{"city": "Lis' } }]);
      assert.deepEqual([turns[4]?.role, turns[4]?.tool_call_id, turns[4]?.name, turns[4]?.content], ['tool', 'call_weather', 'get_weather', '{"temp":21,"sky":"clear"}']);
      assert.deepEqual(turns[2]?.content, (sent[2] as HumanMessage).content);

      // Through LangChain and back into another session, the stored form does not change.
      await new StrataChatMessageHistory({ ...source, sessionId: 'kinds-copy' }).addMessages(back);
      assert.deepEqual(await stored(memory, 'kinds-copy', tenant), turns);
    });

    test('a turn written by another client reads as LangChain messages, and its arguments text survives', async (t) => {
      const { source, memory, tenant } = await open(t);
      await memory.addMessages(
        'openai-client',
        [
          { role: 'user', content: 'Book it' },
          { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'book', arguments: '{"b": 2, "a": 1}' } }] },
          { role: 'tool', tool_call_id: 'c1', content: 'booked' },
        ],
        { tenant },
      );
      const history = new StrataChatMessageHistory({ ...source, sessionId: 'openai-client' });
      const [user, ai, tool] = await history.getMessages();
      assert.ok(user instanceof HumanMessage && ai instanceof AIMessage && tool instanceof ToolMessage);
      assert.equal(ai.content, '');
      assert.deepEqual(ai.tool_calls, [{ type: 'tool_call', id: 'c1', name: 'book', args: { b: 2, a: 1 } }]);
      assert.equal(tool.tool_call_id, 'c1');
      await new StrataChatMessageHistory({ ...source, sessionId: 'copy' }).addMessages([user, ai, tool]);
      assert.deepEqual((await stored(memory, 'copy', tenant))[1]?.tool_calls, [{ id: 'c1', type: 'function', function: { name: 'book', arguments: '{"b": 2, "a": 1}' } }]);
    });

    test('clear deletes the session; a session that never existed clears too; the session is writable after', async (t) => {
      const { source, memory, tenant } = await open(t);
      const history = new StrataChatMessageHistory({ ...source, sessionId: 'to-clear' });
      await history.clear();
      assert.deepEqual(await history.getMessages(), []);
      await history.addUserMessage('remember me');
      await history.addAIMessage('I will');
      assert.equal((await history.getMessages()).length, 2);
      await history.clear();
      assert.deepEqual(await history.getMessages(), []);
      await assert.rejects(memory.getSession('to-clear', { tenant }), (e) => isStrataError(e, 'STRATA_ERR_NOT_FOUND'));
      await history.addMessage(new HumanMessage('again'));
      assert.deepEqual((await history.getMessages()).map((m) => m.content), ['again']);
    });

    test('StrataContextHistory: smart context within the budget, inside RunnableWithMessageHistory', async (t) => {
      const { source, memory, tenant } = await open(t);
      const filler = Array.from({ length: 40 }, (_, i) => [
        { role: 'user' as const, content: `Question ${i}: tell me about the harbour district number ${i} and its old warehouses.` },
        { role: 'assistant' as const, content: `Answer ${i}: the harbour district ${i} has warehouses turned into galleries and cafés.` },
      ]).flat();
      await memory.addMessages('long', [{ role: 'user', content: 'My cat is called Biscuit.' }, { role: 'assistant', content: 'Biscuit is a fine name.' }, ...filler], { tenant });
      await memory.flush('long', { tenant });

      const budget = new StrataContextHistory({ ...source, sessionId: 'long', maxTokens: 300, query: 'what is my cat called' });
      const messages = await budget.getMessages();
      const context = await memory.getContext('long', { tenant, type: 'smart', maxTokens: 300, query: 'what is my cat called' });
      assert.ok(context.tokens <= 300, `context of ${context.tokens} tokens`);
      const expected = [...(context.summary ? [`system: ${context.summary}`] : []), ...context.messages.map((m) => `${m.role === 'user' ? 'human' : 'ai'}: ${String(m.content)}`)];
      assert.deepEqual(messages.map((m) => `${m.type}: ${String(m.content)}`), expected);
      assert.ok(messages.length < 20, `${messages.length} of 82 messages`);
      assert.ok(messages.some((m) => m.content === 'My cat is called Biscuit.'), 'the relevant old turn is in');
      assert.equal(messages.at(-1)?.content, 'Answer 39: the harbour district 39 has warehouses turned into galleries and cafés.');

      const { runnable, prompts, callbacks } = chain((sessionId) => new StrataContextHistory({ ...source, sessionId, maxTokens: 300, query: 'what is my cat called' }), ['Biscuit.']);
      await runnable.invoke({ input: 'What is my cat called?' }, { configurable: { sessionId: 'long' }, callbacks });
      assert.equal(prompts[0]?.length, messages.length + 2, 'system prompt + the budgeted history + the question');
      assert.equal((await memory.getSession('long', { tenant })).turns, 84, 'the exchange was stored');
    });

    test('a message LangChain cannot give Strata is refused by field, and nothing of the batch is stored', async (t) => {
      const { source, memory, tenant } = await open(t);
      const history = new StrataChatMessageHistory({ ...source, sessionId: 'bad' });
      const cases: Array<[BaseMessage, string]> = [
        [new AIMessage({ content: '', tool_calls: [{ name: 'f', args: {} }] }), 'messages[1].tool_calls[0].id'],
        [new FunctionMessage({ content: 'x', name: 'f' }), 'messages[1].type'],
        [new ChatMessage({ content: 'x', role: 'critic' }), 'messages[1].type'],
        [new HumanMessage({ content: [{ type: 'text', text: 'x' }, { type: 'video', url: 'https://x.test/v.mp4' }] }), 'messages[1].content[1].type'],
      ];
      for (const [bad, field] of cases) {
        await assert.rejects(history.addMessages([new HumanMessage('fine'), bad]), (e) => isStrataError(e, 'STRATA_ERR_VALIDATION') && (e as { details?: { field?: string } }).details?.field === field, field);
      }
      // The core's own checks come back over either transport as coded errors naming the field.
      await assert.rejects(history.addMessages([new HumanMessage('fine'), new AIMessage({ content: '' })]), (e) => isStrataError(e, 'STRATA_ERR_CONTENT_EMPTY') && (e as { details?: { field?: string } }).details?.field === 'messages[1].content');
      assert.deepEqual(await stored(memory, 'bad', tenant), []);
      // A streamed answer (a chunk) is stored like a message.
      await history.addMessages([new HumanMessage('fine'), new AIMessageChunk({ content: 'streamed' })]);
      assert.deepEqual((await history.getMessages()).map((m) => [m.type, m.content]), [['human', 'fine'], ['ai', 'streamed']]);
    });
  });
}

test('over HTTP, the API key names the tenant: another key sees none of the history', async (t) => {
  const { app } = await startHarness(t);
  const baseUrl = await app.listen({ host: '127.0.0.1', port: 0 });
  await new StrataChatMessageHistory({ baseUrl, apiKey: KEY_A, sessionId: 'shared-name' }).addMessages([new HumanMessage('tenant A only')]);
  assert.deepEqual(await new StrataChatMessageHistory({ baseUrl, apiKey: KEY_B, sessionId: 'shared-name' }).getMessages(), []);
  // An application's own client works as the source too.
  const client = new StrataClient({ baseUrl, apiKey: KEY_A });
  assert.deepEqual((await new StrataChatMessageHistory({ client, sessionId: 'shared-name' }).getMessages()).map((m) => m.content), ['tenant A only']);
  await assert.rejects(new StrataChatMessageHistory({ baseUrl, apiKey: 'wrong-key', sessionId: 'x' }).getMessages(), (e) => isStrataError(e, 'STRATA_ERR_UNAUTHORIZED'));
});

test('the optional `tenant` of the in-process source keeps sessions apart', async (t) => {
  const strata = await openStrata(await tempDir(t));
  closeAfter(t, () => strata.close());
  await new StrataChatMessageHistory({ memory: strata, tenant: 'acme', sessionId: 's' }).addMessages([new HumanMessage('for acme')]);
  assert.deepEqual(await new StrataChatMessageHistory({ memory: strata, sessionId: 's' }).getMessages(), []);
  assert.equal((await strata.getMessages('s', { tenant: 'acme' })).messages[0]?.content, 'for acme');
  assert.throws(() => new StrataContextHistory({ memory: strata, sessionId: 's', maxTokens: 0 }), (e) => isStrataError(e, 'STRATA_ERR_VALIDATION'));
});
