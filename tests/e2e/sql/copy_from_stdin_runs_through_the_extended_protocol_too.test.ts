/**
 * COPY … FROM STDIN executed through the extended query protocol, as libpq's
 * PQexecParams and PQexecPrepared (the Ruby pg gem here), tokio-postgres and
 * Postgrex send it: Parse, Bind, Execute and Sync, then the data, CopyDone
 * and a second Sync. It was refused at its Parse (0A000 "must be sent as a
 * query of its own"). The program prints what PostgreSQL 15 answers; the
 * protocol's edges (the statement prepared in an earlier batch, its data in
 * the batch's own write, what may not follow its Execute) are hand-built
 * bytes.
 */

import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import {
  concat,
  cstr,
  message,
  RawConnection,
  sharedServer,
  startSqlServer,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../../helpers/pgts.ts";
import { ensured, programLines, ROOT } from "../../helpers/programs.ts";

useSqlServers();

const ruby = ensured("ensure-ruby.sh");
if (ruby.path === null) console.warn(`skipping the pg gem's COPY: ${ruby.why}`);

/** What tests/fixtures/ruby/pgts_copy.rb prints against PostgreSQL 15 (run by hand, 2026-12-06). */
const COPY_LINES = [
  "simple 2",
  "extended true",
  "extended done 2 nil",
  "prepared 1",
  "bad row 22P02",
  "copyfail 57014 ERROR:  COPY from stdin failed: given up",
  "in block 6",
  "rows 1,2,3,4,5,8",
];

const enc = new TextEncoder();
const parse = (name: string, sql: string) =>
  message("P", concat(cstr(name), cstr(sql), Uint8Array.of(0, 0)));
const bind = (statement: string, portal = "") =>
  message("B", concat(cstr(portal), cstr(statement), Uint8Array.of(0, 0, 0, 0, 0, 0)));
const describeStatement = (name: string) => message("D", concat(enc.encode("S"), cstr(name)));
const execute = (portal = "") => message("E", concat(cstr(portal), Uint8Array.of(0, 0, 0, 0)));
const sync = () => message("S");
const copyData = (text: string) => message("d", enc.encode(text));
const copyDone = () => message("c");
const query = (sql: string) => message("Q", cstr(sql));

/** The types of the messages up to and including the next one of `last` (ReadyForQuery). */
async function answer(c: RawConnection, last = "Z"): Promise<string> {
  const types: string[] = [];
  for (;;) {
    const m = await c.next();
    if (m === null) return [...types, "(closed)"].join(" ");
    types.push(m.type === "E" ? `E:${errorCode(m.body)}` : m.type);
    if (m.type === last) return types.join(" ");
  }
}

function errorCode(body: Uint8Array): string {
  for (let i = 0; i < body.length && body[i] !== 0;) {
    const end = body.indexOf(0, i + 1);
    if (body[i] === "C".charCodeAt(0)) return new TextDecoder().decode(body.subarray(i + 1, end));
    i = end + 1;
  }
  return "?";
}

async function count(c: RawConnection, table: string): Promise<string> {
  c.send(query(`select count(*) from ${table}`));
  let value = "";
  for (;;) {
    const m = await c.next();
    if (m === null || m.type === "Z") return value;
    if (m.type === "D") value = new TextDecoder().decode(m.body.subarray(6));
  }
}

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test.skipIf(ruby.path === null)(
      "the pg gem's COPY through PQexecParams and PQexecPrepared answers as PostgreSQL's",
      async () => {
        const lines = await programLines([
          ruby.path!,
          join(ROOT, "tests/fixtures/ruby/pgts_copy.rb"),
          String(server().port),
        ]);
        expect(lines).toEqual(COPY_LINES);
      },
    );

    test("a statement prepared in one batch, executed in the next, its data in a third (tokio-postgres)", async () => {
      const c = await RawConnection.open(server());
      await c.startup();
      c.send(query("create table tokio_copy (n int)"));
      expect(await answer(c)).toBe("C Z");
      c.send(concat(parse("s0", "COPY tokio_copy FROM STDIN"), describeStatement("s0"), sync()));
      expect(await answer(c)).toBe("1 t n Z");
      c.send(concat(bind("s0"), execute(), sync()));
      expect(await answer(c, "G")).toBe("2 G");
      c.send(concat(copyData("1\n2\n"), copyData("3\n"), copyDone(), sync()));
      expect(await answer(c)).toBe("C Z");
      expect(await count(c, "tokio_copy")).toBe("3");
      // Its data in the same write as the batch, before the CopyInResponse.
      c.send(concat(
        parse("", "copy tokio_copy from stdin"),
        bind(""),
        execute(),
        sync(),
        copyData("4\n"),
        copyDone(),
        sync(),
      ));
      expect(await answer(c)).toBe("1 2 G C Z");
      expect(await count(c, "tokio_copy")).toBe("4");
      // SQL EXECUTE of the statement prepared as a COPY runs it, as in PostgreSQL.
      c.send(concat(query("execute s0"), copyData("5\n"), copyDone()));
      expect(await answer(c)).toBe("G C Z");
      expect(await count(c, "tokio_copy")).toBe("5");
      c.close();
    });

    test("a COPY's Sync that comes after its CopyDone ends the batch then, and its rows with it", async () => {
      const c = await RawConnection.open(server());
      await c.startup();
      c.send(query("create table late_sync (n int)"));
      expect(await answer(c)).toBe("C Z");
      c.send(concat(parse("", "copy late_sync from stdin"), bind(""), execute(), message("H")));
      expect(await answer(c, "G")).toBe("1 2 G");
      c.send(concat(copyData("1\n"), copyDone(), message("H")));
      expect(await answer(c, "C")).toBe("C");
      // Committed by the Sync (its batch's implicit transaction): another session sees it.
      const other = await RawConnection.open(server());
      await other.startup();
      c.send(sync());
      expect(await answer(c)).toBe("Z");
      expect(await count(other, "late_sync")).toBe("1");
      other.close();
      c.close();
    });

    test("an Execute of a COPY with another statement executed in its batch is refused, nothing run", async () => {
      const c = await RawConnection.open(server());
      await c.startup();
      c.send(query("create table not_alone (n int)"));
      expect(await answer(c)).toBe("C Z");
      c.send(concat(parse("c", "copy not_alone from stdin"), sync()));
      expect(await answer(c)).toBe("1 Z");
      c.send(concat(
        parse("", "insert into not_alone values (9)"),
        bind(""),
        execute(),
        bind("c"),
        execute(),
        sync(),
      ));
      expect(await answer(c)).toBe("E:0A000 Z");
      expect(await count(c, "not_alone")).toBe("0");
      // A portal bound to the COPY ends with its transaction, as in
      // PostgreSQL: executed later, beside another statement, it is a
      // portal that does not exist (34000), not a COPY refused (0A000).
      c.send(concat(bind("c", "p"), sync()));
      expect(await answer(c)).toBe("2 Z");
      c.send(concat(
        execute("p"),
        parse("", "insert into not_alone values (1)"),
        bind(""),
        execute(),
        sync(),
      ));
      expect(await answer(c)).toBe("E:34000 Z");
      expect(await count(c, "not_alone")).toBe("0");
      c.close();
    });
  });
}

describe("engine_placement = inline", () => {
  test(
    "refuses COPY FROM STDIN through the extended protocol with 0A000, and serves on",
    async () => {
      const s = await startSqlServer({ conf: "engine_placement = 'inline'\n", perTest: true });
      const c = await RawConnection.open(s);
      await c.startup();
      c.send(query("create table inline_copy (n int)"));
      expect(await answer(c)).toBe("C Z");
      c.send(concat(parse("", "copy inline_copy from stdin"), bind(""), execute(), sync()));
      expect(await answer(c)).toBe("E:0A000 Z");
      // As a simple Query it runs.
      c.send(concat(query("copy inline_copy from stdin"), copyData("1\n"), copyDone()));
      expect(await answer(c)).toBe("G C Z");
      c.close();
    },
    60_000,
  );
});
