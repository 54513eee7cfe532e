import { afterEach, describe, expect, test } from "bun:test";
import { AsyncLocalStorage } from "node:async_hooks";
import { getLogger, resetSync } from "@logtape/logtape";
import { ereport } from "../../src/core/elog.ts";
import { Guc } from "../../src/core/guc/guc.ts";
import {
  configureLogging,
  formatLogMessage,
  isLogLevelOutput,
  LogLinePrefix,
  setLogPrefixLookup,
} from "../../src/core/log.ts";
import type { ChildMain } from "../../src/core/adapter.ts";
import { InprocLauncher } from "../../src/adapters/inproc/launcher.ts";

afterEach(() => resetSync());

const T = Date.UTC(2024, 4, 1, 12, 34, 56, 789);
const proc = {
  pid: 4242,
  backendType: "client backend",
  startTime: Date.UTC(2024, 4, 1, 12, 0, 0),
};

function logTo(settings: Record<string, string>): { lines: string[]; guc: Guc } {
  const guc = Guc.fromSnapshot({ log_timezone: "UTC", ...settings });
  const lines: string[] = [];
  configureLogging(guc, { sink: (l) => lines.push(l), process: proc });
  return { lines, guc };
}

describe("log line format", () => {
  test("the default prefix gives '%m [%p] LEVEL:  message' with DETAIL and HINT lines", () => {
    const prefix = new LogLinePrefix(proc);
    const text = formatLogMessage(
      { severity: "FATAL", message: "lock file exists", detail: "d", hint: "h", timestamp: T },
      { prefix, linePrefix: "%m [%p] ", timeZone: "UTC" },
    );
    expect(text).toBe(
      "2024-05-01 12:34:56.789 UTC [4242] FATAL:  lock file exists\n" +
        "2024-05-01 12:34:56.789 UTC [4242] DETAIL:  d\n" +
        "2024-05-01 12:34:56.789 UTC [4242] HINT:  h\n",
    );
  });

  test("prefix escapes expand like PostgreSQL's, with padding", () => {
    const prefix = new LogLinePrefix(proc);
    prefix.setSession({
      user: "alice",
      database: "app",
      applicationName: "psql",
      remoteHost: "::1",
      remotePort: "5000",
    });
    const msg = { severity: "ERROR" as const, message: "x", code: "42601", timestamp: T };
    const line = formatLogMessage(msg, {
      prefix,
      linePrefix: "%t|%l|%a|%u|%d|%c|%e|%r|%h|%b|%n|%%|%-6p|%6l|",
      timeZone: "UTC",
    });
    expect(line).toBe(
      `2024-05-01 12:34:56 UTC|1|psql|alice|app|${(proc.startTime / 1000).toString(16)}.${
        (4242).toString(16)
      }|42601|::1(5000)|::1|client backend|1714566896.789|%|4242  |     1|ERROR:  x\n`,
    );
  });

  test("%q ends the prefix in processes without a session; DEBUG levels print as DEBUG", () => {
    const prefix = new LogLinePrefix({ ...proc, backendType: "postmaster" });
    const line = formatLogMessage(
      { severity: "DEBUG3", message: "m", timestamp: T },
      { prefix, linePrefix: "[%p] %quser=%u ", timeZone: "UTC" },
    );
    expect(line).toBe("[4242] DEBUG:  m\n");
  });

  test("a multi-line message continues with a tab, and the time zone is applied", () => {
    const prefix = new LogLinePrefix(proc);
    const line = formatLogMessage(
      { severity: "LOG", message: "a\nb", timestamp: T },
      { prefix, linePrefix: "%t ", timeZone: "Asia/Tokyo" },
    );
    expect(line).toBe("2024-05-01 21:34:56 GMT+9 LOG:  a\n\tb\n");
  });
});

describe("log_min_messages", () => {
  test("levels order as PostgreSQL's, with LOG between ERROR and FATAL", () => {
    expect(isLogLevelOutput("WARNING", "warning")).toBe(true);
    expect(isLogLevelOutput("NOTICE", "warning")).toBe(false);
    expect(isLogLevelOutput("LOG", "warning")).toBe(true);
    expect(isLogLevelOutput("LOG", "error")).toBe(true);
    expect(isLogLevelOutput("LOG", "fatal")).toBe(false);
    expect(isLogLevelOutput("ERROR", "log")).toBe(false);
    expect(isLogLevelOutput("FATAL", "log")).toBe(true);
    expect(isLogLevelOutput("DEBUG2", "debug1")).toBe(false);
    expect(isLogLevelOutput("DEBUG1", "debug5")).toBe(true);
  });

  test("ereport output is filtered by log_min_messages and follows a reload", () => {
    const { lines, guc } = logTo({ log_line_prefix: "" });
    ereport("DEBUG1", "hidden");
    ereport("INFO", "hidden too");
    ereport("LOG", "database system is ready to accept connections");
    ereport("WARNING", "careful", { hint: "look" });
    guc.set("log_min_messages", "debug1", { source: "override" });
    ereport("DEBUG1", "now shown", { category: "postmaster" });
    expect(lines).toEqual([
      "LOG:  database system is ready to accept connections\n",
      "WARNING:  careful\nHINT:  look\n",
      "DEBUG:  now shown\n",
    ]);
  });

  test("plain LogTape records under pgts are printed too", () => {
    const { lines } = logTo({ log_line_prefix: "%l " });
    getLogger(["pgts", "adapter"]).warn("socket {path} vanished", { path: "/tmp/.s.PGSQL.1" });
    expect(lines).toEqual(['1 WARNING:  socket "/tmp/.s.PGSQL.1" vanished\n']);
  });
});

describe("children in the postmaster's realm", () => {
  test("an in-process child's lines carry its own pid and type, in what it schedules and in its signal handlers; the postmaster's stay its own", async () => {
    const { lines } = logTo({ log_line_prefix: "[%p %b] " });
    const context = new AsyncLocalStorage<LogLinePrefix>();
    setLogPrefixLookup(() => context.getStore());
    try {
      const main: ChildMain = async (env) => {
        ereport("LOG", "child starts");
        env.onSignal("SIGUSR1", () => ereport("LOG", "child's handler"));
        await new Promise((r) => setTimeout(r, 1));
        ereport("LOG", "child after a timer");
        env.post("hello");
        await new Promise((r) => env.abort.addEventListener("abort", r));
      };
      const launcher = new InprocLauncher({ resolve: () => main, logContext: context });
      const child = await launcher.launch({
        kind: "backend",
        name: "client backend",
        entry: { module: "x", export: "main" },
        params: null,
      });
      const heard = new Promise<void>((resolve) => {
        child.onMessage = () => {
          ereport("LOG", "postmaster hears the child");
          resolve();
        };
      });
      await heard;
      child.signal("SIGUSR1");
      await new Promise((r) => setTimeout(r, 5));
      ereport("LOG", "postmaster goes on");
      child.signal("SIGKILL");
      const p = child.pid;
      expect(lines).toEqual([
        `[${p} client backend] LOG:  child starts\n`,
        `[${p} client backend] LOG:  child after a timer\n`,
        "[4242 client backend] LOG:  postmaster hears the child\n",
        `[${p} client backend] LOG:  child's handler\n`,
        "[4242 client backend] LOG:  postmaster goes on\n",
      ]);
    } finally {
      setLogPrefixLookup(null);
    }
  });
});
