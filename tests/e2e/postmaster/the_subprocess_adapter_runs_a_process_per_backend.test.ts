/**
 * `--adapter subprocess`, the process-per-backend model under its own name
 * ("bun" stays as the older name of the same thing): each backend is a
 * process of its own, a child of the postmaster. With no `--adapter`
 * (the in-process default) there are no such processes, yet each backend
 * still has a pid of its own, in pg_backend_pid() and in its log lines. An
 * unknown adapter is refused with the list of valid ones.
 */

import { expect, test } from "bun:test";
import { backendPid, childPidsOf, pgtsCli, startPgts, usePgtsServers } from "../../helpers/pgts.ts";

usePgtsServers();

for (const name of ["subprocess", "bun"] as const) {
  test(`--adapter ${name} runs each backend as a child process of the postmaster`, async () => {
    const s = await startPgts({ adapter: name });
    const a = await s.client();
    const b = await s.client();
    const pids = [backendPid(a), backendPid(b)];
    expect(pids[0]).not.toBe(pids[1]);
    const children = childPidsOf(s.pid);
    for (const pid of pids) expect(children).toContain(pid);
    const r = await a.query("select pg_backend_pid() as pid");
    expect(r.rows).toEqual([{ pid: pids[0] }]);
  });
}

test("with no --adapter, backends are tasks in the postmaster's process and log with their own pid", async () => {
  const s = await startPgts({ settings: { log_connections: true } });
  const a = await s.client();
  const b = await s.client();
  const pids = [backendPid(a), backendPid(b)];
  expect(pids[0]).not.toBe(pids[1]);
  // Only the postmaster: no process per backend, and the engine is a thread.
  expect(childPidsOf(s.pid)).toEqual([]);
  expect(await a.query("select pg_backend_pid() as pid")).toMatchObject({
    rows: [{ pid: pids[0] }],
  });
  // log_line_prefix '%m [%p] ': each backend's lines carry its pid, as
  // PostgreSQL's do, and the postmaster's carry the postmaster's.
  for (const pid of pids) {
    await s.waitForLog(new RegExp(`\\[${pid}\\] LOG: {2}connection authorized: user=`));
  }
  // A line logged later, on an event from the engine: still the backend's.
  b.on("error", () => {});
  await b.query("set idle_in_transaction_session_timeout = '100ms'");
  await b.query("begin");
  await s.waitForLog(
    new RegExp(`\\[${pids[1]}\\] FATAL: {2}terminating connection due to idle-in-transaction`),
  );
  expect(s.log).toMatch(new RegExp(`\\[${s.pid}\\] LOG: {2}database system is ready`));
});

test("an unknown --adapter is refused with the valid names", async () => {
  const r = await pgtsCli(["start", "-D", "/nonexistent", "--adapter", "threads"]);
  expect(r.code).toBe(1);
  expect(r.err).toContain('invalid adapter "threads"');
  expect(r.err).toContain(
    'Valid adapters are "inproc", "subprocess", "worker" ("bun" is "subprocess").',
  );
});
