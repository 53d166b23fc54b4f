/**
 * Hostile HTTP requests: malformed, mistyped, oversized, path-escaping, wrongly authenticated.
 * It lives in src/ because `strata chaos` sends this stream at live instances; the HTTP
 * robustness tests import it through test/helpers/hostile.ts.
 */
import { Rng } from './prng.js';

/** One request for `app.inject()` (or any HTTP client): method, url with query, headers, raw body. */
export interface HostileRequest {
  kind: string;
  method: 'GET' | 'POST' | 'DELETE' | 'PUT' | 'PATCH';
  url: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}

/**
 * The default `server.bodyLimitBytes` (64 MiB). Written out rather than imported from the config
 * so that a change of the default shows up here as a test failure of the oversized kind, not as
 * a silently moving target. Pass `bodyLimitBytes` when the server under test uses another limit.
 */
const DEFAULT_BODY_LIMIT = 64 * 1024 * 1024;
/** 256 KiB: a run without spaces this long is the worst case for BPE token counting. */
const HUGE_RUN = 256 * 1024;

type Pick = <T>(items: readonly T[]) => T;

/**
 * `count` hostile requests, the same ones for the same seed. Every kind should be answered with
 * a 2xx or a coded 4xx, never a 5xx, and none of them may change stored data, with one
 * exception: requests that are valid on purpose (huge runs without spaces, well-formed bodies
 * carrying a bad Idempotency-Key) write only to sessions named `${sessionPrefix}ok-<n>`, so a
 * caller can tell them apart. Every other session id is `${sessionPrefix}<0..3>` (which the
 * caller may create beforehand to watch them stay unchanged) or deliberately invalid.
 * `otherTenantAuthHeader` adds read-only requests with a second tenant's key; `bodyLimitBytes`
 * sizes the oversized bodies to a bit above the server's limit.
 */
