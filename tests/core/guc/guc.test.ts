import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { ConfigFileError, Guc } from "../../../src/core/guc/guc.ts";
import type { ConfigReader } from "../../../src/core/guc/parser.ts";
import { captureLogs } from "./capture.ts";
import { memoryReader } from "./memreader.ts";

const CONF = "/data/postgresql.conf";

function gucWith(text: string, extra: Record<string, string> = {}) {
  const files: Record<string, string> = { [CONF]: text, ...extra };
  const reader: ConfigReader = memoryReader(files);
  const guc = new Guc({ reader, configFile: CONF });
  return { guc, files };
}

function loadError(text: string): ConfigFileError {
  const { guc } = gucWith(text);
  try {
    guc.load();
  } catch (e) {
    if (e instanceof ConfigFileError) return e;
    throw e;
  }
  throw new Error("load() did not fail");
}

let logs: ReturnType<typeof captureLogs>;
beforeEach(() => {
  logs = captureLogs();
});
afterEach(() => logs.stop());

describe("parameter values", () => {
  test("defaults match PostgreSQL's, shown with their units", () => {
    const guc = new Guc();
    expect(guc.get("port")).toBe("5432");
    expect(guc.get("listen_addresses")).toBe("localhost");
    expect(guc.get("authentication_timeout")).toBe("1min");
    expect(guc.get("log_rotation_age")).toBe("1d");
    expect(guc.get("log_rotation_size")).toBe("10MB");
    expect(guc.get("checkpoint_timeout")).toBe("5min");
    expect(guc.get("statement_timeout")).toBe("0");
    expect(guc.get("engine_wait_timeout")).toBe("5s");
    expect(guc.get("restart_after_crash")).toBe("on");
    expect(guc.get("logging_collector")).toBe("off");
    expect(guc.get("log_line_prefix")).toBe("%m [%p] ");
    expect(guc.get("password_encryption")).toBe("scram-sha-256");
    // The embedded engine's release, the one its sessions report.
    expect(guc.get("server_version")).toBe("18.6");
    expect(guc.getInt("server_version_num")).toBe(180006);
  });

  test("units convert to the parameter's base unit and typed getters give ms and bytes", () => {
    const { guc } = gucWith(
      "authentication_timeout = 90000ms\nstatement_timeout = '1.5min'\nlog_rotation_size = 1GB\n" +
        "lock_timeout = 2h\nidle_in_transaction_session_timeout = 0x10\ncheckpoint_timeout = 1d\n",
    );
    guc.load();
    expect(guc.getInt("authentication_timeout")).toBe(90);
    expect(guc.getMs("authentication_timeout")).toBe(90_000);
    expect(guc.get("authentication_timeout")).toBe("90s");
    expect(guc.getMs("statement_timeout")).toBe(90_000);
    expect(guc.get("statement_timeout")).toBe("90s");
    expect(guc.getInt("log_rotation_size")).toBe(1024 * 1024);
    expect(guc.getBytes("log_rotation_size")).toBe(1024 ** 3);
    expect(guc.get("log_rotation_size")).toBe("1GB");
    expect(guc.get("lock_timeout")).toBe("2h");
    expect(guc.getInt("idle_in_transaction_session_timeout")).toBe(16);
    expect(guc.get("checkpoint_timeout")).toBe("1d");
  });

  test("booleans accept on/off, true/false, yes/no, 1/0 and their prefixes", () => {
    const guc = new Guc();
    for (
      const [text, want] of [
        ["on", true],
        ["OFF", false],
        ["t", true],
        ["fal", false],
        ["yes", true],
        ["n", false],
        ["1", true],
        ["0", false],
      ] as const
    ) {
      guc.set("restart_after_crash", text, { source: "argv" });
      expect(guc.getBool("restart_after_crash")).toBe(want);
    }
    expect(() => guc.set("restart_after_crash", "o", { source: "argv" })).toThrow(
      'parameter "restart_after_crash" requires a Boolean value',
    );
  });

  test("enums match case-insensitively and list the valid values otherwise", () => {
    const guc = new Guc();
    guc.set("log_min_messages", "DEBUG2", { source: "argv" });
    expect(guc.getString("log_min_messages")).toBe("debug2");
    try {
      guc.set("password_encryption", "foo", { source: "argv" });
      throw new Error("accepted");
    } catch (e) {
      expect((e as Error).message).toBe('invalid value for parameter "password_encryption": "foo"');
      expect((e as { hint?: string }).hint).toBe("Available values: md5, scram-sha-256.");
    }
  });
});

