/**
 * PostgreSQL's own server settings (shared_buffers, work_mem, the planner's
 * costs, DateStyle, TimeZone...) given with `-c` or in a postgresql.conf
 * copied from a PostgreSQL server: the server starts, and the engine runs
 * with them (SHOW, pg_settings and the shared memory it allocated say so);
 * shared_buffers cannot be SET or reloaded, as in PostgreSQL.
 */

import { expect, test } from "bun:test";
import { statSync } from "node:fs";
import pg from "pg";
import { pgtsCli, preparePgts, startPgts, usePgtsServers, waitFor } from "../../helpers/pgts.ts";

usePgtsServers();

/** The settings PostgreSQL 15's initdb leaves uncommented in postgresql.conf. */
const INITDB_CONF = `
max_connections = 100\t\t\t# (change requires restart)
shared_buffers = 128MB\t\t\t# min 128kB
dynamic_shared_memory_type = posix\t# the default is usually the first option
max_wal_size = 1GB
min_wal_size = 80MB
log_timezone = 'Etc/UTC'
datestyle = 'iso, mdy'
timezone = 'Etc/UTC'
lc_messages = 'C.UTF-8'\t\t\t# locale for system error message
lc_monetary = 'C.UTF-8'\t\t\t# locale for monetary formatting
lc_numeric = 'C.UTF-8'\t\t\t# locale for number formatting
lc_time = 'C.UTF-8'\t\t\t\t# locale for time formatting
default_text_search_config = 'pg_catalog.english'
`;

/** What a tuning guide adds (pgtune's output for a small server). */
const TUNED_CONF = `
shared_buffers = 20MB
effective_cache_size = 3GB
maintenance_work_mem = 256MB
checkpoint_completion_target = 0.8
wal_buffers = 1MB
default_statistics_target = 150
random_page_cost = 1.1
effective_io_concurrency = 200
work_mem = 5242kB
huge_pages = off
min_wal_size = 1GB
max_wal_size = 4GB
max_worker_processes = 2
max_parallel_workers_per_gather = 1
max_parallel_workers = 2
max_parallel_maintenance_workers = 1
`;

test("-c shared_buffers sizes the engine's buffers, in every database; SET is refused with 55P02", async () => {
  const server = await startPgts({ settings: { shared_buffers: "24MB" } });
  expect(await server.psql("show shared_buffers")).toMatchObject({ code: 0, out: "24MB\n" });
  // The engine's own view: 3,072 buffers of 8kB, set on its command line, and
  // that much shared memory allocated for them.
  expect(
    await server.psql(
      "select setting, unit, context, source from pg_settings where name = 'shared_buffers'",
    ),
  ).toMatchObject({ code: 0, out: "3072|8kB|postmaster|command line\n" });
  const blocks = await server.psql(
    "select size from pg_shmem_allocations where name = 'Buffer Blocks'",
  );
  expect(Number(blocks.out)).toBeGreaterThanOrEqual(24 * 1024 * 1024);
  expect(Number(blocks.out)).toBeLessThan(25 * 1024 * 1024);

  const c = await server.client();
  const e = await c.query("set shared_buffers = '32MB'").catch((x) => x);
  expect(e.code).toBe("55P02");
  expect(e.message).toBe(
    'parameter "shared_buffers" cannot be changed without restarting the server',
  );
  expect((await c.query("show shared_buffers")).rows).toEqual([{ shared_buffers: "24MB" }]);

  // Another database's engine starts with the same setting.
  await c.query("create database other");
  const o = new pg.Client({
    host: server.host,
    port: server.port,
    user: "postgres",
    database: "other",
    connectionTimeoutMillis: 30_000,
  });
  await o.connect();
  try {
    expect((await o.query("show shared_buffers")).rows).toEqual([{ shared_buffers: "24MB" }]);
  } finally {
    await o.end();
  }
});

