import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { createRequire } from "node:module";
import { postgresqlConf } from "../../../src/cli/init.ts";
import { Guc } from "../../../src/core/guc/guc.ts";
import { PG_SETTINGS, PGLITE_VERSION } from "../../../src/core/guc/pg_settings.ts";
import { checkStartupSetting } from "../../../src/core/guc/startupoptions.ts";
import { PARAMETERS } from "../../../src/core/guc/tables.ts";
import { captureLogs } from "./capture.ts";
import { memoryReader } from "./memreader.ts";

const CONF = "/data/postgresql.conf";

let logs: ReturnType<typeof captureLogs>;
beforeEach(() => {
  logs = captureLogs();
});
afterEach(() => logs.stop());

/** The error `f` throws, as code and message (and hint when there is one). */
function failure(f: () => unknown): { code: string; message: string; hint?: string } {
  try {
    f();
  } catch (e) {
    const { code, message, fields } = e as {
      code: string;
      message: string;
      fields?: { hint?: string };
    };
    return { code, message, ...(fields?.hint !== undefined ? { hint: fields.hint } : {}) };
  }
  throw new Error("no error");
}

describe("the table of the engine's parameters", () => {
  test("is the installed PGlite's, and every parameter in it is defined once", () => {
    const installed = createRequire(import.meta.url)("@electric-sql/pglite/package.json") as {
      version: string;
    };
    // Run `bun scripts/engine-parameters.ts` after a PGlite upgrade.
    expect(PGLITE_VERSION).toBe(installed.version);
    const names = PARAMETERS.map((d) => d.name.toLowerCase());
    expect(new Set(names).size).toBe(names.length);
    for (const [name] of PG_SETTINGS) expect(names).toContain(name.toLowerCase());
    expect(PG_SETTINGS.length).toBeGreaterThan(390);
  });

  test("hand-written definitions keep priority; the engine's parameters have PostgreSQL's context", () => {
    const def = (name: string) => PARAMETERS.find((d) => d.name === name)!;
    // tables_engine.ts's: user in PostgreSQL, so a reload reaches the engine (configreload.ts).
    expect(def("work_mem")).toMatchObject({ context: "user", engine: true });
    expect(def("work_mem").sessionContext).toBeUndefined();
    expect(def("work_mem").generated).toBeUndefined();
    expect(def("shared_buffers")).toMatchObject({ context: "postmaster" });
    // pgts's own, the same context as PostgreSQL's.
    expect(def("port").sessionContext).toBeUndefined();
    // Generated: PostgreSQL's context.
    expect(def("default_transaction_isolation")).toMatchObject({
      context: "user",
      engine: true,
      generated: true,
    });
    expect(def("default_transaction_isolation").sessionContext).toBeUndefined();
    expect(def("autovacuum_naptime")).toMatchObject({ context: "sighup" });
    expect(def("max_locks_per_transaction")).toMatchObject({ context: "postmaster" });
    expect(def("max_locks_per_transaction").sessionContext).toBeUndefined();
    expect(def("block_size")).toMatchObject({ context: "internal" });
    expect(def("block_size").engine).toBeUndefined();
  });

  test("a postgresql.conf with PostgreSQL's parameters loads, and each set one is an engine start parameter", () => {
    const reader = memoryReader({
      [CONF]: [
        "default_transaction_isolation = 'Repeatable Read'",
        "log_min_duration_statement = 1s",
        "autovacuum_vacuum_cost_delay = '0.05s'",
        "constraint_exclusion = true",
        "enable_seqscan = off",
        "cpu_tuple_cost = 0.02",
        "search_path = '\"$user\", public'",
      ].join("\n"),
    });
    const guc = new Guc({ reader, configFile: CONF });
    guc.load();
    expect(guc.engineSettings()).toMatchObject({
      default_transaction_isolation: "repeatable read",
      log_min_duration_statement: "1s",
      // A real with a unit, in its base unit (ms).
      autovacuum_vacuum_cost_delay: "50",
      // An enum of on/off takes a Boolean's spellings, as PostgreSQL's hidden values.
      constraint_exclusion: "on",
      enable_seqscan: "off",
      cpu_tuple_cost: "0.02",
      search_path: '"$user", public',
    });
    expect(guc.get("autovacuum_vacuum_cost_delay")).toBe("50ms");
  });

  test("values are checked with PostgreSQL's messages", () => {
    const guc = new Guc();
    const set = (name: string, value: string) => () => guc.set(name, value, { source: "argv" });
    expect(failure(set("default_transaction_isolation", "sometimes"))).toEqual({
      code: "22023",
      message: 'invalid value for parameter "default_transaction_isolation": "sometimes"',
      hint: "Available values: serializable, repeatable read, read committed, read uncommitted.",
    });
    expect(failure(set("autovacuum_vacuum_cost_delay", "200ms"))).toEqual({
      code: "22023",
      message:
        '200 ms is outside the valid range for parameter "autovacuum_vacuum_cost_delay" (-1 .. 100)',
    });
    expect(failure(set("temp_buffers", "8XB")).hint).toBe(
      'Valid units for this parameter are "B", "kB", "MB", "GB", and "TB".',
    );
    expect(failure(set("jit", "maybe")).message).toBe('parameter "jit" requires a Boolean value');
    // What would keep the engine from starting (it would not say why).
    expect(failure(set("search_path", "a,,b")).code).toBe("22023");
    expect(failure(set("timezone_abbreviations", "Mars")).code).toBe("22023");
    guc.set("timezone_abbreviations", "India", { source: "argv" });
  });

  test("what pgts refuses is 0A000 with the reason as hint", () => {
    const guc = new Guc();
    const set = (name: string, value: string) => () => guc.set(name, value, { source: "argv" });
    expect(failure(set("config_file", "/etc/postgresql/18/main/postgresql.conf"))).toMatchObject({
      code: "0A000",
      message: 'parameter "config_file" is not supported',
    });
    expect(failure(set("exit_on_error", "on"))).toMatchObject({
      code: "0A000",
      message: 'unsupported value for parameter "exit_on_error": "on"',
    });
    guc.set("exit_on_error", "off", { source: "argv" });
    expect(failure(set("max_stack_depth", "257kB")).code).toBe("0A000");
    guc.set("max_stack_depth", "256kB", { source: "argv" });
    expect(failure(set("dynamic_library_path", "/usr/lib/postgresql")).code).toBe("0A000");
    guc.set("dynamic_library_path", "$libdir", { source: "argv" });
    expect(failure(set("default_transaction_read_only", "on")).hint).toContain(
      "pgts's own work on the engine",
    );
    expect(failure(set("wal_sync_method", "open_sync")).code).toBe("0A000");
    // The engine's logical decoding never returns: no wal_level = logical.
    expect(failure(set("wal_level", "logical"))).toMatchObject({
      code: "0A000",
      message: 'unsupported value for parameter "wal_level": "logical"',
    });
    guc.set("wal_level", "minimal", { source: "argv" });
    expect(failure(set("vacuum_cost_delay", "10"))).toMatchObject({
      code: "0A000",
      message: 'unsupported value for parameter "vacuum_cost_delay": "10"',
    });
    guc.set("vacuum_cost_delay", "0", { source: "argv" });
    guc.set("wal_sync_method", "fsync", { source: "argv" });
    expect(failure(set("client_min_messages", "debug5")).code).toBe("0A000");
    guc.set("client_min_messages", "debug1", { source: "argv" });
    // The server's own setting of data_directory is not refused.
    guc.set("data_directory", "/data", { source: "override" });
  });

  test("postgresql.conf written by init lists pgts's own table, not the generated one", () => {
    const text = postgresqlConf({ timezone: "UTC" });
    // As initdb writes the value it selected: pgts's (init.ts), not PostgreSQL's 128MB.
    expect(text).toMatch(/^shared_buffers = 32MB /m);
    expect(text).toContain("#work_mem = 4MB");
    expect(text).not.toContain("enable_seqscan");
    expect(text).not.toContain("config_file");
  });
});

