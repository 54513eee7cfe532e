/**
 * A client whose client_encoding is not UTF8 — psql in a LATIN1 or WIN1252
 * terminal, a Japanese application in SJIS — sends and reads text in that
 * encoding, and the server converts it as PostgreSQL does: what it stores
 * is the same text a UTF8 client stores, a character the client's
 * encoding lacks is 22P05, bytes that are not a character in it are 22021,
 * and convert(), convert_from(), convert_to() and COPY … ENCODING convert
 * too. PGlite's own conversions end the statement with no rows and leave
 * its one backend broken for every session (conversions.ts converts
 * instead); before, pgts refused every such encoding. The encodings pgts
 * has no table for (EUC_TW, JOHAB, …) are refused with 0A000, however they
 * are named, and the engine goes on serving. psql (bytes in and out, as a
 * terminal in that encoding would have them) and node-postgres.
 */

import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  PG_BIN,
  pgClient,
  pgEnv,
  type PgtsServer,
  sharedServer,
  useSqlServers,
  waitFor,
} from "../../helpers/pgts-sql.ts";

useSqlServers();

const latin1 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

/**
 * psql with client_encoding `encoding`, reading the script `input` (bytes,
 * as a file in that encoding) and writing its output to a file: the bytes
 * it printed, and its stderr.
 */