test("a postgresql.conf written by PostgreSQL's initdb and tuned by a guide starts the server with its values", async () => {
  const server = await preparePgts();
  server.appendConf(INITDB_CONF + TUNED_CONF);
  // null: none of the test harness's -c shared_buffers; the file decides.
  await server.start({ settings: { shared_buffers: null } });
  const shown = await server.psql(
    "select name || '=' || current_setting(name) from pg_settings where name in (" +
      "'shared_buffers', 'effective_cache_size', 'maintenance_work_mem', " +
      "'checkpoint_completion_target', 'wal_buffers', 'default_statistics_target', " +
      "'random_page_cost', 'effective_io_concurrency', 'work_mem', 'huge_pages', " +
      "'min_wal_size', 'max_wal_size', 'DateStyle', 'TimeZone', 'lc_monetary', " +
      "'default_text_search_config', 'log_timezone') order by name",
  );
  expect(shown.code).toBe(0);
  expect(shown.out.trim().split("\n")).toEqual([
    "DateStyle=ISO, MDY",
    "TimeZone=Etc/UTC",
    "checkpoint_completion_target=0.8",
    "default_statistics_target=150",
    "default_text_search_config=pg_catalog.english",
    "effective_cache_size=3GB",
    "effective_io_concurrency=200",
    "huge_pages=off",
    "lc_monetary=C.UTF-8",
    "log_timezone=Etc/UTC",
    "maintenance_work_mem=256MB",
    "max_wal_size=4GB",
    "min_wal_size=1GB",
    "random_page_cost=1.1",
    "shared_buffers=20MB",
    "wal_buffers=1MB",
    "work_mem=5242kB",
  ]);
  // The engine is one process and runs no parallel workers: accepted, and it keeps 0.
  expect(await server.psql("show max_parallel_workers_per_gather")).toMatchObject({
    code: 0,
    out: "0\n",
  });
  // A session's own SET of a user parameter still works, and RESET goes back to the file's.
  const c = await server.client();
  await c.query("set work_mem = '8MB'");
  expect((await c.query("show work_mem")).rows).toEqual([{ work_mem: "8MB" }]);
  await c.query("reset work_mem");
  expect((await c.query("show work_mem")).rows).toEqual([{ work_mem: "5242kB" }]);
});

test("pgts reload of a changed shared_buffers logs that it needs a restart and keeps the engine's", async () => {
  const server = await preparePgts();
  server.appendConf("shared_buffers = 20MB");
  await server.start({ settings: { shared_buffers: null } });
  expect(await server.psql("show shared_buffers")).toMatchObject({ code: 0, out: "20MB\n" });

  server.appendConf("shared_buffers = 40MB");
  const from = server.log.length;
  expect((await server.reload()).code).toBe(0);
  await server.waitForLog(
    /LOG: {2}parameter "shared_buffers" cannot be changed without restarting the server/,
    { from },
  );
  expect(server.log.slice(from)).not.toContain('parameter "shared_buffers" changed');
  expect(await server.psql("show shared_buffers")).toMatchObject({ code: 0, out: "20MB\n" });
});

test("SHOW log_timezone is the zone the log lines are written in, from -c and after a reload", async () => {
  const server = await preparePgts();
  await server.start({ settings: { log_timezone: "Asia/Tokyo" } });
  expect(await server.psql("show log_timezone")).toMatchObject({ code: 0, out: "Asia/Tokyo\n" });
  // The log's own lines are stamped in it: their date and hour are Tokyo's.
  const tokyo = (t: number) =>
    new Intl.DateTimeFormat("sv-SE", {
      timeZone: "Asia/Tokyo",
      dateStyle: "short",
      timeStyle: "short",
      hourCycle: "h23",
    }).format(t).slice(0, 13);
  const stamp = /^(\d{4}-\d\d-\d\d \d\d):\d\d:\d\d\.\d{3} /m.exec(server.log)?.[1];
  expect([tokyo(Date.now() - 60_000), tokyo(Date.now())]).toContain(stamp);
  await server.stop();

  server.appendConf("log_timezone = 'America/Argentina/Buenos_Aires'");
  await server.start({ settings: { log_timezone: null } });
  expect(await server.psql("show log_timezone")).toMatchObject({
    code: 0,
    out: "America/Argentina/Buenos_Aires\n",
  });
  server.appendConf("log_timezone = 'Europe/Paris'");
  const from = server.log.length;
  expect((await server.reload()).code).toBe(0);
  await server.waitForLog(/parameter "log_timezone" changed to "Europe\/Paris"/, { from });
  // A new session, and an existing one at its next statement, see the new zone.
  await waitFor(
    "log_timezone to follow the reload",
    async () => (await server.psql("show log_timezone")).out === "Europe/Paris\n" || undefined,
  );
});

