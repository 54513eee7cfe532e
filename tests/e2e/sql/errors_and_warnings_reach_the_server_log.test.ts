/**
 * What a session's client is told of its errors and warnings is in the
 * server log too, as PostgreSQL's backends write it: the line prefix with
 * the backend's pid, the message (with " at character N" where it has a
 * position), DETAIL, HINT, QUERY and CONTEXT, and for an ERROR the
 * statement (STATEMENT), for simple and extended queries alike;
 * log_min_messages decides which (WARNING and above by default).
 */

import { expect, test } from "bun:test";
import pg from "pg";
import { serverLogLines, startPgts, usePgtsServers, waitFor } from "../../helpers/pgts.ts";

usePgtsServers();

/** Backend `pid`'s server log lines, once as many as `expected` are there, are `expected`. */
async function expectLogLines(
  server: { log: string },
  pid: number,
  expected: readonly string[],
): Promise<void> {
  await waitFor(
    "the log lines",
    () => serverLogLines(server.log, pid).length >= expected.length || undefined,
  );
  expect(serverLogLines(server.log, pid)).toEqual(expected);
}

test("errors with their STATEMENT, and warnings, as PostgreSQL 15 logs them", async () => {
  const server = await startPgts();
  const c = await server.client();
  const pid = (await c.query("select pg_backend_pid() as pid")).rows[0].pid as number;
  const fail = (sql: string | { name: string; text: string; values: unknown[] }) =>
    c.query(sql as string).then(() => null, (e: Error) => e.message);
  expect(await fail("select 1/0")).toBe("division by zero");
  expect(await fail("select * from nosuch")).toBe('relation "nosuch" does not exist');
  await c.query(
    "do $$ begin raise warning 'careful' using detail = 'det', hint = 'hnt'; end $$",
  );
  await c.query("do $$ begin raise notice 'not in the log'; end $$");
  expect(await fail("do $$ begin execute 'select * from nosuch2'; end $$")).toBe(
    'relation "nosuch2" does not exist',
  );
  // The extended protocol: a named statement, then again by name alone.
  const q = { name: "div", text: "select $1::int / 0 as x", values: [7] };
  expect(await fail(q)).toBe("division by zero");
  expect(await fail(q)).toBe("division by zero");
  await c.end();

  const expected = [
    "ERROR:  division by zero",
    "STATEMENT:  select 1/0",
    'ERROR:  relation "nosuch" does not exist at character 15',
    "STATEMENT:  select * from nosuch",
    "WARNING:  careful",
    "DETAIL:  det",
    "HINT:  hnt",
    "CONTEXT:  PL/pgSQL function inline_code_block line 1 at RAISE",
    'ERROR:  relation "nosuch2" does not exist at character 15',
    "QUERY:  select * from nosuch2",
    "CONTEXT:  PL/pgSQL function inline_code_block line 1 at EXECUTE",
    "STATEMENT:  do $$ begin execute 'select * from nosuch2'; end $$",
    "ERROR:  division by zero",
    "STATEMENT:  select $1::int / 0 as x",
    "ERROR:  division by zero",
    "STATEMENT:  select $1::int / 0 as x",
  ];
  await expectLogLines(server, pid, expected);
});

test("log_min_messages = notice logs NOTICEs too; = error leaves out WARNINGs", async () => {
  const server = await startPgts({ settings: { log_min_messages: "notice" } });
  expect(await server.psql("do $$ begin raise notice 'now in the log'; end $$")).toMatchObject({
    code: 0,
  });
  await waitFor("the NOTICE", () => server.log.includes("NOTICE:  now in the log") || undefined);
  await server.stop();
  await server.start({ settings: { log_min_messages: "error" } });
  await server.psql("do $$ begin raise warning 'left out'; end $$; select 1/0");
  await waitFor("the ERROR", () => server.log.includes("ERROR:  division by zero") || undefined);
  expect(server.log).not.toContain("WARNING:  left out");
});

