/**
 * A client that parses and describes a statement up to a Flush, then takes
 * its time before it binds (postgres.js 4 does so for every new statement,
 * and may look the types up on another connection first), in hand-built
 * bytes: the scenarios the embedded engine's test and the transaction
 * pool's run. `Target` opens the raw connection and a node-postgres client
 * of the server under test.
 */

import { expect } from "bun:test";
import type pg from "pg";
import { concat, cstr, errorFields, message, RawConnection, sleep } from "./pgts-sql.ts";

export interface Target {
  /** A raw connection, started up (as `postgres`, to database `postgres`). */
  raw(): Promise<RawConnection>;
  /** Another client of the same server. */
  client(): Promise<pg.Client>;
}

const enc = new TextEncoder();
/** Parse of the unnamed statement, no parameter types declared. */
export const parse = (sql: string) =>
  message("P", concat(cstr(""), cstr(sql), Uint8Array.of(0, 0)));
/** Describe of the unnamed statement. */
export const describeStatement = () => message("D", concat(enc.encode("S"), cstr("")));
const flush = () => message("H");
export const sync = () => message("S");
export const query = (sql: string) => message("Q", cstr(sql));

/** Bind of the unnamed statement with text parameters, then Execute. */
function bindExecute(...params: string[]): Uint8Array {
  const ps = params.map((p) => {
    const b = enc.encode(p);
    const len = new Uint8Array(4);
    new DataView(len.buffer).setInt32(0, b.length);
    return concat(len, b);
  });
  const count = Uint8Array.of(params.length >> 8, params.length & 0xff);
  return concat(
    message(
      "B",
      concat(cstr(""), cstr(""), Uint8Array.of(0, 0), count, ...ps, Uint8Array.of(0, 0)),
    ),
    message("E", concat(cstr(""), Uint8Array.of(0, 0, 0, 0))),
  );
}

/** The types of the next `n` messages. */
async function types(c: RawConnection, n: number): Promise<string> {
  const seen: string[] = [];
  for (let i = 0; i < n; i++) seen.push((await c.next())?.type ?? "(closed)");
  return seen.join(" ");
}

/** The messages' types up to and including the next ReadyForQuery, and the first value of a row. */
async function answer(c: RawConnection): Promise<{ types: string; value: string | null }> {
  const seen: string[] = [];
  let value: string | null = null;
  for (;;) {
    const m = await c.next();
    if (m === null) return { types: [...seen, "(closed)"].join(" "), value };
    seen.push(m.type);
    if (m.type === "E") seen.push(errorFields(m.body)["C"] ?? "");
    if (m.type === "D" && value === null) {
      const len = new DataView(m.body.buffer, m.body.byteOffset).getInt32(2);
      value = new TextDecoder().decode(m.body.subarray(6, 6 + len));
    }
    if (m.type === "Z") return { types: seen.join(" "), value };
  }
}

/**
 * Parse and Describe up to a Flush; another session runs and parses its own
 * unnamed statement meanwhile; the Bind that follows runs the first one.
 */
export async function describedThenBound(t: Target): Promise<void> {
  const c = await t.raw();
  c.send(concat(parse("select $1::int * 2 as doubled"), describeStatement(), flush()));
  // ParseComplete, ParameterDescription, RowDescription, and no ReadyForQuery.
  expect(await types(c, 3)).toBe("1 t T");
  await sleep(100);
  expect(c.pending.length).toBe(0);

  // The session holds nothing: the other is not kept waiting.
  const other = await t.client();
  // A parameterised query: the other session's unnamed statement.
  const r = await other.query("select $1::text || '!' as t", ["other"]);
  expect(r.rows).toEqual([{ t: "other!" }]);
  await other.end();

  c.send(concat(bindExecute("21"), sync()));
  expect(await answer(c)).toEqual({ types: "2 D C Z", value: "42" });
  // In PostgreSQL's order: the statement is still the unnamed one.
  c.send(concat(bindExecute("5"), sync()));
  expect(await answer(c)).toEqual({ types: "2 D C Z", value: "10" });
  // A Query drops it, as in PostgreSQL.
  c.send(query("select 1"));
  expect((await answer(c)).types).toBe("T D C Z");
  c.send(concat(bindExecute("5"), sync()));
  const gone = await answer(c);
  expect(gone.types).toBe("E 26000 Z");
  expect(c.isClosed).toBe(false);
  c.close();
}

