import { createHash } from 'node:crypto';
import { mkdir, open, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { atomicWrite, fsyncDir } from '../archive/io.js';
import type { MessageFields } from '../message.js';
import { StrataError } from '../errors.js';
import { ROLES, type Role } from '../types.js';
import type { IndexData } from './retriever.js';
import type { RetrievalTurn } from './source.js';

/*
 * A user's search index on disk (docs/retrieval.md, "Persisted indexes"), so the first search
 * after a restart loads it instead of reading and tokenizing the whole history.
 *
 *   offset  size  field
 *   0       8     magic "STRXIDX\0"
 *   8       4     format version (u32 LE), SNAPSHOT_VERSION
 *   12      4     header length H (u32 LE)
 *   16      8     body length B (f64 LE, an integer)
 *   24      4     CRC32C of bytes 28 up to the start of the `fields` section (u32 LE)
 *   28      H     header: UTF-8 JSON (tenant, user, version, embedder, session versions,
 *                 speakers, terms, section offsets into the body, CRC32C of `fields`)
 *   ..      pad   zeros up to a multiple of 8, so typed-array sections are aligned
 *   ..      B     body: the sections, each at a multiple of 8; `fields` (every turn's message
 *                 fields as UTF-8 JSON) last, and `fieldCrc` (CRC32C of each turn's fields)
 *
 * Loading reads everything but `fields` (about half the file): ranking needs ids, postings and
 * vectors, and a search returns the fields of its hits only. `fields` is then read in the
 * background, checked against its CRC32C; until it is in memory, a hit's fields are read from
 * the same open file and checked against the turn's own CRC32C (`LazyFields`).
 *
 * Any damage to what loading reads (bad magic or version, length or checksum mismatch,
 * unparsable header) makes it return null: the caller rebuilds from the archive. Damage in
 * `fields` is found when the background read or a hit's read checks it (STRATA_ERR_INDEX_DAMAGED):
 * the caller then drops the file and rebuilds. A snapshot only says what it reflects; whether
 * that is still current is checked against the archive by the caller.
 */

const MAGIC = Buffer.from('STRXIDX\0', 'latin1');
export const SNAPSHOT_VERSION = 2;
/** 28 = magic 8 + version 4 + header length 4 + body length 8 + checksum 4. */
const PREFIX = 28;

interface Header {
  tenant: string;
  userId: string;
  embedderId: string;
  version: string;
  dimensions: number;
  docs: number;
  totalLength: number;
  sessions: Array<[string, string]>;
  /** Session ids by index, for `sessionOf`. */
  sessionIds: string[];
  speakers: string[];
  terms: string[];
  sections: Record<SectionName, [offset: number, bytes: number]>;
  /** CRC32C of the `fields` section. */
  fieldsCrc: number;
}

/** In file order; `fields` is last, so loading reads one prefix of the file. */
type SectionName = 'sessionOf' | 'turnId' | 'createdAt' | 'tokens' | 'role' | 'speaker' | 'fieldsAt' | 'fieldCrc' | 'lengths' | 'termAt' | 'pairs' | 'matrix' | 'fields';

/** What a snapshot is of: the caller compares these with what it expects before using one. */
export interface SnapshotIdentity {
  tenant: string;
  userId: string;
  embedderId: string;
}

/** Turns serialised between two yields to the event loop: encoding a large index must not stall requests. */
const ENCODE_SLICE = 2000;

export async function encodeSnapshot(id: SnapshotIdentity, data: IndexData): Promise<Uint8Array> {
  const n = data.turns.length;
  const sessionIds: string[] = [];
  const sessionIndex = new Map<string, number>();
  const speakers: string[] = [];
  const speakerIndex = new Map<string, number>();
  const sessionOf = new Int32Array(n);
  const turnId = new Float64Array(n);
  const createdAt = new Float64Array(n);
  const tokens = new Float64Array(n);
  const role = new Uint8Array(n);
  const speaker = new Int32Array(n);
  const fieldsAt = new Float64Array(n + 1);
  const fieldCrc = new Uint32Array(n);
  const fieldParts: Buffer[] = [];
  let fieldBytes = 0;
  // Turns of a loaded snapshot are copied as stored: their fields must be in memory first.
  for (const lazy of new Set(data.turns.map((t) => (t instanceof StoredTurn ? t.lazy : null)))) if (lazy) await lazy.whole();
  for (let doc = 0; doc < n; doc++) {
    if (doc % ENCODE_SLICE === ENCODE_SLICE - 1) await new Promise((resolve) => setImmediate(resolve));
    const t = data.turns[doc]!;
    let s = sessionIndex.get(t.sessionId);
    if (s === undefined) {
      sessionIndex.set(t.sessionId, (s = sessionIds.length));
      sessionIds.push(t.sessionId);
    }
    sessionOf[doc] = s;
    turnId[doc] = t.turnId;
    createdAt[doc] = t.createdAt;
    tokens[doc] = t.tokens ?? Number.NaN;
    role[doc] = ROLES.indexOf(t.role);
    if (t.speaker !== undefined) {
      let k = speakerIndex.get(t.speaker);
      if (k === undefined) {
        speakerIndex.set(t.speaker, (k = speakers.length));
        speakers.push(t.speaker);
      }
      speaker[doc] = k;
    } else speaker[doc] = -1;
    // A turn loaded from a snapshot is copied as stored, never parsed.
    let bytes: Buffer;
    if (t instanceof StoredTurn) bytes = t.storedFields();
    else {
      const { content, name, tool_calls, tool_call_id } = t;
      bytes = Buffer.from(JSON.stringify({ content, name, tool_calls, tool_call_id }), 'utf8');
    }
    fieldParts.push(bytes);
    fieldCrc[doc] = crc32c(bytes) >>> 0;
    fieldBytes += bytes.length;
    fieldsAt[doc + 1] = fieldBytes;
  }
  const fields = Buffer.concat(fieldParts, fieldBytes);
  const arrays: Record<SectionName, ArrayBufferView> = {
    sessionOf,
    turnId,
    createdAt,
    tokens,
    role,
    speaker,
    fieldsAt,
    fieldCrc,
    lengths: data.bm25.lengths,
    termAt: data.bm25.offsets,
    pairs: data.bm25.pairs,
    matrix: data.matrix,
    fields,
  };
  const sections = {} as Header['sections'];
  let bodyLength = 0;
  for (const [name, a] of Object.entries(arrays) as Array<[SectionName, ArrayBufferView]>) {
    sections[name] = [bodyLength, a.byteLength];
    bodyLength += align8(a.byteLength);
  }
  const header: Header = {
    ...id,
    version: data.version,
    dimensions: data.dimensions,
    docs: n,
    totalLength: data.bm25.totalLength,
    sessions: [...data.sessionVersions],
    sessionIds,
    speakers,
    terms: data.bm25.terms,
    sections,
    fieldsCrc: crc32c(fields) >>> 0,
  };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const bodyStart = align8(PREFIX + headerBytes.length);
  const out = Buffer.alloc(bodyStart + bodyLength);
  MAGIC.copy(out, 0);
  out.writeUInt32LE(SNAPSHOT_VERSION, 8);
  out.writeUInt32LE(headerBytes.length, 12);
  out.writeDoubleLE(bodyLength, 16);
  headerBytes.copy(out, PREFIX);
  for (const [name, a] of Object.entries(arrays) as Array<[SectionName, ArrayBufferView]>) {
    out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), bodyStart + sections[name][0]);
  }
  out.writeUInt32LE(crc32c(out.subarray(PREFIX, bodyStart + sections.fields[0])) >>> 0, 24);
  return out;
}

