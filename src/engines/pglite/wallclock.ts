/**
 * The wall clock PGlite's Postgres reads, to the microsecond.
 *
 * PostgreSQL's timestamps (now(), clock_timestamp(), statement_timestamp(),
 * pg_stat_activity's and pg_prepared_statements' times) come from
 * gettimeofday, microseconds on any server. Emscripten's glue answers it,
 * and clock_gettime(CLOCK_REALTIME), from `Date.now()`: whole milliseconds,
 * so every timestamp ended in .xxx000, two rows written a few hundred
 * microseconds apart had equal `created_at`, and `clock_timestamp() -
 * statement_timestamp()` of a short statement was 0. `wrapWallClock` answers
 * both imports from `wallClockMs`, which keeps Date.now()'s millisecond and
 * adds the fraction the monotonic clock (performance.now()) measures.
 */

const CLOCK_REALTIME = 0;
const WASI_EINVAL = 28;

/** Date.now() − performance.now() as last measured on this thread; NaN before the first reading. */
let offsetMs = Number.NaN;

/** The time the clock reads while an exec holds it (holdWallClock), or null. */
let heldMs: number | null = null;

/**
 * Makes the clock read `ms` (milliseconds since the epoch, with their
 * fraction) until it is held at null again: for one exec, a deferred
 * BEGIN's (deferredbegin.ts), so that its transaction starts when the
 * client's BEGIN was answered, as now() says in PostgreSQL.
 */
export function holdWallClock(ms: number | null): void {
  heldMs = ms;
}

/**
 * Milliseconds since the Unix epoch, with the fraction of the millisecond:
 * never outside the millisecond Date.now() gives, so a step of the wall
 * clock (NTP, a suspended VM) shows at once, as it would in PostgreSQL.
 * Between steps the two clocks tick at one rate; after a step the offset is
 * measured again, the reading taking Date.now()'s millisecond, and it
 * settles on the millisecond's true fraction within a few readings (an
 * estimate below the millisecond is moved up, never back: readings do not
 * go backwards unless the wall clock does).
 */
export function wallClockMs(): number {
  if (heldMs !== null) return heldMs;
  const mono = performance.now();
  const ms = Date.now();
  const t = mono + offsetMs;
  if (t >= ms && t < ms + 1) return t;
  offsetMs = ms - mono;
  return ms;
}

/**
 * Answers Postgres's wall-clock reads (`emscripten_date_now`, which
 * Emscripten's gettimeofday divides into seconds and microseconds, and
 * `clock_time_get` of CLOCK_REALTIME) from wallClockMs. `memory()` is the
 * module's heap, where clock_time_get writes its nanoseconds.
 */
export function wrapWallClock(
  env: Record<string, unknown>,
  memory: () => WebAssembly.Memory | null,
): void {
  if (typeof env["emscripten_date_now"] === "function") {
    env["emscripten_date_now"] = wallClockMs;
  }
  const clock = env["clock_time_get"] as
    | ((id: number, precision: bigint, ptr: number) => number)
    | undefined;
  if (typeof clock !== "function") return;
  env["clock_time_get"] = (id: number, precision: bigint, ptr: number): number => {
    const heap = memory();
    if (id !== CLOCK_REALTIME || heap === null) return clock(id, precision, ptr);
    if (ptr < 0 || ptr + 8 > heap.buffer.byteLength) return WASI_EINVAL;
    const t = wallClockMs();
    const whole = Math.floor(t);
    const ns = BigInt(whole) * 1_000_000n + BigInt(Math.round((t - whole) * 1e6));
    new DataView(heap.buffer).setBigUint64(ptr, ns, true);
    return 0;
  };
}
