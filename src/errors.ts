/**
 * The one catalog of Strata's error codes. Codes are stable API: callers (and the HTTP layer)
 * branch on `code`, never on message text. `docs/errors.md` lists the same codes; a test fails
 * when the two disagree.
 */

/** code → [HTTP status, one-line meaning]. The status is what the HTTP service answers with. */
export const ERROR_CATALOG = {
  // configuration and input
  STRATA_ERR_CONFIG_INVALID: [500, 'A configuration option has the wrong type or value; the message names the option, what was expected and what was received.'],
  STRATA_ERR_VALIDATION: [400, 'A request or argument failed validation.'],
  STRATA_ERR_INVALID_ID: [400, 'An id is invalid: a session or user id empty, over 256 characters or with a control character; a tenant id outside 1-128 characters of [A-Za-z0-9_.-].'],
  STRATA_ERR_INVALID_ROLE: [400, 'A message role is not one of system, user, assistant, tool.'],
  STRATA_ERR_CONTENT_EMPTY: [400, 'A message has no content (null, empty string or no parts) and no tool calls to carry it.'],
  STRATA_ERR_CONTENT_TOO_LARGE: [413, 'A message is larger than maxMessageBytes, or an inline part larger than maxInlineDataBytes.'],
  STRATA_ERR_METADATA_INVALID: [400, 'Message metadata is not a plain JSON object.'],
  STRATA_ERR_METADATA_TOO_LARGE: [413, 'Message metadata is larger than maxMetadataBytes.'],
  STRATA_ERR_INPUT_FORMAT: [400, 'An input file or body is not in a recognised format.'],
  STRATA_ERR_TEXT_INVALID: [400, 'Text is not valid Unicode (a lone UTF-16 surrogate); the message names the field. Strata stores text exactly as acknowledged, so it refuses text it could not give back unchanged.'],
  STRATA_ERR_IDEMPOTENCY_MISMATCH: [422, 'An idempotency key was reused in the same session for a different request (other messages, or a batch of another size).'],
  STRATA_ERR_IDEMPOTENCY_IN_PROGRESS: [409, 'A request with this idempotency key is still being made durable by another call; retry shortly.'],
  STRATA_ERR_NOT_FOUND: [404, 'The session, turn or user does not exist (or belongs to another tenant). Reading the messages or context of a session answers empty instead.'],
  STRATA_ERR_CONFLICT: [409, 'The operation conflicts with the current state (for example an import over an existing session).'],
  STRATA_ERR_NOT_AVAILABLE: [501, 'The requested feature is not available in this configuration.'],
  // moving data (`strata copy`)
  STRATA_ERR_COPY_PENDING: [409, 'The source of `strata copy` holds unarchived journal records (acknowledged turns not in its archive yet); nothing was copied. Let the instances that wrote them archive them (start them once), or pass --include-pending to archive them into the target.'],
  STRATA_ERR_COPY_CONFLICT: [409, 'The target of `strata copy` holds a session of the same id with other content (or a deleted session of that id, or unarchived journal records of it); nothing was written to the target.'],
  STRATA_ERR_COPY_MISMATCH: [500, 'A session `strata copy` wrote reads back from the target differently from the source (messages, owner, summaries or user index); the run lists the sessions and exits non-zero.'],
  // codec
  STRATA_ERR_CODEC_UNKNOWN: [500, 'A frame names a codec id this build does not know.'],
  STRATA_ERR_CODEC_TRUNCATED: [500, 'A codec frame ends before its declared content.'],
  STRATA_ERR_CODEC_CORRUPT: [500, 'A codec frame is malformed (bad header, impossible code table, bad bit stream).'],
  STRATA_ERR_CODEC_CHECKSUM: [500, 'A decoded frame does not match its CRC32C or declared length.'],
  STRATA_ERR_CODEC_TOO_LARGE: [500, 'A frame declares a decoded size above the configured maximum.'],
  // archive
  STRATA_ERR_ARCHIVE_CORRUPT: [500, 'An archive file has a block whose CRC or lengths do not check; the message names file, segment and block.'],
  STRATA_ERR_ARCHIVE_VERSION: [500, 'An archive file or segment has an unknown magic or format version.'],
  STRATA_ERR_ARCHIVE_IO: [500, 'Reading or writing an archive file failed at the operating-system level.'],
  STRATA_ERR_INDEX_DAMAGED: [500, 'A persisted search index file has message fields whose CRC does not check; the search drops the file, rebuilds the index from the archive and runs again, so callers see this code only if that also fails.'],
  // journal
  STRATA_ERR_JOURNAL_LOCKED: [500, 'Another live process owns this journal directory.'],
  STRATA_ERR_JOURNAL_CORRUPT: [500, 'A journal record in the middle of a file fails its CRC or length check.'],
  STRATA_ERR_JOURNAL_CLOSED: [503, 'The journal was closed; no more appends are accepted.'],
  STRATA_ERR_JOURNAL_IO: [503, 'Writing or fsyncing the journal failed; nothing of the refused write is acknowledged. The instance reports not ready and retries by itself.'],
  STRATA_ERR_STORAGE_FULL: [503, 'The disk holding the journal or archive is full; nothing of the refused write was stored. The instance reports not ready and recovers by itself when space returns.'],
  // PostgreSQL store
  STRATA_ERR_DB_UNAVAILABLE: [503, 'PostgreSQL cannot be reached or the connection dropped (restart, failover, network); the statement did not commit and nothing of the refused write is acknowledged. The instance reports not ready and reconnects by itself; retry writes with the same Idempotency-Key.'],
  STRATA_ERR_DB_TIMEOUT: [503, 'A PostgreSQL statement ran longer than statement_timeout_ms and was cancelled; its transaction was rolled back. Retry.'],
  // hot tier, leases, lifecycle
  STRATA_ERR_HOT_UNAVAILABLE: [503, 'The hot store (Redis) cannot be reached.'],
  STRATA_ERR_LEASE_BUSY: [409, 'Another instance holds the compaction lease of this session.'],
  STRATA_ERR_LEASE_LOST: [409, 'The compaction lease expired or was taken over before the work finished.'],
  STRATA_ERR_FENCED: [409, 'A write carried a fencing token older than one already committed for the session (a paused holder whose lease expired); it changed nothing.'],
  STRATA_ERR_RECOVERING: [503, 'The hot tier lost its data (Redis restart or flush) and this session is being re-seeded from the journals and the archive; retry shortly.'],
  STRATA_ERR_CLOSED: [503, 'The instance is closing or closed.'],
  STRATA_ERR_BACKPRESSURE: [429, 'The journal or compaction is too far behind; retry later.'],
  // retrieval
  STRATA_ERR_EMBEDDING_DIMENSION: [400, 'An embedding has a different dimension than the configured embedder.'],
  STRATA_ERR_EMBEDDER_FAILED: [502, 'The embedding provider failed or timed out after its retries.'],
  STRATA_ERR_EMBEDDER_MISMATCH: [409, 'The archive was embedded with a different model than the configured one; run `strata reindex`.'],
  // service
  STRATA_ERR_UNAUTHORIZED: [401, 'The API key is missing or unknown.'],
  STRATA_ERR_PAYLOAD_TOO_LARGE: [413, 'The request body exceeds the size limit.'],
  STRATA_ERR_WORKER_FAILED: [500, 'A worker thread died (or its module failed to load) while computing token counts or embeddings for compaction; that batch failed, the thread was replaced, and the turns stay unarchived until a later compaction.'],
  STRATA_ERR_INTERNAL: [500, 'An unexpected internal error.'],
  // HTTP client (never answered by the service: the status is what the client reports)
  STRATA_ERR_UNREACHABLE: [503, 'The HTTP client got no answer from the service (connection refused or reset, DNS failure, timeout, a reply that is not Strata\'s); a write may or may not have been applied: retry it with the same Idempotency-Key.'],
} as const satisfies Record<string, readonly [number, string]>;

export type ErrorCode = keyof typeof ERROR_CATALOG;

export class StrataError extends Error {
  readonly code: ErrorCode;
  /** Structured context (file, segment, option name, ...) for logs and API error bodies. */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(`${code}: ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StrataError';
    this.code = code;
    this.details = options.details;
  }

  /** HTTP status the service answers with for this error. */
  get status(): number {
    return ERROR_CATALOG[this.code][0];
  }
}

export function isStrataError(value: unknown, code?: ErrorCode): value is StrataError {
  return value instanceof StrataError && (code === undefined || value.code === code);
}
