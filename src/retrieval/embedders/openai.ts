import { StrataError } from '../../errors.js';
import { l2normalize, type Embedder, type OpenAIEmbedderOptions } from '../embedder.js';

/** Statuses worth retrying: rate limits and server-side failures. */
function retryable(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

function positiveInt(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new StrataError('STRATA_ERR_CONFIG_INVALID', `embedder.${name}: expected an integer ≥ ${min}, got ${String(value)}`);
  }
  return value;
}

/**
 * Any OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, Ollama, vLLM, TEI). Texts are sent in
 * batches of `batchSize`; each request has a timeout and is retried with exponential backoff and
 * jitter on network errors, timeouts, 408, 429 and 5xx. After the last retry, or on any other
 * status, or when the response has the wrong shape or dimension, it fails with
 * STRATA_ERR_EMBEDDER_FAILED (details: status, attempts).
 */
export class OpenAIEmbedder implements Embedder {
  readonly id: string;
  readonly dimensions: number;
  private readonly url: string;
  private readonly options: Required<Omit<OpenAIEmbedderOptions, 'apiKey'>> & { apiKey: string | undefined };

  constructor(options: OpenAIEmbedderOptions) {
    if (typeof options.baseUrl !== 'string' || !/^https?:\/\//.test(options.baseUrl)) {
      throw new StrataError('STRATA_ERR_CONFIG_INVALID', `embedder.baseUrl: expected an http(s) URL, got ${JSON.stringify(options.baseUrl)}`);
    }
    if (typeof options.model !== 'string' || options.model.length === 0) {
      throw new StrataError('STRATA_ERR_CONFIG_INVALID', `embedder.model: expected a model name, got ${JSON.stringify(options.model)}`);
    }
    this.options = {
      baseUrl: options.baseUrl,
      model: options.model,
      dimensions: positiveInt('dimensions', options.dimensions, 1),
      apiKey: options.apiKey,
      batchSize: positiveInt('batchSize', options.batchSize ?? 64, 1),
      timeoutMs: positiveInt('timeoutMs', options.timeoutMs ?? 30_000, 1),
      retries: positiveInt('retries', options.retries ?? 3, 0),
      backoffMs: positiveInt('backoffMs', options.backoffMs ?? 200, 0),
      sendDimensions: options.sendDimensions ?? false,
      fetch: options.fetch ?? globalThis.fetch,
    };
    this.dimensions = this.options.dimensions;
    this.url = `${options.baseUrl.replace(/\/+$/, '')}/embeddings`;
    this.id = `openai:${options.model}@${this.dimensions}`;
  }

  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    const out: Float32Array[] = [];
    for (let i = 0; i < texts.length; i += this.options.batchSize) {
      out.push(...(await this.embedBatch(texts.slice(i, i + this.options.batchSize))));
    }
    return out;
  }

  private async embedBatch(batch: string[]): Promise<Float32Array[]> {
    const body = JSON.stringify({
      model: this.options.model,
      input: batch,
      encoding_format: 'float',
      ...(this.options.sendDimensions ? { dimensions: this.dimensions } : {}),
    });
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    let lastError = '';
    let lastStatus: number | null = null;
    for (let attempt = 0; attempt <= this.options.retries; attempt++) {
      if (attempt > 0) {
        const base = this.options.backoffMs * 2 ** (attempt - 1);
        await new Promise((r) => setTimeout(r, base / 2 + Math.random() * base));
      }
      let response: Response;
      try {
        response = await this.options.fetch(this.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(this.options.timeoutMs) });
      } catch (err) {
        lastError = (err as Error).name === 'TimeoutError' ? `timed out after ${this.options.timeoutMs} ms` : String((err as Error).message ?? err);
        lastStatus = null;
        continue;
      }
      lastStatus = response.status;
      if (!response.ok) {
        const text = await response.text().catch(() => '');
        lastError = `HTTP ${response.status}${text ? `: ${text.slice(0, 200)}` : ''}`;
        if (retryable(response.status)) continue;
        break;
      }
      return this.parse(await response.json().catch(() => null), batch.length);
    }
    throw new StrataError('STRATA_ERR_EMBEDDER_FAILED', `embedding request to ${this.url} failed: ${lastError}`, {
      details: { status: lastStatus, attempts: this.options.retries + 1, model: this.options.model },
    });
  }

  private parse(json: unknown, expected: number): Float32Array[] {
    const data = (json as { data?: unknown } | null)?.data;
    if (!Array.isArray(data) || data.length !== expected) {
      throw new StrataError('STRATA_ERR_EMBEDDER_FAILED', `embedding response from ${this.url} has no data array of ${expected} items`);
    }
    const out = new Array<Float32Array>(expected);
    data.forEach((item: { index?: unknown; embedding?: unknown }, i) => {
      const index = typeof item.index === 'number' ? item.index : i;
      const e = item.embedding;
      if (!Array.isArray(e) || index < 0 || index >= expected) {
        throw new StrataError('STRATA_ERR_EMBEDDER_FAILED', `embedding response item ${i} is malformed`);
      }
      if (e.length !== this.dimensions) {
        throw new StrataError('STRATA_ERR_EMBEDDING_DIMENSION', `model ${this.options.model} returned ${e.length} dimensions, configured ${this.dimensions}`);
      }
      out[index] = l2normalize(Float32Array.from(e as number[]));
    });
    if (out.some((v) => v === undefined)) throw new StrataError('STRATA_ERR_EMBEDDER_FAILED', `embedding response from ${this.url} misses indexes`);
    return out;
  }
}
