/**
 * CREATE EXTENSION works for every extension the PGlite package ships, and
 * pgvector's (loaded into the engine on the first input that names one),
 * pg_available_extensions lists them, and an extension created once works
 * after a restart. TypeORM's default for a uuid primary key,
 * `uuid_generate_v4()` after `CREATE EXTENSION IF NOT EXISTS "uuid-ossp"`,
 * is run as TypeORM sends it. node-postgres, under the default server and
 * --adapter inproc.
 */

import { describe, expect, test } from "bun:test";
import { pgClient, startSqlServer, useSqlServers } from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 120_000 });

/** The extensions the issue names, and a call that proves each one's library works. */
const PROOFS: Array<[string, string]> = [
  ["uuid-ossp", "select uuid_generate_v4() is not null as ok"],
  ["pgcrypto", "select encode(digest('abc', 'sha256'), 'hex') like 'ba7816bf%' as ok"],
  ["hstore", "select ('a=>1'::hstore) -> 'a' = '1' as ok"],
  ["citext", "select 'ABC'::citext = 'abc' as ok"],
  ["pg_trgm", "select similarity('word', 'words') > 0.5 as ok"],
  ["ltree", "select 'a.b.c'::ltree <@ 'a.b' as ok"],
  ["cube", "select cube_dim('(1,2,3)'::cube) = 3 as ok"],
  ["earthdistance", "select earth_distance(ll_to_earth(0, 0), ll_to_earth(0, 1)) > 100000 as ok"],
  ["fuzzystrmatch", "select levenshtein('kitten', 'sitting') = 3 as ok"],
  ["tablefunc", "select count(*) = 3 as ok from normal_rand(3, 0, 1)"],
  ["unaccent", "select unaccent('Hôtel') = 'Hotel' as ok"],
  ["btree_gin", "select true as ok"],
  ["btree_gist", "select true as ok"],
  ["amcheck", "select true as ok"],
  ["vector", "select '[1,2,3]'::vector <-> '[1,2,5]' = 2 as ok"],
];

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    test("every shipped extension is available and can be created; each one's functions and indexes work", async () => {
      const s = await startSqlServer({ perTest: true, ...(adapter ? { adapter } : {}) });
      const c = await pgClient(s);
      const available = (await c.query(
        "select name from pg_available_extensions where name <> 'plpgsql' order by name",
      )).rows.map((r) => r.name as string);
      for (const [name] of PROOFS) expect(available).toContain(name);
      const failed: string[] = [];
      for (const name of available) {
        await c.query(`create extension if not exists "${name}" cascade`).catch((e) =>
          failed.push(`${name}: ${e.message}`)
        );
      }
      expect(failed).toEqual([]);
      for (const [name, sql] of PROOFS) {
        expect([name, (await c.query(sql)).rows[0].ok]).toEqual([name, true]);
      }
      // Index support from btree_gin and btree_gist, and amcheck on the result.
      await c.query("create table ext_idx (i int, t text)");
      await c.query("insert into ext_idx select g, g::text from generate_series(1, 100) g");
      await c.query("create index on ext_idx using gin (i)");
      await c.query("create index on ext_idx using gist (i)");
      await c.query("create index ext_idx_bt on ext_idx (i)");
      await c.query("select bt_index_check('ext_idx_bt')");
      // pgvector as an application uses it: embeddings sent as parameters in
      // pgvector's text form, a nearest-neighbour search that the planner
      // answers from an HNSW index, and an IVFFlat index built beside it.
      await c.query("create table items (id int primary key, embedding vector(3))");
      for (let i = 1; i <= 200; i++) {
        await c.query("insert into items values ($1, $2)", [i, `[${i % 7},${i % 11},${i % 13}]`]);
      }
      // ([3,3,3] itself, then [3,3,2] at 1 and [4,4,3] at √2.)
      await c.query("create index items_hnsw on items using hnsw (embedding vector_l2_ops)");
      await c.query("set enable_seqscan = off");
      const knn = "select id from items order by embedding <-> $1 limit 3";
      const plan = await c.query(`explain ${knn.replace("$1", "'[3,3,3]'")}`);
      expect(plan.rows.map((r) => r["QUERY PLAN"]).join("\n")).toContain(
        "Index Scan using items_hnsw",
      );
      const nearest = await c.query(knn, ["[3,3,3]"]);
      expect(nearest.rows.map((r) => r.id)).toEqual([3, 80, 81]);
      await c.query("reset enable_seqscan");
      await c.query(
        "create index on items using ivfflat (embedding vector_cosine_ops) with (lists = 2)",
      );
      const avg = await c.query("select avg(embedding)::text as a from items where id <= 2");
      expect(avg.rows[0].a).toBe("[1.5,1.5,1.5]");
      const installed = (await c.query("select count(*)::int as n from pg_extension")).rows[0].n;
      expect(installed).toBe(available.length + 1);
    });

    test("TypeORM's uuid default works, and extensions work again after a restart (bloom's index too)", async () => {
      const s = await startSqlServer({ perTest: true, ...(adapter ? { adapter } : {}) });
      let c = await pgClient(s);
      // As TypeORM's PostgresDriver and migrations send them.
      await c.query('CREATE EXTENSION IF NOT EXISTS "uuid-ossp"');
      await c.query(
        'CREATE TABLE "user" ("id" uuid NOT NULL DEFAULT uuid_generate_v4(), "name" character varying NOT NULL, CONSTRAINT "PK_user" PRIMARY KEY ("id"))',
      );
      const inserted = await c.query(
        'INSERT INTO "user"("id", "name") VALUES (DEFAULT, $1) RETURNING "id"',
        ["alice"],
      );
      expect(inserted.rows[0].id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-/);
      await c.query("create extension hstore");
      // An index access method's: PostgreSQL 18 asks its handler how to read
      // an equality of a type it has an operator class for, text = text in
      // the engine's own first reads (its library must be there first).
      await c.query("create extension bloom");
      await c.query("create table bl (a int, b text)");
      await c.query("create index bl_a on bl using bloom (a, b)");
      await c.end();

      await s.stop();
      await s.start(adapter ? { adapter } : {});
      c = await pgClient(s);
      // No CREATE EXTENSION in this input: the libraries come back with the engine.
      const again = await c.query(
        `INSERT INTO "user"("name") VALUES ('bob') RETURNING "id", ('a=>1'::hstore) -> 'a' as h`,
      );
      expect(again.rows[0].h).toBe("1");
      expect(again.rows[0].id).not.toBe(inserted.rows[0].id);
      expect((await c.query('select count(*)::int as n from "user"')).rows[0].n).toBe(2);
      await c.query("insert into bl values (1, 'one'), (2, 'two')");
      await c.query("set enable_seqscan = off");
      const plan = (await c.query("explain select b from bl where a = 2 and b = 'two'")).rows;
      expect(JSON.stringify(plan)).toContain("bl_a");
      expect((await c.query("select b from bl where a = 2 and b = 'two'")).rows).toEqual([
        { b: "two" },
      ]);
      await c.end();
    });
  });
}
