/**
 * Advisory locks per session. PostgreSQL keeps advisory locks in its lock
 * manager per backend, and PGlite has one backend: left alone, a key one
 * session holds is "free" for every other (`pg_try_advisory_lock` succeeds
 * for everyone), which breaks what job queues and migration tools use them
 * for — running something once. The 21 advisory-lock builtins are answered
 * here instead, from a lock table keyed by the pgts session (its pid), with
 * PostgreSQL's rules: session- and transaction-level holds, shared and
 * exclusive modes, re-entrant per session, the WARNING for an unlock of a
 * lock not held. Each is a host function in the builtin's slot of PGlite's
 * function table (backends.ts's builtinSlot), so every spelling of the call
 * reaches it.
 *
 * What one backend cannot do is wait: the engine runs one session at a
 * time, so a session that must wait for another's lock would wait for ever
 * while holding the engine the other needs to release it. A blocking
 * `pg_advisory_lock` on a key another session holds therefore fails at once
 * with 55P03 naming the holders (`ADVISORY_CONFLICT_ROUTINE`; a `pg_try_`
 * function answers false, as PostgreSQL does). In a statement sent alone
 * outside a transaction block, the session tries the statement again until
 * it gets the lock, without holding the engine between tries
 * (advisorywait.ts): that is PostgreSQL's wait, as migration tools use it.
 * The session-level holds such a statement took before the conflict are let
 * go at the conflict, so that its next try takes each once.
 *
 * A prepared transaction keeps its transaction-level holds, as PostgreSQL's
 * lock manager hands them to the prepared transaction: PREPARE TRANSACTION
 * moves them to a holder of their own, named by the global identifier, and
 * the COMMIT PREPARED or ROLLBACK PREPARED that ends it (from any session)
 * lets them go. A session that holds a key both at session and transaction
 * level cannot PREPARE (0A000, lock.c's AtPrepare_Locks). The backend tells
 * when: a transaction callback (RegisterXactCallback) sees PRE_PREPARE,
 * PREPARE and the COMMIT or ABORT of the statement that finishes a prepared
 * transaction, whose identifier the post_parse_analyze hook noted. Unlike
 * PostgreSQL's, these holds do not outlive a restart of the server.
 *
 * The engine drives the rest: who runs (`runAs`), the end of a session's
 * transaction (its transaction-level holds go), and which sessions still
 * exist (the holds of one that is gone go).
 */

import { argDatum, builtinSlot, wasmFunctionOf } from "./backends.ts";
import { onUtilityStatement, parsedStatement, type WasmTools } from "./wasmtools.ts";

/** XactEvent values (access/xact.h). */
const XACT_EVENT_COMMIT = 0;
const XACT_EVENT_ABORT = 2;
const XACT_EVENT_PREPARE = 4;
const XACT_EVENT_PRE_PREPARE = 7;
/** TransactionStmt's kind and gid (nodes/parsenodes.h), checked against PostgreSQL's parser at install. */
const TRANSACTION_KIND = 4;
const TRANSACTION_GID = 16;

interface TwoPhaseExports {
  RegisterXactCallback(callback: number, arg: number): void;
  GetConfigOption(name: number, missingOk: number, restrictPrivileged: number): number;
}

/** The routine ('R' field) of the error for a key another session holds (advisorywait.ts reads it). */
export const ADVISORY_CONFLICT_ROUTINE = "pgts_advisory_lock_conflict";

export interface AdvisoryLocks {
  /**
   * The session (pid) whose exec runs next, or null for pgts's own work;
   * `waits`: its input is one statement that calls pg_advisory_lock() and
   * waits (advisorywait.ts), queued for the key if it cannot have it.
   */
  runAs(pid: number | null, waits?: boolean): void;
  /** The transaction of session `pid` ended: its transaction-level holds go. */
  endTransaction(pid: number): void;
  /** The sessions `gone` takes ended (or their pid is another session's now): their holds and waits go. */
  dropSessions(gone: (pid: number) => boolean): void;
  /** The holds and waits, as pg_locks shows advisory locks (activity.ts). */
  rows(): AdvisoryRow[];
}

/**
 * One advisory lock as pg_locks shows it: a bigint key's high and low 32
 * bits as classid and objid with objsubid 1, two int4 keys as classid and
 * objid with objsubid 2; pid null for a prepared transaction's.
 */
export interface AdvisoryRow {
  readonly classid: number;
  readonly objid: number;
  readonly objsubid: 1 | 2;
  readonly pid: number | null;
  readonly mode: "ExclusiveLock" | "ShareLock";
  readonly granted: boolean;
}

