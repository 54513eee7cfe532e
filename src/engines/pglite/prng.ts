/**
 * random() and setseed() per session. PostgreSQL keeps the state of the
 * generator behind random(), random_normal() and random(min, max) in
 * backend memory (pseudorandomfuncs.c's static `prng_state`, two uint64
 * words of xoroshiro128**), so each backend draws its own series and
 * setseed() repeats only its own. PGlite has one backend: left alone,
 * after `setseed(0.42)` in one session another session's random() drew
 * from that series, and the first session's next values were not those
 * its seed gives.
 *
 * pgts swaps the two words per session, as sequences.ts swaps currval's
 * values: when the engine's next exec is another session's, the words are
 * read back into the session that ran last and the new session's written
 * in; a session that has none yet gets fresh random words, as a new
 * backend seeds itself from a strong random source.
 *
 * The words are found once, at the engine's start, by their value: after
 * `select setseed(0.5)` they hold what pg_prng_fseed(0.5) makes of the
 * seed (splitmix64 of it, twice), and exactly one 8-aligned place below the
 * heap's base (static data) holds that pair; a known build's place is
 * checked instead. A build where none or several do leaves the series
 * shared, as before.
 *
 * Runs on the thread that runs PGlite, at the start of an exec.
 */

import type { WasmTools } from "./wasmtools.ts";

const MASK64 = (1n << 64n) - 1n;
/** The seed of the probe (`select setseed(0.5)`). */
const PROBE = 0.5;
/**
 * Where the state lies per pglite.wasm SHA-256, checked before it is
 * searched for (as statementtimer.ts's table).
 */
const KNOWN_STATE: Readonly<Record<string, number>> = {
  // @electric-sql/pglite 0.5.16 (PostgreSQL 18)
  "5256d9ac379f631355f41ab30291e6a6d9f854242b5ee2a2d0940e28041d3fca": 2_865_712,
};

/** pg_prng.c's splitmix64 step on `s.v`: the next 64-bit word of a seed's expansion. */
function splitmix64(s: { v: bigint }): bigint {
  s.v = (s.v + 0x9E3779B97F4A7C15n) & MASK64;
  let z = s.v;
  z = ((z ^ (z >> 30n)) * 0xBF58476D1CE4E5B9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94D049BB133111EBn) & MASK64;
  return z ^ (z >> 31n);
}

/** The state words setseed(`fseed`) leaves (pg_prng_fseed, then pg_prng_seed). */
export function seededWords(fseed: number): [bigint, bigint] {
  const seed = { v: BigInt.asUintN(64, BigInt(Math.trunc((2 ** 52 - 1) * fseed))) };
  const s0 = splitmix64(seed);
  const s1 = splitmix64(seed);
  return [s0, s1];
}

export interface SessionPrng {
  /** Session `pid`'s exec runs next (null: pgts's own work, which leaves the state as it is). */
  runAs(pid: number | null): void;
  /** The sessions `gone` takes ended (or their pid is another session's now): their states go. */
  dropSessions(gone: (pid: number) => boolean): void;
}

/**
 * Finds the generator's state (`probe` runs `select setseed(0.5)` as the
 * engine's own work) below `heapBase`, and gives each session its own from
 * then on; a string says why the state stays shared.
 */
export async function installSessionPrng(
  tools: WasmTools,
  heapBase: number,
  sha: string | null,
  probe: () => Promise<unknown>,
): Promise<SessionPrng | string> {
  await probe();
  const [s0, s1] = seededWords(PROBE);
  const want = [s0 & 0xffffffffn, s0 >> 32n, s1 & 0xffffffffn, s1 >> 32n].map(Number);
  const words32 = new Uint32Array(tools.view().buffer, 0, Math.floor(heapBase / 4));
  const holds = (i: number) =>
    i % 2 === 0 && i + 3 < words32.length && want.every((w, k) => words32[i + k] === w);
  const known = sha === null ? undefined : KNOWN_STATE[sha];
  let at = known !== undefined && holds(known / 4) ? known : -1;
  if (at === -1) {
    // Searched: ~25 ms of the engine's start over the 11 MB below the heap.
    const first = want[0]!;
    for (let i = words32.indexOf(first); i !== -1; i = words32.indexOf(first, i + 1)) {
      if (!holds(i)) continue;
      if (at !== -1) return "random()'s state is not unique in static memory";
      at = i * 4;
    }
  }
  if (at === -1) return "random()'s state was not found in static memory";
  const words = () => new Uint8Array(tools.view().buffer, at, 16);
  // Nobody's series yet: the probe's seed must not be the first session's.
  fresh(words());
  const states = new Map<number, Uint8Array>();
  let current: number | null = null;
  return {
    runAs(pid) {
      if (pid === null || pid === current) return;
      const w = words();
      if (current !== null) states.set(current, w.slice());
      const own = states.get(pid);
      if (own !== undefined) w.set(own);
      else fresh(w);
      current = pid;
    },
    dropSessions(gone) {
      for (const pid of states.keys()) if (gone(pid)) states.delete(pid);
      if (current !== null && gone(current)) current = null;
    },
  };
}

/** Fresh random state words (never all zero, xoroshiro's fixed point). */
function fresh(w: Uint8Array): void {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  if (bytes.every((b) => b === 0)) bytes[0] = 1;
  w.set(bytes);
}
