import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { isStrataError } from '../../src/errors.js';
import type { NewMessage } from '../../src/cache/api.js';
import type { CreateStrataOptions, Strata } from '../../src/strata.js';
import type { Turn } from '../../src/types.js';
import { closeAfter, openStrata as openWith, tempDir } from '../helpers/strata.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

/** An agent's conversation: parts, a tool-only assistant turn with two calls, both results, an answer. */
export function agentConversation(): NewMessage[] {
  return [
    { role: 'system', content: 'You are a travel agent. Use tools.' },
    {
      role: 'user',
      name: 'ada',
      content: [
        { type: 'text', text: 'What is the weather in Lisbon, and is this photo from there?' },
        { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==', detail: 'low' } },
        { type: 'file', file: { url: 'https://example.com/itinerary.pdf', filename: 'itinerary.pdf' } },
      ],
      metadata: { channel: 'web' },
    },
    {
      role: 'assistant',
      content: null,
      tool_calls: [
        { id: 'call_weather', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Lisbon","unit":"celsius"}' } },
        { id: 'call_geo', type: 'function', function: { name: 'locate_photo', arguments: '{ "hint" : "tram 28" }' } },
      ],
    },
    { role: 'tool', tool_call_id: 'call_weather', name: 'get_weather', content: '{"temp":21,"sky":"clear"}' },
    { role: 'tool', tool_call_id: 'call_geo', content: [{ type: 'text', text: 'Alfama, Lisbon' }] },
    { role: 'assistant', content: '', tool_calls: [{ id: 'call_x', type: 'function', function: { name: 'noop', arguments: '' } }] },
    { role: 'tool', tool_call_id: 'call_x', content: '' },
    { role: 'assistant', content: 'It is 21 °C and clear in Lisbon; the photo is from Alfama.' },
  ];
}

/** A turn as the application sent it: the message fields and metadata, without Strata's own. */
function sent(t: Turn): Record<string, unknown> {
  const { turnId: _id, createdAt: _at, tokens: _tokens, ...rest } = t;
  return rest;
}

async function allMessages(s: Strata, sessionId: string): Promise<Turn[]> {
  return (await s.getMessages(sessionId, { limit: 1000 })).messages;
}

for (const driver of ['memory', 'redis'] as const) {
  describe(`message model, hot tier ${driver}`, () => {
    let redis: TestRedis | null = null;
    if (driver === 'redis') {
      before(async () => {
        redis = await startRedis();
      });
      after(() => redis?.stop());
    }
    const openStrata = (dir: string, options: CreateStrataOptions = {}) =>
      openWith(dir, redis ? { ...options, hot: { driver: 'redis', redisUrl: redis.url, keyPrefix: redis.prefix(basename(dir)) } } : options);

    test('tool calls, tool results and content parts come back JSON-equal from every tier', async (t) => {
      const dir = await tempDir(t);
      const messages = agentConversation();
      let s = await openStrata(dir);
      const { turnIds } = await s.addMessages('trip', messages, { userId: 'user@example.com' });
      assert.deepEqual(turnIds, [1, 2, 3, 4, 5, 6, 7, 8]);
      await s.addMessage('trip', { role: 'user', content: [{ type: 'text', text: 'Thanks!' }] });
      const expected = [...messages, { role: 'user', content: [{ type: 'text', text: 'Thanks!' }] }];
      // Hot tier (and journal).
      assert.deepEqual((await allMessages(s, 'trip')).map(sent), expected);
      // Archive, after compaction.
      await s.flush('trip');
      const info = await s.getSession('trip');
      assert.equal(info.unarchivedTurns, 0);
      assert.deepEqual((await allMessages(s, 'trip')).map(sent), expected);
      const recent = await s.getContext('trip', { type: 'recent', limit: 4 });
      assert.deepEqual(recent.messages.map(sent), expected.slice(-4));
      // Restart: a new instance over the same data, the hot tier emptied of the session.
      await s.evictToDiskLru('trip');
      await s.close();
      s = await openStrata(dir);
      closeAfter(t, () => s.close());
      assert.deepEqual((await allMessages(s, 'trip')).map(sent), expected);
      // Export and import into another session.
      const file = await s.exportSession('trip');
      await s.importSession('trip-copy', file);
      assert.deepEqual((await allMessages(s, 'trip-copy')).map(sent), expected);
    });

    test('the journal alone brings tool turns back (unarchived turns after a restart)', async (t) => {
      const dir = await tempDir(t);
      const s = await openStrata(dir);
      await s.addMessages('j', agentConversation());
      // A second instance on another journal reads them through recovery, before any archive.
      const reader = await openStrata(dir, { instanceId: 'reader', readOnly: true });
      closeAfter(t, () => s.close());
      closeAfter(t, () => reader.close());
      assert.deepEqual((await allMessages(reader, 'j')).map(sent), agentConversation());
    });

    test('a recent window that starts with tool results reaches back to their call', async (t) => {
      const s = await openStrata(await tempDir(t));
      closeAfter(t, () => s.close());
      await s.addMessages('w', agentConversation());
      const ids = async (limit: number) => (await s.getContext('w', { type: 'recent', limit })).messages.map((m) => m.turnId);
      assert.deepEqual(await ids(2), [6, 7, 8]);
      assert.deepEqual(await ids(4), [3, 4, 5, 6, 7, 8]);
      assert.deepEqual(await ids(3), [6, 7, 8]);
      await s.flush('w');
      await s.evictToDiskLru('w');
      assert.deepEqual(await ids(4), [3, 4, 5, 6, 7, 8], 'from the archive too');
    });

    test('bad messages get coded errors naming the field, and change nothing', async (t) => {
      const s = await openStrata(await tempDir(t), { maxInlineDataBytes: 64, maxMessageBytes: 4096 });
      closeAfter(t, () => s.close());
      await s.addMessage('bad', 'user', 'first');
      const cases: Array<[unknown, string, string]> = [
        [{ role: 'assistant', content: null }, 'STRATA_ERR_CONTENT_EMPTY', 'messages[1].content'],
        [{ role: 'assistant', content: '' }, 'STRATA_ERR_CONTENT_EMPTY', 'messages[1].content'],
        [{ role: 'tool', content: 'result' }, 'STRATA_ERR_VALIDATION', 'messages[1].tool_call_id'],
        [{ role: 'user', content: 'x', tool_call_id: 'c1' }, 'STRATA_ERR_VALIDATION', 'messages[1].tool_call_id'],
        [{ role: 'user', content: 'x', tool_calls: [] }, 'STRATA_ERR_VALIDATION', 'messages[1].tool_calls'],
        [{ role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: '', arguments: '{}' } }] }, 'STRATA_ERR_VALIDATION', 'messages[1].tool_calls[0].function.name'],
        [{ role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: { a: 1 } } }] }, 'STRATA_ERR_VALIDATION', 'messages[1].tool_calls[0].function.arguments'],
        [{ role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }, { id: 'c1', type: 'function', function: { name: 'g', arguments: '{}' } }] }, 'STRATA_ERR_VALIDATION', 'messages[1].tool_calls[1].id'],
        [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${'A'.repeat(100)}` } }] }, 'STRATA_ERR_CONTENT_TOO_LARGE', 'messages[1].content[0].image_url.url'],
        [{ role: 'user', content: [{ type: 'file', file: { file_data: 'B'.repeat(100) } }] }, 'STRATA_ERR_CONTENT_TOO_LARGE', 'messages[1].content[0].file.file_data'],
        [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'ftp://x' } }] }, 'STRATA_ERR_VALIDATION', 'messages[1].content[0].image_url.url'],
        [{ role: 'user', content: [{ type: 'audio', data: 'x' }] }, 'STRATA_ERR_VALIDATION', 'messages[1].content[0].type'],
        [{ role: 'assistant', content: [{ type: 'image_url', image_url: { url: 'https://x.test/a.png' } }] }, 'STRATA_ERR_VALIDATION', 'messages[1].content[0].type'],
        [{ role: 'user', content: 'x', extra: 1 }, 'STRATA_ERR_VALIDATION', 'messages[1].extra'],
        [{ role: 'user', content: [{ type: 'text', text: 'x'.repeat(5000) }] }, 'STRATA_ERR_CONTENT_TOO_LARGE', 'messages[1].content'],
      ];
      for (const [bad, code, field] of cases) {
        await assert.rejects(
          s.addMessages('bad', [{ role: 'user', content: 'fine' }, bad as NewMessage]),
          (e) => isStrataError(e, code as never) && (e as { details?: { field?: string } }).details?.field === field && e.message.includes(field),
          `${JSON.stringify(bad).slice(0, 80)} → ${code} ${field}`,
        );
      }
      assert.deepEqual((await allMessages(s, 'bad')).map((m) => m.content), ['first']);
    });

    test('a session nobody wrote to is empty for context and messages, missing for info, flush, delete, export', async (t) => {
      const s = await openStrata(await tempDir(t));
      closeAfter(t, () => s.close());
      for (const type of ['recent', 'full', 'smart'] as const) {
        const r = await s.getContext('new-session', { type });
        assert.deepEqual([r.type, r.messages, r.tokens, r.summary, r.nextAfter], [type, [], 0, null, null]);
      }
      assert.deepEqual(await s.getMessages('new-session'), { messages: [], nextAfter: null });
      assert.deepEqual(await s.searchDiskHistory('anything', 5, { sessionId: 'new-session' }), []);
      for (const op of [() => s.getSession('new-session'), () => s.flush('new-session'), () => s.deleteSession('new-session'), () => s.exportSession('new-session')]) {
        await assert.rejects(op(), (e) => isStrataError(e, 'STRATA_ERR_NOT_FOUND'));
      }
      // Reading did not create it.
      assert.equal((await s.listSessions()).sessions.length, 0);
    });

    test('session and user ids are any text without control characters, stored apart', async (t) => {
      const dir = await tempDir(t);
      const s = await openStrata(dir);
      closeAfter(t, () => s.close());
      const ids = ['user@example.com', 'user:42', '../../etc/passwd', 'a/b', '{tag}', 'Grüße 🦀', 'é'.repeat(256), '..'];
      for (const [i, id] of ids.entries()) await s.addMessage(id, 'user', `message ${i}`, { userId: id });
      await s.flush();
      for (const [i, id] of ids.entries()) {
        assert.deepEqual((await allMessages(s, id)).map((m) => m.content), [`message ${i}`], id);
        assert.equal((await s.getSession(id)).userId, id);
      }
      const listed = (await s.listSessions({ limit: 1000 })).sessions.map((x) => x.sessionId).sort();
      assert.deepEqual(listed, [...ids].sort());
      // Paging walks every one exactly once.
      const paged: string[] = [];
      let cursor: string | null = null;
      do {
        const page = await s.listSessions({ limit: 3, cursor });
        paged.push(...page.sessions.map((x) => x.sessionId));
        cursor = page.nextCursor;
      } while (cursor !== null);
      assert.deepEqual(paged.sort(), [...ids].sort());
      // User-scope search and deletion find a user by an id with spaces and quotes.
      await s.addMessage('second "quoted" session', 'user', 'the harbour tour starts at noon', { userId: 'Grüße 🦀' });
      await s.flush();
      const found = await s.searchDiskHistory('harbour tour', 5, { userId: 'Grüße 🦀' });
      assert.deepEqual([...new Set(found.map((h) => h.sessionId))].sort(), ['Grüße 🦀', 'second "quoted" session']);
      const receipt = await s.deleteUser('Grüße 🦀');
      assert.deepEqual([...receipt.sessionIds].sort(), ['Grüße 🦀', 'second "quoted" session']);
      assert.deepEqual(await allMessages(s, 'Grüße 🦀'), []);
      await s.deleteSession('a/b');
      assert.deepEqual(await allMessages(s, 'a/b'), []);
      assert.deepEqual((await allMessages(s, '../../etc/passwd')).map((m) => m.content), ['message 2']);
    });
  });
}