/** What a checked prefix of a snapshot says: its header and where its body starts. */
interface Eager {
  header: Header;
  bodyStart: number;
  bodyLength: number;
}

/** The JSON header of a snapshot whose first `PREFIX + headerLength` bytes are in `bytes`, or null. */
function parseHeader(bytes: Buffer, headerLength: number): Header | null {
  try {
    return JSON.parse(bytes.toString('utf8', PREFIX, PREFIX + headerLength)) as Header;
  } catch {
    return null;
  }
}

/**
 * Checks the prefix of a snapshot up to its `fields` section (`bytes` may hold more): magic,
 * version, lengths against the whole file's `fileLength`, header (`parsed` when the caller has
 * it already), checksum. Null when damaged.
 */
function checkEager(bytes: Buffer, fileLength: number, parsed?: Header): Eager | null {
  if (bytes.length < PREFIX || !bytes.subarray(0, 8).equals(MAGIC) || bytes.readUInt32LE(8) !== SNAPSHOT_VERSION) return null;
  const headerLength = bytes.readUInt32LE(12);
  const bodyLength = bytes.readDoubleLE(16);
  const bodyStart = align8(PREFIX + headerLength);
  if (!Number.isSafeInteger(bodyLength) || bodyStart + bodyLength !== fileLength || PREFIX + headerLength > bytes.length) return null;
  const header = parsed ?? parseHeader(bytes, headerLength);
  const fields = header?.sections?.fields;
  if (!header || !Array.isArray(fields) || !Number.isSafeInteger(fields[0]) || !Number.isSafeInteger(fields[1]) || fields[0] + fields[1] > bodyLength) return null;
  const eagerEnd = bodyStart + fields[0];
  if (eagerEnd > bytes.length || (crc32c(bytes.subarray(PREFIX, eagerEnd)) >>> 0) !== bytes.readUInt32LE(24)) return null;
  return { header, bodyStart, bodyLength };
}