test("SHOW answers the logging settings the server runs with", async () => {
  const server = await startPgts({
    settings: {
      log_line_prefix: "%t [%p] %q%u@%d ",
      log_min_messages: "info",
      log_connections: "on",
      log_disconnections: "on",
    },
  });
  const shown = await server.psql(
    "select name || '=' || current_setting(name) from pg_settings where name in (" +
      "'log_line_prefix', 'log_min_messages', 'log_connections', 'log_disconnections') order by name",
  );
  expect(shown.out.trim().split("\n")).toEqual([
    "log_connections=on",
    "log_disconnections=on",
    "log_line_prefix=%t [%p] %q%u@%d ",
    "log_min_messages=info",
  ]);
});

test("a session sees the server's own settings: SHOW port and max_connections, and statement_timeout, lock_timeout and password_encryption from the configuration act", async () => {
  const server = await startPgts({
    settings: {
      max_connections: 40,
      cluster_name: "ledger",
      statement_timeout: "1s",
      lock_timeout: "7s",
      password_encryption: "md5",
      // 0: no bound on a wait for the engine (the engine PANICked at start on it until 2026-12-07).
      engine_wait_timeout: 0,
    },
  });
  const c = await server.client();
  const show = async (name: string) =>
    (await c.query(`select current_setting('${name}') as v`)).rows[0].v;
  // The port the server listens on (the tests pass 0: the kernel picks one).
  expect(await show("port")).toBe(String(server.port));
  expect(await show("max_connections")).toBe("40");
  expect(await show("cluster_name")).toBe("ledger");
  expect(await show("lock_timeout")).toBe("7s");
  expect(
    (await c.query("select setting from pg_settings where name = 'statement_timeout'")).rows,
  ).toEqual([{ setting: "1000" }]);

  // statement_timeout from the configuration ends a statement of a session
  // that never set it; the session's own SET wins, and RESET goes back to it.
  const e = await c.query("select pg_sleep(3)").catch((x) => x);
  expect(e.code).toBe("57014");
  expect(e.message).toBe("canceling statement due to statement timeout");
  await c.query("set statement_timeout = 0");
  expect((await c.query("select pg_sleep(1.3)")).rowCount).toBe(1);
  await c.query("reset statement_timeout");
  expect(await show("statement_timeout")).toBe("1s");

  // password_encryption = md5 stores an MD5 password, with PostgreSQL 18's warning.
  const notices: string[] = [];
  c.on("notice", (n) => notices.push(n.message ?? ""));
  await c.query("create role md5user login password 'secret'");
  const stored = await server.psql("select rolpassword from pg_authid where rolname = 'md5user'");
  expect(stored.out).toMatch(/^md5[0-9a-f]{32}\n$/);
  expect(notices).toContain("setting an MD5-encrypted password");
  await c.end();
});

