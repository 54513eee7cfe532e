/**
 * Lock waits in the engine's one backend, and how they end.
 *
 * PGlite runs every session in one backend, so the only other holder of a
 * heavyweight lock that backend can ever wait for is a prepared
 * transaction (two-phase commit), and only COMMIT PREPARED or ROLLBACK
 * PREPARED, run on that same backend, can release it. A statement that
 * waits for such a lock holds the engine while it waits: nobody can end
 * the wait, and every other session queues behind it. PostgreSQL's own
 * remedies do not reach it: its lock_timeout and deadlock timers are
 * setitimer signals, which PGlite does not have, and its wait
 * (ProcSleep's WaitLatch, a loop without host calls in WASM) wakes only
 * when the latch is set.
 *
 * So the engine's thread watches, while an exec runs, the backend's
 * `wait_event_info` (PGPROC's, in the shared heap): once it has shown a
 * lock wait (class PG_WAIT_LOCK) for the exec's bound (lock_timeout, or
 * the engine wait timeout), the exec is cancelled as a CancelRequest
 * cancels it (the flags and the latch; interrupt.ts) and its 57014 is
 * answered as 55P03. Only with `max_prepared_transactions` > 0 (without
 * prepared transactions no lock wait can happen) and with the engine in a
 * Worker (inline, nothing runs beside the statement).
 *
 * The field's offset in PGPROC is kept per pglite.wasm build, as
 * tempnamespace.ts keeps its addresses: found by reading PGPROC during a
 * lock wait (0x03000000, PG_WAIT_LOCK with a relation's lock tag) and a
 * pg_sleep (0x09000002), and 0 otherwise. An unknown build has no bound;
 * the engine logs that at start.
 */

/** offsetof(PGPROC, wait_event_info) in wasm32, per pglite.wasm SHA-256. */
const WAIT_EVENT_INFO_OFFSETS: Readonly<Record<string, number>> = {
  // @electric-sql/pglite 0.5.16 (PostgreSQL 18)
  "5256d9ac379f631355f41ab30291e6a6d9f854242b5ee2a2d0940e28041d3fca": 548,
};

/** PG_WAIT_LOCK (utils/wait_classes.h): the class byte of a heavyweight lock wait. */
const PG_WAIT_LOCK_CLASS = 0x03;

/** How often the engine's thread reads the wait event while an exec runs. */
export const LOCK_WAIT_POLL_MS = 50;

/**
 * The absolute address of the backend's `wait_event_info`, given the
 * address of the exported `MyProc` variable; 0 when the build is unknown
 * or the backend has no PGPROC.
 */
export function waitEventAddress(heap: DataView, myProc: number, sha: string | null): number {
  const offset = sha === null ? undefined : WAIT_EVENT_INFO_OFFSETS[sha];
  if (offset === undefined) return 0;
  const proc = heap.getUint32(myProc, true);
  return proc === 0 ? 0 : proc + offset;
}

/** Whether a `wait_event_info` value is a heavyweight lock wait. */
export function isLockWait(waitEventInfo: number): boolean {
  return waitEventInfo >>> 24 === PG_WAIT_LOCK_CLASS;
}
