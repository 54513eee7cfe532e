/**
 * The engine runs PGlite with `syncToFs: false`: every committed row must
 * survive a SIGKILL of the engine's process, because NODEFS writes reach the
 * operating system at once (with fsync on or off; the power-cut test in
 * tests/e2e/backup covers an OS crash).
 */

import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initCluster, openEngine } from "../../../src/engines/pglite/mod.ts";
import { Collector, FE } from "../../helpers/engine-wire.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test("rows acknowledged before a SIGKILL are all there after reopening", async () => {
  const dir = join(mkdtempSync(join(tmpdir(), "pgts-durability-")), "data");
  dirs.push(join(dir, ".."));
  await initCluster(dir);
  const child = Bun.spawn([
    process.execPath,
    join(import.meta.dir, "fixtures", "durability-writer.ts"),
    dir,
  ], { stdout: "pipe", stderr: "pipe" });
  let last = 0;
  let text = "";
  const reader = child.stdout.getReader();
  const dec = new TextDecoder();
  const deadline = Date.now() + 30_000;
  /** Reads the next acknowledged ids into `last`; false at the end of the output. */
  const readAcked = async (): Promise<boolean> => {
    const { value, done } = await reader.read();
    if (done) return false;
    text += dec.decode(value);
    const lines = text.split("\n");
    text = lines.pop()!;
    for (const l of lines) if (l) last = Number(l);
    return true;
  };
  try {
    // Kill at an arbitrary moment once a few hundred inserts are acknowledged.
    while (last < 300 + Math.floor(Math.random() * 200) && Date.now() < deadline) {
      if (!(await readAcked())) break;
    }
  } finally {
    child.kill("SIGKILL");
    await child.exited;
  }
  // What it acknowledged between the last read and the kill is still in the pipe.
  while (await readAcked());
  expect(last).toBeGreaterThan(100);
  const engine = await openEngine(dir, { placement: "inline" });
  try {
    const { session } = await engine.startSession({
      pid: 2,
      user: "postgres",
      database: "postgres",
      params: {},
    });
    const count = new Collector();
    await session.exec(FE.query(`SELECT count(*) FROM acked WHERE id <= ${last}`), count.out);
    expect(count.values).toEqual([String(last)]); // every acknowledged row
    const max = new Collector();
    await session.exec(FE.query("SELECT coalesce(max(id), 0) FROM acked"), max.out);
    expect(Number(max.values[0])).toBeLessThanOrEqual(last + 1); // at most the one in flight
  } finally {
    await engine.close();
  }
}, 90_000);