/** The index in `bytes` (a whole snapshot file), or null when they are not an intact snapshot of `id`'s index. */
export function decodeSnapshot(bytes: Buffer, id: SnapshotIdentity): IndexData | null {
  const eager = checkEager(bytes, bytes.length);
  if (!eager) return null;
  const [offset, size] = eager.header.sections.fields;
  const fields = bytes.subarray(eager.bodyStart + offset, eager.bodyStart + offset + size);
  if ((crc32c(fields) >>> 0) !== eager.header.fieldsCrc) return null;
  return buildIndex(bytes, eager, id, (fieldsAt, fieldCrc) => LazyFields.inMemory(fields, fieldsAt, fieldCrc));
}

function buildIndex(bytes: Buffer, eager: Eager, id: SnapshotIdentity, makeFields: (fieldsAt: Float64Array, fieldCrc: Uint32Array) => LazyFields): IndexData | null {
  const { header, bodyStart } = eager;
  if (header.tenant !== id.tenant || header.userId !== id.userId || header.embedderId !== id.embedderId) return null;
  // Typed views need aligned offsets: copy once if the buffer itself is not 8-aligned.
  const body = (bytes.byteOffset + bodyStart) % 8 === 0 ? bytes.subarray(bodyStart) : Buffer.from(Uint8Array.prototype.slice.call(bytes, bodyStart));
  const view = <T>(name: SectionName, make: (b: ArrayBuffer, offset: number, length: number) => T, width: number): T => {
    const [offset, size] = header.sections[name];
    return make(body.buffer as ArrayBuffer, body.byteOffset + offset, size / width);
  };
  const n = header.docs;
  const sessionOf = view('sessionOf', (b, o, l) => new Int32Array(b, o, l), 4);
  const turnId = view('turnId', (b, o, l) => new Float64Array(b, o, l), 8);
  const createdAt = view('createdAt', (b, o, l) => new Float64Array(b, o, l), 8);
  const tokens = view('tokens', (b, o, l) => new Float64Array(b, o, l), 8);
  const role = view('role', (b, o, l) => new Uint8Array(b, o, l), 1);
  const speaker = view('speaker', (b, o, l) => new Int32Array(b, o, l), 4);
  const lazy = makeFields(
    view('fieldsAt', (b, o, l) => new Float64Array(b, o, l), 8),
    view('fieldCrc', (b, o, l) => new Uint32Array(b, o, l), 4),
  );
  const turns: RetrievalTurn[] = [];
  for (let doc = 0; doc < n; doc++) {
    turns.push(new StoredTurn(header.sessionIds[sessionOf[doc]!]!, turnId[doc]!, ROLES[role[doc]!]!, createdAt[doc]!, speaker[doc]! >= 0 ? header.speakers[speaker[doc]!] : undefined, Number.isNaN(tokens[doc]!) ? undefined : tokens[doc], lazy, doc));
  }
  return {
    version: header.version,
    sessionVersions: new Map(header.sessions),
    dimensions: header.dimensions,
    turns,
    bm25: {
      lengths: view('lengths', (b, o, l) => new Int32Array(b, o, l), 4),
      totalLength: header.totalLength,
      terms: header.terms,
      offsets: view('termAt', (b, o, l) => new Uint32Array(b, o, l), 4),
      pairs: view('pairs', (b, o, l) => new Int32Array(b, o, l), 4),
    },
    matrix: view('matrix', (b, o, l) => new Float32Array(b, o, l), 4),
  };
}

