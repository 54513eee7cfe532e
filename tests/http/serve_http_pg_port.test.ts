/**
 * `pgts serve-http --pg-port`: the PostgreSQL-protocol port of the HTTP
 * front end serves psql and node-postgres as `pgts start` does. A
 * CancelRequest (psql's Ctrl-C, or one sent with the BackendKeyData a
 * driver received) cancels the running statement with 57014, a wrong key
 * cancels nothing and is logged, and `log_connections` logs each
 * authorised connection.
 */

import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import {
  PG_BIN,
  pgtsCli,
  pgtsCommand,
  ROOT,
  sleep,
  TEST_RUNTIME,
  waitFor,
} from "../helpers/pgts.ts";
import { cancelRequest } from "../helpers/pgts-sql.ts";

let proc: ReturnType<typeof Bun.spawn> | null = null;
let log = "";
let pgPort = 0;
const clients: pg.Client[] = [];
const dir = mkdtempSync(join(tmpdir(), "pgts-serve-http-pg-"));

beforeAll(async () => {
  const init = await pgtsCli(["init", "-D", join(dir, "d")]);
  if (init.code !== 0) throw new Error(`pgts init failed:\n${init.err}`);
  proc = Bun.spawn(
    pgtsCommand(TEST_RUNTIME, [
      "serve-http",
      "-D",
      join(dir, "d"),
      "--port",
      "0",
      "--pg-port",
      "0",
      "-c",
      "log_connections=on",
    ]),
    { cwd: ROOT, stdin: "ignore", stdout: "ignore", stderr: "pipe", env: { ...process.env } },
  );
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc!.stderr as ReadableStream<Uint8Array>) {
      log += decoder.decode(chunk, { stream: true });
    }
  })();
  const m = await waitFor("serve-http's admin console line", () => {
    if (proc!.exitCode !== null) throw new Error(`serve-http exited:\n${log}`);
    return /admin console: psql -h \S+ -p (\d+)/.exec(log) ?? undefined;
  }, { timeoutMs: 60_000, detail: () => log });
  pgPort = Number(m[1]);
}, 90_000);

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => {});
  proc?.kill("SIGKILL");
  await proc?.exited;
  rmSync(dir, { recursive: true, force: true });
});

async function client(): Promise<pg.Client> {
  const c = new pg.Client({
    host: "127.0.0.1",
    port: pgPort,
    user: "postgres",
    database: "postgres",
  });
  c.on("error", () => {});
  clients.push(c);
  await c.connect();
  return c;
}

/** Sends a CancelRequest on a connection of its own and waits for the server to close it. */
function sendCancel(pid: number, key: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port: pgPort }, () => s.write(cancelRequest(pid, key)));
    s.on("error", reject);
    s.on("close", () => resolve());
  });
}

test("psql's Ctrl-C cancels a statement on serve-http's PostgreSQL port", async () => {
  const p = Bun.spawn(
    [
      `${PG_BIN}/psql`,
      "-X",
      "-h",
      "127.0.0.1",
      "-p",
      String(pgPort),
      "-U",
      "postgres",
      "-c",
      "select pg_sleep(20)",
    ],
    { stdout: "pipe", stderr: "pipe", stdin: "ignore" },
  );
  // psql sends a CancelRequest on each SIGINT while it waits for the result;
  // repeat in case the first one came before the statement started.
  await sleep(1_000);
  let exited = false;
  void p.exited.then(() => (exited = true));
  for (let i = 0; i < 20 && !exited; i++) {
    p.kill("SIGINT");
    await Promise.race([p.exited, sleep(500)]);
  }
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  expect(err).toContain("ERROR:  canceling statement due to user request");
  expect(code).toBe(1);
}, 60_000);

test(
  "a CancelRequest with node-postgres's key cancels its statement; a wrong key is logged and cancels nothing",
  async () => {
    const c = await client();
    const { processID: pid, secretKey: key } = c as unknown as {
      processID: number;
      secretKey: number;
    };
    const from = log.length;
    const slow = c.query("select pg_sleep(1.5) as slept, 'done' as v");
    await sleep(300);
    await sendCancel(pid, key ^ 0x5a5a5a5a);
    expect((await slow).rows[0].v).toBe("done");
    await waitFor(
      "the wrong-key LOG line",
      () => log.slice(from).includes(`wrong key in cancel request for process ${pid}`),
    );

    let settled = false;
    const running = c.query("select pg_sleep(20)").catch((e) => e).finally(() => (settled = true));
    await sleep(300);
    for (let i = 0; i < 30 && !settled; i++) {
      await sendCancel(pid, key);
      await Promise.race([running, sleep(500)]);
    }
    const e = await running;
    expect(e.code).toBe("57014");
    expect((await c.query("select 'after cancel' as v")).rows).toEqual([{ v: "after cancel" }]);
  },
  60_000,
);

test(
  "log_connections logs each authorised connection on serve-http's PostgreSQL port",
  async () => {
    const from = log.length;
    const c = await client();
    await c.query("select 1");
    await waitFor(
      "the connection authorized LOG line",
      () => log.slice(from).includes("connection authorized: user=postgres database=postgres"),
    );
  },
  30_000,
);
