/**
 * ICU collations whose locale is a language tag with collation keywords
 * (src/engines/pglite/icukeywords.ts): PostgreSQL's documented
 * case-insensitive collation, `CREATE COLLATION … (provider = icu, locale =
 * 'und-u-ks-level2', deterministic = false)`, compared as the root
 * collation on the embedded engine, whose ICU lacks the data that reads
 * the keywords: 'ANDREW' = 'Andrew' was false, and a unique index let both
 * in. The locale is now stored in ICU's keyword form, which needs no data,
 * with a NOTICE that says so, and the collation compares as PostgreSQL's.
 */

import { describe, expect, test } from "bun:test";
import { pgClient, startSqlServer, useSqlServers } from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../../helpers/pgts.ts";

useSqlServers();

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    test("case-, accent- and numeric-aware ICU collations given as language tags compare as PostgreSQL's", async () => {
      const server = await startSqlServer({
        ...(adapter === undefined ? {} : { adapter }),
        settings: { fsync: "off" },
      });
      const c = await pgClient(server);
      const notices: string[] = [];
      c.on("notice", (n) => notices.push(n.message));

      await c.query(
        "CREATE COLLATION case_insensitive (provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
      );
      expect(notices).toContain(
        'using keyword form "und@colstrength=secondary" for ICU locale "und-u-ks-level2"',
      );
      expect(
        (await c.query(
          "SELECT 'ANDREW' = 'Andrew' COLLATE case_insensitive AS eq," +
            " 'Å' = 'A' COLLATE case_insensitive AS accent",
        )).rows,
      ).toEqual([{ eq: true, accent: false }]);
      await c.query("CREATE TABLE users (email text COLLATE case_insensitive UNIQUE)");
      await c.query("INSERT INTO users VALUES ('Ann@Example.com')");
      const duplicate = await c.query("INSERT INTO users VALUES ('ann@example.COM')")
        .then(() => null, (e) => (e as { code?: string }).code);
      expect(duplicate).toBe("23505");
      expect(
        (await c.query("SELECT count(*)::int AS n FROM users WHERE email = 'ANN@EXAMPLE.COM'"))
          .rows,
      )
        .toEqual([{ n: 1 }]);

      // Accents too (level 1); digits as numbers (kn), in one tag with a region.
      await c.query(
        "CREATE COLLATION ignore_accents (provider = icu, locale = 'und-u-ks-level1', deterministic = false)",
      );
      expect((await c.query("SELECT 'Å' = 'a' COLLATE ignore_accents AS eq")).rows)
        .toEqual([{ eq: true }]);
      await c.query("CREATE COLLATION numeric (provider = 'icu', locale = 'en-US-u-kn-true')");
      expect(
        (await c.query(
          "SELECT array_agg(x ORDER BY x COLLATE numeric) AS v FROM unnest(ARRAY['a10', 'a9', 'a100']) x",
        )).rows,
      ).toEqual([{ v: ["a9", "a10", "a100"] }]);
      // From a function's EXECUTE as well.
      await c.query(
        `DO $$ BEGIN EXECUTE 'CREATE COLLATION ci2 (provider = icu,` +
          ` locale = ''und-u-ks-level2'', deterministic = false)'; END $$`,
      );
      expect((await c.query("SELECT 'X' = 'x' COLLATE ci2 AS eq")).rows).toEqual([{ eq: true }]);

      // What pg_collation keeps: ICU's keyword form; a tag without such
      // keywords, and libc collations, as they were written.
      await c.query("CREATE COLLATION plain_root (provider = icu, locale = 'und')");
      expect(
        (await c.query(
          "SELECT collname, colllocale FROM pg_collation" +
            " WHERE collname IN ('case_insensitive', 'numeric', 'plain_root') ORDER BY collname",
        )).rows,
      ).toEqual([
        { collname: "case_insensitive", colllocale: "und@colstrength=secondary" },
        { collname: "numeric", colllocale: "en_US@colnumeric=yes" },
        { collname: "plain_root", colllocale: "und" },
      ]);
      // A database's default collation cannot be ICU's here: refused, with
      // what can be done instead.
      const refused = await c.query(
        "CREATE DATABASE icu_default LOCALE_PROVIDER icu ICU_LOCALE 'und' TEMPLATE template0",
      ).then(() => null, (e) => e as { code?: string; message?: string; detail?: string });
      expect(refused).toMatchObject({
        code: "0A000",
        message: 'locale provider "icu" is not supported for a database',
        detail: expect.stringContaining("CREATE COLLATION"),
      });
      await c.end();
    });
  });
}