describe("loading postgresql.conf", () => {
  test("an unknown parameter names the file and line", () => {
    const e = loadError("port = 5433\nfoo = 1\n");
    expect(e.message).toBe(`configuration file "${CONF}" contains errors`);
    expect(e.severity).toBe("FATAL");
    expect(e.errors.map((x) => x.message)).toEqual([
      `unrecognized configuration parameter "foo" in file "${CONF}" line 2`,
    ]);
    expect(logs.messages()).toContain(
      `unrecognized configuration parameter "foo" in file "${CONF}" line 2`,
    );
  });

  test("a bad value gives PostgreSQL's message, with the file and line as context", () => {
    const e = loadError("\nport = abc\n");
    expect(e.errors[0]!.message).toBe('invalid value for parameter "port": "abc"');
    expect(e.errors[0]!.fields.context).toBe(`line 2 of configuration file "${CONF}"`);
  });

  test("a value outside the range reports the range, with the unit after the value", () => {
    expect(loadError("max_connections = 0\n").errors[0]!.message).toBe(
      '0 is outside the valid range for parameter "max_connections" (1 .. 262143)',
    );
    expect(loadError("authentication_timeout = 11min\n").errors[0]!.message).toBe(
      '660 s is outside the valid range for parameter "authentication_timeout" (1 .. 600)',
    );
  });

  test("a wrong unit hints at the valid units; an overflow says so", () => {
    const bad = loadError(
      "statement_timeout = '5 kB'\nlog_rotation_size = 5min\nport = 99999999999\n",
    );
    expect(bad.errors.map((e) => [e.message, e.hint])).toEqual([
      [
        'invalid value for parameter "statement_timeout": "5 kB"',
        'Valid units for this parameter are "us", "ms", "s", "min", "h", and "d".',
      ],
      [
        'invalid value for parameter "log_rotation_size": "5min"',
        'Valid units for this parameter are "B", "kB", "MB", "GB", and "TB".',
      ],
      ['invalid value for parameter "port": "99999999999"', "Value exceeds integer range."],
    ]);
  });

  test("internal parameters cannot be set in the file", () => {
    expect(loadError("server_version = '16'\n").errors[0]!.message).toBe(
      'parameter "server_version" cannot be changed',
    );
  });

  test("a file with errors changes nothing", () => {
    const { guc } = gucWith("port = 1234\nfoo = 1\n");
    expect(() => guc.load()).toThrow(ConfigFileError);
    expect(guc.getInt("port")).toBe(5432);
  });

  test("the last setting of a parameter wins and records its file and line", () => {
    const { guc } = gucWith("port = 1\ninclude 'more.conf'\n", {
      "/data/more.conf": "\nport = 2\n",
    });
    guc.load();
    expect(guc.getInt("port")).toBe(2);
    const d = guc.describe("port");
    expect([d.source, d.sourceFile, d.sourceLine]).toEqual(["file", "/data/more.conf", 2]);
  });

  test("qualified names are placeholders for workers' own parameters", () => {
    const { guc } = gucWith("myworker.interval = '10s'\n");
    guc.load();
    expect(guc.get("myworker.interval")).toBe("10s");
  });
});

describe("-c overrides", () => {
  test("a -c value outranks the file, at start and on reload", () => {
    const { guc, files } = gucWith("port = 1111\n");
    guc.load();
    guc.set("port", "2222", { source: "argv" });
    expect(guc.getInt("port")).toBe(2222);
    files[CONF] = "port = 3333\n";
    const r = guc.reload();
    expect(r.pendingRestart).toEqual([]);
    expect(guc.getInt("port")).toBe(2222);
  });

  test("-c of an internal or unknown parameter is refused", () => {
    const guc = new Guc();
    expect(() => guc.set("server_version", "1", { source: "argv" })).toThrow(
      'parameter "server_version" cannot be changed',
    );
    expect(() => guc.set("nope", "1", { source: "argv" })).toThrow(
      'unrecognized configuration parameter "nope"',
    );
  });
});