interface Holds {
  session: number;
  sessionShared: number;
  xact: number;
  xactShared: number;
}

type Kind = "lock" | "try" | "unlock";

/** A session waiting for a key (advisorywait.ts), in the key's queue. */
interface Waiter {
  readonly pid: number;
  readonly shared: boolean;
  /** When it last tried: one that stopped trying (its wait ended) leaves the queue. */
  seen: number;
}

/**
 * How long a waiter keeps its place without trying again. Its tries come at
 * most 50 ms apart, unless it waits that long for the engine itself.
 */
const WAITER_TTL_MS = 500;

interface Builtin {
  readonly oid: number;
  readonly kind: Kind;
  readonly shared: boolean;
  readonly xact: boolean;
  /** Keyed by one int8 rather than two int4s. */
  readonly int8: boolean;
}

/** pg_proc.dat's advisory-lock builtins. */
const BUILTINS: readonly Builtin[] = [
  { oid: 2880, kind: "lock", shared: false, xact: false, int8: true },
  { oid: 2886, kind: "lock", shared: false, xact: false, int8: false },
  { oid: 2881, kind: "lock", shared: true, xact: false, int8: true },
  { oid: 2887, kind: "lock", shared: true, xact: false, int8: false },
  { oid: 3089, kind: "lock", shared: false, xact: true, int8: true },
  { oid: 3093, kind: "lock", shared: false, xact: true, int8: false },
  { oid: 3090, kind: "lock", shared: true, xact: true, int8: true },
  { oid: 3094, kind: "lock", shared: true, xact: true, int8: false },
  { oid: 2882, kind: "try", shared: false, xact: false, int8: true },
  { oid: 2888, kind: "try", shared: false, xact: false, int8: false },
  { oid: 2883, kind: "try", shared: true, xact: false, int8: true },
  { oid: 2889, kind: "try", shared: true, xact: false, int8: false },
  { oid: 3091, kind: "try", shared: false, xact: true, int8: true },
  { oid: 3095, kind: "try", shared: false, xact: true, int8: false },
  { oid: 3092, kind: "try", shared: true, xact: true, int8: true },
  { oid: 3096, kind: "try", shared: true, xact: true, int8: false },
  { oid: 2884, kind: "unlock", shared: false, xact: false, int8: true },
  { oid: 2890, kind: "unlock", shared: false, xact: false, int8: false },
  { oid: 2885, kind: "unlock", shared: true, xact: false, int8: true },
  { oid: 2891, kind: "unlock", shared: true, xact: false, int8: false },
];
const F_PG_ADVISORY_UNLOCK_ALL = 2892;

/**
 * How many keys may be locked at once: PostgreSQL's shared lock table holds
 * max_locks_per_transaction × (max_connections + max_prepared_transactions)
 * locked objects, and past it a lock fails with 53200 "out of shared
 * memory". Here the table is pgts's own memory, which a session taking a
 * million keys grew by a gigabyte.
 */
export function advisoryKeyLimit(settings: Readonly<Record<string, string>>): number {
  const int = (name: string, fallback: number) => {
    const v = Number.parseInt(settings[name] ?? "", 10);
    return Number.isFinite(v) && v >= 0 ? v : fallback;
  };
  return int("max_locks_per_transaction", 64) *
    (int("max_connections", 100) + int("max_prepared_transactions", 0));
}

