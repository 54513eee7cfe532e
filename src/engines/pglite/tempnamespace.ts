/**
 * Temporary namespaces per session. PostgreSQL gives each backend its own
 * temporary schema pair (pg_temp_N and pg_toast_temp_N, N its
 * MyProcNumber), made on first use by namespace.c's InitTempTableNamespace
 * and remembered in two statics, `myTempNamespace` and
 * `myTempToastNamespace`. PGlite has one backend for every pgts session, so
 * left alone every session would share one temporary schema: a temp table of
 * one session visible to all, its name taken for all, never dropped.
 *
 * pgts keeps a pair per session by swapping those two statics: before a
 * session's exec, the backend is given that session's pair (none, for a
 * session that made no temporary object yet), and after it pgts reads back
 * what the backend has, because PostgreSQL itself creates the pair the first
 * time the session needs one, by every path that can (CREATE TEMP, SELECT
 * INTO TEMP, `pg_temp.` names, a function body), with its own permission
 * checks and rollback. The engine (engine.ts) then renames the new pair
 * `pg_temp_N_<session id>` before anyone else runs, so that the next session
 * that needs one does not find pg_temp_N and empty it, as
 * InitTempTableNamespace does to a leftover; and drops it when the session
 * ends. Temp-ness of a schema is by its name prefix in PostgreSQL, and the
 * number after it is read with atoi: N stays the backend's MyProcNumber, so
 * the temporary files (t<N>_<relfilenode>) and local buffers are the
 * backend's as before. Swaps happen only between transactions (the engine
 * is held for a whole transaction block), never while a transaction that
 * created a pair is open (`myTempNamespaceSubID` is then set).
 *
 * A swap also invalidates what the backend derived from the old pair: the
 * search path (`baseSearchPathValid`) and the search path cache
 * (`searchPathCacheValid`; its entries embed the temporary namespace), as
 * namespace.c does when it sets the statics itself; and the relcache's
 * `rd_islocaltemp` of every temporary relation in the cache, which
 * RelationBuildDesc computed for whichever session was current when the
 * entry was built (a wrong `true` would let a session read another's table
 * by its qualified name; a wrong `false` fails a session's own table with
 * "cannot access temporary tables of other sessions"). The relcache walk
 * uses the exported hash_seq_init/hash_seq_search. And the backend's cached
 * plans (PL/pgSQL's are shared by every session): PostgreSQL's check of a
 * plan's search path only asks whether a temporary namespace comes first,
 * not which, so a plan made for one session would read that session's
 * table in another. When a pair other than the last one becomes current,
 * every plan that depends on a relation is invalidated, by calling
 * plancache.c's relcache callback for all relations (a plan made under no
 * pair fails the check under one, and the other way round).
 *
 * InitTempTableNamespace also registers, at the commit that made the pair,
 * a before_shmem_exit callback that empties the pair at backend exit; one
 * per pair, and the backend has 20 slots, after which the commit fails
 * FATAL. pgts keeps one such registration and takes back the others (what
 * cancel_before_shmem_exit does), after every exec.
 *
 * The statics are not exported. Their addresses are absolute in PGlite's
 * WASM (statics of a wasm32 module live at link-time addresses), so they
 * are kept here in a table keyed by the SHA-256 of pglite.wasm, found in
 * its disassembly (`wasm-objdump -d`): the exported `isTempNamespace`
 * reads `myTempNamespace`, the unexported function after it (isTempToast-
 * Namespace, same shape) `myTempToastNamespace`; AtEOXact_Namespace (it
 * calls before_shmem_exit with RemoveTempRelationsCallback's table index)
 * writes both, `myTempNamespaceSubID` and the two search path flags;
 * recomputeNamespacePath and spcache_init say which flag is which, and
 * that LLVM stored `baseSearchPathValid` negated (1 means invalid: it
 * shrank a bool initialised to true); `RelationIdGetRelation` reads
 * `RelationIdCache`; `before_shmem_exit` the exit list and its index;
 * `CacheRegisterRelcacheCallback` the relcache callback list, where
 * InitPlanCache registers PlanCacheRelCallback first (then its syscache
 * callbacks, as in plancache.c). A
 * table rather than a scanner of the code section, because the compiler is
 * free to change how a static is stored (as it did here) and a scanner would
 * then find an address and misread it. Whatever the table says is checked
 * when the instance opens, by behaviour (the search path follows a swapped
 * namespace, and only with both flags cleared) and by layout (the relcache
 * entry of pg_class, the values the statics must have before any temporary
 * object exists). An unknown wasm, or a failed check, leaves temporary
 * objects shared, as before, with a WARNING at start and one to each client
 * that creates a temporary object.
 *
 * Runs on the thread that runs PGlite. Must never swap inside a
 * transaction, and never leave the backend with a pair whose schema was
 * dropped (the engine drops a pair with none current).
 */

