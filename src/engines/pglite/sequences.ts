/**
 * currval() and lastval() per session. PostgreSQL keeps what they answer in
 * backend memory (sequence.c): a hash table `seqhashtab` of SeqTableData by
 * sequence OID, whose `last` and `last_valid` are what nextval or setval
 * last gave this backend, and `last_used_seq`, the entry of the last
 * nextval. PGlite has one backend, so left alone a session's currval() read
 * whatever any session's nextval() last returned, and lastval() after an
 * INSERT could be another session's id.
 *
 * pgts swaps those values per session, as tempnamespace.ts swaps the
 * temporary namespace: when the engine's next exec is another session's,
 * the backend's view is first read back into the session that ran last
 * (every entry's `last` where `last_valid`, and `last_used_seq`'s OID),
 * then the new session's is written in (its values, `last_valid` false
 * where it has none, and `last_used_seq` its last sequence's entry,
 * re-entered if a DISCARD SEQUENCES dropped the table meanwhile). Every way
 * to a sequence value counts, since PostgreSQL does the bookkeeping itself:
 * nextval() and setval() in any spelling, serial defaults, identity columns.
 * Nothing is done while one session runs exec after exec, nor at all while
 * no sequence was used.
 *
 * The entry's `last` also marks where a sequence's backend cache (CACHE > 1)
 * stands: while `last != cached`, nextval() issues `last + increment` and
 * takes `last_valid` as already true. So at each switch every entry is given
 * `cached = last`: the rest of its cache is dropped (a gap in the sequence,
 * as when a PostgreSQL backend exits with values cached) and the session's
 * next nextval() reads the sequence's own row.
 *
 * A DISCARD SEQUENCES drops the backend's table: the values of the session
 * that ran it go with it (read back as none), every other session's are
 * entered again at its next exec. DISCARD ALL, which pgts answers for the
 * session alone (discard.ts), has its next exec forget them. The statics' addresses are PGlite's
 * link-time ones, from its disassembly (`wasm-objdump -d`): `lastval` reads
 * `last_used_seq` (and SeqTableData's `relid` at 0, `last` at 16),
 * `init_sequence` (inlined into currval_oid's callee) reads `seqhashtab`,
 * creates it with hash_create("Sequence values", 16, keysize 4, entrysize
 * 40, HASH_ELEM | HASH_BLOBS) and clears a new entry's `last_valid` at 12.
 * An unknown build leaves the values shared, as before.
 *
 * Runs on the thread that runs PGlite, at the start of an exec.
 */

import type { WasmTools } from "./wasmtools.ts";
import { HASH_SEQ_STATUS_SIZE } from "./tempnamespace.ts";

export interface SessionSequences {
  /**
   * Session `pid`'s exec runs next (null: pgts's own work, which leaves the
   * backend as it is); `discard`: its values are forgotten first.
   */
  runAs(pid: number | null, discard: boolean): void;
  /** The sessions `gone` takes ended (or their pid is another session's now): their values go. */
  dropSessions(gone: (pid: number) => boolean): void;
}

interface Layout {
  readonly lastUsedSeq: number;
  readonly seqHashTab: number;
  /** The C string "Sequence values", init_sequence's table name. */
  readonly tableName: number;
}

const LAYOUTS: Readonly<Record<string, Layout>> = {
  // @electric-sql/pglite 0.5.16 (PostgreSQL 18)
  "5256d9ac379f631355f41ab30291e6a6d9f854242b5ee2a2d0940e28041d3fca": {
    lastUsedSeq: 2778200,
    seqHashTab: 2778204,
    tableName: 147547,
  },
};

/** SeqTableData (sequence.c) on wasm32. */
const ENTRY_RELID = 0;
const ENTRY_FILENUMBER = 4;
const ENTRY_LXID = 8;
const ENTRY_LAST_VALID = 12;
const ENTRY_LAST = 16;
const ENTRY_CACHED = 24;
const ENTRY_INCREMENT = 32;
const ENTRY_SIZE = 40;
const TABLE_NAME = "Sequence values";
/** HASHCTL on wasm32: four longs, then keysize and entrysize. */
const HASHCTL_SIZE = 64;
const HASHCTL_KEYSIZE = 16;
const HASHCTL_ENTRYSIZE = 20;
const HASH_ELEM = 0x0008;
const HASH_BLOBS = 0x0020;
const HASH_ENTER = 1;

interface SequenceExports {
  malloc(size: number): number;
  hash_seq_init(status: number, hashp: number): void;
  hash_seq_search(status: number): number;
  hash_search(hashp: number, key: number, action: number, found: number): number;
  hash_create(name: number, nelem: number, info: number, flags: number): number;
}

/** What one session was last given: values by sequence OID, and lastval's sequence. */
interface Values {
  readonly last: Map<number, bigint>;
  lastUsed: number;
}

/**
 * Installs the per-session values, or returns why they cannot be (then
 * currval and lastval stay the backend's, shared by every session).
 */
