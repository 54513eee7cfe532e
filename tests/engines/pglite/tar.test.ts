/**
 * The cluster image's tar format (src/engines/pglite/tar.ts): what is packed
 * comes back byte for byte, GNU tar reads it, and a damaged header or an
 * over-long name is refused rather than misread.
 */

import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { packTar, type TarEntry, unpackTar } from "../../../src/engines/pglite/tar.ts";

const entries: TarEntry[] = [
  { name: "base", type: "directory", mode: 0o700, mtime: 1_700_000_000, data: new Uint8Array(0) },
  { name: "base/1", type: "directory", mode: 0o700, mtime: 1_700_000_000, data: new Uint8Array(0) },
  {
    name: "base/1/1259",
    type: "file",
    mode: 0o600,
    mtime: 1_700_000_001,
    data: Uint8Array.from({ length: 8192 * 3 + 17 }, (_, i) => (i * 7) % 251),
  },
  {
    name: "PG_VERSION",
    type: "file",
    mode: 0o600,
    mtime: 1_700_000_002,
    data: new TextEncoder().encode("18\n"),
  },
  { name: "empty", type: "file", mode: 0o600, mtime: 0, data: new Uint8Array(0) },
];

test("packed entries unpack to the same names, types, modes, times and bytes", () => {
  const tar = packTar(entries);
  expect(tar.length % 512).toBe(0);
  expect([...unpackTar(tar)]).toEqual(entries);
});

test("GNU tar lists and extracts what packTar wrote", () => {
  const dir = mkdtempSync(join(tmpdir(), "pgts-tar-"));
  try {
    writeFileSync(join(dir, "image.tar"), packTar(entries));
    const list = Bun.spawnSync(["tar", "-tf", join(dir, "image.tar")]);
    expect(list.stdout.toString().trim().split("\n")).toEqual(entries.map((e) => e.name));
    const x = Bun.spawnSync(["tar", "-xf", join(dir, "image.tar"), "-C", dir]);
    expect(x.exitCode).toBe(0);
    expect(new Uint8Array(readFileSync(join(dir, "base/1/1259")))).toEqual(entries[2]!.data);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a damaged header and a name of 100 bytes or more are refused", () => {
  const tar = packTar(entries);
  tar[3] = tar[3]! ^ 1;
  expect(() => [...unpackTar(tar)]).toThrow("corrupt tar header at byte 0");
  expect(() =>
    packTar([{
      name: "x".repeat(100),
      type: "file",
      mode: 0o600,
      mtime: 0,
      data: new Uint8Array(0),
    }])
  ).toThrow(RangeError);
});
