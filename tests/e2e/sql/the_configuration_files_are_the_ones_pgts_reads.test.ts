/**
 * What a PostgreSQL superuser reads about the server's files names the data
 * directory pgts was started on and the files pgts reads there, in every
 * database: `SHOW data_directory`, `config_file`, `hba_file` and
 * `ident_file` (PostgreSQL sets them at start, source "override");
 * pg_hba_file_rules, pg_ident_file_mappings and pg_file_settings parse
 * DIR's pg_hba.conf, pg_ident.conf and postgresql.conf, not the engine's
 * own copies; and no parameter's source is a file of the engine's. A role
 * without privileges gets PostgreSQL's 42501 for data_directory. As in
 * PostgreSQL, pg_settings says a value postgresql.conf or ALTER SYSTEM set
 * came from that file (source, sourcefile, sourceline), one `-c` set from
 * the command line, and a session's startup options stay its own.
 */

import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { pgClient, pgConfig, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";

useSqlServers({ timeoutMs: 90_000 });

const HBA = [
  "# TYPE  DATABASE  USER   ADDRESS        METHOD",
  "local   all       all                   trust",
  "host    all       all    127.0.0.1/32   trust",
  "host    all       all    ::1/128        trust",
  "host    sales     alice  10.1.2.3/32    reject",
  "",
].join("\n");

describe("the configuration files as a superuser sees them", () => {
  const server = sharedServer({
    hba: HBA,
    conf: "work_mem = '7MB'\n",
  });

  test("SHOW and pg_settings name DIR and its files, set at start", async () => {
    const dir = server().dataDir;
    const c = await pgClient(server());
    const shown: Record<string, string> = {};
    for (const name of ["data_directory", "config_file", "hba_file", "ident_file"]) {
      shown[name] = (await c.query(`show ${name}`)).rows[0][name];
    }
    expect(shown).toEqual({
      data_directory: dir,
      config_file: join(dir, "postgresql.conf"),
      hba_file: join(dir, "pg_hba.conf"),
      ident_file: join(dir, "pg_ident.conf"),
    });
    const sources = await c.query(
      "select name, source from pg_settings " +
        "where name in ('data_directory', 'config_file', 'hba_file', 'ident_file') order by name",
    );
    expect(sources.rows.map((r) => r.source)).toEqual([
      "override",
      "override",
      "override",
      "override",
    ]);
    // No parameter's value comes from a file only the engine has.
    const files = await c.query(
      "select distinct sourcefile from pg_settings where sourcefile is not null",
    );
    for (const r of files.rows) expect(r.sourcefile.startsWith(dir)).toBe(true);
  });

  test("pg_hba_file_rules, pg_file_settings and pg_ident_file_mappings read DIR's files", async () => {
    const dir = server().dataDir;
    const c = await pgClient(server());
    const rules = await c.query(
      "select line_number, type, database, user_name, address, auth_method, error " +
        "from pg_hba_file_rules order by line_number",
    );
    expect(rules.rows.map((r) => [r.line_number, r.type, r.auth_method])).toEqual([
      [2, "local", "trust"],
      [3, "host", "trust"],
      [4, "host", "trust"],
      [5, "host", "reject"],
    ]);
    expect(rules.rows[3]).toMatchObject({
      database: ["sales"],
      user_name: ["alice"],
      address: "10.1.2.3",
      error: null,
    });
    const settings = await c.query(
      "select sourcefile, name, setting, applied, error from pg_file_settings",
    );
    expect(settings.rows).toContainEqual({
      sourcefile: join(dir, "postgresql.conf"),
      name: "work_mem",
      setting: "7MB",
      applied: true,
      error: null,
    });
    // Every row is a line of DIR's file: none without a file, as a
    // parameter set only by the engine's own file would show ("cannot be
    // changed without restarting the server": removed from the file).
    for (const r of settings.rows) expect(r.sourcefile).toBe(join(dir, "postgresql.conf"));
    const ident = await c.query("select count(*)::int as n from pg_ident_file_mappings");
    expect(ident.rows[0].n).toBe(0);
  });

  test("another database's engine says the same", async () => {
    const dir = server().dataDir;
    const c = await pgClient(server());
    await c.query("create database other_db");
    const o = await pgClient(server(), { database: "other_db" });
    expect((await o.query("show data_directory")).rows[0].data_directory).toBe(dir);
    expect((await o.query("select count(*)::int as n from pg_hba_file_rules")).rows[0].n).toBe(4);
  });

  test("a role without privileges may not read data_directory (42501)", async () => {
    const c = await pgClient(server());
    await c.query("create role plain login");
    const p = await pgClient(server(), { user: "plain" });
    const err = await p.query("show data_directory").then(() => null, (e) => e);
    expect(err?.code).toBe("42501");
    expect((await p.query("select 1 as one")).rows[0].one).toBe(1);
  });
});

describe("where pg_settings says a value came from", () => {
  const server = sharedServer({
    conf: "work_mem = '7MB'\ngeqo_threshold = 9\n",
    settings: { temp_buffers: "16MB" },
  });

  /** The 1-based line of `text` in `file`. */
  const lineOf = (file: string, text: string) =>
    readFileSync(file, "utf8").split("\n").lastIndexOf(text) + 1;

  const SOURCES = "select name, setting, source, sourcefile, sourceline from pg_settings " +
    "where name = any($1) order by name";

  test("postgresql.conf's and ALTER SYSTEM's values name their file and line; -c reads command line", async () => {
    const dir = server().dataDir;
    const conf = join(dir, "postgresql.conf");
    const c = await pgClient(server());
    const shown = await c.query(SOURCES, [["work_mem", "geqo_threshold", "temp_buffers"]]);
    expect(shown.rows).toEqual([
      {
        name: "geqo_threshold",
        setting: "9",
        source: "configuration file",
        sourcefile: conf,
        sourceline: lineOf(conf, "geqo_threshold = 9"),
      },
      {
        name: "temp_buffers",
        setting: "2048",
        source: "command line",
        sourcefile: null,
        sourceline: null,
      },
      {
        name: "work_mem",
        setting: "7168",
        source: "configuration file",
        sourcefile: conf,
        sourceline: lineOf(conf, "work_mem = '7MB'"),
      },
    ]);
    // A session's SET is its own; RESET goes back to the file's value and line.
    await c.query("set work_mem = '1MB'");
    expect((await c.query(SOURCES, [["work_mem"]])).rows[0]).toMatchObject({
      source: "session",
      sourcefile: null,
    });
    await c.query("reset work_mem");
    expect((await c.query(SOURCES, [["work_mem"]])).rows[0]).toMatchObject({
      setting: "7168",
      source: "configuration file",
      sourcefile: conf,
    });
    // ALTER SYSTEM and a reload: postgresql.auto.conf, as PostgreSQL names it.
    await c.query("alter system set maintenance_work_mem = '77MB'");
    await c.query("select pg_reload_conf()");
    const auto = join(dir, "postgresql.auto.conf");
    let row: Record<string, unknown> = {};
    for (let i = 0; i < 100; i++) {
      row = (await c.query(SOURCES, [["maintenance_work_mem"]])).rows[0];
      if (row.setting === "78848") break;
      await Bun.sleep(100);
    }
    expect(row).toEqual({
      name: "maintenance_work_mem",
      setting: "78848",
      source: "configuration file",
      sourcefile: auto,
      sourceline: lineOf(auto, "maintenance_work_mem = '77MB'"),
    });
  });

  test("a session's startup options are its own: the next session sees the server's sources", async () => {
    const conf = join(server().dataDir, "postgresql.conf");
    const first = new pg.Client({
      ...pgConfig(server()),
      options: "-c geqo_threshold=5 -c from_collapse_limit=3",
    });
    await first.connect();
    try {
      const mine = await first.query(SOURCES, [["geqo_threshold", "from_collapse_limit"]]);
      expect(mine.rows.map((r) => r.setting)).toEqual(["3", "5"]);
    } finally {
      await first.end();
    }
    const c = await pgClient(server());
    const after = await c.query(SOURCES, [["geqo_threshold", "from_collapse_limit"]]);
    expect(after.rows).toEqual([
      {
        name: "from_collapse_limit",
        setting: "8",
        source: "default",
        sourcefile: null,
        sourceline: null,
      },
      {
        name: "geqo_threshold",
        setting: "9",
        source: "configuration file",
        sourcefile: conf,
        sourceline: lineOf(conf, "geqo_threshold = 9"),
      },
    ]);
  });
});