describe("reload", () => {
  test("sighup parameters change and are logged; the result lists them", () => {
    const { guc, files } = gucWith("log_line_prefix = '%m '\nrestart_after_crash = on\n");
    guc.load();
    files[CONF] =
      "log_line_prefix = '%t [%p] '\nrestart_after_crash = on\nauthentication_timeout = 30s\n";
    const r = guc.reload();
    expect(r.applied).toBe(true);
    expect(r.changed).toEqual([
      { name: "log_line_prefix", previous: "%m ", value: "%t [%p] " },
      { name: "authentication_timeout", previous: "1min", value: "30s" },
    ]);
    expect(guc.getString("log_line_prefix")).toBe("%t [%p] ");
    expect(logs.messages()).toEqual([
      'parameter "log_line_prefix" changed to "%t [%p] "',
      'parameter "authentication_timeout" changed to "30s"',
    ]);
  });

  test("a changed postmaster parameter is refused with a log line and kept", () => {
    const { guc, files } = gucWith("port = 5433\nmax_connections = 10\n");
    guc.load();
    files[CONF] = "port = 5434\nmax_connections = 10\ncheckpoint_timeout = 10min\n";
    const r = guc.reload();
    expect(guc.getInt("port")).toBe(5433);
    expect(guc.get("checkpoint_timeout")).toBe("10min");
    expect(r.pendingRestart).toEqual(["port"]);
    expect(guc.pendingRestart).toEqual(["port"]);
    expect(logs.messages()).toContain(
      'parameter "port" cannot be changed without restarting the server',
    );
    expect(
      logs.records.find((x) => String(x.properties.message).startsWith('parameter "port"'))
        ?.properties.code,
    ).toBe("55P02");
  });

  test("a parameter removed from the file returns to its default", () => {
    const { guc, files } = gucWith("authentication_timeout = 10s\n");
    guc.load();
    files[CONF] = "";
    const r = guc.reload();
    expect(guc.get("authentication_timeout")).toBe("1min");
    expect(r.changed).toEqual([{ name: "authentication_timeout", previous: "10s", value: "1min" }]);
    expect(logs.messages()).toContain(
      'parameter "authentication_timeout" removed from configuration file, reset to default',
    );
  });

  test("a file with an error is not applied at all", () => {
    const { guc, files } = gucWith("authentication_timeout = 10s\n");
    guc.load();
    files[CONF] = "authentication_timeout = 20s\nbogus = 1\n";
    const r = guc.reload();
    expect(r.applied).toBe(false);
    expect(guc.get("authentication_timeout")).toBe("10s");
    expect(logs.messages()).toEqual([
      `unrecognized configuration parameter "bogus" in file "${CONF}" line 2`,
      `configuration file "${CONF}" contains errors; no changes were applied`,
    ]);
  });
});

describe("session SET rules", () => {
  test("contexts decide who may change a parameter when", () => {
    const guc = new Guc();
    const set = (name: string, superuser = false) => () =>
      guc.set(name, name === "log_min_messages" ? "info" : "1", { source: "session", superuser });
    expect(set("port")).toThrow('parameter "port" cannot be changed without restarting the server');
    expect(set("authentication_timeout")).toThrow(
      'parameter "authentication_timeout" cannot be changed now',
    );
    expect(set("log_connections")).toThrow(
      'parameter "log_connections" cannot be set after connection start',
    );
    expect(set("log_min_messages")).toThrow(
      'permission denied to set parameter "log_min_messages"',
    );
    set("log_min_messages", true)();
    set("statement_timeout")();
    expect(guc.getMs("statement_timeout")).toBe(1);
  });
});

describe("snapshots for children", () => {
  test("a snapshot carries non-default values and rebuilds the same settings", () => {
    const { guc } = gucWith("log_rotation_size = 1MB\nlog_line_prefix = '%p: '\n");
    guc.load();
    guc.set("data_directory", "/data", { source: "override" });
    const snap = guc.snapshot();
    expect(snap).toEqual({
      data_directory: "/data",
      log_rotation_size: "1MB",
      log_line_prefix: "%p: ",
    });
    const child = Guc.fromSnapshot(structuredClone(snap));
    expect(child.getBytes("log_rotation_size")).toBe(1024 * 1024);
    expect(child.getString("log_line_prefix")).toBe("%p: ");
  });
});

