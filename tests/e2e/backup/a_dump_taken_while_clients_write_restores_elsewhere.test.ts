/**
 * `pgts dump` and `pgts restore` as a user runs them: a database with every
 * common type, a sequence, a view, a function and a trigger is dumped from a
 * running server while a client keeps writing, and the plain dump is
 * restored into a new pgts cluster and into PostgreSQL 15; the same queries
 * give the same answers everywhere.
 */

import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import {
  BUN,
  PG_BIN,
  pgtsCli,
  type PgtsServer,
  ROOT,
  startPgts,
  usePgtsServers,
  waitFor,
} from "../../helpers/pgts.ts";
import { run, UpstreamPostgres, useUpstreamServers } from "../../helpers/upstream.ts";

usePgtsServers({ timeoutMs: 120_000 });
useUpstreamServers({ timeoutMs: 120_000 });

let dir: string | null = null;
afterEach(() => {
  if (dir !== null) rmSync(dir, { recursive: true, force: true });
  dir = null;
});
const dumpDir = (): string => (dir ??= mkdtempSync(join(tmpdir(), "pgts-dump-")));

const SCHEMA = `
create type mood as enum ('sad', 'ok', 'happy');
create sequence counter_seq start 100;
create table everything (
  id serial primary key,
  i2 smallint, i4 integer, i8 bigint, num numeric(20, 6), r4 real, f8 double precision,
  t text, vc varchar(20), ch char(3), b bytea, flag boolean,
  d date, tm time, tstz timestamptz, ts timestamp, iv interval,
  u uuid, j json, jb jsonb, ia integer[], ta text[], m mood
);
create table audit (id serial primary key, everything_id integer, note text);
create function note_insert() returns trigger language plpgsql as $$
begin
  insert into audit (everything_id, note) values (new.id, 'inserted ' || coalesce(new.t, 'null'));
  return new;
end $$;
create trigger everything_audit after insert on everything
  for each row execute function note_insert();
create function double_it(x integer) returns integer language sql immutable as $$ select x * 2 $$;
create view happy as select id, t, double_it(i4) as i4x2 from everything where m = 'happy';
insert into everything (i2, i4, i8, num, r4, f8, t, vc, ch, b, flag, d, tm, tstz, ts, iv, u, j, jb, ia, ta, m) values
  (-32768, -2147483648, -9223372036854775808, -12345678901234.123456, -1.5, 'NaN',
   'it''s a "quote"; \\ back\\slash -- not a comment /* nor this */ $$ $x$', 'ünïcødé ☃', 'ab',
   '\\x00010203ff', true, '0001-01-01', '00:00:00', '1999-12-31 23:59:59.999999+00',
   '2000-01-01 00:00:00', '1 year 2 mons 3 days 04:05:06.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
   '{"a": [1, 2, {"b": null}]}', '{"z": 1, "a": [true, false]}', '{1,NULL,3}', '{"x","y z","q\\"uote"}', 'sad'),
  (32767, 2147483647, 9223372036854775807, 99999999999999.999999, 'Infinity', '-Infinity',
   E'line1\\nline2\\ttab\\r;', '', '   ', '\\x', false, '9999-12-31', '23:59:59.999999',
   '2038-01-19 03:14:07+00', 'infinity', '-177999999 years', '00000000-0000-0000-0000-000000000000',
   '[]', '{}', '{}', '{}', 'sad'),
  (0, 0, 0, 'NaN', 0, -0.0, '', null, null, null, null, '-infinity', null, '-infinity', null,
   '0', null, 'null', 'null', null, '{NULL}', 'ok'),
  (null, 42, null, 0.000001, 3.4e38, 1e-300, null, null, null, null, null, null, null, null, null,
   null, null, null, null, null, null, 'happy');
select setval('counter_seq', 142);
create table live_writes (id bigint generated always as identity primary key, at_ms bigint);
create table live_log (writes_id bigint primary key);
`;

/** The questions asked of every copy; the answers must be the same. */
const QUERIES = [
  `select id, i2, i4, i8, num, r4, f8, t, vc, ch, encode(b, 'hex'), flag, d, tm,
     tstz at time zone 'UTC', ts, iv, u, j::text, jb::text, ia, ta, m from everything order by id`,
  "select id, everything_id, note from audit order by id",
  "select * from happy order by id",
  "select last_value, is_called from counter_seq",
  "select last_value, is_called from everything_id_seq",
  "select double_it(21), enum_range(null::mood)",
  "select tgname from pg_trigger where not tgisinternal order by 1",
  "select proname from pg_proc where pronamespace = 'public'::regnamespace order by 1",
];

