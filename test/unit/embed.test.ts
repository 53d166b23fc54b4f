import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createEmbedder } from '../../src/retrieval/create-embedder.js';
import { dot } from '../../src/retrieval/embedder.js';
import { OpenAIEmbedder } from '../../src/retrieval/embedders/openai.js';
import { decodeGloveTable, encodeGloveTable } from '../../src/retrieval/glove-table.js';
import { isStrataError } from '../../src/errors.js';

const norm = (v: Float32Array) => Math.sqrt(dot(v, v));

test('hash embedder is deterministic, normalised and has its dimension', async () => {
  const e = createEmbedder({ provider: 'hash', dimensions: 64 });
  const [a, b, c] = await e.embed(['the cat sat on the mat', 'the cat sat on the mat', 'stock prices fell sharply']);
  assert.equal(a!.length, 64);
  assert.deepEqual(a, b);
  assert.ok(Math.abs(norm(a!) - 1) < 1e-5);
  assert.ok(dot(a!, c!) < 0.5);
  assert.match(e.id, /hash/);
});

test('glove embedder: 100 dimensions, related sentences closer than unrelated ones', async () => {
  const e = createEmbedder({ provider: 'glove' });
  const [puppy, dog, market] = await e.embed(['I adopted a puppy last week', 'we got a new dog recently', 'the stock market crashed']);
  assert.equal(e.dimensions, 100);
  assert.equal(puppy!.length, 100);
  assert.ok(Math.abs(norm(puppy!) - 1) < 1e-5);
  assert.ok(dot(puppy!, dog!) > dot(puppy!, market!) + 0.1);
  const [again] = await e.embed(['I adopted a puppy last week']);
  assert.deepEqual(again, puppy);
});

test('glove table round-trips and rejects corruption with a coded error', () => {
  const bytes = encodeGloveTable(['alpha', 'beta'], [Float32Array.from([1, -0.5, 0.25]), Float32Array.from([0, 2, -2])], 3);
  const t = decodeGloveTable(bytes);
  assert.equal(t.size, 2);
  assert.equal(t.index.get('beta'), 1);
  assert.ok(Math.abs(t.values[3 + 1]! * t.scales[1]! - 2) < 0.02);
  const bad = Uint8Array.from(bytes);
  bad[bad.length - 1]! ^= 0xff;
  assert.throws(() => decodeGloveTable(bad), (err) => isStrataError(err, 'STRATA_ERR_INPUT_FORMAT'));
});

test('createEmbedder rejects an unknown provider with a coded error', () => {
  assert.throws(() => createEmbedder({ provider: 'nope' } as never), (err) => isStrataError(err, 'STRATA_ERR_CONFIG_INVALID'));
});

/** A local server speaking the /v1/embeddings API, with scripted failures. */
async function embeddingServer(plan: (n: number, req: IncomingMessage) => 'ok' | number | 'hang' | 'short') {
  const requests: Array<{ input: string[]; auth: string | undefined }> = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const json = JSON.parse(body) as { input: string[] };
      requests.push({ input: json.input, auth: req.headers.authorization });
      const action = plan(requests.length, req);
      if (action === 'hang') return;
      if (typeof action === 'number') {
        res.writeHead(action).end('{"error":"scripted"}');
        return;
      }
      const dims = action === 'short' ? 2 : 3;
      const data = json.input.map((text, index) => ({ index, embedding: Array.from({ length: dims }, (_, i) => text.length + i) }));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: data.reverse() }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  return { url, requests, close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

test('openai embedder batches, keeps input order and sends the key', async () => {
  const s = await embeddingServer(() => 'ok');
  try {
    const e = new OpenAIEmbedder({ baseUrl: s.url, model: 'm', dimensions: 3, batchSize: 2, apiKey: 'k1' });
    const out = await e.embed(['a', 'bbb', 'cc', 'dddd', 'e']);
    assert.equal(s.requests.length, 3);
    assert.deepEqual(s.requests.map((r) => r.input.length), [2, 2, 1]);
    assert.equal(s.requests[0]!.auth, 'Bearer k1');
    const first = Float32Array.from([1, 2, 3]);
    const n = norm(first);
    assert.ok(Math.abs(out[0]![0]! - 1 / n) < 1e-6);
    assert.ok(out[1]![0]! > out[0]![0]!);
    assert.equal(out.length, 5);
  } finally {
    await s.close();
  }
});

test('openai embedder retries 5xx and 429 with backoff, then succeeds', async () => {
  const s = await embeddingServer((n) => (n === 1 ? 503 : n === 2 ? 429 : 'ok'));
  try {
    const e = new OpenAIEmbedder({ baseUrl: s.url, model: 'm', dimensions: 3, retries: 3, backoffMs: 1 });
    const out = await e.embed(['hello']);
    assert.equal(out.length, 1);
    assert.equal(s.requests.length, 3);
  } finally {
    await s.close();
  }
});

test('openai embedder: timeout, 4xx and wrong dimension fail with coded errors', async () => {
  const hang = await embeddingServer(() => 'hang');
  try {
    const e = new OpenAIEmbedder({ baseUrl: hang.url, model: 'm', dimensions: 3, retries: 1, backoffMs: 1, timeoutMs: 50 });
    await assert.rejects(e.embed(['x']), (err) => isStrataError(err, 'STRATA_ERR_EMBEDDER_FAILED') && /timed out/.test(err.message));
    assert.equal(hang.requests.length, 2);
  } finally {
    await hang.close();
  }
  const denied = await embeddingServer(() => 401);
  try {
    const e = new OpenAIEmbedder({ baseUrl: denied.url, model: 'm', dimensions: 3, retries: 3, backoffMs: 1 });
    await assert.rejects(e.embed(['x']), (err) => isStrataError(err, 'STRATA_ERR_EMBEDDER_FAILED') && err.details?.status === 401);
    assert.equal(denied.requests.length, 1, '4xx other than 408/429 is not retried');
  } finally {
    await denied.close();
  }
  const short = await embeddingServer(() => 'short');
  try {
    const e = new OpenAIEmbedder({ baseUrl: short.url, model: 'm', dimensions: 3 });
    await assert.rejects(e.embed(['x']), (err) => isStrataError(err, 'STRATA_ERR_EMBEDDING_DIMENSION'));
  } finally {
    await short.close();
  }
});

test('openai embedder validates its configuration', () => {
  assert.throws(() => new OpenAIEmbedder({ baseUrl: 'ftp://x', model: 'm', dimensions: 3 }), (err) => isStrataError(err, 'STRATA_ERR_CONFIG_INVALID'));
  assert.throws(() => new OpenAIEmbedder({ baseUrl: 'http://x/v1', model: 'm', dimensions: 0 }), (err) => isStrataError(err, 'STRATA_ERR_CONFIG_INVALID'));
});