describe("PostgreSQL's parameters the engine applies", () => {
  test("a postgresql.conf written by PostgreSQL's initdb loads", () => {
    const { guc } = gucWith(
      "max_connections = 100\t\t\t# (change requires restart)\n" +
        "shared_buffers = 128MB\t\t\t# min 128kB\n" +
        "dynamic_shared_memory_type = posix\n" +
        "max_wal_size = 1GB\nmin_wal_size = 80MB\n" +
        "log_timezone = 'Etc/UTC'\ndatestyle = 'iso, mdy'\ntimezone = 'Etc/UTC'\n" +
        "lc_messages = 'C.UTF-8'\nlc_monetary = 'C.UTF-8'\nlc_numeric = 'C.UTF-8'\n" +
        "lc_time = 'C.UTF-8'\ndefault_text_search_config = 'pg_catalog.english'\n",
    );
    guc.load();
    expect(guc.get("shared_buffers")).toBe("128MB");
    expect(guc.get("DateStyle")).toBe("iso, mdy");
    expect(guc.get("max_wal_size")).toBe("1GB");
  });

  test("shared_buffers counts 8kB buffers and shows in PostgreSQL's form", () => {
    const guc = new Guc();
    expect(guc.get("shared_buffers")).toBe("128MB");
    guc.set("shared_buffers", "16MB", { source: "argv" });
    expect(guc.getInt("shared_buffers")).toBe(2048);
    guc.set("shared_buffers", "1000", { source: "argv" });
    expect(guc.get("shared_buffers")).toBe("8000kB");
    expect(() => guc.set("shared_buffers", "64kB", { source: "argv" })).toThrow(
      '8 8kB is outside the valid range for parameter "shared_buffers" (16 .. 1073741823)',
    );
    expect(() => guc.set("shared_buffers", "32MB", { source: "session" })).toThrow(
      'parameter "shared_buffers" cannot be changed without restarting the server',
    );
  });

  test("real parameters read strtod's numbers and show as %g", () => {
    const guc = new Guc();
    expect(guc.get("random_page_cost")).toBe("4");
    guc.set("random_page_cost", "1.1", { source: "argv" });
    expect(guc.getReal("random_page_cost")).toBe(1.1);
    guc.set("random_page_cost", "1e-5", { source: "argv" });
    expect(guc.get("random_page_cost")).toBe("1e-05");
    guc.set("random_page_cost", "1234567", { source: "argv" });
    expect(guc.get("random_page_cost")).toBe("1.23457e+06");
    expect(() => guc.set("random_page_cost", "fast", { source: "argv" })).toThrow(
      'invalid value for parameter "random_page_cost": "fast"',
    );
    expect(() => guc.set("checkpoint_completion_target", "1.5", { source: "argv" })).toThrow(
      '1.5 is outside the valid range for parameter "checkpoint_completion_target" (0 .. 1)',
    );
  });

  test("values the engine would refuse at its start are refused here", () => {
    const guc = new Guc();
    expect(() => guc.set("DateStyle", "ISO, bogus", { source: "argv" })).toThrow(
      'invalid value for parameter "DateStyle": "ISO, bogus"',
    );
    expect(() => guc.set("DateStyle", "ISO, SQL", { source: "argv" })).toThrow();
    expect(() => guc.set("TimeZone", "Mars/Olympus", { source: "argv" })).toThrow(
      'invalid value for parameter "TimeZone": "Mars/Olympus"',
    );
    guc.set("DateStyle", "German, DMY", { source: "argv" });
    expect(guc.get("datestyle")).toBe("German, DMY");
  });

  test("only the engine's parameters that are set are its start parameters", () => {
    const { guc } = gucWith(
      "shared_buffers = 16MB\nwork_mem = 8MB\nport = 5433\nmax_parallel_workers = 4\n" +
        "statement_timeout = 5s\nlog_min_messages = debug1\n",
    );
    guc.load();
    guc.set("TimeZone", "Europe/Paris", { source: "argv" });
    guc.set("random_page_cost", "1.23456789", { source: "argv" });
    expect(guc.get("random_page_cost")).toBe("1.23457");
    // pgts's own parameters that sessions see (port, statement_timeout, the
    // logging settings) go too, so that SHOW answers the server's value.
    expect(guc.engineSettings()).toEqual({
      shared_buffers: "16MB",
      work_mem: "8MB",
      port: "5433",
      statement_timeout: "5s",
      log_min_messages: "debug1",
      random_page_cost: "1.23456789",
      TimeZone: "Europe/Paris",
    });
    // Port 0 (the kernel picks) is not passed; the server passes the port it picked.
    guc.set("port", "0", { source: "argv" });
    expect(guc.engineSettings()["port"]).toBeUndefined();
    // A child rebuilt from the postmaster's snapshot passes the same.
    expect(Guc.fromSnapshot(guc.snapshot()).engineSettings()).toEqual(guc.engineSettings());
  });
});