import type { WasmTools } from "./wasmtools.ts";

/** A session's temporary namespace and its toast namespace (OIDs); [0, 0] for none yet. */
export type TempPair = readonly [namespace: number, toastNamespace: number];
export const NO_TEMP: TempPair = Object.freeze([0, 0] as const);

/**
 * The pair the backend had when an exec started (after the swap) and when
 * it ended: a difference is PostgreSQL's own doing (it made a pair, or a
 * rollback forgot the one it had just made).
 */
export interface TempSpan {
  readonly before: TempPair;
  readonly after: TempPair;
}

/** Addresses and constants of one pglite.wasm build (see the header for how they were found). */
interface Layout {
  readonly myTempNamespace: number;
  readonly myTempToastNamespace: number;
  readonly myTempNamespaceSubID: number;
  /** A byte: 1 when baseSearchPathValid is false (stored negated). */
  readonly baseSearchPathInvalid: number;
  /** A byte: searchPathCacheValid. */
  readonly searchPathCacheValid: number;
  readonly relationIdCache: number;
  readonly beforeShmemExitIndex: number;
  readonly beforeShmemExitList: number;
  /** The function table index of RemoveTempRelationsCallback. */
  readonly removeTempRelationsCallback: number;
  readonly relcacheCallbackCount: number;
  readonly relcacheCallbackList: number;
  /** The function table index of plancache.c's PlanCacheRelCallback. */
  readonly planCacheRelCallback: number;
}

const LAYOUTS: Readonly<Record<string, Layout>> = {
  // @electric-sql/pglite 0.5.16 (PostgreSQL 18)
  "5256d9ac379f631355f41ab30291e6a6d9f854242b5ee2a2d0940e28041d3fca": {
    myTempNamespace: 2777896,
    myTempToastNamespace: 2777912,
    myTempNamespaceSubID: 2777920,
    baseSearchPathInvalid: 2777916,
    searchPathCacheValid: 2777917,
    relationIdCache: 2868856,
    beforeShmemExitIndex: 2796912,
    beforeShmemExitList: 2796928,
    removeTempRelationsCallback: 573,
    relcacheCallbackCount: 2868432,
    relcacheCallbackList: 2868448,
    planCacheRelCallback: 2460,
  },
};

/** Offsets in wasm32 structures (utils/rel.h, catalog/pg_class.h, utils/relcache.c, storage/ipc.c). */
const RELCACHE_ENTRY_RELDESC = 4;
const RD_BACKEND = 20;
const RD_ISLOCALTEMP = 24;
const RD_ISNAILED = 25;
const RD_REL = 48;
const RD_ID = 56;
const CLASS_RELNAME = 4;
const CLASS_RELNAMESPACE = 68;
const CLASS_RELPERSISTENCE = 118;
const CLASS_RELKIND = 119;
const ON_EXIT_ENTRY_SIZE = 8;
const RELCACHE_CALLBACK_SIZE = 8;
/** MAX_RELCACHE_CALLBACKS in inval.c. */
const MAX_RELCACHE_CALLBACKS = 10;
/** MAX_ON_EXITS in ipc.c. */
const MAX_ON_EXITS = 20;
/** HASH_SEQ_STATUS is 20 bytes in wasm32. */
export const HASH_SEQ_STATUS_SIZE = 32;
const RELPERSISTENCE_TEMP = 0x74; // 't'
const PG_CLASS_OID = 1259;
const PG_CATALOG_NAMESPACE = 11;
const PG_TOAST_NAMESPACE = 99;

export interface TempNamespaces {
  /** Gives the backend `pair` as its temporary namespaces (a no-op when it has them). */
  use(pair: TempPair): void;
  /** The pair the backend has now. */
  carried(): TempPair;
  /** After an exec: keeps one exit callback of temporary namespaces, takes back the others. */
  afterExec(): void;
}