export function installSessionSequences(
  tools: WasmTools,
  sha: string | null,
): SessionSequences | string {
  if (sha === null) return "PGlite's WASM file was not found";
  const L = LAYOUTS[sha];
  if (L === undefined) return `this PGlite build (pglite.wasm sha256 ${sha}) is not known`;
  const ex = tools.ex as unknown as SequenceExports & typeof tools.ex;
  for (const fn of ["hash_seq_init", "hash_seq_search", "hash_search", "hash_create"] as const) {
    if (typeof ex[fn] !== "function") return `PGlite does not export ${fn}`;
  }
  const name = new Uint8Array(tools.view().buffer, L.tableName, TABLE_NAME.length + 1);
  if (new TextDecoder().decode(name) !== `${TABLE_NAME}\0`) {
    return "sequence.c's table name is not where this PGlite build should have it";
  }
  const status = ex.malloc(HASH_SEQ_STATUS_SIZE);
  const scratch = ex.malloc(HASHCTL_SIZE);
  const values = new Map<number, Values>();
  /** Whose values the backend holds now. */
  let shown: number | null = null;

  const u32 = (at: number) => tools.view().getUint32(at, true);

  /** Every entry of the backend's table (none when there is no table). */
  const entries = (): number[] => {
    const htab = u32(L.seqHashTab);
    const all: number[] = [];
    if (htab === 0) return all;
    ex.hash_seq_init(status, htab);
    for (let e = ex.hash_seq_search(status); e !== 0; e = ex.hash_seq_search(status)) all.push(e);
    return all;
  };

  /** The backend's values now, as session `pid`'s. */
  const readBack = (pid: number): void => {
    const v = tools.view();
    const last = new Map<number, bigint>();
    for (const e of entries()) {
      if (v.getUint8(e + ENTRY_LAST_VALID) !== 0) {
        last.set(v.getUint32(e + ENTRY_RELID, true), v.getBigInt64(e + ENTRY_LAST, true));
      }
    }
    const used = u32(L.lastUsedSeq);
    if (last.size === 0 && used === 0) values.delete(pid);
    else values.set(pid, { last, lastUsed: used === 0 ? 0 : u32(used + ENTRY_RELID) });
  };

  /** The table, made as init_sequence makes it when there is none. */
  const table = (): number => {
    const htab = u32(L.seqHashTab);
    if (htab !== 0) return htab;
    new Uint8Array(tools.view().buffer, scratch, HASHCTL_SIZE).fill(0);
    const v = tools.view();
    v.setUint32(scratch + HASHCTL_KEYSIZE, 4, true);
    v.setUint32(scratch + HASHCTL_ENTRYSIZE, ENTRY_SIZE, true);
    const made = ex.hash_create(L.tableName, 16, scratch, HASH_ELEM | HASH_BLOBS);
    tools.view().setUint32(L.seqHashTab, made, true);
    return made;
  };

  /** Session `pid`'s values into the backend. */
  const writeIn = (pid: number): void => {
    const mine = values.get(pid);
    const v = tools.view();
    const found = new Map<number, number>();
    for (const e of entries()) {
      const relid = v.getUint32(e + ENTRY_RELID, true);
      found.set(relid, e);
      const value = mine?.last.get(relid);
      if (value === undefined) {
        v.setUint8(e + ENTRY_LAST_VALID, 0);
        v.setBigInt64(e + ENTRY_CACHED, v.getBigInt64(e + ENTRY_LAST, true), true);
      } else {
        v.setUint8(e + ENTRY_LAST_VALID, 1);
        v.setBigInt64(e + ENTRY_LAST, value, true);
        v.setBigInt64(e + ENTRY_CACHED, value, true);
      }
    }
    if (mine !== undefined) {
      for (const [relid, value] of mine.last) {
        if (found.has(relid)) continue;
        // Dropped by a DISCARD SEQUENCES since: entered again as
        // init_sequence enters one, with the session's value.
        const htab = table();
        const w = tools.view();
        w.setUint32(scratch, relid, true);
        const e = ex.hash_search(htab, scratch, HASH_ENTER, scratch + 4);
        const x = tools.view();
        x.setUint32(e + ENTRY_FILENUMBER, 0, true);
        x.setUint32(e + ENTRY_LXID, 0, true);
        x.setUint8(e + ENTRY_LAST_VALID, 1);
        x.setBigInt64(e + ENTRY_LAST, value, true);
        x.setBigInt64(e + ENTRY_CACHED, value, true);
        x.setBigInt64(e + ENTRY_INCREMENT, 0n, true);
        found.set(relid, e);
      }
    }
    const used = mine === undefined || mine.lastUsed === 0 ? 0 : found.get(mine.lastUsed) ?? 0;
    tools.view().setUint32(L.lastUsedSeq, used, true);
  };

  return {
    runAs(pid, discard) {
      if (pid === null) return;
      if (pid === shown && !discard) return;
      // Nothing to read back or write in: no table, no lastval, no values.
      if (
        u32(L.seqHashTab) === 0 && u32(L.lastUsedSeq) === 0 && values.size === 0
      ) {
        shown = pid;
        return;
      }
      if (shown !== null && shown !== pid) readBack(shown);
      if (discard) values.delete(pid);
      writeIn(pid);
      shown = pid;
    },
    dropSessions(gone) {
      for (const pid of values.keys()) if (gone(pid)) values.delete(pid);
      // The values in the backend are a gone session's: the next one's are written in.
      if (shown !== null && gone(shown)) shown = null;
    },
  };
}