export function installAdvisoryLocks(tools: WasmTools, keyLimit: number): AdvisoryLocks {
  const table = tools.ex.__indirect_function_table;
  /** Holds by lock key, then by session pid. */
  const locks = new Map<string, Map<number, Holds>>();
  /** Per key, the sessions that wait for it, first come first. */
  const queues = new Map<string, Waiter[]>();
  let runner = 0;
  let waits = false;
  /**
   * The session-level holds a waiting exec (`waits`) took so far, by key and
   * mode: let go again if a later call of it conflicts, since the wait
   * tries the whole statement again and would take them a second time.
   */
  let taken: [string, boolean][] = [];
  /**
   * Prepared transactions that hold keys: their holder ids (negative, so
   * never a session's pid) by global identifier.
   */
  const prepared = new Map<string, number>();
  let nextPrepared = -1;
  const holderName = (id: number): string => {
    if (id >= 0) return `process ${id}`;
    for (const [gid, at] of prepared) if (at === id) return `prepared transaction "${gid}"`;
    return "a prepared transaction";
  };

  /**
   * The waiters ahead of `pid` in the key's queue whose mode conflicts with
   * its own: as in PostgreSQL, a waiter is not overtaken by a later
   * request. Waiters that stopped trying are dropped first.
   */
  const ahead = (key: string, pid: number, shared: boolean): number[] => {
    const queue = queues.get(key);
    if (queue === undefined) return [];
    const now = Date.now();
    const live = queue.filter((w) => w.pid === pid || now - w.seen <= WAITER_TTL_MS);
    if (live.length === 0) {
      queues.delete(key);
      return [];
    }
    if (live.length !== queue.length) queues.set(key, live);
    const found: number[] = [];
    for (const w of live) {
      if (w.pid === pid) break;
      if (!shared || !w.shared) found.push(w.pid);
    }
    return found;
  };

  /** `pid` waits for the key: queued last, or its place kept. */
  const enqueue = (key: string, pid: number, shared: boolean): void => {
    const queue = queues.get(key) ?? [];
    const mine = queue.find((w) => w.pid === pid);
    if (mine !== undefined) mine.seen = Date.now();
    else queue.push({ pid, shared, seen: Date.now() });
    queues.set(key, queue);
  };

  /** `pid` has the key, or is gone: out of the key's queue. */
  const dequeue = (key: string, pid: number): void => {
    const queue = queues.get(key);
    if (queue === undefined) return;
    const rest = queue.filter((w) => w.pid !== pid);
    if (rest.length === 0) queues.delete(key);
    else queues.set(key, rest);
  };

  const keyOf = (fcinfo: number, int8: boolean): string => {
    if (int8) return `8:${tools.view().getBigInt64(argDatum(tools, fcinfo, 0), true)}`;
    return `4:${argDatum(tools, fcinfo, 0) | 0}:${argDatum(tools, fcinfo, 1) | 0}`;
  };

  /** The other sessions whose holds conflict with `pid` taking the key in this mode. */
  const conflicts = (holders: Map<number, Holds>, pid: number, shared: boolean): number[] => {
    const found: number[] = [];
    for (const [other, h] of holders) {
      if (other === pid) continue;
      if (h.session + h.xact > 0 || (!shared && h.sessionShared + h.xactShared > 0)) {
        found.push(other);
      }
    }
    return found;
  };

  const acquire = (b: Builtin, fcinfo: number): number => {
    const key = keyOf(fcinfo, b.int8);
    let holders = locks.get(key);
    if (holders === undefined) {
      if (locks.size >= keyLimit) {
        tools.raise("53200", "out of shared memory", undefined, {
          hint: 'You might need to increase "max_locks_per_transaction".',
        });
      }
      locks.set(key, holders = new Map());
    }
    const others = conflicts(holders, runner, b.shared);
    // A waiting lock queues behind earlier waiters, unless it holds the key
    // already (PostgreSQL grants that at once, or the waiters would wait
    // for it while it waits for them). A try fails behind a waiter whose
    // mode conflicts with it, as in PostgreSQL, unless it holds the key in
    // this mode already (a re-entrant hold, granted from the backend's own
    // lock table there).
    const mine = holders.get(runner);
    const heldInMode = mine !== undefined &&
      (b.shared ? mine.sessionShared + mine.xactShared : mine.session + mine.xact) > 0;
    const queued = b.kind === "try"
      ? !heldInMode
      : waits && b.kind === "lock" && mine === undefined;
    const first = queued ? ahead(key, runner, b.shared) : [];
    if (others.length + first.length > 0) {
      if (holders.size === 0) locks.delete(key);
      if (b.kind === "try") return 0;
      if (waits) {
        enqueue(key, runner, b.shared);
        for (const [k, shared] of taken) {
          const h = locks.get(k)?.get(runner);
          if (h === undefined) continue;
          if (shared) h.sessionShared--;
          else h.session--;
          prune(k, runner);
        }
        taken = [];
      }
      const held = others.length === 0
        ? "The lock is free"
        : others.every((o) => o >= 0)
        ? `The lock is held by process${others.length > 1 ? "es" : ""} ${others.join(", ")}`
        : `The lock is held by ${others.map(holderName).join(", ")}`;
      const queued = first.length === 0
        ? "."
        : `; process${first.length > 1 ? "es" : ""} ${first.join(", ")} wait${
          first.length > 1 ? "" : "s"
        } for it first.`;
      tools.raise(
        "55P03",
        "could not obtain advisory lock: another session holds it",
        held + queued,
        {
          hint: "pgts runs every session on one PGlite backend: a statement that calls" +
            " pg_advisory_lock() sent alone outside a transaction block waits for the lock;" +
            " elsewhere it cannot wait. pg_try_advisory_lock() answers without waiting.",
          routine: ADVISORY_CONFLICT_ROUTINE,
        },
      );
    }
    if (waits) dequeue(key, runner);
    let h = holders.get(runner);
    if (h === undefined) {
      holders.set(runner, h = { session: 0, sessionShared: 0, xact: 0, xactShared: 0 });
    }
    if (b.xact) b.shared ? h.xactShared++ : h.xact++;
    else {
      if (b.shared) h.sessionShared++;
      else h.session++;
      if (waits) taken.push([key, b.shared]);
    }
    return 1;
  };

  const release = (b: Builtin, fcinfo: number): number => {
    const key = keyOf(fcinfo, b.int8);
    const h = locks.get(key)?.get(runner);
    const held = h === undefined ? 0 : b.shared ? h.sessionShared : h.session;
    if (h === undefined || held === 0) {
      tools.warn(`you don't own a lock of type ${b.shared ? "ShareLock" : "ExclusiveLock"}`);
      return 0;
    }
    if (b.shared) h.sessionShared--;
    else h.session--;
    prune(key, runner);
    return 1;
  };

  /** Drops the pid's record of a key, and the key, once nothing is held. */
  const prune = (key: string, pid: number): void => {
    const holders = locks.get(key);
    const h = holders?.get(pid);
    if (holders === undefined || h === undefined) return;
    if (h.session + h.sessionShared + h.xact + h.xactShared === 0) holders.delete(pid);
    if (holders.size === 0) locks.delete(key);
  };

  const releaseWhere = (pid: number, what: (h: Holds) => void): void => {
    for (const [key, holders] of locks) {
      const h = holders.get(pid);
      if (h === undefined) continue;
      what(h);
      prune(key, pid);
    }
  };

  for (const b of BUILTINS) {
    table.set(
      builtinSlot(tools, b.oid),
      wasmFunctionOf((fcinfo) => (b.kind === "unlock" ? release(b, fcinfo) : acquire(b, fcinfo))),
    );
  }
  table.set(
    builtinSlot(tools, F_PG_ADVISORY_UNLOCK_ALL),
    wasmFunctionOf(() => {
      releaseWhere(runner, (h) => {
        h.session = 0;
        h.sessionShared = 0;
      });
      return 0;
    }),
  );

  installTwoPhase(tools, {
    prePrepare() {
      // lock.c's CheckForSessionAndXactLocks: a prepared transaction cannot
      // take over a lock the session keeps too, in whatever modes.
      for (const holders of locks.values()) {
        const h = holders.get(runner);
        if (
          h !== undefined &&
          h.session + h.sessionShared > 0 && h.xact + h.xactShared > 0
        ) {
          tools.raise(
            "0A000",
            "cannot PREPARE while holding both session-level and transaction-level locks on the same object",
          );
        }
      }
    },
    prepared(gid) {
      let id = 0;
      for (const [key, holders] of locks) {
        const h = holders.get(runner);
        if (h === undefined || h.xact + h.xactShared === 0) continue;
        if (id === 0) prepared.set(gid, id = nextPrepared--);
        holders.set(id, { session: 0, sessionShared: 0, xact: h.xact, xactShared: h.xactShared });
        h.xact = 0;
        h.xactShared = 0;
        prune(key, runner);
      }
    },
    finished(gid) {
      const id = prepared.get(gid);
      if (id === undefined) return;
      prepared.delete(gid);
      for (const [key, holders] of locks) {
        holders.delete(id);
        if (holders.size === 0) locks.delete(key);
      }
    },
  });

  return {
    runAs(pid, waiting = false) {
      runner = pid ?? 0;
      waits = waiting;
      taken = [];
    },
    endTransaction(pid) {
      releaseWhere(pid, (h) => {
        h.xact = 0;
        h.xactShared = 0;
      });
    },
    rows() {
      const out: AdvisoryRow[] = [];
      const now = Date.now();
      for (const key of new Set([...locks.keys(), ...queues.keys()])) {
        const tag = keyTag(key);
        for (const [pid, h] of locks.get(key) ?? []) {
          const holder = pid >= 0 ? pid : null;
          if (h.session + h.xact > 0) {
            out.push({ ...tag, pid: holder, mode: "ExclusiveLock", granted: true });
          }
          if (h.sessionShared + h.xactShared > 0) {
            out.push({ ...tag, pid: holder, mode: "ShareLock", granted: true });
          }
        }
        for (const w of queues.get(key) ?? []) {
          if (now - w.seen > WAITER_TTL_MS) continue;
          out.push({
            ...tag,
            pid: w.pid,
            mode: w.shared ? "ShareLock" : "ExclusiveLock",
            granted: false,
          });
        }
      }
      return out;
    },
    dropSessions(gone) {
      for (const [key, queue] of queues) {
        for (const w of queue) if (gone(w.pid)) dequeue(key, w.pid);
      }
      for (const [key, holders] of locks) {
        // A prepared transaction's holds (negative ids) outlive its session.
        for (const pid of holders.keys()) if (pid >= 0 && gone(pid)) holders.delete(pid);
        if (holders.size === 0) locks.delete(key);
      }
    },
  };
}

