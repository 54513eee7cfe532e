/**
 * A Query of several statements with COPY … FROM STDIN among them runs as
 * PostgreSQL runs it: each statement in turn, each COPY reading its own
 * data (a CopyInResponse, the client's CopyData up to its CopyDone, the
 * COPY's CommandComplete, then the next statement). psql sends one so for
 * `select 0\; copy t from stdin\; copy t from stdin\; select 1`
 * (PostgreSQL 18's regression test copyselect); libpq's PQexec of such a
 * text does the same. It was refused with 0A000 "COPY FROM STDIN must be
 * sent as a query of its own".
 */

import { describe, expect, test } from "bun:test";
import {
  concat,
  cstr,
  message,
  psql,
  RawConnection,
  sharedServer,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../../helpers/pgts.ts";

useSqlServers();

const enc = new TextEncoder();
const query = (sql: string) => message("Q", cstr(sql));
const copyData = (text: string) => message("d", enc.encode(text));
const copyDone = () => message("c");

/** The types of the messages up to and including the next ReadyForQuery, or CopyInResponse. */
async function upTo(c: RawConnection, last: "Z" | "G" = "Z"): Promise<string> {
  const types: string[] = [];
  for (;;) {
    const m = await c.next();
    if (m === null) return [...types, "(closed)"].join(" ");
    types.push(m.type);
    if (m.type === "Z" || m.type === last) return types.join(" ");
  }
}

/** The first column of the first row the next answer carries. */
async function firstValue(c: RawConnection): Promise<string | null> {
  let value: string | null = null;
  for (;;) {
    const m = await c.next();
    if (m === null || m.type === "Z") return value;
    if (m.type === "D" && value === null) {
      const len = new DataView(m.body.buffer, m.body.byteOffset).getInt32(2);
      value = new TextDecoder().decode(m.body.subarray(6, 6 + len));
    }
  }
}

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("psql's select 0\\; copy … from stdin\\; copy … from stdin\\; select 1 reads each COPY's data", async () => {
      const script = [
        "create table two_copies (c int);",
        "select 0\\; copy two_copies from stdin\\; copy two_copies from stdin\\; select 1;",
        "1",
        "\\.",
        "2",
        "\\.",
        "select string_agg(c::text, ',' order by c) from two_copies;",
        "",
      ].join("\n");
      const r = await psql(server(), ["-q"], { stdin: script });
      expect(r.err).toBe("");
      expect(r.out).toBe("0\n1\n1,2\n");
      expect(r.code).toBe(0);
    });

    test("each COPY of a Query is fed in turn; an error between them ends the Query", async () => {
      const c = await RawConnection.open(server());
      await c.startup();
      const other = await RawConnection.open(server());
      await other.startup();
      c.send(query("create table fed_in_turn (n int)"));
      expect(await upTo(c)).toBe("C Z");

      c.send(query("copy fed_in_turn from stdin; select 5; copy fed_in_turn from stdin"));
      expect(await upTo(c, "G")).toBe("G");
      c.send(concat(copyData("1\n"), copyData("2\n"), copyDone()));
      expect(await upTo(c, "G")).toBe("C T D C G");
      // The second COPY's data in two writes.
      c.send(copyData("3\n"));
      c.send(concat(copyData("4\n"), copyDone()));
      expect(await upTo(c)).toBe("C Z");
      other.send(query("select sum(n) from fed_in_turn"));
      expect(await firstValue(other)).toBe("10");

      // An error after the first COPY: the Query's transaction is rolled back, no second COPY.
      c.send(query("copy fed_in_turn from stdin; select 1/0; copy fed_in_turn from stdin"));
      expect(await upTo(c, "G")).toBe("G");
      c.send(concat(copyData("100\n"), copyDone()));
      expect(await upTo(c)).toBe("C E Z");
      // Bad data in the first COPY: its error, the rest of its data dropped.
      c.send(query("copy fed_in_turn from stdin; copy fed_in_turn from stdin"));
      expect(await upTo(c, "G")).toBe("G");
      c.send(concat(copyData("x\n"), copyData("200\n"), copyDone()));
      expect(await upTo(c)).toBe("E Z");
      // A CopyFail of the second COPY rolls back the first's rows too.
      c.send(query("copy fed_in_turn from stdin; copy fed_in_turn from stdin"));
      expect(await upTo(c, "G")).toBe("G");
      c.send(concat(copyData("300\n"), copyDone()));
      expect(await upTo(c, "G")).toBe("C G");
      c.send(message("f", cstr("client gave up")));
      expect(await upTo(c)).toBe("E Z");

      c.send(query("select sum(n) from fed_in_turn"));
      expect(await firstValue(c)).toBe("10");
      other.send(query("select count(*) from fed_in_turn"));
      expect(await firstValue(other)).toBe("4");
      c.close();
      other.close();
    });
  });
}