function damaged(what: string): StrataError {
  return new StrataError('STRATA_ERR_INDEX_DAMAGED', `persisted search index: ${what}`);
}

/**
 * The message fields of a loaded snapshot's turns. The whole section is read in the background
 * and checked against its CRC32C; until it is in memory, `read(doc)` reads one turn's bytes from
 * the same open file (a newer snapshot renamed over it does not change what the handle reads)
 * and checks them against the turn's CRC32C. The file is closed once the section is in memory
 * and no single read is in flight.
 */
export class LazyFields {
  private bytes: Buffer | null = null;
  private failure: StrataError | null = null;
  private readonly singles = new Map<number, Buffer>();
  private handle: FileHandle | null = null;
  private users = 0;
  private loading: Promise<void> = Promise.resolve();

  private constructor(
    private readonly fieldsAt: Float64Array,
    private readonly fieldCrc: Uint32Array,
    /** Offset of the section in the file. */
    private readonly start = 0,
  ) {}

  static inMemory(bytes: Buffer, fieldsAt: Float64Array, fieldCrc: Uint32Array): LazyFields {
    const f = new LazyFields(fieldsAt, fieldCrc);
    f.bytes = bytes;
    return f;
  }

  /** Starts reading `length` bytes at `start` of `handle` (which it then owns) in the background. */
  static fromFile(handle: FileHandle, start: number, length: number, crc: number, fieldsAt: Float64Array, fieldCrc: Uint32Array, onDamage: (err: StrataError) => void): LazyFields {
    const f = new LazyFields(fieldsAt, fieldCrc, start);
    f.handle = handle;
    f.users = 1;
    f.loading = (async () => {
      try {
        const bytes = await readAt(handle, start, length);
        if ((crc32c(bytes) >>> 0) !== crc) throw damaged('the message fields fail their checksum');
        f.bytes = bytes;
        f.singles.clear();
      } catch (err) {
        f.failure = err instanceof StrataError ? err : damaged(`cannot read the message fields: ${(err as Error).message}`);
        onDamage(f.failure);
      } finally {
        await f.release();
      }
    })();
    return f;
  }

  /** Resolves once the whole section is in memory (rejects when it is damaged). */
  async whole(): Promise<void> {
    await this.loading;
    if (this.failure) throw this.failure;
  }

  /** The doc's stored bytes when in memory, else null (`load` brings them). */
  get(doc: number): Buffer | null {
    if (this.bytes) return this.bytes.subarray(this.fieldsAt[doc]!, this.fieldsAt[doc + 1]!);
    return this.singles.get(doc) ?? null;
  }

  /** Brings the doc's bytes into memory: from the section if loaded, else one checked read. */
  async load(doc: number): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.get(doc)) return;
    if (!this.handle) return this.whole();
    this.users++;
    try {
      const from = this.fieldsAt[doc]!;
      const bytes = await readAt(this.handle, this.start + from, this.fieldsAt[doc + 1]! - from);
      if ((crc32c(bytes) >>> 0) !== this.fieldCrc[doc]) throw damaged(`the message fields of one turn fail their checksum`);
      if (!this.bytes) this.singles.set(doc, bytes);
    } finally {
      await this.release();
    }
  }

  private async release(): Promise<void> {
    if (--this.users > 0 || !this.handle) return;
    const handle = this.handle;
    this.handle = null;
    await handle.close().catch(() => undefined);
  }
}

/** Exactly `length` bytes at `position` of `handle`, into fresh memory. */
async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const out = Buffer.allocUnsafe(length);
  await readInto(handle, out, 0, position, length);
  return out;
}

/** Exactly `length` bytes at `position` of `handle`, into `out` from `offset` on. */
async function readInto(handle: FileHandle, out: Buffer, offset: number, position: number, length: number): Promise<void> {
  for (let done = 0; done < length; ) {
    const { bytesRead } = await handle.read(out, offset + done, length - done, position + done);
    if (bytesRead === 0) throw damaged('the file is shorter than its header says');
    done += bytesRead;
  }
}

/**
 * A turn of a loaded snapshot: ids, role and times at hand; its message fields are parsed from
 * the snapshot's bytes when first read. Reading them before `load()` resolved is a programming
 * error (the retriever loads the fields of its hits before returning them).
 */