interface TempExports {
  hash_seq_init(status: number, hashp: number): void;
  hash_seq_search(status: number): number;
}

/** What openInstance needs to run a query on the instance while it checks the layout. */
export type RunQuery = (sql: string) => Promise<Array<Record<string, unknown>>>;

/**
 * Installs the per-session temporary namespaces, or returns why they cannot
 * be (then temporary objects stay shared by all sessions).
 */
export async function installTempNamespaces(
  tools: WasmTools,
  sha: string | null,
  query: RunQuery,
): Promise<TempNamespaces | string> {
  if (sha === null) return "PGlite's WASM file was not found";
  const layout = LAYOUTS[sha];
  if (layout === undefined) return `this PGlite build (pglite.wasm sha256 ${sha}) is not known`;
  const ex = tools.ex as unknown as TempExports & typeof tools.ex;
  for (const fn of ["hash_seq_init", "hash_seq_search"] as const) {
    if (typeof ex[fn] !== "function") return `PGlite does not export ${fn}`;
  }
  const status = ex.malloc(HASH_SEQ_STATUS_SIZE);
  const L = layout;
  if (!registeredRelcacheCallback(tools, L)) {
    return "plancache's relcache callback is not where this PGlite build should have it";
  }
  const planCacheRelCallback = ex.__indirect_function_table.get(L.planCacheRelCallback) as (
    arg: number,
    relid: number,
  ) => void;

  const read = (): TempPair => {
    const v = tools.view();
    return [v.getUint32(L.myTempNamespace, true), v.getUint32(L.myTempToastNamespace, true)];
  };
  /** Each temporary relation in the relcache, by its Relation and pg_class row. */
  const eachRelation = (fn: (rel: number, form: number) => void): void => {
    const htab = tools.view().getUint32(L.relationIdCache, true);
    if (htab === 0) return;
    ex.hash_seq_init(status, htab);
    for (let e = ex.hash_seq_search(status); e !== 0; e = ex.hash_seq_search(status)) {
      const v = tools.view();
      const rel = v.getUint32(e + RELCACHE_ENTRY_RELDESC, true);
      if (rel === 0) continue;
      const form = v.getUint32(rel + RD_REL, true);
      if (form !== 0) fn(rel, form);
    }
  };
  /** The last pair the backend had (not none): the one cached plans may be made for. */
  let lastPair = 0;
  const set = (pair: TempPair): void => {
    const v = tools.view();
    const had = v.getUint32(L.myTempNamespace, true);
    if (had !== 0) lastPair = had;
    v.setUint32(L.myTempNamespace, pair[0], true);
    v.setUint32(L.myTempToastNamespace, pair[1], true);
    // namespace.c's "baseSearchPathValid = false; searchPathCacheValid = false".
    v.setUint8(L.baseSearchPathInvalid, 1);
    v.setUint8(L.searchPathCacheValid, 0);
    // A cached plan (a PL/pgSQL function's, shared by every session) keeps
    // the relations its names resolved to, and its search path check only
    // asks whether a temporary namespace comes first: made under one pair
    // and used under another, it passes. So when a pair other than the
    // last one becomes current, every plan that depends on a relation is
    // planned again, as after a relcache invalidation of all relations.
    // (A plan made under none fails the check under a pair, and the other
    // way round, and is planned again by PostgreSQL itself.)
    if (pair[0] !== 0 && pair[0] !== lastPair) {
      planCacheRelCallback(0, 0);
      lastPair = pair[0];
    }
    eachRelation((rel, form) => {
      const view = tools.view();
      if (view.getUint8(form + CLASS_RELPERSISTENCE) !== RELPERSISTENCE_TEMP) return;
      const nsp = view.getUint32(form + CLASS_RELNAMESPACE, true);
      view.setUint8(
        rel + RD_ISLOCALTEMP,
        nsp !== 0 && (nsp === pair[0] || nsp === pair[1]) ? 1 : 0,
      );
    });
  };

  const failed = await checkLayout(tools, L, eachRelation, query, set, read);
  if (failed !== null) return failed;

  let knownIndex = tools.view().getInt32(L.beforeShmemExitIndex, true);
  return {
    use(pair) {
      const v = tools.view();
      const now = read();
      if (now[0] === pair[0] && now[1] === pair[1]) return;
      // A transaction that created the current pair is still open: never
      // swap under it (the engine does not ask to; this is the guard).
      if (v.getUint32(L.myTempNamespaceSubID, true) !== 0) return;
      set(pair);
    },
    carried: read,
    afterExec() {
      const v = tools.view();
      let index = v.getInt32(L.beforeShmemExitIndex, true);
      if (index === knownIndex) return;
      const fnAt = (i: number) => v.getUint32(L.beforeShmemExitList + i * ON_EXIT_ENTRY_SIZE, true);
      let first = -1;
      for (let i = 0; i < index; i++) {
        if (fnAt(i) === L.removeTempRelationsCallback) {
          first = i;
          break;
        }
      }
      while (index - 1 > first && first >= 0 && fnAt(index - 1) === L.removeTempRelationsCallback) {
        index--;
      }
      v.setInt32(L.beforeShmemExitIndex, index, true);
      knownIndex = index;
    },
  };
}