/** What a managed PostgreSQL's postgresql.conf sets, across contexts (user, superuser, sighup, postmaster). */
const MANAGED_CONF = `
search_path = '"$user", public'
default_transaction_isolation = 'repeatable read'
client_min_messages = warning
bytea_output = 'hex'
temp_buffers = 16MB
jit = off
seq_page_cost = 1.0
log_min_duration_statement = 1000
log_statement = 'ddl'
log_lock_waits = on
track_io_timing = on
track_functions = pl
log_checkpoints = on
autovacuum_naptime = 30s
autovacuum_vacuum_scale_factor = 0.05
autovacuum_vacuum_cost_delay = 2ms
max_locks_per_transaction = 128
wal_level = replica
tcp_keepalives_idle = 60
checkpoint_timeout = 15min
`;

test("a managed PostgreSQL's postgresql.conf starts the server, SHOW answers its values, and default_transaction_isolation acts on a new session", async () => {
  const server = await preparePgts();
  server.appendConf(MANAGED_CONF);
  await server.start();
  const shown = await server.psql(
    "select name || '=' || current_setting(name) from pg_settings where name in (" +
      "'search_path', 'default_transaction_isolation', 'client_min_messages', 'bytea_output', " +
      "'temp_buffers', 'jit', 'seq_page_cost', 'log_min_duration_statement', 'log_statement', " +
      "'log_lock_waits', 'track_io_timing', 'track_functions', 'log_checkpoints', " +
      "'autovacuum_naptime', 'autovacuum_vacuum_scale_factor', 'autovacuum_vacuum_cost_delay', " +
      "'max_locks_per_transaction', 'wal_level', 'tcp_keepalives_idle', 'checkpoint_timeout') " +
      "order by name",
  );
  expect(shown.code).toBe(0);
  expect(shown.out.trim().split("\n")).toEqual([
    "autovacuum_naptime=30s",
    "autovacuum_vacuum_cost_delay=2ms",
    "autovacuum_vacuum_scale_factor=0.05",
    "bytea_output=hex",
    "checkpoint_timeout=15min",
    "client_min_messages=warning",
    "default_transaction_isolation=repeatable read",
    "jit=off",
    "log_checkpoints=on",
    "log_lock_waits=on",
    "log_min_duration_statement=1s",
    "log_statement=ddl",
    "max_locks_per_transaction=128",
    'search_path="$user", public',
    "seq_page_cost=1",
    // Over the Unix socket psql uses here, as in PostgreSQL: "always reads as zero".
    "tcp_keepalives_idle=0",
    "temp_buffers=16MB",
    "track_functions=pl",
    "track_io_timing=on",
    "wal_level=replica",
  ]);
  // Over TCP the file's value.
  const keepalive = await server.psql("show tcp_keepalives_idle", { tcp: true });
  expect(keepalive.out.trim()).toBe("60");
  // A new session's transactions are repeatable read; its own SET still wins.
  const c = await server.client();
  await c.query("begin");
  expect((await c.query("show transaction_isolation")).rows).toEqual([
    { transaction_isolation: "repeatable read" },
  ]);
  await c.query("commit");
  await c.query("set default_transaction_isolation = 'read committed'");
  await c.query("begin");
  expect((await c.query("show transaction_isolation")).rows).toEqual([
    { transaction_isolation: "read committed" },
  ]);
  await c.query("commit");
  // A reload reaches the engine as it reaches PostgreSQL's backends: a
  // sighup parameter and a user one, where the session set nothing itself.
  server.appendConf(
    "autovacuum_naptime = 45s\nwork_mem = 7MB\ndefault_transaction_isolation = 'serializable'",
  );
  const from = server.log.length;
  expect((await server.reload()).code).toBe(0);
  await server.waitForLog(/LOG: {2}parameter "autovacuum_naptime" changed to "45s"/, { from });
  await server.waitForLog(/LOG: {2}parameter "work_mem" changed to "7MB"/, { from });
  const fresh = await server.client();
  await waitFor(
    "the engine to take the reload",
    async () => (await fresh.query("show work_mem")).rows[0].work_mem === "7MB" || undefined,
  );
  expect((await fresh.query("show autovacuum_naptime")).rows).toEqual([
    { autovacuum_naptime: "45s" },
  ]);
  await fresh.query("begin");
  expect((await fresh.query("show transaction_isolation")).rows).toEqual([
    { transaction_isolation: "serializable" },
  ]);
  await fresh.query("commit");
  // The session that SET its own keeps it.
  expect((await c.query("show default_transaction_isolation")).rows).toEqual([
    { default_transaction_isolation: "read committed" },
  ]);
  await c.end();
  await fresh.end();
});