/** An error up to a Flush skips the client's messages to its Sync, as PostgreSQL skips them. */
export async function failedDescribeSkipsToSync(t: Target): Promise<void> {
  const c = await t.raw();
  c.send(concat(parse("select from where"), describeStatement(), flush()));
  const e = await c.next();
  expect(e?.type).toBe("E");
  expect(errorFields(e!.body)["C"]).toBe("42601");
  await sleep(100);
  expect(c.pending.length).toBe(0);
  // Another session is not kept waiting.
  const other = await t.client();
  expect((await other.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
  await other.end();
  // The Bind and Execute sent before the client saw the error are skipped.
  c.send(concat(bindExecute("1"), sync()));
  expect(await answer(c)).toEqual({ types: "Z", value: null });
  c.send(query("select 7"));
  expect(await answer(c)).toEqual({ types: "T D C Z", value: "7" });
  c.close();
}

/** Inside a transaction block the describe stays in the block. */
export async function describeInsideABlock(t: Target): Promise<void> {
  const c = await t.raw();
  c.send(query("create table if not exists described (n int)"));
  expect((await answer(c)).types).toBe("C Z");
  c.send(query("begin"));
  expect((await answer(c)).types).toBe("C Z");
  c.send(concat(parse("insert into described values ($1::int)"), describeStatement(), flush()));
  expect(await types(c, 3)).toBe("1 t n");
  c.send(concat(bindExecute("3"), sync()));
  expect((await answer(c)).types).toBe("2 C Z");
  c.send(query("rollback"));
  expect((await answer(c)).types).toBe("C Z");
  c.send(query("select count(*) from described"));
  expect((await answer(c)).value).toBe("0");
  c.close();
}

/**
 * Parse and Describe up to a Flush, and the Bind at once, as asyncpg with
 * statement_cache_size=0 sends its every statement: the Bind runs the
 * statement even where pgts's own work (its read of a new session's
 * settings) ran a Query on the engine between the two, which drops the
 * backend's unnamed statement.
 */
export async function boundAtOnce(t: Target): Promise<void> {
  const c = await t.raw();
  c.send(concat(parse("select $1::int * 2 as doubled"), describeStatement(), flush()));
  expect(await types(c, 3)).toBe("1 t T");
  c.send(concat(bindExecute("21"), sync()));
  expect(await answer(c)).toEqual({ types: "2 D C Z", value: "42" });
  c.close();
}

/** Bind of the unnamed statement to portal `portal`, Execute of one row of it, and Close of it. */
const bindPortal = (portal: string) =>
  concat(
    message("B", concat(cstr(portal), cstr(""), Uint8Array.of(0, 0, 0, 0, 0, 0))),
    message("E", concat(cstr(portal), Uint8Array.of(0, 0, 0, 1))),
  );
const closePortal = (portal: string) => message("C", concat(enc.encode("P"), cstr(portal)));

/**
 * A Close with no Flush or Sync after it, from idle (pg-cursor closes a
 * failed cursor's portal so, after the Sync that ended it; pg-promise's
 * streams): PostgreSQL starts no transaction for a Close, so no other
 * backend waits. Alone in an input, and after a Sync in the same input.
 */
export async function closeAfterSync(t: Target): Promise<void> {
  const c = await t.raw();
  c.send(concat(parse("select generate_series(1, 3)"), bindPortal("c_1"), sync()));
  expect((await answer(c)).types).toBe("1 2 D s Z");
  for (const input of [closePortal("c_1"), concat(bindPortal("c_2"), sync(), closePortal("c_2"))]) {
    c.send(input);
    if (input.length > 20) expect((await answer(c)).types).toBe("2 D s Z");
    await sleep(100);
    // The other session is not kept waiting, and the first not ended for it.
    const other = await t.client();
    expect((await other.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
    await other.end();
    // The CloseComplete comes by the Sync at the latest (PostgreSQL holds it until then).
    c.send(sync());
    expect((await answer(c)).types).toBe("3 Z");
  }
  // While another session's statement holds the engine past this one's
  // wait bound, a Close alone is answered and kept to run later, as a
  // prepare is (deferred.ts): PostgreSQL's Close never waits, and the
  // client expects no error for it.
  c.send(query("set pgts.engine_wait_timeout = '1s'"));
  expect((await answer(c)).types).toBe("C Z");
  const other = await t.client();
  const sleeping = other.query("select pg_sleep(2)");
  await sleep(300);
  c.send(closePortal("c_3"));
  expect(await types(c, 1)).toBe("3");
  await sleeping;
  await other.end();
  c.send(sync());
  expect((await answer(c)).types).toBe("Z");
  c.send(query("select 7"));
  expect(await answer(c)).toEqual({ types: "T D C Z", value: "7" });
  c.close();
}
