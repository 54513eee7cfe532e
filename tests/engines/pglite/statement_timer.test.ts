/**
 * PostgreSQL's own statement timer as pgts reads it in PGlite's heap
 * (statementtimer.ts): found by its shape, it says when the statement
 * running is due by statement_timeout, and nothing between statements.
 * On a PGlite of its own, and on made-up heaps for what the search must
 * refuse.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { PGlite } from "@electric-sql/pglite";
import {
  findStatementTimer,
  postgresNowUs,
  statementDueUs,
} from "../../../src/engines/pglite/statementtimer.ts";
import { pgliteWasmSha256 } from "../../../src/engines/pglite/assets.ts";
import { FE } from "../../../src/core/protocol/constants.ts";
import { concat, cstring, fe, message } from "../../../src/engines/pglite/wire.ts";

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

describe("PGlite's timer", () => {
  let db: PGlite;
  afterAll(async () => await db?.close());

  test("runs from a statement's start until its end, at the session's statement_timeout", async () => {
    db = await PGlite.create();
    await db.exec("set statement_timeout = 5000");
    const heap = (db as unknown as { mod: { HEAPU8: Uint8Array } }).mod.HEAPU8;
    const view = () => new DataView(heap.buffer);
    const timer = findStatementTimer(view(), 16 * 1024 * 1024);
    expect(timer).not.toBe(0);
    // The address known for this build is the one the search finds.
    expect(findStatementTimer(view(), 0, await pgliteWasmSha256())).toBe(timer);
    const before = postgresNowUs() - 1000;
    // A Parse starts the statement; its Sync ends it.
    await db.execProtocolRawStream(
      concat([
        message(FE.Parse, cstring(""), cstring("select 1"), new Uint8Array(2)),
        message(FE.Flush),
      ]),
      {
        onRawData: () => {},
      },
    );
    const due = statementDueUs(view(), timer, before, 0);
    expect(due).toBeGreaterThan(before + 5_000_000);
    expect(due).toBeLessThanOrEqual(postgresNowUs() + 5_000_000);
    // An exec that began after the statement did: not its timer.
    expect(statementDueUs(view(), timer, postgresNowUs() + 1000, 42)).toBe(42);
    await db.execProtocolRawStream(fe.sync(), { onRawData: () => {} });
    expect(statementDueUs(view(), timer, before, 0)).toBe(Infinity);
  });
});