export function hostileRequests(
  seed: number,
  count: number,
  opts: { sessionPrefix: string; authHeader?: Record<string, string>; otherTenantAuthHeader?: Record<string, string>; bodyLimitBytes?: number },
): HostileRequest[] {
  const rng = new Rng(seed);
  const random = (): number => rng.float();
  const pick: Pick = (items) => items[Math.floor(random() * items.length)] as (typeof items)[number];
  const auth = opts.authHeader ?? {};
  const json = { ...auth, 'content-type': 'application/json' };
  const p = opts.sessionPrefix;
  const known = (): string => `${p}${Math.floor(random() * 4)}`;
  let okCounter = 0;
  const okSession = (): string => `${p}ok-${seed}-${okCounter++}`;
  // Big bodies are built once per call and shared: the cost of 2,000 requests stays in the body
  // parser, not in building strings.
  let oversized: Buffer | undefined;
  const oversizedBody = (): Buffer => {
    if (!oversized) {
      const limit = opts.bodyLimitBytes ?? DEFAULT_BODY_LIMIT;
      const prefix = '{"role":"user","content":"';
      const suffix = '"}';
      oversized = Buffer.from(prefix + 'a'.repeat(limit + 1024 - prefix.length - suffix.length) + suffix);
    }
    return oversized;
  };
  let run: string | undefined;
  const hugeRun = (): string => (run ??= 'x'.repeat(HUGE_RUN - 7) + 'y'.repeat(7));
  const post = (kind: string, url: string, body: unknown, headers: Record<string, string> = json): HostileRequest => ({ kind, method: 'POST', url, headers, body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body) });

  const generators: Array<() => HostileRequest> = [
    () =>
      post(
        'malformed-json',
        pick([`/v1/sessions/${known()}/messages`, `/v1/sessions/${known()}/context`, `/v1/sessions/${known()}/search`, '/v1/search']),
        pick(['{', '{"role":"user",', 'nul', '[1,2', '{"role":"user","content":"x"}}', '\u0000', '{"role":"user","content":"x",}', "{'role':'user'}", '{"content":"\\x41"}', '{"a":' + '['.repeat(5000)]),
      ),
    () => post('empty-body', `/v1/sessions/${known()}/messages`, ''),
    () => {
      // Content is a string, an array of parts or (with tool calls) null: everything else, and
      // malformed parts, tool calls and tool messages, is refused.
      const content = pick<unknown>([123, true, false, ['hi'], null, {}, { type: 'text', text: 'hi' }, [{ type: 'text' }], [{ type: 'text', text: 1 }], [{ type: 'audio', data: 'x' }], [{ type: 'image_url', image_url: { url: 'javascript:alert(1)' } }], [{ type: 'file', file: {} }], 1.5, -0, '']);
      const extra = pick<Record<string, unknown>>([{}, {}, { tool_call_id: 'c1' }, { tool_calls: [] }, { tool_calls: [{ id: 'c', type: 'function', function: { name: 'f' } }] }, { name: '' }]);
      // A tool result may be empty: never send that valid combination.
      const safeContent = content === '' && 'tool_call_id' in extra ? 123 : content;
      return post('wrong-type-content', `/v1/sessions/${known()}/messages`, { role: pick(['user', 'assistant', 'tool']), content: safeContent, ...extra });
    },
    () => {
      const body = pick<unknown>([
        { role: 1, content: 'x' },
        { role: ['user'], content: 'x' },
        { role: 'user', content: 'x', metadata: 'm' },
        { role: 'user', content: 'x', metadata: [1, 2] },
        { role: 'user', content: 'x', metadata: null },
        { role: 'user', content: 'x', userId: 5 },
        { role: 'user', content: 'x', userId: ['u'] },
        { messages: 'x' },
        { messages: {} },
        { messages: [{ role: 'user', content: 7 }] },
        { messages: [{ role: 'user', content: ['a'] }] },
        { messages: [] },
        { role: 'user', content: 'x', extra: true },
      ]);
      return post('wrong-type-message', `/v1/sessions/${known()}/messages`, body);
    },
    () => {
      const [url, body] = pick<[string, unknown]>([
        [`/v1/sessions/${known()}/context`, { type: 1 }],
        [`/v1/sessions/${known()}/context`, { type: ['smart'] }],
        [`/v1/sessions/${known()}/context`, { type: 'smart', maxTokens: '10' }],
        [`/v1/sessions/${known()}/context`, { type: 'smart', maxTokens: true }],
        [`/v1/sessions/${known()}/context`, { type: 'recent', limit: '5' }],
        [`/v1/sessions/${known()}/context`, { type: 'full', after: -1 }],
        [`/v1/sessions/${known()}/context`, { type: 'smart', query: 5 }],
        [`/v1/sessions/${known()}/search`, { query: 5 }],
        [`/v1/sessions/${known()}/search`, { query: 'x', k: '3' }],
        [`/v1/sessions/${known()}/search`, { query: 'x', k: 0 }],
        ['/v1/search', { query: ['x'], userId: 'u' }],
        ['/v1/search', { query: 'x', userId: 9 }],
      ]);
      return post('wrong-type-other', url, body);
    },
    () => {
      const [url, body] = pick<[string, unknown]>([
        [`/v1/sessions/${known()}/messages`, {}],
        [`/v1/sessions/${known()}/messages`, { role: 'user' }],
        [`/v1/sessions/${known()}/messages`, { content: 'hello' }],
        [`/v1/sessions/${known()}/messages`, { messages: [{ role: 'user' }] }],
        [`/v1/sessions/${known()}/context`, {}],
        [`/v1/sessions/${known()}/search`, {}],
        ['/v1/search', { query: 'x' }],
      ]);
      return post('missing-field', url, body);
    },
    () => post('bad-role', `/v1/sessions/${known()}/messages`, { role: pick(['admin', 'USER', '', ' user', 'user\u0000', 'function', 'developer']), content: 'hello' }),
    () => post('oversized-body', `/v1/sessions/${known()}/messages`, oversizedBody()),
    () => {
      // Raw JSON text, so the escapes reach the server as written ("\ud800" is valid JSON syntax).
      const body = pick([
        '{"role":"user","content":"\\ud800"}',
        '{"role":"user","content":"a\\udc00b"}',
        '{"role":"user","content":"\\ude00\\ud83d"}',
        '{"role":"user","content":"ok","metadata":{"\\ud800":"v"}}',
        '{"role":"user","content":"ok","metadata":{"k":"\\udbff"}}',
        '{"role":"user","content":"ok","metadata":{"k":{"deep":["\\ud800"]}}}',
        '{"role":"user","content":"ok","userId":"\\ud800"}',
        '{"messages":[{"role":"user","content":"fine"},{"role":"user","content":"\\udfff"}]}',
      ]);
      return post('lone-surrogate', `/v1/sessions/${known()}/messages`, body);
    },
    () => {
      // Valid but expensive: these may be accepted (writes go to an `ok-` session) and must be cheap.
      const target = pick(['message', 'context', 'search']);
      if (target === 'message') return post('huge-run', `/v1/sessions/${okSession()}/messages`, { role: 'user', content: hugeRun() });
      if (target === 'context') return post('huge-run', `/v1/sessions/${known()}/context`, { type: 'smart', query: hugeRun(), maxTokens: 500 });
      return post('huge-run', `/v1/sessions/${known()}/search`, { query: hugeRun() });
    },
    () => {
      // Session ids are any text without control characters: a path-like id is valid (and must
      // stay inside the data directory; only a write to an `ok-` session may store anything),
      // an id with a control character, a lone surrogate, a bad escape or over 256 characters is not.
      const invalid = pick([true, false]);
      const id = invalid
        ? pick(['%00', 'a%0Ab', '%7F', '%C2%85', '%ED%A0%80', '%ZZ', 'x'.repeat(257), 'y'.repeat(5000)])
        : pick(['..', '.', '%2e%2e', '%2E%2E%2F%2E%2E', '.hidden', '..%2f..%2fetc', 'a%2Fb', '%C3%A9', '%20', 'a%20b', '~', '~~', '*', 'a:b', '%7B%7D', 'x'.repeat(256)]);
      const kind = invalid ? 'invalid-session-id' : 'path-like-session-id';
      const writeId = invalid ? id : `${okSession()}${encodeURIComponent('/')}${id}`;
      const route = pick([
        (): HostileRequest => post(kind, `/v1/sessions/${writeId}/messages`, { role: 'user', content: 'hi' }),
        (): HostileRequest => ({ kind, method: 'GET', url: `/v1/sessions/${id}/messages`, headers: { ...auth } }),
        (): HostileRequest => ({ kind, method: 'GET', url: `/v1/sessions/${id}`, headers: { ...auth } }),
        (): HostileRequest => ({ kind, method: 'GET', url: `/v1/sessions/${id}/export`, headers: { ...auth } }),
        (): HostileRequest => ({ kind, method: 'DELETE', url: `/v1/sessions/${id}`, headers: { ...auth } }),
        (): HostileRequest => ({ kind, method: 'DELETE', url: `/v1/users/${id}`, headers: { ...auth } }),
        (): HostileRequest => post(kind, `/v1/sessions/${id}/flush`, '', { ...auth }),
        (): HostileRequest => post(kind, `/v1/sessions/${id}/context`, { type: 'recent' }),
        (): HostileRequest => post(kind, `/v1/import?sessionId=${id}`, Buffer.from('STRA'), { ...auth, 'content-type': 'application/octet-stream' }),
      ]);
      return route();
    },
    () => {
      const query = pick(['after=-1', 'after=abc', 'after=1.5', 'after=1e400', 'limit=0', 'limit=1001', 'limit=99999999999999999999', 'limit=abc', 'limit=', 'limit=-5', 'unknown=1', 'after[]=1', 'limit=1&limit=2', 'after=%00', 'limit=0x10', 'cursor=', 'cursor=%ff%fe', 'userId=..']);
      const path = pick([`/v1/sessions/${known()}/messages`, '/v1/sessions']);
      return { kind: 'bad-query', method: 'GET', url: `${path}?${query}`, headers: { ...auth } };
    },
    () => {
      const [method, url] = pick<[HostileRequest['method'], string]>([
        ['GET', '/v1/nope'],
        ['GET', '/v2/sessions'],
        ['GET', `/v1/sessions/${known()}/messages/extra`],
        ['GET', '/../../etc/passwd'],
        ['GET', '/v1/sessions/../../../etc/passwd'],
        ['POST', '/v1'],
        ['GET', '/v1/users'],
        ['DELETE', '/v1/sessions'],
      ]);
      return { kind: 'unknown-route', method, url, headers: { ...auth } };
    },
    () => {
      const [method, url] = pick<[HostileRequest['method'], string]>([
        ['PUT', `/v1/sessions/${known()}/messages`],
        ['PATCH', `/v1/sessions/${known()}`],
        ['DELETE', '/v1/search'],
        ['GET', '/v1/import'],
        ['PUT', '/v1/import'],
        ['GET', `/v1/sessions/${known()}/flush`],
        ['PATCH', `/v1/sessions/${known()}/context`],
      ]);
      return { kind: 'wrong-method', method, url, headers: { ...json }, body: '{"role":"user","content":"hi"}' };
    },
    () => {
      const contentType = pick(['text/plain', 'application/xml', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'application/json; charset=utf-16', 'application/jsonx', '', 'application/octet-stream']);
      const headers: Record<string, string> = { ...auth };
      if (contentType !== '') headers['content-type'] = contentType;
      return post('bad-content-type', `/v1/sessions/${known()}/messages`, '{"role":"user","content":"hi"}', headers);
    },
    () => {
      const octet = { ...auth, 'content-type': 'application/octet-stream' };
      const garbage = Buffer.alloc(16 + Math.floor(random() * 4096));
      for (let i = 0; i < garbage.length; i++) garbage[i] = Math.floor(random() * 256);
      // 53 54 52 41 is the archive record magic: garbage behind a plausible header reaches the parser.
      const magicThenGarbage = Buffer.concat([Buffer.from([0x53, 0x54, 0x52, 0x41, 1, 1, 0, 0, 0xff, 0xff, 0xff, 0x7f]), garbage]);
      const [body, headers] = pick<[string | Buffer, Record<string, string>]>([
        [Buffer.alloc(0), octet],
        [garbage, octet],
        [magicThenGarbage, octet],
        [Buffer.from([0x53, 0x54, 0x52]), octet],
        ['{"sessions":[{"id":"x","messages":[]}]}', json],
        ['{"role":"user","content":"x"}\n{"role":', { ...auth, 'content-type': 'application/x-ndjson' }],
        ['[{"conversation":', json],
      ]);
      const url = pick([`/v1/import?sessionId=${known()}`, `/v1/import?sessionId=${known()}&userId=..`, '/v1/import', '/v1/import?sessionId=', `/v1/import?sessionId=${known()}&extra=1`]);
      return post('bad-import', url, body, headers);
    },
    () => {
      const key = pick(['', ' ', 'k'.repeat(300), 'a\tb', 'a\u0001b', '\u007f', 'é', '😀']);
      // Header values with control characters other than tab are refused by Node's HTTP parser
      // before any route; over inject they reach the server, which must still answer with a 4xx.
      const headers = { ...json, 'idempotency-key': key };
      return post('bad-idempotency-key', `/v1/sessions/${okSession()}/messages`, { role: 'user', content: 'hello' }, headers);
    },
    () => {
      const headers = pick<Record<string, string>>([{ authorization: 'Bearer not-a-key' }, { authorization: 'Basic dXNlcjpwYXNz' }, { authorization: 'Bearer ' }, { authorization: `Bearer ${'z'.repeat(10_000)}` }, {}]);
      if (Object.keys(auth).length === 0) return { kind: 'unknown-key', method: 'GET', url: `/v1/sessions/${known()}`, headers: {} };
      return { kind: 'unknown-key', method: pick(['GET', 'DELETE'] as const), url: `/v1/sessions/${known()}`, headers };
    },
    () => {
      const other = opts.otherTenantAuthHeader ?? { authorization: 'Bearer another-tenants-key' };
      const [method, url, body] = pick<[HostileRequest['method'], string, string | undefined]>([
        ['GET', `/v1/sessions/${known()}`, undefined],
        ['GET', `/v1/sessions/${known()}/messages`, undefined],
        ['GET', `/v1/sessions/${known()}/export`, undefined],
        ['POST', `/v1/sessions/${known()}/context`, '{"type":"full"}'],
        ['POST', `/v1/sessions/${known()}/flush`, undefined],
        ['DELETE', `/v1/sessions/${known()}`, undefined],
      ]);
      const headers: Record<string, string> = body === undefined ? { ...other } : { ...other, 'content-type': 'application/json' };
      return body === undefined ? { kind: 'other-tenant', method, url, headers } : { kind: 'other-tenant', method, url, headers, body };
    },
  ];

  const out: HostileRequest[] = [];
  for (let i = 0; i < count; i++) out.push(pick(generators)());
  return out;
}

/** A hostile request may be accepted (2xx) or refused (4xx); a 5xx means the server broke. */
export function acceptableHostileStatus(status: number): boolean {
  return (status >= 200 && status < 300) || (status >= 400 && status < 500);
}
