import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resetSync } from "@logtape/logtape";
import { Guc } from "../../src/core/guc/guc.ts";
import type { ChildEnv, Signal } from "../../src/core/adapter.ts";
import { strftime, SysLogger, sysLoggerMain } from "../../src/core/syslogger.ts";
import { nodeLogFiles } from "../../src/adapters/node/logfiles.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "pgts-syslogger-"));
});
afterEach(() => {
  resetSync();
  rmSync(dir, { recursive: true, force: true });
});

function files(): string[] {
  return readdirSync(join(dir, "log")).sort();
}

const T0 = Date.UTC(2024, 0, 2, 3, 4, 5);

describe("log file names", () => {
  test("log_filename's strftime escapes are expanded in log_timezone", () => {
    expect(strftime("postgresql-%Y-%m-%d_%H%M%S.log", T0, "UTC")).toBe(
      "postgresql-2024-01-02_030405.log",
    );
    expect(strftime("%a %b %j %y %%", T0, "UTC")).toBe("Tue Jan 002 24 %");
    expect(strftime("%H", T0, "Asia/Tokyo")).toBe("12");
  });
});

describe("log collector", () => {
  test("writes lines to log_directory and records the file in current_logfiles", () => {
    const guc = Guc.fromSnapshot({ log_timezone: "UTC" });
    const logger = new SysLogger(nodeLogFiles, guc, { dataDir: dir, now: () => T0 });
    logger.write("one\n");
    logger.write("two\n");
    logger.close();
    expect(files()).toEqual(["postgresql-2024-01-02_030405.log"]);
    expect(readFileSync(join(dir, "log", files()[0]!), "utf8")).toBe("one\ntwo\n");
    expect(readFileSync(join(dir, "current_logfiles"), "utf8")).toBe(
      "stderr log/postgresql-2024-01-02_030405.log\n",
    );
  });

  test("a file that reaches log_rotation_size is followed by a new one", () => {
    let now = T0;
    const guc = Guc.fromSnapshot({ log_timezone: "UTC", log_rotation_size: "1kB" });
    const logger = new SysLogger(nodeLogFiles, guc, { dataDir: dir, now: () => now });
    const line = `${"x".repeat(99)}\n`;
    for (let i = 0; i < 10; i++) logger.write(line); // 1000 bytes: still under 1kB
    expect(files()).toHaveLength(1);
    now += 1000;
    logger.write(line); // 1100 bytes: rotate after this write
    logger.write("next\n");
    logger.close();
    const names = files();
    expect(names).toEqual([
      "postgresql-2024-01-02_030405.log",
      "postgresql-2024-01-02_030406.log",
    ]);
    expect(readFileSync(join(dir, "log", names[0]!), "utf8").length).toBe(1100);
    expect(readFileSync(join(dir, "log", names[1]!), "utf8")).toBe("next\n");
  });

  test("log_rotation_age starts a new file at the next multiple of the age, named for it", () => {
    let now = Date.UTC(2024, 0, 2, 3, 4, 30);
    const guc = Guc.fromSnapshot({ log_timezone: "UTC", log_rotation_age: "1min" });
    const logger = new SysLogger(nodeLogFiles, guc, { dataDir: dir, now: () => now });
    logger.write("a\n");
    expect(logger.msUntilRotation).toBe(30_000);
    now += 29_000;
    logger.tick();
    expect(files()).toHaveLength(1);
    now += 2_000;
    logger.tick();
    logger.write("b\n");
    logger.close();
    expect(files()).toEqual([
      "postgresql-2024-01-02_030430.log",
      "postgresql-2024-01-02_030500.log",
    ]);
  });

  test("the child rotates on SIGUSR1, follows new settings and exits on shutdown", async () => {
    const handlers = new Map<Signal, () => void>();
    let now = T0;
    const abort = new AbortController();
    const env: ChildEnv = {
      pid: 77,
      kind: "logger",
      name: "logger",
      params: { settings: { log_timezone: "UTC" }, dataDir: dir },
      client: null,
      onSignal: (sig, h) => void handlers.set(sig, h),
      post: () => {},
      onMessage: null,
      abort: abort.signal,
    };
    const done = sysLoggerMain(env, { files: nodeLogFiles, now: () => now });
    env.onMessage!({ type: "log", line: "first\n" });
    now += 1000;
    handlers.get("SIGTERM")!(); // ignored, as PostgreSQL's syslogger does
    handlers.get("SIGUSR1")!();
    env.onMessage!({ type: "log", line: "second\n" });
    now += 1000;
    env.onMessage!({
      type: "settings",
      settings: { log_timezone: "UTC", log_filename: "pg-%H%M%S.log" },
    });
    env.onMessage!({ type: "log", line: "third\n" });
    env.onMessage!({ type: "shutdown" });
    expect(await done).toBe(0);
    const names = files();
    expect(names).toEqual([
      "pg-030407.log",
      "postgresql-2024-01-02_030405.log",
      "postgresql-2024-01-02_030406.log",
    ]);
    expect(names.map((n) => readFileSync(join(dir, "log", n), "utf8"))).toEqual([
      "third\n",
      "first\n",
      "second\n",
    ]);
  });
});
