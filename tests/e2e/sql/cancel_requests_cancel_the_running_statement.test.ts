/**
 * CancelRequest through a real pgts server: psql's Ctrl-C (SIGINT to psql,
 * which opens a new connection with the backend's pid and secret key) and a
 * hand-sent CancelRequest with the BackendKeyData node-postgres received
 * both end the running statement with 57014, also when it comes in the
 * statement's first milliseconds; a wrong key or pid cancels nothing.
 */

import { expect, test } from "bun:test";
import {
  cancelRequest,
  PG_BIN,
  pgClient,
  RawConnection,
  sharedServer,
  sleep,
  useSqlServers,
  waitFor,
} from "../../helpers/pgts-sql.ts";

useSqlServers();
const server = sharedServer();

function keyOf(client: unknown): { pid: number; key: number } {
  const c = client as { processID: number; secretKey: number };
  return { pid: c.processID, key: c.secretKey };
}

/**
 * Sends the CancelRequest until `running` settles: a cancel that arrives
 * before the statement reached the engine cancels nothing (as in
 * PostgreSQL), and a loaded machine may be slow to get there.
 */
async function cancelUntilSettled(pid: number, key: number, running: Promise<unknown>) {
  let settled = false;
  void running.finally(() => (settled = true));
  await sleep(300);
  for (let i = 0; i < 30 && !settled; i++) {
    await sendCancel(pid, key);
    await Promise.race([running, sleep(500)]);
  }
  return await running;
}

async function sendCancel(pid: number, key: number): Promise<void> {
  const raw = await RawConnection.open(server());
  raw.send(cancelRequest(pid, key));
  // The server closes a cancel connection without a word.
  expect(await raw.drain()).toEqual([]);
}

test("SIGINT to psql running pg_sleep cancels it with 57014", async () => {
  const s = server();
  const p = Bun.spawn(
    [
      `${PG_BIN}/psql`,
      "-X",
      "-h",
      s.socketDir,
      "-p",
      String(s.port),
      "-U",
      "postgres",
      "-c",
      "\\warn connected",
      "-c",
      "select pg_sleep(20)",
    ],
    { stdout: "pipe", stderr: "pipe", stdin: "ignore" },
  );
  // A SIGINT before the statement is sent makes psql skip it and exit
  // without a word: wait until psql is connected and about to send it.
  const stderr = p.stderr.getReader();
  let err = "";
  const deadline = Date.now() + 30_000;
  while (!err.includes("connected\n") && Date.now() < deadline) {
    const { value, done } = await stderr.read();
    if (done) break;
    err += new TextDecoder().decode(value);
  }
  expect(err).toBe("connected\n");
  // psql sends a CancelRequest on each SIGINT while it waits for the result;
  // repeat in case the first one came before the statement started.
  await sleep(300);
  const started = Date.now();
  let exited = false;
  void p.exited.then(() => (exited = true));
  for (let i = 0; i < 20 && !exited; i++) {
    p.kill("SIGINT");
    await Promise.race([p.exited, sleep(500)]);
  }
  const readRest = async () => {
    for (;;) {
      const { value, done } = await stderr.read();
      if (done) return;
      err += new TextDecoder().decode(value);
    }
  };
  const [out, , code] = await Promise.all([
    new Response(p.stdout).text(),
    readRest(),
    p.exited,
  ]);
  expect(Date.now() - started).toBeLessThan(10_000);
  expect(out).toBe("");
  expect(err).toContain("Cancel request sent");
  expect(err).toContain("ERROR:  canceling statement due to user request");
  expect(code).toBe(1);
});

test("a CancelRequest with the BackendKeyData node-postgres got cancels its statement; the connection goes on", async () => {
  const c = await pgClient(server());
  const { pid, key } = keyOf(c);
  expect(pid).toBeGreaterThan(0);
  const running = c.query("select pg_sleep(20)").catch((e) => e);
  const e = await cancelUntilSettled(pid, key, running);
  expect(e.code).toBe("57014");
  expect(e.message).toBe("canceling statement due to user request");
  expect((await c.query("select 'after cancel' as v")).rows).toEqual([{ v: "after cancel" }]);
});

test("one CancelRequest sent the moment the statement holds the engine ends it at once, every time", async () => {
  // Not repeated: the statement is active on the engine (pg_stat_activity,
  // polled without a pause) but may not have begun inside it, and a
  // single cancel must still stop it (it once ran its 30 s to the end).
  const watch = await pgClient(server());
  const c = await pgClient(server());
  const { pid, key } = keyOf(c);
  for (let i = 0; i < 15; i++) {
    // Connected beforehand, so that the cancel leaves at once.
    const raw = await RawConnection.open(server());
    const text = `select pg_sleep(30) -- ${i}`;
    const running = c.query(text).then(() => "done", (e) => e.code);
    for (let n = 0;; n++) {
      const r = await watch.query(
        "select state, query, wait_event from pg_stat_activity where pid = $1",
        [pid],
      );
      const row = r.rows[0];
      if (row?.state === "active" && row.query === text && row.wait_event === null) break;
      if (n > 2000) throw new Error(`never saw ${text} run`);
    }
    raw.send(cancelRequest(pid, key));
    expect(await raw.drain()).toEqual([]);
    expect(await Promise.race([running, sleep(4000).then(() => "still running")])).toBe("57014");
  }
  expect((await c.query("select 'after' as v")).rows).toEqual([{ v: "after" }]);
  await watch.end();
});

test("a cancel inside a transaction block aborts the block until ROLLBACK", async () => {
  const c = await pgClient(server());
  const { pid, key } = keyOf(c);
  await c.query("begin");
  const running = c.query("select pg_sleep(20)").catch((e) => e);
  expect((await cancelUntilSettled(pid, key, running)).code).toBe("57014");
  expect((await c.query("select 1").catch((e) => e)).code).toBe("25P02");
  await c.query("rollback");
  expect((await c.query("select 2 as v")).rows).toEqual([{ v: 2 }]);
});

test("a CancelRequest with a wrong key or for another pid cancels nothing", async () => {
  const c = await pgClient(server());
  const { pid, key } = keyOf(c);
  const logFrom = server().log.length;
  const running = c.query("select pg_sleep(1.5) as slept, 'done' as v");
  await sleep(300);
  await sendCancel(pid, key ^ 0x5a5a5a5a);
  await sendCancel(pid + 100_000, key);
  const r = await running;
  expect(r.rows[0].v).toBe("done");
  await waitFor(
    "the wrong-key LOG line",
    () => server().log.slice(logFrom).includes(`wrong key in cancel request for process ${pid}`),
  );
  expect(server().log.slice(logFrom)).toContain(
    `PID ${pid + 100_000} in cancel request did not match any process`,
  );
});