test("a parameter pgts refuses keeps the server from starting, with the reason as hint; so does a value the engine could not start with", async () => {
  const server = await preparePgts();
  const conf = `${server.dataDir}/postgresql.conf`;
  for (
    const [setting, message] of [
      [
        "config_file=/etc/postgresql/18/main/postgresql.conf",
        'parameter "config_file" is not supported',
      ],
      ["max_stack_depth=2MB", 'unsupported value for parameter "max_stack_depth": "2MB"'],
      ["search_path=a,,b", 'invalid value for parameter "search_path": "a,,b"'],
      ["io_method=worker", 'unsupported value for parameter "io_method": "worker"'],
    ]
  ) {
    const r = await pgtsCli(["start", "-D", server.dataDir, "-p", "0", "-c", setting!]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`FATAL:  ${message}`);
  }

  server.appendConf("exit_on_error = on\nsession_preload_libraries = 'auto_explain'");
  const refused = await pgtsCli(["start", "-D", server.dataDir, "-p", "0"]);
  expect(refused.code).toBe(1);
  expect(refused.err).toContain('LOG:  unsupported value for parameter "exit_on_error": "on"');
  expect(refused.err).toContain(
    "HINT:  Every session shares the engine's one backend: an error ending it would end every session",
  );
  expect(refused.err).toContain(
    'LOG:  unsupported value for parameter "session_preload_libraries": "auto_explain"',
  );
  expect(refused.err).toContain("HINT:  The engine loads no C libraries of its own");
  expect(refused.err).toContain(`FATAL:  configuration file "${conf}" contains errors`);
});

test("idle_session_timeout from the configuration closes an idle session with 57P05; a session's own SET wins", async () => {
  const server = await startPgts({ settings: { idle_session_timeout: "1s" } });
  expect(await server.psql("show idle_session_timeout")).toMatchObject({ code: 0, out: "1s\n" });
  const idle = await server.client();
  const errors: Array<Error & { code?: string }> = [];
  idle.on("error", (e) => errors.push(e));
  const kept = await server.client();
  await kept.query("set idle_session_timeout = 0");
  await waitFor("the idle-session FATAL", () => errors.length > 0, { timeoutMs: 10_000 });
  expect(errors[0]?.code).toBe("57P05");
  expect(errors[0]?.message).toBe("terminating connection due to idle-session timeout");
  expect((await kept.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
  await kept.end();
});

test("unix_socket_permissions and unix_socket_group act on pgts's Unix socket; an unknown group is no socket", async () => {
  const group = String(process.getgid?.() ?? 0);
  const server = await startPgts({
    settings: { unix_socket_permissions: "0770", unix_socket_group: group },
  });
  const socket = `${server.socketDir}/.s.PGSQL.${server.port}`;
  expect(statSync(socket).mode & 0o777).toBe(0o770);
  expect(String(statSync(socket).gid)).toBe(group);
  expect(await server.psql("show unix_socket_permissions")).toMatchObject({
    code: 0,
    out: "0770\n",
  });
  await server.stop();

  const r = await pgtsCli([
    "start",
    "-D",
    server.dataDir,
    "-p",
    "0",
    "-c",
    `unix_socket_directories=${server.dataDir}`,
    "-c",
    "listen_addresses=",
    "-c",
    "unix_socket_group=no_such_group_here",
  ]);
  expect(r.code).toBe(1);
  expect(r.err).toContain('DETAIL:  group "no_such_group_here" does not exist');
  expect(r.err).toContain("FATAL:  could not create any Unix-domain sockets");
});
