/**
 * CREATE DATABASE's copy of a cluster (clustercopy.ts) leaves out the WAL
 * the copy's start-up does not read, and copies all of it when it cannot
 * tell. Built on a directory shaped as a PGlite cluster, with a pg_control
 * whose head says where the checkpoint is; that a real copy starts and
 * serves the template's rows is tests/e2e/sql's CREATE DATABASE suite.
 */

import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { copyCluster, fsyncTree } from "../../../src/engines/pglite/clustercopy.ts";

const SEG = 16 * 1024 * 1024;
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A cluster directory with WAL segments 2 and 3 (full of 0xAB) and pg_control as given. */
function cluster(state: number, checkPoint: bigint, redo: bigint): string {
  const root = mkdtempSync(join(tmpdir(), "pgts-clustercopy-"));
  dirs.push(root);
  const dir = join(root, "src");
  mkdirSync(join(dir, "global"), { recursive: true });
  mkdirSync(join(dir, "pg_wal", "archive_status"), { recursive: true });
  mkdirSync(join(dir, "base", "5"), { recursive: true });
  const control = new Uint8Array(8192);
  const view = new DataView(control.buffer);
  view.setUint32(16, state, true);
  view.setBigUint64(32, checkPoint, true);
  view.setBigUint64(40, redo, true);
  writeFileSync(join(dir, "global", "pg_control"), control);
  writeFileSync(join(dir, "base", "5", "1259"), new Uint8Array(8192).fill(7));
  for (const seg of ["000000010000000000000002", "000000010000000000000003"]) {
    writeFileSync(join(dir, "pg_wal", seg), new Uint8Array(SEG).fill(0xab));
  }
  return dir;
}

const wal = (dir: string, seg: string) => join(dir, "pg_wal", seg);

describe("copyCluster", () => {
  test("after a checkpoint, copies only the checkpoint's segment, up to the page after its record", async () => {
    const from = cluster(6, 0x02_51d028n, 0x02_51d028n);
    const to = join(from, "..", "copy");
    copyCluster(from, to, true);
    await fsyncTree(to);
    expect(readFileSync(join(to, "base", "5", "1259"))).toEqual(
      readFileSync(join(from, "base", "5", "1259")),
    );
    expect(() => statSync(wal(to, "000000010000000000000003"))).toThrow();
    const seg = readFileSync(wal(to, "000000010000000000000002"));
    expect(seg.length).toBe(SEG); // full length: PostgreSQL reads whole pages
    const end = (Math.floor(0x51d028 / 8192) + 2) * 8192;
    expect(seg.subarray(0, end).every((b) => b === 0xab)).toBe(true);
    expect(seg.subarray(end).every((b) => b === 0)).toBe(true); // the end of WAL
    expect(statSync(wal(to, "000000010000000000000002")).blocks * 512).toBeLessThan(SEG / 2);
  });

  test("a redo point in an earlier segment brings that segment whole", () => {
    const from = cluster(1, 0x03_000100n, 0x02_ff0000n);
    const to = join(from, "..", "copy");
    copyCluster(from, to, false);
    expect(readFileSync(wal(to, "000000010000000000000002")).every((b) => b === 0xab)).toBe(true);
    const last = readFileSync(wal(to, "000000010000000000000003"));
    expect(last.subarray(0, 16384).every((b) => b === 0xab)).toBe(true);
    expect(last.subarray(16384).every((b) => b === 0)).toBe(true);
  });

  test("a template not left at a checkpoint is copied whole", () => {
    const from = cluster(6, 0x02_51d028n, 0x02_51d028n); // in production, no checkpoint just run
    const to = join(from, "..", "copy");
    copyCluster(from, to, false);
    for (const seg of ["000000010000000000000002", "000000010000000000000003"]) {
      expect(readFileSync(wal(to, seg)).every((b) => b === 0xab)).toBe(true);
    }
  });

  test("a checkpoint in a segment that is not there means a whole copy", () => {
    const from = cluster(1, 0x07_000100n, 0x07_000100n);
    const to = join(from, "..", "copy");
    copyCluster(from, to, false);
    expect(statSync(wal(to, "000000010000000000000002")).size).toBe(SEG);
    expect(statSync(wal(to, "000000010000000000000003")).size).toBe(SEG);
  });
});
