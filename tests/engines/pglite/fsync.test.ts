/**
 * `fsync` reaches the engine with PostgreSQL's meaning: on by default for a
 * data directory, off when asked, and never for memory://, which has
 * nothing to keep.
 */

import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initCluster, openEngine } from "../../../src/engines/pglite/mod.ts";
import { durableStart } from "../../../src/engines/pglite/fsync.ts";
import { Collector, FE } from "../../helpers/engine-wire.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function shown(dataDir: string, settings?: Record<string, string>): Promise<string[]> {
  const engine = await openEngine(dataDir, {
    placement: "inline",
    ...(settings !== undefined ? { settings } : {}),
  });
  try {
    const { session } = await engine.startSession({
      pid: 2,
      user: "postgres",
      database: "postgres",
      params: {},
    });
    const out: string[] = [];
    for (const name of ["fsync", "synchronous_commit", "wal_sync_method"]) {
      const c = new Collector();
      await session.exec(FE.query(`SHOW ${name}`), c.out);
      out.push(c.values[0] ?? "");
    }
    return out;
  } finally {
    await engine.close();
  }
}

test("a data directory fsyncs by default; fsync=off and memory:// do not", async () => {
  const dir = join(mkdtempSync(join(tmpdir(), "pgts-fsync-")), "data");
  dirs.push(join(dir, ".."));
  await initCluster(dir);
  expect(await shown(dir)).toEqual(["on", "on", "fdatasync"]);
  expect(await shown(dir, { fsync: "off", synchronous_commit: "off" })).toEqual([
    "off",
    "off",
    "fdatasync",
  ]);
  expect((await shown("memory://", { fsync: "on" }))[0]).toBe("off");
}, 60_000);

test("durableStart: PostgreSQL's boolean spellings, memory:// exempt", () => {
  expect(durableStart("/d", {})).toEqual({ durable: true, settings: { fsync: "on" } });
  expect(durableStart("/d", { fsync: "OFF" }).durable).toBe(false);
  expect(durableStart("/d", { fsync: "off" }).settings).toEqual({});
  expect(durableStart("/d", { fsync: "true" }).durable).toBe(true);
  expect(durableStart("memory://", { fsync: "on" })).toEqual({ durable: false, settings: {} });
});
