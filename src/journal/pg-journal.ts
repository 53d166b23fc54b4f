import type pg from 'pg';
import { StrataError } from '../errors.js';
import { sessionKey } from '../ids.js';
import type { StrataMetrics } from '../metrics.js';
import type { Db } from '../postgres/db.js';
import { dbError } from '../postgres/db.js';
import { PendingLedger } from './ledger.js';
import { decodePayload, encodeFrame, FRAME_HEADER_BYTES } from './format.js';
import type { JournalHealth, JournalReader, JournalStore } from './store.js';
import type { JournalRecord } from './types.js';
import { validateRecord } from './validate.js';

/** `journal.kind`: the record type (docs/postgres.md). */
const KIND = { turn: 1, delete: 2, void: 3 } as const;
/** Rows per replay / readPending page. */
const PAGE = 5000;

interface Queued {
  records: readonly JournalRecord[];
  rows: EncodedRow[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface EncodedRow {
  tenant: string;
  sessionId: string;
  kind: number;
  turnId: number | null;
  record: Buffer;
}

export interface PgJournalOptions {
  db: Db;
  instanceId: string;
  metrics?: StrataMetrics;
  /**
   * Take an advisory lock on the instance id for the journal's life, so two live processes never
   * share one (STRATA_ERR_JOURNAL_LOCKED). It holds one extra connection. Default true.
   */
  lock?: boolean;
}

/** One record as it is stored in `journal.record`: the journal's record encoding (docs/format.md), one record per row. */
function encodeRow(r: JournalRecord): EncodedRow {
  let frame: Buffer;
  try {
    frame = encodeFrame([r]);
  } catch (err) {
    if (err instanceof StrataError) throw err;
    throw new StrataError('STRATA_ERR_METADATA_INVALID', `journal record metadata is not serialisable as JSON: ${(err as Error).message}`, { cause: err });
  }
  return { tenant: r.tenant, sessionId: r.sessionId, kind: KIND[r.type], turnId: r.type === 'delete' ? null : r.turnId, record: frame.subarray(FRAME_HEADER_BYTES) };
}

function decodeRow(record: Buffer, id: string): JournalRecord {
  return decodePayload(record, 'postgres journal', Number(id))[0]!;
}

const INSERT = `INSERT INTO journal (tenant, session_id, instance_id, kind, turn_id, record)
  SELECT t, s, $3, k, n, r FROM unnest($1::text[], $2::text[], $4::smallint[], $5::bigint[], $6::bytea[]) AS u(t, s, k, n, r)`;

/**
 * The `postgres` driver of `JournalStore`: one row per record in the shared `journal` table.
 *
 * Group commit: appends queue synchronously (call order); one writer loop takes everything
 * queued and inserts it with one statement — one transaction, one WAL flush — while new appends
 * queue for the next. An append resolves once that transaction committed (with
 * `synchronous_commit=on`: flushed on the primary). Every instance sees every row, so recovery
 * after a loss of the hot tier reads the records of instances that are gone for good.
 *
 * Rows leave the table when they are archived: the archive's fenced commit deletes the session's
 * turn rows at or below its new high-water mark in the same transaction (pg-store.ts), and
 * `checkpoint` deletes what this instance marked archived.
 */
export class PgJournal implements JournalStore {
  readonly instanceId: string;
  private readonly db: Db;
  private readonly metrics: StrataMetrics;
  private queue: Queued[] = [];
  private draining: Promise<void> | null = null;
  private closed = false;
  private lastError: StrataError | null = null;
  /** Rows of this instance with id ≤ this were written by previous runs (the replay). */
  private replayUpTo = '0';
  /** What this instance journaled (or replayed) that the archive does not hold yet. */
  readonly pending = new PendingLedger();
  private readonly archivedMarks = new Map<string, { tenant: string; sessionId: string; upTo: number }>();
  private readonly deleteMarks = new Map<string, { tenant: string; sessionId: string }>();
  private checkpointing: Promise<void> = Promise.resolve();
  private lockClient: pg.PoolClient | null = null;

  private constructor(options: PgJournalOptions) {
    this.db = options.db.acquire();
    this.instanceId = options.instanceId;
    this.metrics = options.metrics ?? {};
  }

  /** The schema must be migrated (schema.ts `migrate`). */
  static async open(options: PgJournalOptions): Promise<PgJournal> {
    const journal = new PgJournal(options);
    try {
      if (options.lock ?? true) await journal.takeLock();
      const { rows } = await journal.db.query<{ max: string | null }>('SELECT max(id)::text AS max FROM journal WHERE instance_id = $1', [journal.instanceId], 'opening the journal');
      journal.replayUpTo = rows[0]?.max ?? '0';
      return journal;
    } catch (err) {
      await journal.releaseLock();
      await journal.db.release();
      throw err;
    }
  }

  /**
   * A session-level advisory lock on (schema, instance id), held on a connection of its own for
   * the journal's life; PostgreSQL releases it when that connection ends (process killed).
   */
  private async takeLock(): Promise<void> {
    const client = await this.db.pool.connect().catch((err: unknown) => Promise.reject(dbError(err, 'locking the journal')));
    // A dropped lock connection (server restart) ends the lock; the journal keeps working (its
    // rows are safe), the id is merely unguarded until the process restarts.
    client.on('error', () => undefined);
    try {
      const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok', [`strata.journal:${this.db.settings.schema}:${this.instanceId}`]);
      if (!rows[0]?.ok) throw new StrataError('STRATA_ERR_JOURNAL_LOCKED', `another live process uses journal instance ${this.instanceId} in PostgreSQL schema ${this.db.settings.schema}`, { details: { instanceId: this.instanceId } });
    } catch (err) {
      client.release(true);
      throw err instanceof StrataError ? err : dbError(err, 'locking the journal');
    }
    this.lockClient = client;
  }

  private async releaseLock(): Promise<void> {
    const client = this.lockClient;
    this.lockClient = null;
    // Ending the connection releases the lock.
    client?.release(true);
  }

  append(record: JournalRecord): Promise<void> {
    return this.appendMany([record]);
  }

  appendMany(records: readonly JournalRecord[]): Promise<void> {
    try {
      if (this.closed) throw new StrataError('STRATA_ERR_JOURNAL_CLOSED', `journal ${this.instanceId} is closed`);
      if (!Array.isArray(records) || records.length === 0) throw new StrataError('STRATA_ERR_VALIDATION', 'appendMany needs a non-empty array of records');
      for (const r of records) validateRecord(r);
      const rows = records.map(encodeRow);
      return new Promise<void>((resolve, reject) => {
        this.queue.push({ records, rows, resolve, reject });
        this.draining ??= this.drain();
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        const t = [], s = [], k = [], n = [], r = [];
        for (const q of batch) {
          for (const row of q.rows) {
            t.push(row.tenant);
            s.push(row.sessionId);
            k.push(row.kind);
            n.push(row.turnId);
            r.push(row.record);
          }
        }
        const started = performance.now();
        try {
          // One statement is one transaction: all of a call's rows commit together, or none.
          await this.db.query(INSERT, [t, s, this.instanceId, k, n, r], 'a journal append');
          this.metrics.journalFsync?.((performance.now() - started) / 1000, batch.length);
          this.lastError = null;
          for (const q of batch) {
            for (const record of q.records) this.pending.add(record, null);
            q.resolve();
          }
        } catch (err) {
          this.lastError = err instanceof StrataError ? err : dbError(err, 'a journal append');
          for (const q of batch) q.reject(this.lastError);
        }
      }
    } finally {
      this.draining = null;
    }
  }

  async *replay(): AsyncGenerator<{ record: JournalRecord }> {
    let after = '0';
    while (true) {
      const { rows } = await this.db.query<{ id: string; record: Buffer }>(
        'SELECT id::text AS id, record FROM journal WHERE instance_id = $1 AND id > $2 AND id <= $3 ORDER BY id LIMIT $4',
        [this.instanceId, after, this.replayUpTo, PAGE],
        'the journal replay',
      );
      for (const row of rows) {
        const record = decodeRow(row.record, row.id);
        this.pending.add(record, null, true);
        yield { record };
      }
      if (rows.length < PAGE) return;
      after = rows.at(-1)!.id;
    }
  }

  markArchived(tenant: string, sessionId: string, upTo: number): void {
    this.pending.markArchived({ tenant, sessionId }, upTo);
    const key = sessionKey({ tenant, sessionId });
    const mark = this.archivedMarks.get(key);
    if (!mark || mark.upTo < upTo) this.archivedMarks.set(key, { tenant, sessionId, upTo });
  }

  markDeleteApplied(tenant: string, sessionId: string): void {
    this.pending.markDeleteApplied({ tenant, sessionId });
    this.deleteMarks.set(sessionKey({ tenant, sessionId }), { tenant, sessionId });
  }

  /** Rows are forgotten per session by turn id, never by position: only the ledger forgets. */
  markReplayed(): void {
    this.pending.forgetReplayed();
  }

  /**
   * Deletes the rows marked archived: this instance's turn and void rows of each marked session
   * at or below its mark, and its delete rows of sessions whose deletion was applied. A mark
   * that fails stays for the next checkpoint.
   */
  checkpoint(): Promise<void> {
    const run = this.checkpointing.then(() => this.writeCheckpoint());
    this.checkpointing = run.catch(() => undefined);
    return run;
  }

  private async writeCheckpoint(): Promise<void> {
    const archived = [...this.archivedMarks.entries()];
    const deletes = [...this.deleteMarks.entries()];
    if (archived.length === 0 && deletes.length === 0) return;
    for (const [key] of archived) this.archivedMarks.delete(key);
    for (const [key] of deletes) this.deleteMarks.delete(key);
    try {
      if (archived.length > 0) {
        await this.db.query(
          `DELETE FROM journal j USING unnest($1::text[], $2::text[], $3::bigint[]) AS m(t, s, up)
            WHERE j.tenant = m.t AND j.session_id = m.s AND j.instance_id = $4 AND j.kind IN (1, 3) AND j.turn_id <= m.up`,
          [archived.map(([, m]) => m.tenant), archived.map(([, m]) => m.sessionId), archived.map(([, m]) => m.upTo), this.instanceId],
          'a journal checkpoint',
        );
      }
      if (deletes.length > 0) {
        await this.db.query(
          `DELETE FROM journal j USING unnest($1::text[], $2::text[]) AS m(t, s)
            WHERE j.tenant = m.t AND j.session_id = m.s AND j.instance_id = $3 AND j.kind = 2`,
          [deletes.map(([, m]) => m.tenant), deletes.map(([, m]) => m.sessionId), this.instanceId],
          'a journal checkpoint',
        );
      }
    } catch (err) {
      // Put the marks back (a newer mark of the same session wins).
      for (const [, m] of archived) this.markArchived(m.tenant, m.sessionId, m.upTo);
      for (const [key, m] of deletes) if (!this.deleteMarks.has(key)) this.deleteMarks.set(key, m);
      throw err;
    }
  }

  readPending(): Promise<JournalRecord[]> {
    return pgJournalReader(this.db).readPending();
  }

  allocateEpoch(): Promise<number> {
    return pgJournalReader(this.db).allocateEpoch();
  }

  health(): JournalHealth {
    if (this.closed) return { ok: false, error: `journal ${this.instanceId} is closed`, code: 'STRATA_ERR_JOURNAL_CLOSED' };
    if (this.lastError) return { ok: false, error: this.lastError.message, code: this.lastError.code };
    return this.db.health();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.draining) await this.draining;
    await this.checkpointing;
    await this.releaseLock();
    await this.db.release();
  }
}

/** Every instance's rows and the epochs, for recovery and read-only cores. */
export function pgJournalReader(db: Db): JournalReader {
  return {
    async readPending() {
      const out: JournalRecord[] = [];
      let after = '0';
      while (true) {
        // Identity order is each instance's write order (one writer loop per instance).
        const { rows } = await db.query<{ id: string; record: Buffer }>('SELECT id::text AS id, record FROM journal WHERE id > $1 ORDER BY id LIMIT $2', [after, PAGE], 'reading every journal');
        for (const row of rows) out.push(decodeRow(row.record, row.id));
        if (rows.length < PAGE) return out;
        after = rows.at(-1)!.id;
      }
    },
    async allocateEpoch() {
      // A row update, not a sequence: sequences are not transactional and may go back after a
      // crash; this number is durable once the statement committed.
      const { rows } = await db.query<{ value: string }>('UPDATE epochs SET value = value + 1 RETURNING value::text AS value', [], 'allocating an epoch');
      return Number(rows[0]!.value);
    },
  };
}
