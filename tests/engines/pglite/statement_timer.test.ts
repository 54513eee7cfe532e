/**
 * PostgreSQL's own statement timer as pgts reads it in PGlite's heap
 * (statementtimer.ts), on made-up heaps laid out as timeout.c's table:
 * found by its shape (refused when there are none or two), it says when
 * the statement running is due by statement_timeout, nothing between
 * statements, and the exec's own deadline where Postgres did not start
 * its timer during the exec. What it does on the engine:
 * tests/e2e/sql/statement_and_idle_session_timeouts_end_what_they_should.test.ts.
 */

import { describe, expect, test } from "bun:test";
import { findStatementTimer, statementDueUs } from "../../../src/engines/pglite/statementtimer.ts";

/** A heap holding timeout tables like timeout.c's at `at` (40-byte entries). */
function heapWith(...at: number[]): DataView {
  const v = new DataView(new ArrayBuffer(64 * 1024));
  for (const base of at) {
    for (let i = 0; i < 23; i++) {
      v.setInt32(base + 40 * i, i, true);
      if (i > 0 && i < 4) v.setUint32(base + 40 * i + 8, 100 + i, true);
    }
  }
  return v;
}

describe("finding the timer", () => {
  test("one table: its STATEMENT_TIMEOUT entry", () => {
    expect(findStatementTimer(heapWith(8192), 64 * 1024)).toBe(8192 + 3 * 40);
  });

  test("none, two, one above the end, or one whose entry has no handler: 0", () => {
    expect(findStatementTimer(heapWith(), 64 * 1024)).toBe(0);
    expect(findStatementTimer(heapWith(8192, 32768), 64 * 1024)).toBe(0);
    expect(findStatementTimer(heapWith(32768), 16384)).toBe(0);
    const v = heapWith(8192);
    v.setUint32(8192 + 3 * 40 + 8, 0, true);
    expect(findStatementTimer(v, 64 * 1024)).toBe(0);
  });
});

describe("when the statement is due", () => {
  const at = 8192 + 3 * 40;
  function timer(active: boolean, startUs: number, finUs: number): DataView {
    const v = heapWith(8192);
    v.setUint8(at + 4, active ? 1 : 0);
    v.setBigInt64(at + 16, BigInt(startUs), true);
    v.setBigInt64(at + 24, BigInt(finUs), true);
    return v;
  }

  test("a statement Postgres began during the exec: its own due time, none between statements", () => {
    expect(statementDueUs(timer(true, 2_000, 7_000), at, 1_000, 6_000)).toBe(7_000);
    expect(statementDueUs(timer(false, 2_000, 7_000), at, 1_000, 6_000)).toBe(Infinity);
  });

  test("a timer that began with the exec or before it, or none found: the exec's own deadline", () => {
    expect(statementDueUs(timer(true, 1_000, 6_500), at, 1_000, 6_000)).toBe(6_000);
    expect(statementDueUs(timer(true, 500, 5_500), at, 1_000, 6_000)).toBe(6_000);
    expect(statementDueUs(timer(true, 2_000, 7_000), 0, 1_000, 6_000)).toBe(6_000);
  });
});
