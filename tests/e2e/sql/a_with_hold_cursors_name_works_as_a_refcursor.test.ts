/**
 * A WITH HOLD cursor's name, given as a refcursor to cursor_to_xml and
 * cursor_to_xmlschema, names the session's cursor, as in PostgreSQL
 * (PostgreSQL 18's regression test xmlmap). pgts keeps each session's
 * WITH HOLD cursors under engine names of its own, so that two sessions
 * may each have one of a name: `'xc'::refcursor` found no cursor "xc".
 */

import { describe, expect, test } from "bun:test";
import { pgClient, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../../helpers/pgts.ts";

useSqlServers();

type Pg = Awaited<ReturnType<typeof pgClient>>;

const one = async (c: Pg, sql: string) =>
  String(Object.values((await c.query(sql)).rows[0] ?? {})[0]);

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("cursor_to_xml and cursor_to_xmlschema read the session's own WITH HOLD cursor", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      await a.query("create table held_rows (a int, b text)");
      await a.query("insert into held_rows values (1, 'one'), (2, 'two'), (3, 'three')");
      await a.query("declare xc cursor with hold for select a from held_rows order by a");
      await b.query("declare xc cursor with hold for select b from held_rows order by a desc");
      const xml = await one(a, "select cursor_to_xml('xc'::refcursor, 2, false, true, '')");
      expect(xml).toContain("<a>1</a>");
      expect(xml).toContain("<a>2</a>");
      expect(xml).not.toContain("<a>3</a>");
      // An untyped literal, and the next rows of the same cursor.
      expect(await one(a, "select cursor_to_xml('xc', 5, false, true, '')")).toContain("<a>3</a>");
      expect(await one(b, "select cursor_to_xml('xc', 1, false, true, '')")).toContain(
        "<b>three</b>",
      );
      expect(await one(a, "select cursor_to_xmlschema('xc'::refcursor, false, true, '')"))
        .toContain('<xsd:element name="a"');
      expect(await one(b, "select cursor_to_xmlschema('xc'::refcursor, false, true, '')"))
        .toContain('<xsd:element name="b"');
      // A cursor without HOLD, in a block, and one of no such name, as before.
      await a.query("begin");
      await a.query("declare plain cursor for select 7 as n");
      expect(await one(a, "select cursor_to_xml('plain', 1, false, true, '')")).toContain(
        "<n>7</n>",
      );
      await a.query("commit");
      await expect(a.query("select cursor_to_xml('nosuch', 1, false, true, '')")).rejects
        .toMatchObject({ code: "34000", message: 'cursor "nosuch" does not exist' });
      for (const c of [a, b]) await c.end();
    });
  });
}