/** A lock key ("8:n" or "4:a:b", keyOf's) as pg_locks's classid, objid and objsubid. */
function keyTag(key: string): Pick<AdvisoryRow, "classid" | "objid" | "objsubid"> {
  const parts = key.split(":");
  if (parts[0] === "8") {
    const n = BigInt.asUintN(64, BigInt(parts[1]!));
    return { classid: Number(n >> 32n), objid: Number(n & 0xffffffffn), objsubid: 1 };
  }
  return { classid: Number(parts[1]!) >>> 0, objid: Number(parts[2]!) >>> 0, objsubid: 2 };
}

interface TwoPhaseEvents {
  /** The running session's transaction is about to be prepared (may raise). */
  prePrepare(): void;
  /** It was prepared under `gid`. */
  prepared(gid: string): void;
  /** The prepared transaction `gid` was committed or rolled back. */
  finished(gid: string): void;
}

/**
 * Tells `events` of PREPARE TRANSACTION, COMMIT PREPARED and ROLLBACK
 * PREPARED: a post_parse_analyze hook notes the global identifier of each
 * such statement as it is about to run, and a transaction callback acts
 * when the backend prepares, or commits the statement that finished one.
 */
function installTwoPhase(tools: WasmTools, events: TwoPhaseEvents): void {
  const ex = tools.ex as unknown as TwoPhaseExports & typeof tools.ex;
  if (typeof ex.RegisterXactCallback !== "function" || typeof ex.GetConfigOption !== "function") {
    throw new Error("PGlite does not export RegisterXactCallback or GetConfigOption");
  }
  // max_prepared_transactions is fixed at start; with 0 (the default),
  // MarkAsPreparing refuses every PREPARE before PostgreSQL would look at
  // the locks, and no statement needs the hook or the callback (two calls
  // into JavaScript per transaction).
  const slots = Number(
    tools.readCString(ex.GetConfigOption(tools.cString("max_prepared_transactions"), 0, 0)),
  );
  if (!(slots > 0)) return;
  const parsed = (sql: string): number => parsedStatement(tools, sql);
  const probePrepare = parsed("PREPARE TRANSACTION 'pgts_probe'");
  const probes = [
    probePrepare,
    parsed("COMMIT PREPARED 'pgts_probe'"),
    parsed("ROLLBACK PREPARED 'pgts_probe'"),
    parsed("COMMIT"),
  ];
  const v = tools.view();
  const tag = v.getUint32(probePrepare, true);
  const [prepare, commitPrepared, rollbackPrepared, commit] = probes.map((p) =>
    v.getInt32(p + TRANSACTION_KIND, true)
  );
  if (
    probes.some((p) => v.getUint32(p, true) !== tag) ||
    new Set([prepare, commitPrepared, rollbackPrepared, commit]).size !== 4 ||
    probes.slice(0, 3).some((p) =>
      tools.readCString(v.getUint32(p + TRANSACTION_GID, true)) !== "pgts_probe"
    )
  ) {
    throw new Error("PGlite's TransactionStmt has an unknown layout");
  }

  /** The identifier of the PREPARE TRANSACTION, and of the COMMIT/ROLLBACK PREPARED, about to run. */
  let preparing: string | null = null;
  let finishing: string | null = null;
  onUtilityStatement(tools, (stmt) => {
    const view = tools.view();
    if (view.getUint32(stmt, true) !== tag) return;
    const kind = view.getInt32(stmt + TRANSACTION_KIND, true);
    if (kind === prepare || kind === commitPrepared || kind === rollbackPrepared) {
      const gid = tools.readCString(view.getUint32(stmt + TRANSACTION_GID, true));
      if (kind === prepare) preparing = gid;
      else finishing = gid;
    }
  });

  const callback = (event: number): void => {
    if (event === XACT_EVENT_PRE_PREPARE) {
      events.prePrepare();
    } else if (event === XACT_EVENT_PREPARE) {
      if (preparing !== null) events.prepared(preparing);
      preparing = null;
    } else if (event === XACT_EVENT_COMMIT || event === XACT_EVENT_ABORT) {
      if (event === XACT_EVENT_COMMIT && finishing !== null) events.finished(finishing);
      finishing = null;
    }
  };
  ex.RegisterXactCallback(tools.addFunction(callback, { params: 2, result: false }), 0);
}