async function psqlIn(
  server: PgtsServer,
  encoding: string,
  input: Uint8Array,
): Promise<{ code: number; out: Uint8Array; err: string }> {
  const dir = mkdtempSync(join(tmpdir(), "pgts-encoding-"));
  try {
    writeFileSync(join(dir, "in.sql"), input);
    const p = Bun.spawn(
      [
        `${PG_BIN}/psql`,
        "-X",
        "-A",
        "-t",
        "-f",
        join(dir, "in.sql"),
        "-o",
        join(dir, "out.txt"),
      ],
      {
        stdout: "ignore",
        stderr: "pipe",
        env: { ...pgEnv(server), PGCLIENTENCODING: encoding },
      },
    );
    const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
    let out = new Uint8Array(0);
    try {
      out = new Uint8Array(readFileSync(join(dir, "out.txt")));
    } catch {
      // no output file: psql failed before
    }
    return { code, out, err };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("default server", () => {
  const server = sharedServer();

  test("LATIN1 and WIN1252 clients store and read the text a UTF8 client does", async () => {
    const s = server();
    const u = await pgClient(s);
    await u.query("CREATE TABLE cities (id int, name text)");
    await u.query("INSERT INTO cities VALUES (1, 'Zürich'), (2, '€uro'), (3, '日本')");
    // psql in a LATIN1 terminal: 'Besançon' is 8 bytes, ç is 0xE7.
    const r = await psqlIn(
      s,
      "LATIN1",
      latin1(
        "SHOW client_encoding;\n" +
          "INSERT INTO cities VALUES (4, 'Besan\xe7on');\n" +
          "SELECT name, length(name), octet_length(name) FROM cities WHERE id IN (1, 4) ORDER BY id;\n" +
          // PREPARE is renamed for the session (naming.ts): the text around
          // the name must reach the engine as the client sent it.
          "PREPARE p AS SELECT 'caf\xe9'::text || $1;\n" +
          "EXECUTE p('\xe0 la cr\xe8me');\n",
      ),
    );
    expect(r.err).toBe("");
    expect(r.out).toEqual(
      latin1(
        "LATIN1\n" +
          "INSERT 0 1\n" +
          "Z\xfcrich|6|7\nBesan\xe7on|8|9\n" +
          "PREPARE\n" +
          "caf\xe9\xe0 la cr\xe8me\n",
      ),
    );
    // What it stored is UTF-8 text, as a UTF8 client stored its own.
    expect((await u.query("SELECT name FROM cities WHERE id = 4")).rows).toEqual([
      { name: "Besançon" },
    ]);
    // A character LATIN1 lacks: PostgreSQL's 22P05; WIN1252 has € (0x80).
    const euro = await psqlIn(s, "LATIN1", latin1("SELECT name FROM cities WHERE id = 2;\n"));
    expect(euro.err).toContain(
      'ERROR:  character with byte sequence 0xe2 0x82 0xac in encoding "UTF8" has no equivalent in encoding "LATIN1"',
    );
    const win = await psqlIn(s, "WIN1252", latin1("SELECT name FROM cities WHERE id = 2;\n"));
    expect(win.out).toEqual(Uint8Array.of(0x80, ...latin1("uro\n")));
    // The session goes on after the error, and so does every other.
    const after = await psqlIn(
      s,
      "LATIN1",
      latin1("SELECT name FROM cities WHERE id = 2;\nSELECT 'still here';\n"),
    );
    expect(after.err).toContain("has no equivalent");
    expect(after.out).toEqual(latin1("still here\n"));
    // The server log is UTF-8: the client's LATIN1 text, in its error and its statement.
    await psqlIn(s, "LATIN1", latin1("SELECT 'Besan\xe7on'::int;\n"));
    await waitFor("the ERROR in the log", () => s.log.includes("Besançon") || undefined);
    expect(s.log).toContain('ERROR:  invalid input syntax for type integer: "Besançon"');
    expect(s.log).toContain("STATEMENT:  SELECT 'Besançon'::int;");
    expect((await u.query("SELECT count(*)::int AS n FROM cities")).rows).toEqual([{ n: 4 }]);
    await u.query("DROP TABLE cities");
    await u.end();
  });

  test("SJIS and EUC_JP clients: two-byte characters, and a byte that is none", async () => {
    const s = server();
    const u = await pgClient(s);
    // 日本 in SJIS is 93 FA 96 7B; in EUC_JP C6 FC CB DC.
    const sjis = await psqlIn(
      s,
      "SJIS",
      Uint8Array.of(
        ...latin1("SELECT length('"),
        0x93,
        0xfa,
        0x96,
        0x7b,
        ...latin1("'), '"),
        0x93,
        0xfa,
        0x96,
        0x7b,
        ...latin1("' = U&'\\65E5\\672C';\n"),
      ),
    );
    expect([sjis.err, new TextDecoder().decode(sjis.out)]).toEqual(["", "2|t\n"]);
    // 日 as UTF-8 bytes (E6 97 A5) is no EUC_JP character: 22021.
    const euc = await psqlIn(
      s,
      "EUC_JP",
      Uint8Array.of(...latin1("SELECT '"), ...new TextEncoder().encode("日"), ...latin1("';\n")),
    );
    expect(euc.err).toContain('ERROR:  invalid byte sequence for encoding "EUC_JP": 0xe6 0x97');
    const eucOk = await psqlIn(
      s,
      "EUC_JP",
      Uint8Array.of(
        ...latin1("SELECT U&'\\65E5\\672C', '"),
        0xc6,
        0xfc,
        0xcb,
        0xdc,
        ...latin1("';\n"),
      ),
    );
    expect(eucOk.out).toEqual(
      Uint8Array.of(0xc6, 0xfc, 0xcb, 0xdc, 0x7c, 0xc6, 0xfc, 0xcb, 0xdc, 0x0a),
    );
    await u.end();
  });

  test("convert, convert_from, convert_to and COPY … ENCODING convert", async () => {
    const s = server();
    const u = await pgClient(s);
    const { rows } = await u.query(
      `SELECT convert_to('Besançon', 'LATIN1') AS latin1,
              convert_to('日本語', 'SJIS') AS sjis,
              convert_to('한국어', 'UHC') AS uhc,
              convert_to('中文😀', 'GB18030') AS gb18030,
              convert_from('\\x42e9'::bytea, 'latin1') AS from_latin1,
              convert('\\x80'::bytea, 'WIN1252', 'UTF8') AS euro`,
    );
    expect(rows[0]).toEqual({
      latin1: Buffer.from("Besan\xe7on", "latin1"),
      sjis: Buffer.from("93fa967b8cea", "hex"),
      uhc: Buffer.from("c7d1b1b9beee", "hex"),
      gb18030: Buffer.from("d6d0cec49439fc36", "hex"),
      from_latin1: "Bé",
      euro: Buffer.from("€"),
    });
    // Where PostgreSQL's tables are not the WHATWG standard's: ¥ is SJIS 0x5C,
    // EUC_CN (GB2312) A1A4 is U+30FB, and SJIS's user-defined F040 is no character.
    const pgTables = await u.query(
      `SELECT convert_to('¥', 'SJIS') AS yen, convert_from('\\xa1a4'::bytea, 'EUC_CN') AS dot`,
    );
    expect(pgTables.rows[0]).toEqual({ yen: Buffer.from([0x5c]), dot: "\u30fb" });
    const userDefined = await u.query("SELECT convert_from('\\xf040'::bytea, 'SJIS')").catch(
      (e) => e,
    );
    expect([userDefined.code, userDefined.message]).toEqual([
      "22P05",
      'character with byte sequence 0xf0 0x40 in encoding "SJIS" has no equivalent in encoding "UTF8"',
    ]);
    const bad = await u.query("SELECT convert_from('\\x6100'::bytea, 'LATIN1')").catch((e) => e);
    expect([bad.code, bad.message]).toEqual([
      "22021",
      'invalid byte sequence for encoding "LATIN1": 0x00',
    ]);
    // COPY out in another encoding, through psql (the bytes as written).
    await u.query("CREATE TABLE enc_copy (t text)");
    await u.query("INSERT INTO enc_copy VALUES ('Besançon')");
    const out = await psqlIn(
      s,
      "UTF8",
      latin1("COPY enc_copy TO STDOUT WITH (ENCODING 'LATIN1');\n"),
    );
    expect(out.out).toEqual(latin1("Besan\xe7on\n"));
    await u.query("DROP TABLE enc_copy");
    await u.end();
  });

  // PostgreSQL reports the conversion's 22P05 in place of such an error
  // (its handler runs again for an error raised in it); PGlite ended its
  // one backend there, for every session: a LATIN1 psql and a RAISE of '…'
  // crashed the cluster.
  test("an error whose own text the client's encoding lacks is reported as the conversion's 22P05, and every session goes on", async () => {
    const s = server();
    const u = await pgClient(s);
    const untranslatable =
      'ERROR:  character with byte sequence 0xe2 0x80 0xa6 in encoding "UTF8" has no equivalent in encoding "LATIN1"';
    const r = await psqlIn(
      s,
      "LATIN1",
      latin1(
        "DO $$BEGIN RAISE EXCEPTION 'x%y', chr(8230) USING DETAIL = 'd' || chr(8230); END$$;\n" +
          "SELECT chr(8230)::int;\n" +
          "SELECT 'caf\xe9' AS still_here;\n",
      ),
    );
    expect(
      r.err.split("\n").filter((l) => l.includes("ERROR:")).map((l) =>
        l.replace(/^.*?ERROR:/, "ERROR:")
      ),
    )
      .toEqual([untranslatable, untranslatable]);
    expect(r.out).toEqual(latin1("caf\xe9\n"));
    expect((await u.query("SELECT 'Zürich' AS city")).rows).toEqual([{ city: "Zürich" }]);
    await u.end();
  });

  test("an encoding pgts has no table for is refused however it is named, and the engine serves on", async () => {
    const s = server();
    const a = await pgClient(s);
    const b = await pgClient(s);
    const refused = async (sql: string) => {
      const x = await a.query(sql).then(() => null, (err) => err);
      return x === null ? "ran" : `${x.code} ${x.message}`;
    };
    expect(await refused("SET client_encoding = 'EUC_TW'")).toBe(
      '0A000 invalid value for parameter "client_encoding": "EUC_TW"',
    );
    expect(await refused("SELECT set_config('client_encoding', 'JO' || 'HAB', false)")).toBe(
      '0A000 invalid value for parameter "client_encoding": "JOHAB"',
    );
    expect(await refused("SELECT convert_to('x', 'EUC_' || 'TW')")).toBe(
      '0A000 conversion to or from encoding "EUC_TW" is not supported by the embedded engine',
    );
    expect(await refused("SET client_encoding = 'no_such'")).toBe(
      '22023 invalid value for parameter "client_encoding": "no_such"',
    );
    // psql naming one at connection: FATAL, as PostgreSQL's is for an encoding without a conversion.
    const r = await psqlIn(s, "EUC_TW", latin1("SELECT 1;\n"));
    expect(r.err).toContain('FATAL:  invalid value for parameter "client_encoding": "EUC_TW"');
    expect((await a.query("SELECT 'Zürich' AS city")).rows).toEqual([{ city: "Zürich" }]);
    expect((await b.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    await a.end();
    await b.end();
  });
});