export class StoredTurn implements RetrievalTurn {
  private parsed: MessageFields | null = null;
  constructor(
    readonly sessionId: string,
    readonly turnId: number,
    readonly role: Role,
    readonly createdAt: number,
    readonly speaker: string | undefined,
    readonly tokens: number | undefined,
    readonly lazy: LazyFields,
    private readonly doc: number,
  ) {}

  /** Brings this turn's message fields into memory. */
  load(): Promise<void> {
    return this.lazy.load(this.doc);
  }

  /** The message fields as stored (UTF-8 JSON). */
  storedFields(): Buffer {
    const bytes = this.lazy.get(this.doc);
    if (!bytes) throw new StrataError('STRATA_ERR_INTERNAL', 'a persisted index turn was read before its fields were loaded');
    return bytes;
  }

  private get fields(): MessageFields {
    return (this.parsed ??= JSON.parse(this.storedFields().toString('utf8')) as MessageFields);
  }
  get content(): MessageFields['content'] {
    return this.fields.content;
  }
  get name(): string | undefined {
    return this.fields.name;
  }
  get tool_calls(): MessageFields['tool_calls'] {
    return this.fields.tool_calls;
  }
  get tool_call_id(): string | undefined {
    return this.fields.tool_call_id;
  }
}

function align8(n: number): number {
  return Math.ceil(n / 8) * 8;
}

/**
 * Snapshots in a directory, one file per user: `<dir>/<tenant>/<sha256(user) hex, 40>.idx`,
 * replaced atomically (temp file, fsync, rename, directory fsync).
 */
export class SnapshotFiles {
  constructor(readonly dir: string) {}

  pathOf(tenant: string, userId: string): string {
    return join(this.dir, tenant, `${createHash('sha256').update(userId, 'utf8').digest('hex').slice(0, 40)}.idx`);
  }

  /**
   * The user's index from its file, all but the message fields read and checked; the fields
   * follow in the background (`LazyFields`), and `onDamage` hears of damage found there. Null
   * when there is no file or what was read is not an intact snapshot of `id`'s index.
   */
  async load(id: SnapshotIdentity, onDamage: (err: StrataError) => void): Promise<IndexData | null> {
    let handle: FileHandle;
    try {
      handle = await open(this.pathOf(id.tenant, id.userId), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    let owned = false;
    try {
      const fileLength = (await handle.stat()).size;
      if (fileLength < PREFIX) return null;
      const prefix = await readAt(handle, 0, PREFIX);
      const headerEnd = PREFIX + prefix.readUInt32LE(12);
      if (headerEnd > fileLength) return null;
      // The header says where the message fields start; everything before them is read once,
      // the header's bytes included, and the header is parsed once.
      const head = await readAt(handle, 0, headerEnd);
      const header = parseHeader(head, headerEnd - PREFIX);
      const eagerEnd = align8(headerEnd) + (header?.sections?.fields?.[0] ?? Number.NaN);
      if (!header || !Number.isSafeInteger(eagerEnd) || eagerEnd < headerEnd || eagerEnd > fileLength) return null;
      const bytes = Buffer.allocUnsafe(eagerEnd);
      head.copy(bytes);
      await readInto(handle, bytes, headerEnd, headerEnd, eagerEnd - headerEnd);
      const eager = checkEager(bytes, fileLength, header);
      if (!eager) return null;
      const [offset, size] = eager.header.sections.fields;
      const data = buildIndex(bytes, eager, id, (fieldsAt, fieldCrc) => {
        owned = true;
        return LazyFields.fromFile(handle, eager.bodyStart + offset, size, eager.header.fieldsCrc, fieldsAt, fieldCrc, onDamage);
      });
      return data;
    } catch (err) {
      if (err instanceof StrataError && err.code === 'STRATA_ERR_INDEX_DAMAGED') return null;
      throw err;
    } finally {
      if (!owned) await handle.close().catch(() => undefined);
    }
  }

  async write(tenant: string, userId: string, bytes: Uint8Array): Promise<void> {
    await mkdir(join(this.dir, tenant), { recursive: true });
    await atomicWrite(this.pathOf(tenant, userId), bytes);
  }

  /** Removes the user's snapshot (durably: the directory is fsynced). */
  async remove(tenant: string, userId: string): Promise<void> {
    try {
      await unlink(this.pathOf(tenant, userId));
      await fsyncDir(join(this.dir, tenant));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
