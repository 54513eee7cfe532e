/**
 * What a PostgreSQL superuser reads about the server's files names the data
 * directory pgts was started on and the files pgts reads there, in every
 * database: `SHOW data_directory`, `config_file`, `hba_file` and
 * `ident_file` (PostgreSQL sets them at start, source "override");
 * pg_hba_file_rules, pg_ident_file_mappings and pg_file_settings parse
 * DIR's pg_hba.conf, pg_ident.conf and postgresql.conf, not the engine's
 * own copies; and no parameter's source is a file of the engine's. A role
 * without privileges gets PostgreSQL's 42501 for data_directory.
 */

import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { pgClient, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";

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
