/**
 * `--adapter subprocess`, the process-per-backend model under its own name
 * ("bun" stays as the older name of the same thing): each backend is a
 * process of its own, a child of the postmaster; and an unknown adapter is
 * refused with the list of valid ones.
 */

import { expect, test } from "bun:test";
import { backendPid, childPidsOf, pgtsCli, startPgts, usePgtsServers } from "../../helpers/pgts.ts";

usePgtsServers();

test("--adapter subprocess runs each backend as a child process of the postmaster", async () => {
  const s = await startPgts({ adapter: "subprocess" });
  const a = await s.client();
  const b = await s.client();
  const pids = [backendPid(a), backendPid(b)];
  expect(pids[0]).not.toBe(pids[1]);
  const children = childPidsOf(s.pid);
  for (const pid of pids) expect(children).toContain(pid);
  const r = await a.query("select pg_backend_pid() as pid");
  expect(r.rows).toEqual([{ pid: pids[0] }]);
});

test("an unknown --adapter is refused with the valid names", async () => {
  const r = await pgtsCli(["start", "-D", "/nonexistent", "--adapter", "threads"]);
  expect(r.code).toBe(1);
  expect(r.err).toContain('invalid adapter "threads"');
  expect(r.err).toContain('Valid adapters are "subprocess", "bun", "worker", "inproc".');
});
