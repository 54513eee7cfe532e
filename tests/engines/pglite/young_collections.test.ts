/**
 * The engine's threads collect each statement's garbage young
 * (src/engines/pglite/gchint.ts): under Bun, YoungCollections runs a
 * young-generation collection every PGTS_GC_YOUNG_EXECS execs (1,000 by
 * default). Without it JavaScriptCore waited for hundreds of MiB of
 * garbage, and the server spent a quarter of its CPU faulting fresh pages
 * in; if the runtime's hook went away, this says so instead of a slower
 * bench.
 */

import { afterEach, expect, test } from "bun:test";
import { collectYoung, YoungCollections } from "../../../src/engines/pglite/gchint.ts";

const saved = process.env["PGTS_GC_YOUNG_EXECS"];
afterEach(() => {
  if (saved === undefined) delete process.env["PGTS_GC_YOUNG_EXECS"];
  else process.env["PGTS_GC_YOUNG_EXECS"] = saved;
});

/** A pacer whose collections are counted. */
function counted(): { young: YoungCollections; runs: () => number } {
  let n = 0;
  return { young: new YoungCollections(() => n++), runs: () => n };
}

test("under Bun the young collection is bun:jsc's edenGC", async () => {
  expect(collectYoung).not.toBeNull();
  const { edenGC } = await import("bun:jsc");
  expect(collectYoung).toBe(edenGC);
  // It runs (and returns) on this thread.
  collectYoung!();
});

test("one young collection every 1,000 execs by default", () => {
  delete process.env["PGTS_GC_YOUNG_EXECS"];
  const { young, runs } = counted();
  for (let i = 0; i < 999; i++) young.note();
  expect(runs()).toBe(0);
  young.note();
  expect(runs()).toBe(1);
  for (let i = 0; i < 2_000; i++) young.note();
  expect(runs()).toBe(3);
});

test("PGTS_GC_YOUNG_EXECS sets the pace; 0 (or a non-number) turns them off", () => {
  process.env["PGTS_GC_YOUNG_EXECS"] = "3";
  let { young, runs } = counted();
  for (let i = 0; i < 9; i++) young.note();
  expect(runs()).toBe(3);
  for (const off of ["0", "none"]) {
    process.env["PGTS_GC_YOUNG_EXECS"] = off;
    ({ young, runs } = counted());
    for (let i = 0; i < 5_000; i++) young.note();
    expect(runs()).toBe(0);
  }
});