/** Whether PlanCacheRelCallback is among the registered relcache callbacks (with arg 0). */
function registeredRelcacheCallback(tools: WasmTools, L: Layout): boolean {
  const v = tools.view();
  const count = v.getInt32(L.relcacheCallbackCount, true);
  if (count < 1 || count > MAX_RELCACHE_CALLBACKS) return false;
  for (let i = 0; i < count; i++) {
    const at = L.relcacheCallbackList + i * RELCACHE_CALLBACK_SIZE;
    if (v.getUint32(at, true) === L.planCacheRelCallback && v.getUint32(at + 4, true) === 0) {
      return typeof tools.ex.__indirect_function_table.get(L.planCacheRelCallback) === "function";
    }
  }
  return false;
}

/**
 * Checks the table's addresses against the running backend; null when they
 * hold, else what did not.
 */
async function checkLayout(
  tools: WasmTools,
  L: Layout,
  eachRelation: (fn: (rel: number, form: number) => void) => void,
  query: RunQuery,
  set: (pair: TempPair) => void,
  read: () => TempPair,
): Promise<string | null> {
  const v = tools.view();
  // Before any temporary object: no pair, no creation pending, a sane exit list.
  const [nsp, toast] = read();
  const index = v.getInt32(L.beforeShmemExitIndex, true);
  if (
    nsp !== 0 || toast !== 0 || v.getUint32(L.myTempNamespaceSubID, true) !== 0 ||
    v.getUint8(L.baseSearchPathInvalid) > 1 || v.getUint8(L.searchPathCacheValid) > 1 ||
    index < 0 || index > MAX_ON_EXITS
  ) {
    return "the temporary namespace statics do not hold what they should";
  }
  // The relcache entry of pg_class: nailed, not temporary, in pg_catalog.
  let pgClass = false;
  eachRelation((rel, form) => {
    const view = tools.view();
    if (view.getUint32(rel + RD_ID, true) !== PG_CLASS_OID) return;
    pgClass = view.getUint32(form, true) === PG_CLASS_OID &&
      tools.readCString(form + CLASS_RELNAME) === "pg_class" &&
      view.getUint32(form + CLASS_RELNAMESPACE, true) === PG_CATALOG_NAMESPACE &&
      view.getUint8(form + CLASS_RELPERSISTENCE) === 0x70 && // 'p'
      view.getUint8(form + CLASS_RELKIND) === 0x72 && // 'r'
      view.getUint8(rel + RD_ISNAILED) === 1 &&
      view.getUint8(rel + RD_ISLOCALTEMP) === 0 &&
      view.getInt32(rel + RD_BACKEND, true) === -1;
  });
  if (!pgClass) return "the relation cache does not have the expected layout";
  // The search path follows a swapped namespace (pg_toast stands in for a
  // temporary one): only with both flags cleared, so both addresses hold.
  const path = async () =>
    String((await query("select pg_catalog.current_schemas(true)::text as p"))[0]?.["p"] ?? "");
  const before = await path();
  set([PG_TOAST_NAMESPACE, 0]);
  const swapped = await path();
  const mine = String(
    (await query("select pg_catalog.pg_my_temp_schema()::int as n"))[0]?.["n"] ?? "",
  );
  set([0, 0]);
  const back = await path();
  if (
    before.startsWith("{pg_toast") || !swapped.startsWith("{pg_toast,") ||
    mine !== String(PG_TOAST_NAMESPACE) || back !== before
  ) {
    return `the search path did not follow a swapped temporary namespace (${before}, ${swapped}, ${back})`;
  }
  return null;
}
