/**
 * psql and pgbench, the PostgreSQL 15 programs, against `pgts start` under
 * the Bun subprocess adapter: commands, a script, `\d`, COPY both ways, and
 * pgbench's initialisation (client-side COPY FROM STDIN) and a TPC-B run
 * with four clients and no failed transactions.
 */

import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { pgConfig, psql, runPg, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";
import { pgtsCli } from "../../helpers/pgts.ts";

useSqlServers();
const server = sharedServer();

describe("psql", () => {
  test("-c runs a statement and prints its rows", async () => {
    const r = await psql(server(), ["-c", "select 1 + 1 as two, 'x' || 'y' as s"]);
    expect(r.err).toBe("");
    expect(r.out.trim()).toBe("2|xy");
    expect(r.code).toBe(0);
  });

  test("a script with several statements runs in order, and \\d describes the table", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pgts-psql-"));
    try {
      const file = join(dir, "script.sql");
      writeFileSync(
        file,
        [
          "create table items (id serial primary key, name text not null, price numeric(8,2));",
          "insert into items (name, price) values ('a', 1.50), ('b', 2.25);",
          "begin;",
          "update items set price = price * 2 where name = 'b';",
          "commit;",
          "select name, price from items order by id;",
          "\\pset tuples_only off",
          "\\d items",
        ].join("\n"),
      );
      const r = await psql(server(), ["-f", file]);
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      expect(r.out).toContain("a|1.50\nb|4.50");
      expect(r.out).toContain('Table "public.items"');
      expect(r.out).toMatch(/id\|integer\|\|not null\|nextval\('items_id_seq'::regclass\)/);
      expect(r.out).toContain('"items_pkey" PRIMARY KEY, btree (id)');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("pgts --version names the PostgreSQL release psql finds the server to be", async () => {
    const r = await psql(server(), ["-c", "\\echo :SERVER_VERSION_NAME"]);
    expect(r.code).toBe(0);
    const version = await pgtsCli(["--version"]);
    expect(version.out.replace(/^pgts \(pgts\) \d+\.\d+\.\d+, /, "")).toBe(
      `embedded engine PostgreSQL ${r.out.trim()}\n`,
    );
  });

  test("an error is reported with PostgreSQL's message and the server goes on", async () => {
    const r = await psql(server(), ["-c", "select * from no_such_table"]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('ERROR:  relation "no_such_table" does not exist');
    const after = await psql(server(), ["-c", "select 'still serving'"]);
    expect(after.out.trim()).toBe("still serving");
  });

  test("COPY FROM STDIN loads rows and COPY TO STDOUT returns them", async () => {
    await psql(server(), ["-c", "create table copied (n int, t text, d date)"]);
    const rows = Array.from({ length: 1000 }, (_, i) => `${i}\tline ${i}\t2024-01-${(i % 28) + 1}`);
    const load = await psql(server(), ["-c", "copy copied from stdin"], {
      stdin: `${rows.join("\n")}\n\\.\n`,
    });
    expect(load.err).toBe("");
    expect(load.code).toBe(0);
    const count = await psql(server(), ["-c", "select count(*), sum(n) from copied"]);
    expect(count.out.trim()).toBe("1000|499500");
    const out = await psql(server(), ["-c", "copy (select * from copied order by n) to stdout"]);
    expect(out.code).toBe(0);
    const lines = out.out.trimEnd().split("\n");
    expect(lines.length).toBe(1000);
    expect(lines[0]).toBe("0\tline 0\t2024-01-01");
    expect(lines[999]).toBe("999\tline 999\t2024-01-20");
    // CSV with a header, through \copy (psql's client-side COPY).
    const csv = await psql(server(), [
      "-c",
      "\\copy (select n, t from copied where n < 2 order by n) to stdout with (format csv, header)",
    ]);
    expect(csv.out).toBe("n,t\n0,line 0\n1,line 1\n");
  });

  test("COPY … FROM STDIN with comments between its words loads its rows, and no other session notices", async () => {
    // The engine's one backend read end of file in the middle of such a
    // COPY (pgts did not take it for one, and fed it nothing): its FATAL
    // ended every session of the server.
    await psql(server(), ["-c", "create table commented_copy (n int)"]);
    const bystander = new pg.Client(pgConfig(server()));
    await bystander.connect();
    for (
      const sql of [
        "copy commented_copy from /* rows */ stdin",
        "COPY commented_copy FROM -- rows\n STDIN",
        // FROM STDOUT reads from the client too, in PostgreSQL's grammar
        // (PostgreSQL 18's regression test insert).
        "copy commented_copy from stdout",
      ]
    ) {
      const r = await psql(server(), ["-c", sql], { stdin: "1\n2\n\\.\n" });
      expect(r.err).toBe("");
      expect(r.out.trim()).toBe("COPY 2");
    }
    const count = await psql(server(), ["-c", "select count(*), sum(n) from commented_copy"]);
    expect(count.out.trim()).toBe("6|9");
    try {
      expect((await bystander.query("select 'still here' as s")).rows[0].s).toBe("still here");
    } finally {
      await bystander.end();
    }
  });

  test("a bad row in COPY FROM STDIN fails the COPY and the session goes on", async () => {
    await psql(server(), ["-c", "create table strict_copy (n int)"]);
    const r = await psql(server(), [
      "-v",
      "ON_ERROR_STOP=0",
      "-c",
      "copy strict_copy from stdin",
      "-c",
      "select 'after'",
    ], {
      stdin: "1\nnot a number\n\\.\n",
    });
    expect(r.err).toContain('invalid input syntax for type integer: "not a number"');
    expect(r.out).toContain("after");
    const count = await psql(server(), ["-c", "select count(*) from strict_copy"]);
    expect(count.out.trim()).toBe("0");
  });
});

describe("pgbench", () => {
  test("-i -s 1 initialises (client-side COPY) and -T 3 -c 4 runs with 0 failures", async () => {
    const init = await runPg(server(), "pgbench", ["-i", "-s", "1"], { timeoutMs: 90_000 });
    expect(init.err).toContain("done in");
    expect(init.code).toBe(0);
    const count = await psql(server(), ["-c", "select count(*) from pgbench_accounts"]);
    expect(count.out.trim()).toBe("100000");
    const run = await runPg(server(), "pgbench", ["-T", "3", "-c", "4", "-n"], {
      timeoutMs: 60_000,
    });
    expect(run.err).not.toContain("ERROR");
    expect(run.code).toBe(0);
    expect(run.out).toContain("number of clients: 4");
    expect(run.out).toMatch(/number of failed transactions: 0 \(0\.000%\)/);
    const processed = Number(/actually processed: (\d+)/.exec(run.out)?.[1] ?? 0);
    expect(processed).toBeGreaterThan(0);
    // Every transaction's history row is there: nothing was lost between sessions.
    const history = await psql(server(), ["-c", "select count(*) from pgbench_history"]);
    expect(Number(history.out.trim())).toBe(processed);
  }, 180_000);
});