describe("startup options checked at login", () => {
  const check = (name: string, value: string, superuser = false) => () =>
    checkStartupSetting(name, value, { superuser });

  test("what a session may set passes", () => {
    check("work_mem", "64MB")();
    check("default_transaction_isolation", "serializable")();
    check("TimeZone", "Europe/Paris")();
    // POSIX zone specifications, which PostgreSQL takes too.
    check("timezone", "<+03>-03")();
    check("role", "someone")();
    check("myapp.tenant", "7")();
    check("log_statement", "all", true)();
    check("ignore_system_indexes", "on")();
    // A session may have what is refused only as the server's default.
    check("default_transaction_read_only", "on")();
  });

  test("what it may not fails with PostgreSQL's SQLSTATE and message", () => {
    expect(failure(check("nonsense_param", "0"))).toEqual({
      code: "42704",
      message: 'unrecognized configuration parameter "nonsense_param"',
    });
    // pgts's own parameters are not the engine's session settings.
    expect(failure(check("engine_wait_timeout", "1s")).code).toBe("42704");
    expect(failure(check("statement_timeout", "abc"))).toEqual({
      code: "22023",
      message: 'invalid value for parameter "statement_timeout": "abc"',
    });
    expect(failure(check("shared_buffers", "1MB", true))).toEqual({
      code: "55P02",
      message: 'parameter "shared_buffers" cannot be changed without restarting the server',
    });
    expect(failure(check("checkpoint_timeout", "1min", true))).toEqual({
      code: "55P02",
      message: 'parameter "checkpoint_timeout" cannot be changed now',
    });
    expect(failure(check("block_size", "4096", true))).toEqual({
      code: "55P02",
      message: 'parameter "block_size" cannot be changed',
    });
    expect(failure(check("log_statement", "all"))).toEqual({
      code: "42501",
      message: 'permission denied to set parameter "log_statement"',
    });
    expect(failure(check("jit_debugging_support", "on"))).toEqual({
      code: "42501",
      message: 'permission denied to set parameter "jit_debugging_support"',
    });
    expect(failure(check("exit_on_error", "on")).code).toBe("0A000");
  });
});
