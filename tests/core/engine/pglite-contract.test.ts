/**
 * The engine contract (src/core/engine/types.ts) as the PGlite engine keeps
 * it, driven with raw protocol bytes through `Engine`/`EngineSession`:
 * the sequences no client library produces (unsynced batches, interleaving
 * by hand, Terminate inside a batch).
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { EngineSession } from "../../../src/core/engine/types.ts";
import { openEngine, type PgliteEngine } from "../../../src/engines/pglite/mod.ts";
import { batch, Collector, FE } from "../../helpers/engine-wire.ts";

const WAIT_MS = 800;
let engine: PgliteEngine;
let pid = 900;

beforeAll(async () => {
  engine = await openEngine("memory://", { engineWaitTimeoutMs: WAIT_MS });
}, 60_000);

afterAll(async () => {
  await engine?.close();
}, 30_000);

async function session(params: Record<string, string> = {}) {
  const { session, parameterStatus } = await engine.startSession({
    pid: ++pid,
    user: "postgres",
    database: "postgres",
    params,
  });
  return { s: session, pid, parameterStatus };
}

async function run(s: EngineSession, ...m: Uint8Array[]): Promise<Collector> {
  const c = new Collector();
  await s.exec(batch(...m), c.out);
  return c;
}

describe("the PGlite engine through the Engine contract", () => {
  test("startup reports ParameterStatus with the session's own application_name and user", async () => {
    const { parameterStatus } = await session({ application_name: "raw-a" });
    const ps = new Map(parameterStatus);
    expect(ps.get("application_name")).toBe("raw-a");
    expect(ps.get("session_authorization")).toBe("postgres");
    expect(ps.get("is_superuser")).toBe("on");
    expect(ps.get("server_version")).toBeDefined();
  });

  test("an unsynced extended batch that binds keeps the engine; another session's Parse waits for Sync", async () => {
    const a = await session(), b = await session();
    const ca = await run(a.s, FE.parse("SELECT 111 AS v"), FE.bind(), FE.flush());
    expect(ca.types).toBe("12");
    const cb = new Collector();
    const pb = b.s.exec(batch(FE.parse("SELECT 222 AS v"), FE.flush()), cb.out);
    await Bun.sleep(50);
    expect(cb.types).toBe(""); // B waits: A's portal is still open
    const ca2 = await run(a.s, FE.execute(), FE.sync());
    expect(ca2.values).toEqual(["111"]);
    await pb;
    expect(cb.types).toBe("1");
    const cb2 = await run(b.s, FE.bind(), FE.execute(), FE.sync());
    expect(cb2.values).toEqual(["222"]);
  });

  test("a Parse up to a Flush keeps nothing: the other session goes on, and each binds its own", async () => {
    const a = await session(), b = await session();
    expect((await run(a.s, FE.parse("SELECT 111 AS v"), FE.flush())).types).toBe("1");
    expect((await run(b.s, FE.parse("SELECT 222 AS v"), FE.flush())).types).toBe("1");
    expect((await run(b.s, FE.bind(), FE.execute(), FE.sync())).values).toEqual(["222"]);
    expect((await run(a.s, FE.bind(), FE.execute(), FE.sync())).values).toEqual(["111"]);
  });

  test("a session's unnamed statement survives another session's queries between Syncs", async () => {
    const a = await session(), b = await session();
    expect((await run(a.s, FE.parse("SELECT 'mine' AS v"), FE.sync())).types).toBe("1Z");
    await run(b.s, FE.parse("SELECT 'theirs' AS v"), FE.sync());
    await run(b.s, FE.query("SELECT 1"));
    const c = await run(a.s, FE.bind(), FE.execute(), FE.sync());
    expect(c.types).toBe("2DCZ");
    expect(c.values).toEqual(["mine"]);
    // B never parsed after its Query: binding the unnamed statement fails, as in PostgreSQL.
    const cb = await run(b.s, FE.query("SELECT 2"), FE.bind(), FE.execute(), FE.sync());
    expect(cb.errors[0]?.C).toBe("26000");
  });

  test("a client gone mid-batch has its implicit transaction aborted, not committed", async () => {
    const a = await session(), b = await session();
    await run(b.s, FE.query("CREATE TABLE unsynced_t (x int)"));
    const ca = await run(
      a.s,
      FE.parse("INSERT INTO unsynced_t VALUES (1)"),
      FE.bind(),
      FE.execute(),
      FE.flush(),
    );
    expect(ca.types).toBe("12C");
    await a.s.close();
    expect((await run(b.s, FE.query("SELECT count(*) FROM unsynced_t"))).values).toEqual(["0"]);
  });

  test("Terminate inside a batch closes the session after the messages before it", async () => {
    const a = await session(), b = await session();
    await run(a.s, FE.query("BEGIN"), FE.query("CREATE TABLE term_t (x int)"));
    await a.s.exec(batch(FE.query("INSERT INTO term_t VALUES (1)"), FE.terminate()), () => {});
    const c = await run(b.s, FE.query("SELECT count(*) FROM pg_class WHERE relname = 'term_t'"));
    expect(c.values).toEqual(["0"]); // rolled back with the transaction
  });

  test("a wait for the engine is cancelled with 57014, and the batch is answered up to Sync", async () => {
    const a = await session(), b = await session();
    await run(a.s, FE.query("BEGIN"));
    await run(a.s, FE.query("SELECT 1")); // the block holds the engine from its first statement
    const cb = new Collector();
    const pb = b.s.exec(batch(FE.parse("SELECT 1"), FE.bind(), FE.execute(), FE.sync()), cb.out);
    await Bun.sleep(30);
    b.s.cancel();
    await pb;
    expect(cb.types).toBe("EZ");
    expect(cb.errors[0]?.C).toBe("57014");
    await run(a.s, FE.query("ROLLBACK"));
  });

  test("55P03 in a pipelined input answers every batch; the session stays in step", async () => {
    const a = await session(), b = await session();
    await run(a.s, FE.query("BEGIN"));
    await run(a.s, FE.query("SELECT 1")); // the block holds the engine from its first statement
    const cb = await run(
      b.s,
      FE.parse("SELECT 1"),
      FE.bind(),
      FE.execute(),
      FE.sync(),
      FE.query("SELECT 2"),
      FE.parse("SELECT 3"),
      FE.flush(),
    );
    expect(cb.types).toBe("EZEZE");
    expect(cb.errors.every((e) => e.C === "55P03" && e.M!.includes(`process ${a.pid}`))).toBe(true);
    await run(a.s, FE.query("COMMIT"));
    // The rest of the failed batch is skipped up to its Sync, then B runs normally.
    const cb2 = await run(b.s, FE.bind(), FE.execute(), FE.sync(), FE.query("SELECT 4"));
    expect(cb2.types).toBe("ZTDCZ");
    expect(cb2.values).toEqual(["4"]);
  });

  test("idle_in_transaction_session_timeout ends the holder with FATAL 25P03 through onAsync", async () => {
    const a = await session({ options: "-c idle_in_transaction_session_timeout=150" });
    const b = await session();
    const async = new Collector();
    let terminated = "";
    a.s.onAsync = async.out;
    a.s.onTerminate = (e) => {
      terminated = e.code;
    };
    await run(a.s, FE.query("SELECT 1")); // settings applied
    await run(a.s, FE.query("BEGIN"));
    await run(a.s, FE.query("SELECT 1")); // the block holds the engine from its first statement
    await Bun.sleep(300);
    expect(async.errors[0]).toMatchObject({ S: "FATAL", C: "25P03" });
    expect(terminated).toBe("25P03");
    expect(a.s.exec(FE.query("SELECT 1"), () => {})).rejects.toMatchObject({ code: "25P03" });
    expect((await run(b.s, FE.query("SELECT 5"))).values).toEqual(["5"]);
  });

  test("DISCARD ALL drops the session's statements and settings only", async () => {
    const a = await session(), b = await session();
    await run(
      a.s,
      FE.parse("SELECT 'a'", "st"),
      FE.sync(),
      FE.query("SET TimeZone = 'Asia/Tokyo'"),
    );
    await run(b.s, FE.parse("SELECT 'b'", "st"), FE.sync());
    const c = await run(a.s, FE.query("DISCARD ALL"));
    // TimeZone went back: its ParameterStatus comes before the ReadyForQuery.
    expect(c.types).toBe("CSZ");
    expect((await run(a.s, FE.query("SHOW TimeZone"))).values).not.toEqual(["Asia/Tokyo"]);
    expect((await run(a.s, FE.bind("", "st"), FE.execute(), FE.sync())).errors[0]?.C).toBe("26000");
    expect((await run(b.s, FE.bind("", "st"), FE.execute(), FE.sync())).values).toEqual(["b"]);
    expect((await run(a.s, FE.query("BEGIN; DISCARD ALL"))).errors[0]?.C).toBe("0A000");
  });

  test("COPY FROM STDIN inside a transaction block keeps the block intact", async () => {
    const a = await session();
    await run(a.s, FE.query("CREATE TABLE copy_tx (x int)"), FE.query("BEGIN"));
    await run(a.s, FE.query("INSERT INTO copy_tx VALUES (0)"));
    const g = await run(a.s, FE.query("COPY copy_tx FROM STDIN"));
    expect(g.types).toBe("G");
    await run(a.s, FE.copyData("1\n"));
    const done = await run(a.s, FE.copyData("2\n"), FE.copyDone());
    expect(done.types).toBe("CZ");
    expect(a.s.transactionStatus).toBe("T");
    const c = await run(a.s, FE.query("COMMIT; SELECT count(*) FROM copy_tx"));
    expect(c.values).toEqual(["3"]);
  });

  test("COPY FROM STDIN of a missing table reports the error without copy mode", async () => {
    const a = await session();
    const c = await run(a.s, FE.query("COPY no_such_table FROM STDIN"));
    expect(c.types).toBe("EZ");
    expect(c.errors[0]?.C).toBe("42P01");
  });

  test("a bad startup setting refuses the session with FATAL, one only the engine can judge too", async () => {
    // The parameter table knows DateStyle's words: the login is refused.
    await expect(session({ DateStyle: "no-such-style" })).rejects.toMatchObject({
      code: "22023",
      severity: "FATAL",
      message: 'invalid value for parameter "DateStyle": "no-such-style"',
    });
    // Whether an access method exists is the engine's to say: it says so at the start.
    await expect(session({ default_table_access_method: "no_such_am" })).rejects.toMatchObject({
      code: "22023",
      severity: "FATAL",
      message: 'invalid value for parameter "default_table_access_method": "no_such_am"',
      detail: 'Table access method "no_such_am" does not exist.',
    });
    const b = await session();
    expect((await run(b.s, FE.query("SELECT 6"))).values).toEqual(["6"]);
  });
});
