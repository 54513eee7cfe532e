import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLUSTER_FORMAT, parseLockFile, PID_FILE, VERSION_FILE } from "../../src/core/datadir.ts";
import { openDataDirectory } from "../../src/adapters/node/datadir.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "pgts-datadir-"));
  chmodSync(dir, 0o700);
  writeFileSync(join(dir, VERSION_FILE), `${CLUSTER_FORMAT}\n`);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function fatalOf(fn: () => unknown): { message: string; hint?: string; detail?: string } {
  try {
    fn();
  } catch (e) {
    return e as { message: string; hint?: string; detail?: string };
  }
  throw new Error("did not fail");
}

async function deadPid(): Promise<number> {
  const p = Bun.spawn(["true"]);
  await p.exited;
  return p.pid;
}

describe("data directory check", () => {
  test("an initialized directory with mode 0700 passes", () => {
    openDataDirectory(dir).check();
  });

  test("a missing directory, loose permissions or a missing marker are refused", () => {
    expect(fatalOf(() => openDataDirectory(join(dir, "nope")).check()).message).toBe(
      `data directory "${join(dir, "nope")}" does not exist`,
    );
    chmodSync(dir, 0o755);
    const loose = fatalOf(() => openDataDirectory(dir).check());
    expect(loose.message).toBe(`data directory "${dir}" has invalid permissions`);
    expect(loose.detail).toBe("Permissions should be u=rwx (0700) or u=rwx,g=rx (0750).");
    chmodSync(dir, 0o750);
    rmSync(join(dir, VERSION_FILE));
    const bare = fatalOf(() => openDataDirectory(dir).check());
    expect(bare.message).toBe(`"${dir}" is not a valid data directory`);
    expect(bare.detail).toBe(`File "${join(dir, VERSION_FILE)}" is missing.`);
  });
});

describe("postmaster.pid", () => {
  test("the lock file has PostgreSQL's eight lines and status updates keep its length", () => {
    const lock = openDataDirectory(dir).lock({
      pid: process.pid,
      port: 5433,
      startTime: 1700000000,
    });
    const text = readFileSync(join(dir, PID_FILE), "utf8");
    expect(text.split("\n")).toEqual([
      String(process.pid),
      dir,
      "1700000000",
      "5433",
      "",
      "",
      "        0         0",
      "starting",
      "",
    ]);
    lock.update({ socketDir: "/tmp", listenAddress: "localhost", status: "ready" });
    const ready = readFileSync(join(dir, PID_FILE), "utf8");
    expect(ready.split("\n")[7]).toBe("ready   ");
    expect(parseLockFile(ready)?.status).toBe("ready");
    lock.update({ status: "stopping" });
    expect(readFileSync(join(dir, PID_FILE), "utf8").length).toBe(ready.length);
    lock.release();
    expect(openDataDirectory(dir).readLockFile()).toBeNull();
  });

  test("a second postmaster on the same directory is refused with PostgreSQL's message", async () => {
    const other = Bun.spawn(["sleep", "30"]);
    try {
      writeFileSync(join(dir, PID_FILE), `${other.pid}\n${dir}\n`);
      const e = fatalOf(() => openDataDirectory(dir).lock({ pid: process.pid, port: 5432 }));
      expect(e.message).toBe(`lock file "${join(dir, PID_FILE)}" already exists`);
      expect(e.hint).toBe(
        `Is another postmaster (PID ${other.pid}) running in data directory "${dir}"?`,
      );
      expect(parseLockFile(readFileSync(join(dir, PID_FILE), "utf8"))?.pid).toBe(other.pid);
    } finally {
      other.kill();
      await other.exited;
    }
  });

  test("release removes the lock file only while it is still ours", () => {
    const mine = openDataDirectory(dir).lock({ pid: process.pid, port: 1 });
    expect(mine.recheck()).toBe(true);
    mine[Symbol.dispose]();
    expect(openDataDirectory(dir).readLockFile()).toBeNull();

    const again = openDataDirectory(dir).lock({ pid: process.pid, port: 1 });
    writeFileSync(join(dir, PID_FILE), "999999\n");
    expect(again.recheck()).toBe(false);
    again.release();
    expect(openDataDirectory(dir).readLockFile()?.pid).toBe(999999);
  });

  test("a stale lock file from a dead process is taken over", async () => {
    const gone = await deadPid();
    writeFileSync(join(dir, PID_FILE), `${gone}\n${dir}\n0\n5432\n\n\n\nready   \n`);
    using lock = openDataDirectory(dir).lock({ pid: process.pid, port: 5432 });
    expect(lock.contents.pid).toBe(process.pid);
    expect(openDataDirectory(dir).readLockFile()?.pid).toBe(process.pid);
  });

  test("a process reading the lock file while its status changes never finds it empty", async () => {
    // The writer runs under Deno, whose writeFileSync leaves the file empty
    // for most of each call; this process polls the file as `pgts stop` does.
    const path = join(dir, PID_FILE);
    const module = new URL("../../src/adapters/node/datadir.ts", import.meta.url).href;
    const writer = Bun.spawn([
      join(import.meta.dir, "../../node_modules/.bin/deno"),
      "eval",
      `import { openDataDirectory } from ${JSON.stringify(module)};
       import { writeFileSync } from "node:fs";
       const lock = openDataDirectory(${JSON.stringify(dir)}).lock({ pid: Deno.pid, port: 1 });
       writeFileSync(${JSON.stringify(`${path}.go`)}, "");
       const end = Date.now() + 1500;
       for (let i = 0; Date.now() < end; i++) lock.update({ status: i % 2 ? "ready" : "stopping" });
       lock.release();`,
    ], { stdout: "ignore", stderr: "inherit" });
    while (!existsSync(`${path}.go`)) await Bun.sleep(5);
    let reads = 0;
    let empty = 0;
    for (const end = Date.now() + 800; Date.now() < end; reads++) {
      if (readFileSync(path, "utf8") === "") empty++;
    }
    expect(await writer.exited).toBe(0);
    expect(reads).toBeGreaterThan(0);
    expect(empty).toBe(0);
  });

  test("an empty lock file is not taken over", () => {
    writeFileSync(join(dir, PID_FILE), "");
    expect(fatalOf(() => openDataDirectory(dir).lock({ pid: process.pid, port: 1 })).message).toBe(
      `lock file "${join(dir, PID_FILE)}" is empty`,
    );
  });
});
