/**
 * PostgreSQL's own statement timer, read in PGlite's heap: when the
 * statement running now is due to be cancelled by statement_timeout.
 *
 * PostgreSQL times each statement, not each message: start_xact_command()
 * starts STATEMENT_TIMEOUT as a statement begins, and a Query of several
 * statements stops it between them, so that each has the whole timeout
 * (postgres.c, exec_simple_query; likewise each Execute of a pipeline).
 * PGlite's timers never fire (cancelclock.ts turns setitimer off: they
 * would fire between other sessions' statements), yet timeout.c keeps its
 * table all the same: all_timeouts[STATEMENT_TIMEOUT] holds whether it is
 * active, when it started and when it is due. pgts's own deadline is the
 * exec's (it cannot see where one statement ends and the next begins), so
 * both the engine's thread (at host calls) and the watchdog on the
 * requesting thread (a shared heap) read the table to act when PostgreSQL
 * would.
 *
 * The table is a static array, not exported: it is found once by its
 * shape, each entry's first field its own index (utils/timeout.h).
 */

import { wallClockMs } from "./wallclock.ts";

/** sizeof(timeout_params) in wasm32, and the offsets of the fields read. */
const PARAMS_SIZE = 40;
const ACTIVE = 4;
const HANDLER = 8;
const START_TIME = 16;
const FIN_TIME = 24;
/** STATEMENT_TIMEOUT in enum TimeoutId (utils/timeout.h). */
const STATEMENT_TIMEOUT = 3;
/** The entries whose index the search checks: the predefined reasons. */
const ENTRIES_CHECKED = 12;
/** 2000-01-01 in Unix milliseconds: PostgreSQL's timestamps count from it. */
const POSTGRES_EPOCH_MS = 946_684_800_000;

/** Now as a PostgreSQL timestamp (µs since 2000-01-01), from the clock Postgres reads. */
export function postgresNowUs(): number {
  return Math.round((wallClockMs() - POSTGRES_EPOCH_MS) * 1000);
}

/**
 * all_timeouts[STATEMENT_TIMEOUT] per pglite.wasm SHA-256: where the search
 * finds it, so that a known build needs no search (15 ms the first time).
 */
const KNOWN_TIMERS: Readonly<Record<string, number>> = {
  // @electric-sql/pglite 0.5.16 (PostgreSQL 18)
  "5256d9ac379f631355f41ab30291e6a6d9f854242b5ee2a2d0940e28041d3fca": 2_879_928,
};

/** Whether a timeout table of timeout.c's shape starts at `p`. */
function tableAt(heap: DataView, p: number): boolean {
  if (p < 0 || p + PARAMS_SIZE * ENTRIES_CHECKED > heap.byteLength) return false;
  for (let i = 0; i < ENTRIES_CHECKED; i++) {
    const at = p + PARAMS_SIZE * i;
    if (heap.getInt32(at, true) !== i || heap.getUint8(at + ACTIVE) > 1) return false;
  }
  // Registered (a handler) in a backend.
  return heap.getUint32(p + PARAMS_SIZE * STATEMENT_TIMEOUT + HANDLER, true) !== 0;
}

/**
 * The address of all_timeouts[STATEMENT_TIMEOUT] below `end` (the heap's
 * start: static data lies under it), or 0 if no array of that shape is
 * there, or more than one. `sha` (pglite.wasm's) names a known build,
 * whose address is checked instead of searched for. Call once Postgres
 * has registered its timeouts.
 */
export function findStatementTimer(heap: DataView, end: number, sha: string | null = null): number {
  const known = sha === null ? undefined : KNOWN_TIMERS[sha];
  if (known !== undefined && tableAt(heap, known - PARAMS_SIZE * STATEMENT_TIMEOUT)) return known;
  let found = 0;
  const last = Math.min(end, heap.byteLength) - PARAMS_SIZE * ENTRIES_CHECKED;
  for (let p = 0; p <= last; p += 8) {
    if (heap.getInt32(p, true) !== 0 || heap.getInt32(p + PARAMS_SIZE, true) !== 1) continue;
    if (!tableAt(heap, p)) continue;
    if (found !== 0) return 0;
    found = p + PARAMS_SIZE * STATEMENT_TIMEOUT;
  }
  return found;
}

/**
 * When the exec that began at `startUs` is due to be cancelled
 * (PostgreSQL timestamps), given pgts's own deadline for it, `fallbackUs`:
 *
 * - Postgres started its timer during this exec (start_time after the
 *   exec's start): the statement's fin_time while the timer runs, and
 *   Infinity while it does not (between two statements, or after the last).
 * - Otherwise `fallbackUs`: Postgres does not time this exec's statement
 *   (its statement began in the exec's first millisecond, its own setting
 *   says no timeout, or the timer running is an earlier exec's).
 *
 * The fields are read twice: on the requesting thread Postgres may be
 * writing them meanwhile.
 */
export function statementDueUs(
  heap: DataView,
  timer: number,
  startUs: number,
  fallbackUs: number,
): number {
  if (timer === 0) return fallbackUs;
  for (;;) {
    const start = Number(heap.getBigInt64(timer + START_TIME, true));
    if (start <= startUs) return fallbackUs;
    const active = heap.getUint8(timer + ACTIVE) !== 0;
    const fin = Number(heap.getBigInt64(timer + FIN_TIME, true));
    if (Number(heap.getBigInt64(timer + START_TIME, true)) !== start) continue;
    return active ? fin : Infinity;
  }
}

/**
 * How long until the exec that began at `startUs` under statement_timeout
 * `timeoutMs` is to be looked at again (ms): 0 when its statement is due
 * now (statementDueUs, the exec's own deadline where Postgres does not
 * time it); between two statements a whole timeout, as the next one's is
 * that far away at least.
 */
export function msUntilDue(
  heap: DataView,
  timer: number,
  startUs: number,
  timeoutMs: number,
): number {
  const nowUs = postgresNowUs();
  const due = statementDueUs(heap, timer, startUs, startUs + timeoutMs * 1000);
  if (due <= nowUs) return 0;
  return due === Infinity ? timeoutMs : (due - nowUs) / 1000;
}
