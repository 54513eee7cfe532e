/**
 * pg_stat_archiver tells what pgts's archiver did, whichever database asks:
 * psql in "postgres" and in a database made by CREATE DATABASE reads the
 * same row as `pgts status` (failed attempts, then the archived segment);
 * `pg_stat_reset_shared('archiver')` resets it as in PostgreSQL (counts to
 * zero, last WAL files and times gone, stats_reset now), an unknown target
 * is 22023, and a role that is not a superuser may read the view but not
 * reset it. Under `pgts serve-http`, which archives a data directory too,
 * the admin API (`GET /admin/archiver`) and the psql admin console
 * (`SHOW ARCHIVER`) show the same row.
 */

import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BUN,
  PG_BIN,
  pgtsCli,
  ROOT,
  startPgts,
  usePgtsServers,
  waitFor,
} from "../../helpers/pgts.ts";

usePgtsServers({ timeoutMs: 120_000 });

const scratch = mkdtempSync(join(tmpdir(), "pgts-e2e-stat-archiver-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** psql -X -A -t on `port`, as `user`, in `database`; stdout, stderr and the exit code. */
async function psql(
  port: number,
  sql: string,
  options: { database: string; user?: string },
): Promise<{ out: string; err: string; code: number }> {
  const p = Bun.spawn([
    `${PG_BIN}/psql`,
    "-X",
    "-q",
    "-A",
    "-t",
    "-F",
    "|",
    "-h",
    "127.0.0.1",
    "-p",
    String(port),
    "-U",
    options.user ?? "postgres",
    "-d",
    options.database,
    "-c",
    sql,
  ], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, PGCONNECT_TIMEOUT: "10" },
  });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { out: out.trim(), err, code };
}

const ROW = "select archived_count, last_archived_wal, last_archived_time is not null," +
  " failed_count, last_failed_wal, last_failed_time is not null, stats_reset from pg_stat_archiver";

test("pg_stat_archiver shows pgts's archiver in every database; pg_stat_reset_shared('archiver') resets it", async () => {
  const archive = join(scratch, "archive");
  const allow = join(scratch, "allow");
  mkdirSync(archive);
  const server = await startPgts({
    settings: {
      archive_mode: "on",
      archive_command: `test -f ${allow} && cp %p ${archive}/%f`,
      // The other database's engine stays open: an idle close would complete
      // (and archive) a segment of its own, which the exact counts below would see.
      engine_idle_timeout: 0,
    },
  });
  const port = server.port;
  expect((await psql(port, "create database other", { database: "postgres" })).code).toBe(0);
  // Before anything was archived or tried: zeros, in both databases.
  for (const database of ["postgres", "other"]) {
    const r = await psql(port, "select archived_count, failed_count from pg_stat_archiver", {
      database,
    });
    expect(r.out).toBe("0|0");
  }

  // A segment whose archive_command fails three times.
  const first = (await psql(port, "select pg_walfile_name(pg_switch_wal())", {
    database: "postgres",
  })).out;
  await server.waitForLog(new RegExp(`"${first}" failed too many times`));
  const failed = (await psql(port, ROW, { database: "other" })).out.split("|");
  expect(failed.slice(0, 6)).toEqual(["0", "", "f", "3", first, "t"]);

  // The command succeeds from now on: the segment is archived.
  writeFileSync(allow, "");
  await psql(port, "create table t (i int)", { database: "postgres" });
  const third = (await psql(port, "select pg_walfile_name(pg_switch_wal())", {
    database: "postgres",
  })).out;
  const archived = await waitFor("the archiver to archive both segments", async () => {
    const r = await psql(port, ROW, { database: "other" });
    return r.out.startsWith("2|") ? r.out.split("|") : undefined;
  }, { timeoutMs: 60_000 });
  expect(archived.slice(0, 6)).toEqual(["2", third, "t", "3", first, "t"]);
  expect((await psql(port, ROW, { database: "postgres" })).out).toBe(archived.join("|"));
  const status = await pgtsCli(["status", "-D", server.dataDir]);
  expect(status.out).toContain("archived_count: 2");
  expect(status.out).toContain(`last_archived_wal: ${third}`);
  expect(status.out).toContain("failed_count: 3");

  // A role that is not a superuser reads the view, and may not reset it.
  await psql(port, "create role watcher login", { database: "postgres" });
  expect(
    (await psql(port, "select archived_count from pg_stat_archiver", {
      database: "other",
      user: "watcher",
    })).out,
  ).toBe("2");
  const refused = await psql(port, "select pg_stat_reset_shared('archiver')", {
    database: "postgres",
    user: "watcher",
  });
  expect(refused.err).toContain("permission denied for function pg_stat_reset_shared");

  // An unknown target is PostgreSQL's error; nothing is reset.
  const bad = await psql(port, "select pg_stat_reset_shared('archivers')", { database: "other" });
  expect(bad.err).toContain('unrecognized reset target: "archivers"');
  expect(
    (await psql(port, "select archived_count from pg_stat_archiver", {
      database: "postgres",
    })).out,
  ).toBe("2");

  // The reset, from the second database: zeros, no last files, stats_reset now.
  const before = Date.now();
  const reset = await psql(
    port,
    "select pg_stat_reset_shared('archiver'); " + ROW,
    { database: "other" },
  );
  expect(reset.code).toBe(0);
  const zero = reset.out.split("\n").at(-1)!.split("|");
  expect(zero.slice(0, 6)).toEqual(["0", "", "f", "0", "", "f"]);
  expect(new Date(zero[6]!.replace(" ", "T").replace(/\+00$/, "Z")).getTime())
    .toBeGreaterThanOrEqual(
      before - 2_000,
    );
  expect((await psql(port, ROW, { database: "postgres" })).out).toBe(zero.join("|"));
  expect((await pgtsCli(["status", "-D", server.dataDir])).out).toContain("archived_count: 0");

  // Counting goes on from the reset.
  await psql(port, "insert into t values (1)", { database: "postgres" });
  const fourth = (await psql(port, "select pg_walfile_name(pg_switch_wal())", {
    database: "postgres",
  })).out;
  const after = await waitFor("the next segment to be counted", async () => {
    const r = await psql(port, ROW, { database: "other" });
    return r.out.startsWith("1|") ? r.out.split("|") : undefined;
  }, { timeoutMs: 60_000 });
  expect(after).toEqual(["1", fourth, "t", "0", "", "f", zero[6]]);
});