/** What a copy does after the restore: the trigger fires and the sequences go on. */
const AFTERWARDS = [
  "insert into everything (t, i4, m) values ('after', 5, 'happy') returning id",
  "select note from audit where everything_id = (select max(id) from everything)",
  "select * from happy order by id desc limit 1",
  "select nextval('counter_seq')",
];

type Ask = (sql: string) => Promise<string>;

async function answers(ask: Ask, queries: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const q of queries) out.push(await ask(q));
  return out;
}

const askPgts = (server: PgtsServer): Ask => async (sql) => {
  const r = await server.psql(sql);
  if (r.code !== 0) throw new Error(`psql failed on ${sql}:\n${r.err}`);
  return r.out;
};

const askUpstream = (pg: UpstreamPostgres): Ask => async (sql) => {
  const r = await pg.psql(sql);
  if (r.code !== 0) throw new Error(`psql failed on ${sql}:\n${r.err}`);
  return r.out;
};

async function sourceServer(): Promise<PgtsServer> {
  const server = await startPgts();
  const r = await server.psql(SCHEMA);
  if (r.code !== 0) throw new Error(`schema failed:\n${r.err}`);
  return server;
}

/** Dumps while one client inserts into live_writes and live_log in one transaction each. */
async function dumpWhileWriting(source: PgtsServer, file: string) {
  const client = await source.client();
  let writing = true;
  let written = 0;
  const errors: string[] = [];
  const writer = (async () => {
    while (writing) {
      try {
        await client.query(
          "insert into live_writes (at_ms) values (1); insert into live_log values (currval('live_writes_id_seq'))",
        );
        written++;
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
  })();
  while (written < 20) await Bun.sleep(10);
  const before = written;
  const dump = await pgtsCli(["dump", "-D", source.dataDir, "-f", file]);
  const atEnd = written;
  while (written < atEnd + 20) await Bun.sleep(10);
  writing = false;
  await writer;
  return { dump, before, errors };
}

describe("pgts dump and pgts restore", () => {
  test("a dump taken while a client writes restores into a new pgts cluster with identical answers", async () => {
    const source = await sourceServer();
    const file = join(dumpDir(), "db.sql");
    const { dump, before, errors } = await dumpWhileWriting(source, file);
    expect(dump.code).toBe(0);
    expect(errors).toEqual([]);
    // Writing to a file reports progress and a summary on stderr.
    expect(dump.err).toMatch(/pgts dump: dumped 4 tables, [\d.]+ kB in [\d.]+ s\n$/);
    const text = readFileSync(file, "utf8");
    expect(text).toContain("-- Dumped by pg_dump version 18.");
    expect(text).toContain("CREATE TRIGGER everything_audit");

    const target = await startPgts();
    const restore = await pgtsCli(["restore", "-D", target.dataDir, file]);
    expect(restore.err).toBe("");
    expect(restore.code).toBe(0);

    expect(await answers(askPgts(target), QUERIES)).toEqual(
      await answers(askPgts(source), QUERIES),
    );
    // One consistent snapshot: each live_writes row came with its live_log row, in one transaction.
    const counts = await askPgts(target)(
      "select (select count(*) from live_writes), (select count(*) from live_log)",
    );
    const [writes, logs] = counts.trim().split("|").map(Number);
    expect(writes).toBe(logs as number);
    expect(writes).toBeGreaterThanOrEqual(before);
    const sourceCount = Number(await askPgts(source)("select count(*) from live_writes"));
    expect(writes).toBeLessThan(sourceCount);
    // The rows a snapshot holds are the source's first ones, identical.
    const prefix = `select id, at_ms from live_writes where id <= ${writes} order by id`;
    expect(await askPgts(target)(prefix)).toBe(await askPgts(source)(prefix));

    expect(await answers(askPgts(target), AFTERWARDS)).toEqual(
      await answers(askPgts(source), AFTERWARDS),
    );
  });

  test("the plain dump restores into PostgreSQL 15 with identical answers (its one complaint: transaction_timeout)", async () => {
    const source = await sourceServer();
    const file = join(dumpDir(), "db.sql");
    const dump = await pgtsCli(["dump", "-D", source.dataDir, "-f", file]);
    expect(dump.code).toBe(0);

    const pg15 = await UpstreamPostgres.start({ auth: "trust" });
    // What pg_dump users do with a newer server's dump: psql without ON_ERROR_STOP,
    // then check that the errors are only settings the older server does not know.
    const r = await run([
      `${PG_BIN}/psql`,
      "-X",
      "-q",
      "-h",
      pg15.socketDir,
      "-p",
      String(pg15.port),
      "-U",
      "postgres",
      "-d",
      "postgres",
      "-f",
      file,
    ]);
    expect(r.code).toBe(0);
    const errors = r.err.split("\n").filter((l) => l.includes("ERROR"));
    expect(errors).toEqual([
      `psql:${file}:13: ERROR:  unrecognized configuration parameter "transaction_timeout"`,
    ]);
    expect(await answers(askUpstream(pg15), QUERIES)).toEqual(
      await answers(askPgts(source), QUERIES),
    );

    // pgts dump reaches any server through -h/-p: PostgreSQL 15 too (pg_dump 18 dumps older servers).
    const of15 = await pgtsCli(["dump", "-h", pg15.socketDir, "-p", String(pg15.port), "-s"]);
    expect(of15.err).toBe("");
    expect(of15.out).toContain("-- Dumped from database version 15.");
    expect(of15.out).toContain("CREATE TRIGGER everything_audit");

    // And back: PostgreSQL 15's own pg_dump (COPY data, \restrict) restores into a new pgts cluster.
    const back = join(dumpDir(), "from15.sql");
    const dump15 = await run([
      `${PG_BIN}/pg_dump`,
      "-h",
      pg15.socketDir,
      "-p",
      String(pg15.port),
      "-U",
      "postgres",
      "-f",
      back,
      "postgres",
    ]);
    expect(dump15.err).toBe("");
    expect(readFileSync(back, "utf8")).toContain("COPY public.everything (");
    const target = await startPgts();
    const restore = await pgtsCli(["restore", "-D", target.dataDir, "-f", back]);
    expect(restore.err).toBe("");
    expect(restore.code).toBe(0);
    expect(await answers(askPgts(target), QUERIES)).toEqual(
      await answers(askPgts(source), QUERIES),
    );

    // The trigger fires and the sequences go on the same way in all three.
    const after = await answers(askPgts(source), AFTERWARDS);
    expect(await answers(askUpstream(pg15), AFTERWARDS)).toEqual(after);
    expect(await answers(askPgts(target), AFTERWARDS)).toEqual(after);
  });

  test("--schema-only, --data-only and -t dump what they say, and -f - writes to stdout", async () => {
    const source = await sourceServer();
    const schema = await pgtsCli(["dump", "-D", source.dataDir, "--schema-only"]);
    expect(schema.code).toBe(0);
    expect(schema.err).toBe("");
    expect(schema.out).toContain("CREATE TABLE public.everything");
    expect(schema.out).toContain("CREATE VIEW public.happy");
    expect(schema.out).not.toContain("INSERT INTO");

    // Under Deno the same dump comes out (but for \restrict's random key).
    const deno = await pgtsCli(["dump", "-D", source.dataDir, "--schema-only"], "deno");
    expect(deno.err).toBe("");
    const unkeyed = (sql: string) => sql.replace(/^\\(un)?restrict .*$/gm, "");
    expect(unkeyed(deno.out)).toBe(unkeyed(schema.out));

    const data = await pgtsCli(["dump", "-D", source.dataDir, "--data-only"]);
    expect(data.code).toBe(0);
    expect(data.out).not.toContain("CREATE TABLE");
    expect(data.out).toContain("INSERT INTO public.everything");
    expect(data.out).toContain("SELECT pg_catalog.setval('public.counter_seq', 142, true);");

    const table = await pgtsCli(["dump", "-D", source.dataDir, "-t", "audit", "-f", "-"]);
    expect(table.code).toBe(0);
    expect(table.out).toContain("CREATE TABLE public.audit");
    expect(table.out).toContain("INSERT INTO public.audit");
    expect(table.out).not.toContain("public.everything");

    // The schema alone makes the same objects, empty; then one table's data fills it.
    const target = await startPgts();
    const d = dumpDir();
    writeFileSync(join(d, "schema.sql"), schema.out);
    const audit = await pgtsCli(["dump", "-D", source.dataDir, "--data-only", "-t", "audit"]);
    expect(audit.out).not.toContain("public.everything");
    writeFileSync(join(d, "audit.sql"), audit.out);
    for (const part of ["schema.sql", "audit.sql"]) {
      const r = await pgtsCli(["restore", "-D", target.dataDir, "-1", join(d, part)]);
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
    }
    const ask = askPgts(target);
    expect(await ask("select count(*) from everything")).toBe("0\n");
    const same = [QUERIES[1], ...QUERIES.slice(5)] as string[];
    expect(await answers(ask, same)).toEqual(await answers(askPgts(source), same));
  });

  test("a server that asks for a password gets $PGPASSWORD; without it the dump fails with libpq's reason", async () => {
    const server = await startPgts();
    expect((await server.psql("alter role postgres password 'dump pw'")).code).toBe(0);
    writeFileSync(
      join(server.dataDir, "pg_hba.conf"),
      "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n",
    );
    expect((await server.reload()).code).toBe(0);
    await waitFor(
      "pg_hba.conf to be in force",
      async () => (await server.psql("select 1")).code !== 0,
    );
    const dump = async (password: string | undefined) => {
      const env = { ...process.env };
      delete env.PGPASSWORD;
      if (password !== undefined) env.PGPASSWORD = password;
      const p = Bun.spawn([BUN, join(ROOT, "mod.ts"), "dump", "-D", server.dataDir, "-s"], {
        env,
        stdout: "pipe",
        stderr: "pipe",
      });
      const [out, err, code] = await Promise.all([
        new Response(p.stdout).text(),
        new Response(p.stderr).text(),
        p.exited,
      ]);
      return { out, err, code };
    };
    const ok = await dump("dump pw");
    expect(ok.err).toBe("");
    expect(ok.out).toContain("-- PostgreSQL database dump complete");
    const socket = join(server.dataDir, `.s.PGSQL.${server.port}`);
    const none = await dump(undefined);
    expect(none.code).toBe(1);
    expect(none.err).toBe(
      `pg_dump: error: connection to server on socket "${socket}" failed: fe_sendauth: no password supplied\n` +
        "pgts dump: error: pg_dump exited with status 1; no complete dump was written\n",
    );
    const wrong = await dump("not it");
    expect(wrong.err).toContain('FATAL:  password authentication failed for user "postgres"');
  });

  test("a custom-format archive is written, and pgts restore refuses it with a hint", async () => {
    const source = await sourceServer();
    const file = join(dumpDir(), "db.dump");
    const dump = await pgtsCli(["dump", "-D", source.dataDir, "-F", "c", "-f", file]);
    expect(dump.code).toBe(0);
    const head = readFileSync(file);
    expect(head.subarray(0, 5).toString()).toBe("PGDMP");
    // Format version 1.16 (PostgreSQL 18's archiver), custom format (1).
    expect([...head.subarray(5, 8)]).toEqual([1, 16, 0]);
    // The table of contents is plain text (the data blocks are compressed).
    expect(head.includes("CREATE TABLE public.everything")).toBe(true);
    expect(head.includes("CREATE TRIGGER everything_audit")).toBe(true);
    // To a pipe (no seeking back to fill in data offsets), as pg_dump writes one.
    const piped = await pgtsCli(["dump", "-D", source.dataDir, "-F", "c"]);
    expect(piped.code).toBe(0);
    expect(piped.out.startsWith("PGDMP")).toBe(true);
    const r = await pgtsCli(["restore", "-D", source.dataDir, file]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("is a custom-format archive");
    expect(r.err).toContain("HINT:");
  });

  test("restore stops at the first error with the line and the statement; -1 keeps nothing", async () => {
    const target = await startPgts();
    const d = dumpDir();
    const script = join(d, "bad.sql");
    writeFileSync(
      script,
      [
        "create table kept (x int);",
        "insert into kept values (1);",
        "-- a comment",
        "insert into kept",
        "  values ('not a number');",
        "insert into kept values (3);",
        "",
      ].join("\n"),
    );
    const r = await pgtsCli(["restore", "-D", target.dataDir, script]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `pgts restore: ${script}:4: ERROR:  invalid input syntax for type integer: "not a number"\n` +
        `STATEMENT:  insert into kept\n  values ('not a number');\n`,
    );
    expect((await target.psql("select x from kept")).out).toBe("1\n");

    await target.psql("drop table kept");
    const single = await pgtsCli(["restore", "-D", target.dataDir, "-1", script]);
    expect(single.code).toBe(1);
    expect(single.err).toContain("the transaction was rolled back; nothing was restored");
    expect((await target.psql("select count(*) from pg_class where relname = 'kept'")).out).toBe(
      "0\n",
    );
  });
});
