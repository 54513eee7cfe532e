/**
 * What some drivers send ahead, as PostgreSQL takes it (hand-built bytes):
 * a COPY FROM STDIN Query with its CopyData and CopyDone behind it in one
 * write, before the CopyInResponse (asyncpg's copy_records_to_table), is
 * one COPY; if the COPY fails, the data behind it is ignored; and DISCARD
 * ALL or DEALLOCATE ALL alone in an extended batch (psycopg 3 sends every
 * command so) is answered as PostgreSQL answers it, for the session alone.
 * These were 0A000 "must be sent as a query of its own".
 */

import { describe, expect, test } from "bun:test";
import {
  concat,
  cstr,
  message,
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

/** The types of the messages up to and including the next ReadyForQuery. */
async function answer(c: RawConnection): Promise<string> {
  const types: string[] = [];
  for (;;) {
    const m = await c.next();
    if (m === null) return [...types, "(closed)"].join(" ");
    types.push(m.type);
    if (m.type === "Z") return types.join(" ");
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

/** An extended batch of one statement with no parameters: Parse, Bind, Describe, Execute, Sync. */
function extended(sql: string): Uint8Array {
  return concat(
    message("P", concat(cstr(""), cstr(sql), Uint8Array.of(0, 0))),
    message("B", concat(cstr(""), cstr(""), Uint8Array.of(0, 0, 0, 0, 0, 0))),
    message("D", concat(enc.encode("P"), cstr(""))),
    message("E", concat(cstr(""), Uint8Array.of(0, 0, 0, 0))),
    message("S"),
  );
}

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("a COPY's data sent with its Query, before the CopyInResponse, is that COPY's", async () => {
      const c = await RawConnection.open(server());
      await c.startup();
      c.send(query("create table ahead (n int)"));
      expect(await answer(c)).toBe("C Z");
      c.send(concat(query("copy ahead from stdin"), copyData("1\n2\n"), copyDone()));
      expect(await answer(c)).toBe("G C Z");
      // The data in two writes, the first with the Query, and a query behind the CopyDone.
      c.send(concat(query("copy ahead from stdin"), copyData("3\n")));
      expect((await c.next())?.type).toBe("G");
      c.send(concat(copyData("4\n"), copyDone(), query("select sum(n) from ahead")));
      expect(await answer(c)).toBe("C Z");
      expect(await firstValue(c)).toBe("10");
      // A COPY that fails: its error, and the data behind it ignored.
      c.send(concat(query("copy no_such_table from stdin"), copyData("5\n"), copyDone()));
      expect(await answer(c)).toBe("E Z");
      c.send(query("select count(*) from ahead"));
      expect(await firstValue(c)).toBe("4");
      c.close();
    });

    test("a Query after an Execute, before its Sync, runs after it, and leaves the engine sound for every session", async () => {
      const c = await RawConnection.open(server());
      await c.startup();
      const other = await RawConnection.open(server());
      await other.startup();
      const status = async (conn: RawConnection) =>
        String.fromCharCode((await conn.until("Z"))!.body[0]!);
      const noSync = (sql: string) =>
        concat(
          message("P", concat(cstr(""), cstr(sql), Uint8Array.of(0, 0))),
          message("B", concat(cstr(""), cstr(""), Uint8Array.of(0, 0, 0, 0, 0, 0))),
          message("E", concat(cstr(""), Uint8Array.of(0, 0, 0, 0))),
        );
      c.send(query("create table after_execute (n int)"));
      expect(await answer(c)).toBe("C Z");
      // In one write: the Query's answer ends idle, as PostgreSQL's does, and so does the Sync's.
      c.send(concat(noSync("insert into after_execute values (1)"), query("select 'q'")));
      expect(await answer(c)).toBe("1 2 C T D C Z");
      c.send(message("S"));
      expect(await status(c)).toBe("I");
      // Another session's next statement runs (it failed with XX000), and sees the row.
      other.send(query("select count(*) from after_execute"));
      expect(await firstValue(other)).toBe("1");
      // The Execute in a write of its own, ended by a Flush; then the Query.
      c.send(concat(noSync("insert into after_execute values (2)"), message("H")));
      for (const type of ["1", "2", "C"]) expect((await c.next())?.type).toBe(type);
      c.send(query("insert into after_execute values (3)"));
      expect(await status(c)).toBe("I");
      c.send(message("S"));
      expect(await status(c)).toBe("I");
      // In a transaction block, both rows are the block's.
      c.send(query("begin"));
      expect(await status(c)).toBe("T");
      c.send(concat(noSync("insert into after_execute values (4)"), query("select 1")));
      expect(await status(c)).toBe("T");
      c.send(concat(message("S"), query("commit")));
      expect(await status(c)).toBe("T");
      expect(await status(c)).toBe("I");
      other.send(query("select string_agg(n::text, ',' order by n) from after_execute"));
      expect(await firstValue(other)).toBe("1,2,3,4");
      c.close();
      other.close();
    });

    test("DISCARD ALL and DEALLOCATE ALL alone in an extended batch", async () => {
      const c = await RawConnection.open(server());
      await c.startup();
      c.send(
        concat(
          message("P", concat(cstr("kept"), cstr("select 1"), Uint8Array.of(0, 0))),
          message("S"),
        ),
      );
      expect(await answer(c)).toBe("1 Z");
      c.send(extended("DEALLOCATE ALL"));
      expect(await answer(c)).toBe("1 2 n C Z");
      c.send(query("select count(*) from pg_prepared_statements"));
      expect(await firstValue(c)).toBe("0");
      c.send(query("set work_mem = '8MB'"));
      expect(await answer(c)).toBe("C Z");
      c.send(extended("DISCARD ALL"));
      expect(await answer(c)).toBe("1 2 n C Z");
      c.send(query("show work_mem"));
      expect(await firstValue(c)).toBe("4MB");
      // Not alone: refused as before.
      c.send(query("discard all; select 1"));
      expect(await answer(c)).toBe("E Z");
      c.close();
    });
  });
}
