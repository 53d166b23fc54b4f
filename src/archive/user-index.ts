import { crc32c } from '@node-rs/crc32';
import { createHash } from 'node:crypto';
import { appendFile, mkdir, open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ioError } from './io.js';

/*
 * Per-tenant user index: DATA_DIR/archive/<tenant>/users.idx, an append-only text file of lines
 *   "+["<userId>","<sessionId>"] <crc32c hex>\n"   (session belongs to user)
 *   "-["<userId>","<sessionId>"] <crc32c hex>\n"   (session deleted)
 * The ids are a JSON array (ids may hold spaces, quotes, any text without control characters),
 * so a line is unambiguous. Lines written before ids could hold spaces, "+<userId> <sessionId>
 * <crc>", are still read: an id of that time never starts with '['. The CRC covers the text before
 * it, and a torn or damaged line is ignored (the session file's own metadata record also names
 * its user, so the index can be rebuilt). Appends use O_APPEND and fsync: several writers, each
 * under its own session's lock, can add lines concurrently without clobbering each other.
 */
export const USER_INDEX_FILE = 'users.idx';

function line(op: '+' | '-', userId: string, sessionId: string): string {
  const text = `${op}${JSON.stringify([userId, sessionId])}`;
  return `${text} ${(crc32c(text) >>> 0).toString(16).padStart(8, '0')}\n`;
}

/** Directory of the per-user change stamps, beside the index. */
export const USER_STAMP_DIR = 'user-stamps';

function stampFile(tenantDir: string, userId: string): string {
  return join(tenantDir, USER_STAMP_DIR, `${createHash('sha256').update(userId, 'utf8').digest('hex').slice(0, 40)}.stamp`);
}

export class UserIndex {
  /**
   * Marks a change of the archived turns of one of the user's sessions (an append, a rewrite,
   * a deletion, an import): one byte appended to the user's stamp file, whose identity, size
   * and modification time (`stamp`) any instance compares in one stat. Not fsynced: the stamp
   * only decides whether a search index in memory is still current, and a process that restarts
   * has no index to keep.
   */
  async bump(tenantDir: string, userId: string): Promise<void> {
    const file = stampFile(tenantDir, userId);
    try {
      await appendFile(file, '.');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(err, 'updating user stamp', file);
      await mkdir(join(tenantDir, USER_STAMP_DIR), { recursive: true });
      await appendFile(file, '.');
    }
  }

  /** A string that changes whenever `bump` ran for the user (on any instance); `none` before the first. */
  async stamp(tenantDir: string, userId: string): Promise<string> {
    try {
      const st = await stat(stampFile(tenantDir, userId), { bigint: true });
      return `${st.ino}:${st.size}:${st.mtimeNs}`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'none';
      throw ioError(err, 'reading user stamp', stampFile(tenantDir, userId));
    }
  }

  private cache = new Map<string, { size: number; mtimeMs: number; users: Map<string, Set<string>> }>();

  async add(file: string, userId: string, sessionId: string): Promise<void> {
    await this.write(file, line('+', userId, sessionId));
  }

  async remove(file: string, userId: string, sessionId: string): Promise<void> {
    await this.write(file, line('-', userId, sessionId));
  }

  private async write(file: string, text: string): Promise<void> {
    try {
      const fh = await open(file, 'a', 0o644);
      try {
        await fh.write(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      throw ioError(err, 'appending to user index', file);
    }
    this.cache.delete(file);
  }

  async sessions(file: string, userId: string): Promise<string[]> {
    return [...((await this.load(file)).get(userId) ?? [])].sort();
  }

  private async load(file: string): Promise<Map<string, Set<string>>> {
    let st;
    try {
      st = await stat(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw ioError(err, 'reading user index', file);
    }
    const hit = this.cache.get(file);
    if (hit && hit.size === st.size && hit.mtimeMs === st.mtimeMs) return hit.users;
    const text = await readFile(file, 'utf8').catch((err: unknown) => {
      throw ioError(err, 'reading user index', file);
    });
    const users = new Map<string, Set<string>>();
    for (const l of text.split('\n')) {
      const entry = parseLine(l);
      if (!entry) continue;
      const set = users.get(entry.userId) ?? new Set<string>();
      if (entry.op === '+') set.add(entry.sessionId);
      else set.delete(entry.sessionId);
      users.set(entry.userId, set);
    }
    if (this.cache.size > 256) this.cache.clear();
    this.cache.set(file, { size: st.size, mtimeMs: st.mtimeMs, users });
    return users;
  }
}

/** One line of the index, or null when it is torn, damaged or not a line of the index. */
function parseLine(l: string): { op: '+' | '-'; userId: string; sessionId: string } | null {
  const m = /^([+-])(.*) ([0-9a-f]{8})$/.exec(l);
  if (!m || (crc32c(`${m[1]}${m[2]}`) >>> 0).toString(16).padStart(8, '0') !== m[3]) return null;
  const op = m[1] as '+' | '-';
  const body = m[2]!;
  if (body.startsWith('[')) {
    try {
      const ids = JSON.parse(body) as unknown;
      if (Array.isArray(ids) && ids.length === 2 && typeof ids[0] === 'string' && typeof ids[1] === 'string') return { op, userId: ids[0], sessionId: ids[1] };
    } catch {
      return null;
    }
    return null;
  }
  const old = /^(\S+) (\S+)$/.exec(body);
  return old ? { op, userId: old[1]!, sessionId: old[2]! } : null;
}
