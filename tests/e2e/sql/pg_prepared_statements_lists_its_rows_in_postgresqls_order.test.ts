/**
 * pg_prepared_statements without ORDER BY lists a session's statements in
 * the order PostgreSQL's does: its backend's hash table of statements by
 * name, bucket by bucket (hash_bytes of the name), in the order they were
 * prepared within a bucket, with the buckets a table of that many entries
 * has. pgts's statements live in the one backend under their engine names
 * (a session prefix before the client's), whose hashes gave another order,
 * different for each session (PostgreSQL 18's regression test prepare,
 * depending on the session's number). The orders expected here are
 * PostgreSQL 15's, for the same statements prepared in the same order.
 */

import { describe, expect, test } from "bun:test";
import { pgClient, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../../helpers/pgts.ts";

useSqlServers();

type Pg = Awaited<ReturnType<typeof pgClient>>;

const names = async (c: Pg) =>
  String(
    (await c.query("select string_agg(name, ' ') as n from pg_prepared_statements")).rows[0]?.n,
  );

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("a session's statements come in PostgreSQL's order, whatever the session", async () => {
      // Several sessions: each has a prefix of its own on the engine.
      for (let i = 0; i < 4; i++) {
        const c = await pgClient(server());
        for (const n of ["q1", "q2", "q3", "q4", "q5", "q6", "a", "b", "c", "d", "e", "f"]) {
          await c.query(`prepare ${n} as select 1`);
        }
        expect(await names(c)).toBe("b q1 e q4 a q6 q3 f q2 c d q5");
        // Prepared again, a statement goes last in its bucket (c and d share one).
        await c.query("deallocate c");
        await c.query("prepare c as select 2");
        expect(await names(c)).toBe("b q1 e q4 a q6 q3 f q2 d c q5");
        await c.end();
      }
    });

    test("past 32 statements the table has grown as PostgreSQL's does", async () => {
      const c = await pgClient(server());
      for (let i = 1; i <= 40; i++) await c.query(`prepare s${i} as select ${i}`);
      expect(await names(c)).toBe(
        "s5 s16 s10 s37 s21 s30 s1 s32 s24 s34 s4 s31 s6 s2 s7 s14 s22 s33 s15 s29 s8 s27 s23 s26 " +
          "s19 s38 s13 s17 s25 s40 s35 s39 s3 s9 s18 s36 s28 s11 s12 s20",
      );
      await c.end();
    });
  });
}