test("log_error_verbosity: verbose adds the SQLSTATE and LOCATION, terse leaves out DETAIL, HINT and CONTEXT; the server's or a session's", async () => {
  const server = await startPgts({ settings: { log_error_verbosity: "verbose" } });
  const c = await server.client();
  const pid = (await c.query("select pg_backend_pid() as pid")).rows[0].pid as number;
  const fail = (sql: string) => c.query(sql).then(() => null, (e: Error) => e.message);
  const raise = "do $$ begin raise exception 'boom' using detail = 'dd', hint = 'hh'; end $$";
  expect(await fail("select 1/0")).toBe("division by zero");
  await c.query("set log_error_verbosity = terse");
  expect(await fail(raise)).toBe("boom");
  await c.query("set log_error_verbosity = default"); // the server's: verbose
  expect(await fail(raise)).toBe("boom");
  await c.end();
  const lines = (await waitFor(
    "the log lines",
    () => serverLogLines(server.log, pid).length >= 11 && serverLogLines(server.log, pid),
  )).map((l) => l.replace(/(LOCATION: {2}\w+, [\w.]+):\d+$/, "$1:N"));
  expect(lines).toEqual([
    "ERROR:  22012: division by zero",
    "LOCATION:  int4div, int.c:N",
    "STATEMENT:  select 1/0",
    "ERROR:  boom",
    `STATEMENT:  ${raise}`,
    "ERROR:  P0001: boom",
    "DETAIL:  dd",
    "HINT:  hh",
    "CONTEXT:  PL/pgSQL function inline_code_block line 1 at RAISE",
    "LOCATION:  exec_stmt_raise, pl_exec.c:N",
    `STATEMENT:  ${raise}`,
  ]);
});

test("log_line_prefix's %u, %d, %a and %r are the session's; log_connections and log_disconnections log each session's start and end", async () => {
  const server = await startPgts({
    settings: {
      log_line_prefix: "[%p] %q%u@%d %r %a: ",
      log_connections: "on",
      log_disconnections: "on",
    },
  });
  const c = new pg.Client({
    host: server.host,
    port: server.port,
    user: "postgres",
    database: "postgres",
    application_name: "logtest",
  });
  await c.connect();
  const pid = (await c.query("select pg_backend_pid() as pid")).rows[0].pid as number;
  const port = (c as unknown as { connection: { stream: { localPort: number } } }).connection
    .stream.localPort;
  await c.query("select 1/0").catch(() => {});
  // %a is the application_name now, as PostgreSQL's: a SET changes it.
  await c.query("set application_name = 'renamed'");
  await c.query("select 2/0").catch(() => {});
  await c.end();
  const line = (text: string, app = "logtest") =>
    `[${pid}] postgres@postgres 127.0.0.1(${port}) ${app}: ${text}`;
  await waitFor(
    "the disconnection",
    () =>
      server.log.includes(`[${pid}] postgres@`) && /disconnection/.test(server.log) || undefined,
  );
  const lines = server.log.split("\n");
  // Before the start-up packet: no user, database or application yet (%q stops the prefix).
  expect(lines).toContain(`[${pid}] LOG:  connection received: host=127.0.0.1 port=${port}`);
  expect(lines).toContain(
    line("LOG:  connection authorized: user=postgres database=postgres application_name=logtest"),
  );
  expect(lines).toContain(line("ERROR:  division by zero"));
  expect(lines).toContain(line("STATEMENT:  select 1/0"));
  expect(lines).toContain(line("ERROR:  division by zero", "renamed"));
  expect(lines).toContain(line("STATEMENT:  select 2/0", "renamed"));
  const end = lines.find((l) => l.startsWith(line("LOG:  disconnection: ", "renamed")));
  expect(end).toMatch(
    new RegExp(
      `disconnection: session time: 0:00:\\d\\d\\.\\d{3} user=postgres database=postgres host=127\\.0\\.0\\.1 port=${port}$`,
    ),
  );
});

test("pgts's own errors are logged as the engine's; log_min_error_statement decides which reports carry their statement", async () => {
  const server = await startPgts();
  const c = await server.client();
  const pid = (await c.query("select pg_backend_pid() as pid")).rows[0].pid as number;
  // Refused by pgts itself, not the engine.
  await c.query("select 1; discard all").catch(() => {});
  await c.query("set log_min_error_statement = 'panic'");
  await c.query("select 1/0").catch(() => {});
  await c.query("set log_min_error_statement = 'warning'");
  await c.query("do $$ begin raise warning 'careful'; end $$");
  await c.end();
  const expected = [
    "ERROR:  DISCARD ALL must be sent as a query of its own",
    "DETAIL:  pgts runs every session on one PGlite backend and carries out this command for this session only.",
    "STATEMENT:  select 1; discard all",
    "ERROR:  division by zero",
    "WARNING:  careful",
    "CONTEXT:  PL/pgSQL function inline_code_block line 1 at RAISE",
    "STATEMENT:  do $$ begin raise warning 'careful'; end $$",
  ];
  await expectLogLines(server, pid, expected);
});