test("serve-http: the admin API and the admin console show the archiver's row", async () => {
  const dir = join(scratch, "http");
  const archive = join(dir, "archive");
  mkdirSync(archive, { recursive: true });
  const init = await pgtsCli(["init", "-D", join(dir, "d")]);
  expect(init.code).toBe(0);
  let log = "";
  const proc = Bun.spawn([
    BUN,
    "mod.ts",
    "serve-http",
    "-D",
    join(dir, "d"),
    "--port",
    "0",
    "--pg-port",
    "0",
    "--admin-token",
    "secret",
    "-c",
    "archive_mode=on",
    "-c",
    `archive_command=cp %p ${archive}/%f`,
  ], { cwd: ROOT, stdin: "ignore", stdout: "ignore", stderr: "pipe", env: { ...process.env } });
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) {
      log += decoder.decode(chunk, { stream: true });
    }
  })();
  try {
    const m = await waitFor("serve-http's admin console line", () => {
      if (proc.exitCode !== null) throw new Error(`serve-http exited:\n${log}`);
      const http = /serving SQL over HTTP on (http:\/\/\S+)\/sql/.exec(log);
      const pg = /admin console: psql -h \S+ -p (\d+)/.exec(log);
      return http !== null && pg !== null ? { http: http[1]!, port: Number(pg[1]) } : undefined;
    }, { timeoutMs: 60_000, detail: () => log });
    const segment = (await psql(m.port, "select pg_walfile_name(pg_switch_wal())", {
      database: "postgres",
    })).out;
    const api = await waitFor("the admin API to show the archived segment", async () => {
      const res = await fetch(`${m.http}/admin/archiver`, {
        headers: { Authorization: "Bearer secret" },
      });
      const body = await res.json() as Record<string, unknown>;
      return body["archived_count"] === 1 ? body : undefined;
    }, { timeoutMs: 60_000, detail: () => log });
    expect(api["last_archived_wal"]).toBe(segment);
    expect(api["failed_count"]).toBe(0);
    expect(typeof api["last_archived_time"]).toBe("string");
    expect((await fetch(`${m.http}/admin/archiver`)).status).toBe(401);

    const console = await psql(m.port, "SHOW ARCHIVER", { database: "pgts" });
    expect(console.code).toBe(0);
    const row = console.out.split("|");
    expect(row.slice(0, 2)).toEqual(["1", segment]);
    expect(row[3]).toBe("0");
    // The same row as pg_stat_archiver's, in psql's rendering of timestamptz.
    const view = await psql(
      m.port,
      "set timezone = 'UTC'; select archived_count, last_archived_wal, last_archived_time," +
        " failed_count from pg_stat_archiver",
      { database: "postgres" },
    );
    expect(view.out.split("\n").at(-1)).toBe(row.slice(0, 4).join("|"));
  } finally {
    proc.kill("SIGKILL");
    await proc.exited;
  }
});
