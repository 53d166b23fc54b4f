import { createHash } from 'node:crypto';
import { mkdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { atomicWrite, fsyncDir } from '../archive/io.js';
import type { MessageFields } from '../message.js';
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
 *   24      4     CRC32C of bytes 28 .. 28+H+pad+B (u32 LE)
 *   28      H     header: UTF-8 JSON (tenant, user, version, embedder, session versions,
 *                 speakers, terms, section offsets into the body)
 *   ..      pad   zeros up to a multiple of 8, so typed-array sections are aligned
 *   ..      B     body: the sections, each at a multiple of 8
 *
 * Any damage (bad magic or version, length or checksum mismatch, unparsable header) makes
 * `decodeSnapshot` return null: the caller rebuilds from the archive. A snapshot only says what
 * it reflects; whether that is still current is checked against the archive by the caller.
 */

const MAGIC = Buffer.from('STRXIDX\0', 'latin1');
export const SNAPSHOT_VERSION = 1;
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
}

type SectionName = 'sessionOf' | 'turnId' | 'createdAt' | 'tokens' | 'role' | 'speaker' | 'fieldsAt' | 'fields' | 'lengths' | 'termAt' | 'pairs' | 'matrix';

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
  const fieldParts: Buffer[] = [];
  let fieldBytes = 0;
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
    fields,
    lengths: data.bm25.lengths,
    termAt: data.bm25.offsets,
    pairs: data.bm25.pairs,
    matrix: data.matrix,
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
  out.writeUInt32LE(crc32c(out.subarray(PREFIX)) >>> 0, 24);
  return out;
}

/** The index in `bytes`, or null when they are not an intact snapshot of `id`'s index. */
export function decodeSnapshot(bytes: Buffer, id: SnapshotIdentity): IndexData | null {
  if (bytes.length < PREFIX || !bytes.subarray(0, 8).equals(MAGIC) || bytes.readUInt32LE(8) !== SNAPSHOT_VERSION) return null;
  const headerLength = bytes.readUInt32LE(12);
  const bodyLength = bytes.readDoubleLE(16);
  const bodyStart = align8(PREFIX + headerLength);
  if (!Number.isSafeInteger(bodyLength) || bodyStart + bodyLength !== bytes.length) return null;
  if ((crc32c(bytes.subarray(PREFIX)) >>> 0) !== bytes.readUInt32LE(24)) return null;
  let header: Header;
  try {
    header = JSON.parse(bytes.toString('utf8', PREFIX, PREFIX + headerLength)) as Header;
  } catch {
    return null;
  }
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
  const fieldsAt = view('fieldsAt', (b, o, l) => new Float64Array(b, o, l), 8);
  const [fieldsOffset] = header.sections.fields;
  const fields = body.subarray(fieldsOffset);
  const turns: RetrievalTurn[] = [];
  for (let doc = 0; doc < n; doc++) {
    turns.push(new StoredTurn(header.sessionIds[sessionOf[doc]!]!, turnId[doc]!, ROLES[role[doc]!]!, createdAt[doc]!, speaker[doc]! >= 0 ? header.speakers[speaker[doc]!] : undefined, Number.isNaN(tokens[doc]!) ? undefined : tokens[doc], fields, fieldsAt[doc]!, fieldsAt[doc + 1]!));
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

/**
 * A turn of a loaded snapshot: ids, role and times at hand; its message fields are parsed from
 * the snapshot's bytes when first read (a search reads them for its hits only).
 */
class StoredTurn implements RetrievalTurn {
  private parsed: MessageFields | null = null;
  constructor(
    readonly sessionId: string,
    readonly turnId: number,
    readonly role: Role,
    readonly createdAt: number,
    readonly speaker: string | undefined,
    readonly tokens: number | undefined,
    private readonly bytes: Buffer,
    private readonly from: number,
    private readonly to: number,
  ) {}

  /** The message fields as stored (UTF-8 JSON). */
  storedFields(): Buffer {
    return this.bytes.subarray(this.from, this.to);
  }

  private get fields(): MessageFields {
    return (this.parsed ??= JSON.parse(this.bytes.toString('utf8', this.from, this.to)) as MessageFields);
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

  /** The file's bytes, or null when there is none. */
  async read(tenant: string, userId: string): Promise<Buffer | null> {
    try {
      return await readFile(this.pathOf(tenant, userId));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
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
