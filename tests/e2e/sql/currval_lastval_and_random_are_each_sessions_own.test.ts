/**
 * currval() and lastval() answer what the session's own nextval() (or
 * setval()) last gave it, as in PostgreSQL, though every session runs on one
 * PGlite backend: another session's nextval does not show, a session that
 * never called nextval gets 55000, an INSERT's serial or identity value is
 * the inserting session's lastval, a sequence with CACHE hands out no value
 * twice, DISCARD ALL and DISCARD SEQUENCES forget only the caller's values,
 * and a role without rights on the sequence gets 42501. random() after
 * setseed() repeats the session's own series, whatever other sessions draw
 * or seed meanwhile. node-postgres and psql, under the default server (and
 * --adapter subprocess: ENGINE_TEST_ADAPTERS).
 */

import { describe, expect, test } from "bun:test";
import { pgClient, psql, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });

type Pg = Awaited<ReturnType<typeof pgClient>>;

const one = async (c: Pg, sql: string) => Object.values((await c.query(sql)).rows[0] ?? {})[0];
const errorOf = (c: Pg, sql: string) =>
  c.query(sql).then(
    () => "ok",
    (e: { code?: string; message?: string }) => `${e.code} ${e.message}`,
  );

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("random() after setseed() draws the session's own series, whatever other sessions draw or seed meanwhile", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      const c = await pgClient(server());
      const draw = (s: Pg) => one(s, "select random()");
      await a.query("select setseed(0.42)");
      const alone = [await draw(a), await draw(a), await draw(a)];
      expect(new Set(alone).size).toBe(3);
      // The same seed again, other sessions drawing and seeding between its draws.
      await a.query("select setseed(0.42)");
      const mixed = [await draw(a)];
      await draw(b);
      await c.query("select setseed(-0.7)");
      mixed.push(await draw(a));
      await draw(c);
      await draw(b);
      mixed.push(await draw(a));
      expect(mixed).toEqual(alone);
      // Two sessions with one seed, drawing in turn: each has the whole series.
      await a.query("select setseed(0.3)");
      await b.query("select setseed(0.3)");
      const [fromA, fromB]: unknown[][] = [[], []];
      for (let i = 0; i < 3; i++) {
        fromA.push(await draw(a));
        fromB.push(await draw(b));
      }
      expect(fromB).toEqual(fromA);
      // random(min, max) and random_normal() draw from the same series.
      await a.query("select setseed(0.5)");
      const ints = await one(a, "select array[random(1, 1000000), random(1, 1000000)]::text");
      await a.query("select setseed(0.5)");
      const first = await one(a, "select random(1, 1000000)");
      await draw(b);
      const second = await one(a, "select random(1, 1000000)");
      expect(`{${first},${second}}`).toBe(ints);
      await Promise.all([a.end(), b.end(), c.end()]);
    });

    test("another session's nextval is not this session's currval or lastval", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      await a.query("create sequence seq_a");
      expect(await one(a, "select nextval('seq_a')")).toBe("1");
      expect(await errorOf(b, "select currval('seq_a')")).toBe(
        '55000 currval of sequence "seq_a" is not yet defined in this session',
      );
      expect(await errorOf(b, "select lastval()")).toBe(
        "55000 lastval is not yet defined in this session",
      );
      expect(await one(b, "select nextval('seq_a')")).toBe("2");
      expect(await one(a, "select currval('seq_a')")).toBe("1");
      expect(await one(a, "select lastval()")).toBe("1");
      expect(await one(b, "select currval('seq_a')")).toBe("2");
      // setval(…, true) is the caller's currval; setval(…, false) leaves it.
      expect(await one(a, "select setval('seq_a', 100)")).toBe("100");
      expect(await one(a, "select currval('seq_a')")).toBe("100");
      expect(await one(b, "select currval('seq_a')")).toBe("2");
      expect(await one(b, "select nextval('seq_a')")).toBe("101");
      await a.query("create sequence seq_b");
      await a.query("select setval('seq_b', 50, false)");
      expect(await errorOf(a, "select currval('seq_b')")).toMatch(/^55000 /);
      for (const s of [a, b]) await s.end();
    });

    test("lastval after an INSERT is the inserting session's serial or identity value", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      await a.query("create table with_serial (id serial primary key, v text)");
      await a.query(
        "create table with_identity (id int generated always as identity primary key, v text)",
      );
      await a.query("insert into with_identity (v) values ('a')");
      await b.query("insert into with_serial (v) values ('b')");
      await b.query("insert into with_serial (v) values ('b')");
      // Each session's own last insert, interleaved with the other's.
      expect(await one(a, "select lastval()")).toBe("1");
      expect(await one(b, "select lastval()")).toBe("2");
      await b.query("insert into with_identity (v) values ('b')");
      await a.query("insert into with_serial (v) values ('a')");
      expect(await one(b, "select lastval()")).toBe("2");
      expect(await one(a, "select lastval()")).toBe("3");
      expect(
        await one(b, "select currval(pg_get_serial_sequence('with_identity', 'id'))"),
      ).toBe("2");
      expect(
        await one(a, "select currval(pg_get_serial_sequence('with_identity', 'id'))"),
      ).toBe("1");
      expect(await one(a, "select currval(pg_get_serial_sequence('with_serial', 'id'))")).toBe(
        "3",
      );
      // What an application does: insert, then ask for its id.
      const ids = await Promise.all([a, b].map(async (c, i) => {
        const mine: string[] = [];
        for (let n = 0; n < 20; n++) {
          await c.query("insert into with_serial (v) values ($1)", [`c${i}`]);
          mine.push(String(await one(c, "select lastval()")));
        }
        return mine;
      }));
      const owners = await a.query<{ id: number; v: string }>(
        "select id, v from with_serial where v like 'c%'",
      );
      const byId = new Map(owners.rows.map((r) => [String(r.id), r.v]));
      ids.forEach((mine, i) => {
        for (const id of mine) expect(byId.get(id)).toBe(`c${i}`);
      });
      for (const s of [a, b]) await s.end();
    });

    test("a sequence with CACHE hands out no value twice, and currval stays each session's", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      await a.query("create sequence seq_cached cache 10");
      const given: string[] = [];
      const last = new Map<Pg, string>();
      for (let n = 0; n < 15; n++) {
        for (const c of [a, b]) {
          const v = String(await one(c, "select nextval('seq_cached')"));
          given.push(v);
          last.set(c, v);
        }
      }
      expect(new Set(given).size).toBe(given.length);
      expect(String(await one(a, "select currval('seq_cached')"))).toBe(last.get(a)!);
      expect(String(await one(b, "select currval('seq_cached')"))).toBe(last.get(b)!);
      for (const s of [a, b]) await s.end();
    });

    test("DISCARD ALL and DISCARD SEQUENCES forget the caller's values only", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      await a.query("create sequence seq_d");
      expect(await one(a, "select nextval('seq_d')")).toBe("1");
      expect(await one(b, "select nextval('seq_d')")).toBe("2");
      await b.query("discard sequences");
      expect(await errorOf(b, "select currval('seq_d')")).toMatch(/^55000 /);
      expect(await errorOf(b, "select lastval()")).toMatch(/^55000 /);
      expect(await one(a, "select currval('seq_d')")).toBe("1");
      expect(await one(a, "select lastval()")).toBe("1");
      await a.query("discard all");
      expect(await errorOf(a, "select currval('seq_d')")).toMatch(/^55000 /);
      expect(await errorOf(a, "select lastval()")).toMatch(/^55000 /);
      expect(await one(b, "select nextval('seq_d')")).toBe("3");
      expect(await one(b, "select lastval()")).toBe("3");
      for (const s of [a, b]) await s.end();
    });

    test("psql: a role without rights gets 42501, a dropped sequence's lastval 55000", async () => {
      const setup = await psql(server(), [
        "-c",
        "create role seq_reader login",
        "-c",
        "create sequence seq_p",
        "-c",
        "select nextval('seq_p')",
      ]);
      expect(setup.code).toBe(0);
      // The sequence was used by postgres's session, not this one: 55000
      // comes only after the rights (42501), as in PostgreSQL.
      const denied = await psql(server(), ["-U", "seq_reader", "-c", "select currval('seq_p')"]);
      expect(denied.code).not.toBe(0);
      expect(denied.err).toContain("permission denied for sequence seq_p");
      const own = await psql(server(), [
        "-c",
        "create sequence seq_gone",
        "-c",
        "select nextval('seq_gone'), currval('seq_gone'), lastval()",
        "-c",
        "drop sequence seq_gone",
        "-c",
        "select lastval()",
      ]);
      expect(own.out).toContain("1|1|1");
      expect(own.err).toContain("lastval is not yet defined in this session");
    });
  });
}
