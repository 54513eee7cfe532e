/** The text scan and settings helpers that decide what an input changes. */

import { describe, expect, test } from "bun:test";
import { planInput } from "../../../src/engines/pglite/naming.ts";
import {
  parseOptions,
  startupSettings,
  switchSql,
  valueStep,
  withValues,
} from "../../../src/engines/pglite/settings.ts";
import { lowerDefaults } from "../../../src/engines/pglite/switch.ts";
import { scanStatements } from "../../../src/engines/pglite/sqlscan.ts";
import { splitFrames } from "../../../src/engines/pglite/wire.ts";
import { batch, FE } from "../../helpers/engine-wire.ts";

const plan = (m: Uint8Array) => planInput(m, splitFrames(m)!, "pgts7:");
const text = (b: Uint8Array) => new TextDecoder().decode(b.subarray(5, b.length - 1));

describe("what a session's input changes", () => {
  test("keywords in strings, comments and dollar quotes are not statements", () => {
    const st = scanStatements(
      "select 'set x; listen y'; /* reset all; */ select $$ prepare p $$; -- discard all\n set a.b = 1",
    );
    expect(st.map((s) => s.tokens[0]?.text)).toEqual(["select", "select", "set"]);
  });

  test("SET, set_config and custom settings mark the settings dirty", () => {
    expect(plan(FE.query("SELECT 1")).settingsDirty).toBe(false);
    const p = plan(FE.query("SET LOCAL app.tenant = 3; SELECT set_config('x.y', '1', false)"));
    expect(p.settingsDirty).toBe(true);
    expect(p.customSettings).toEqual(["app.tenant", "x.y"]);
  });

  test("a WITH HOLD cursor's name is prefixed wherever the session names it; others are left", () => {
    const first = FE.query(
      'DECLARE c NO SCROLL CURSOR WITH HOLD FOR SELECT 1; FETCH FORWARD 2 FROM c; MOVE c; DECLARE t CURSOR FOR SELECT 2; FETCH t; CLOSE "c"',
    );
    const p = planInput(first, splitFrames(first)!, "pgts7:", { holdCursors: new Set() });
    expect(text(p.bytes)).toBe(
      'DECLARE "pgts7:c" NO SCROLL CURSOR WITH HOLD FOR SELECT 1; FETCH FORWARD 2 FROM "pgts7:c"; MOVE "pgts7:c"; DECLARE t CURSOR FOR SELECT 2; FETCH t; CLOSE "pgts7:c"',
    );
    expect(p.declaredHoldCursors).toEqual(["c"]);
    expect(p.closedHoldCursors).toEqual(["c"]);
    // Later inputs: the session's set decides (WHERE CURRENT OF too).
    const m = FE.query(
      "FETCH ABSOLUTE 3 IN Held; UPDATE x SET v = 1 WHERE CURRENT OF held; FETCH other; CLOSE ALL",
    );
    const q = planInput(m, splitFrames(m)!, "pgts7:", { holdCursors: new Set(["held"]) });
    expect(text(q.bytes)).toBe(
      'FETCH ABSOLUTE 3 IN "pgts7:held"; UPDATE x SET v = 1 WHERE CURRENT OF "pgts7:held"; FETCH other; CLOSE ALL',
    );
    expect(q.closesAll).toBe(true);
    // Without hold cursors, a FETCH is not even scanned.
    expect(text(plan(FE.query("FETCH 1 FROM c")).bytes)).toBe("FETCH 1 FROM c");
  });

  test("PREPARE/EXECUTE/DEALLOCATE names are prefixed; DEALLOCATE ALL alone is special", () => {
    const p = plan(FE.query('PREPARE q AS SELECT 1; EXECUTE q; DEALLOCATE PREPARE "Q2"'));
    expect(text(p.bytes)).toBe(
      'PREPARE "pgts7:q" AS SELECT 1; EXECUTE "pgts7:q"; DEALLOCATE PREPARE "pgts7:Q2"',
    );
    expect(plan(FE.query("deallocate all")).special).toBe("deallocate all");
    // Two-phase commit names a transaction, not a statement: left as it is.
    const tpc = "PREPARE TRANSACTION 'tx1'; COMMIT PREPARED 'tx1'; ROLLBACK PREPARED E'tx2'";
    expect(text(plan(FE.query(tpc)).bytes)).toBe(tpc);
    expect(plan(FE.query(tpc)).createdStatements).toEqual([]);
    expect(text(plan(FE.query("PREPARE transaction AS SELECT 1")).bytes)).toBe(
      'PREPARE "pgts7:transaction" AS SELECT 1',
    );
    expect(plan(FE.query("DISCARD ALL; SELECT 1")).reject?.code).toBe("0A000");
  });

  test("a client_encoding pgts cannot convert is refused before it reaches the engine", () => {
    for (
      const sql of [
        "SET client_encoding TO 'EUC_TW'",
        "set names johab",
        "SET client_encoding = mule_internal",
      ]
    ) {
      expect(plan(FE.query(sql)).reject?.code).toBe("0A000");
    }
    // set_config is left to the engine, whose check hook sees the computed
    // value (encoding.ts): 'EUC' || '_TW' is refused there.
    expect(plan(FE.query("SELECT set_config('client_encoding', 'EUC' || '_TW', false)")).reject)
      .toBeNull();
    expect(plan(FE.query("SET client_encoding = 'EUC_TW'")).reject?.message).toBe(
      'invalid value for parameter "client_encoding": "EUC_TW"',
    );
    expect(plan(FE.query("SET client_encoding = 'nonesuch'")).reject?.code).toBe("22023");
    for (
      const sql of [
        "SET client_encoding TO 'UTF8'",
        "SET NAMES 'sql_ascii'",
        "SET client_encoding TO DEFAULT",
        "SET client_encoding = 'unicode'",
        "SET client_encoding TO 'LATIN1'",
        "set names win1252",
        "SET client_encoding = 'Shift_JIS'",
      ]
    ) {
      expect(plan(FE.query(sql)).reject).toBeNull();
    }
    expect(() => startupSettings(new Map(), { user: "u", params: { client_encoding: "EUC_TW" } }))
      .toThrow('invalid value for parameter "client_encoding": "EUC_TW"');
    // Spelled as PostgreSQL's check hook spells it (SHOW, ParameterStatus).
    for (
      const [given, shown] of [
        ["UTF8", "UTF8"],
        ["utf-8", "UTF8"],
        ["latin1", "LATIN1"],
        ["eucjp", "EUC_JP"],
        ["windows-1252", "WIN1252"],
        ["Windows866", "WIN866"],
        ["ISO-8859-15", "LATIN9"],
        ["mskanji", "SJIS"],
      ]
    ) {
      expect(
        startupSettings(new Map(), { user: "u", params: { client_encoding: given! } }).get(
          "client_encoding",
        ),
      ).toBe(shown);
    }
  });

  test("LISTEN/UNLISTEN, role DDL, temp tables and COPY FROM STDIN are noticed", () => {
    const p = plan(
      FE.query('LISTEN "Chan"; UNLISTEN *; CREATE ROLE r; CREATE TEMP TABLE t (x int)'),
    );
    expect(p.listenOps).toEqual([["listen", "Chan"], ["unlisten", "*"]]);
    expect(p.rolesDirty).toBe(true);
    expect(p.createsTempObject).toBe(true);
    expect(plan(FE.query("COPY t (a, b) FROM STDIN WITH (FORMAT csv)")).copyFromStdin).toBe(true);
    // However commented: the words are what PostgreSQL's scanner reads.
    expect(plan(FE.query("copy t from /* rows */ stdin")).copyFromStdin).toBe(true);
    expect(plan(FE.query("copy t from -- rows\n stdin")).copyFromStdin).toBe(true);
    expect(plan(FE.query("copy t from 'stdin'")).copyFromStdin).toBe(false);
    // Beside other statements of a lone Query: fed in turn (refused inline, session.ts).
    const among = plan(FE.query("select 1; copy t from stdin"));
    expect([among.reject, among.copyFromStdin, among.copyAmongOthers]).toEqual([null, true, true]);
    expect(plan(FE.query("copy t from stdin")).copyAmongOthers).toBe(false);
    // A Query pipelined behind another in one input is not lone either.
    expect(plan(batch(FE.query("select 1"), FE.query("copy t from stdin"))).reject?.code)
      .toBe("0A000");
    expect(plan(batch(FE.query("copy t from stdin"), FE.query("select 1"))).reject?.code)
      .toBe("0A000");
    expect(plan(batch(FE.parse("copy t from stdin"), FE.query("select 1"))).reject).toBeNull();
    // Prepared, it is a COPY where it is executed.
    expect(plan(FE.parse("COPY t FROM STDIN")).reject).toBeNull();
    expect(plan(FE.parse("COPY t FROM STDIN")).copyFromStdin).toBe(false);
  });

  test("an Execute of a COPY FROM STDIN starts it, alone, whether parsed before or in its batch", () => {
    const effects = new Map();
    const copyIn = { unnamed: false, portals: new Set<string>() };
    const run = (...parts: Uint8Array[]) => {
      const m = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) m.set(p, (at += p.length) - p.length);
      return planInput(m, splitFrames(m)!, "pgts7:", { effects, copyIn });
    };
    const unnamed = run(FE.parse("copy t from stdin"), FE.bind("", ""), FE.execute(), FE.sync());
    expect([unnamed.copyFromStdin, unnamed.extendedCopy, unnamed.reject]).toEqual([
      true,
      true,
      null,
    ]);
    run(FE.parse("copy t from stdin", "s0"), FE.sync());
    const named = run(FE.bind("", "s0"), FE.execute(), FE.sync());
    expect([named.copyFromStdin, named.extendedCopy]).toEqual([true, true]);
    expect(named.boundPortals).toEqual(new Map([["", true]]));
    // The unnamed statement of an earlier batch, as the session noted it.
    copyIn.unnamed = true;
    expect(run(FE.bind("", ""), FE.execute(), FE.sync()).extendedCopy).toBe(true);
    // A portal bound in an earlier batch.
    copyIn.portals.add("p");
    expect(run(FE.execute("p"), FE.sync()).extendedCopy).toBe(true);
    expect(run(FE.execute("q"), FE.sync()).extendedCopy).toBe(false);
    // Another Execute in its batch, or a message after it: refused.
    const notAlone = run(
      FE.parse("select 1"),
      FE.bind("", ""),
      FE.execute(),
      FE.bind("", "s0"),
      FE.execute(),
      FE.sync(),
    );
    expect(notAlone.reject?.code).toBe("0A000");
    expect(run(FE.bind("", "s0"), FE.execute(), FE.parse("select 1"), FE.sync()).reject?.code).toBe(
      "0A000",
    );
    // SQL EXECUTE of it starts it too, alone; beside other statements it is refused.
    const executed = run(FE.query("execute s0"));
    expect([executed.copyFromStdin, executed.extendedCopy, executed.reject]).toEqual([
      true,
      false,
      null,
    ]);
    const among = run(FE.query("select 1; execute s0"));
    expect([among.reject, among.copyFromStdin, among.copyAmongOthers]).toEqual([null, true, true]);
    expect(run(FE.query("select 1"), FE.query("execute s0")).reject?.code).toBe("0A000");
    // The same name parsed again as something else is no COPY.
    run(FE.parse("select 1", "s0"), FE.sync());
    expect(run(FE.bind("", "s0"), FE.execute(), FE.sync()).extendedCopy).toBe(false);
  });

  test("a named statement that LISTENs or SETs does so again at each Bind, which has no text", () => {
    const effects = new Map();
    const run = (...parts: Uint8Array[]) => {
      const m = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) m.set(p, (at += p.length) - p.length);
      return planInput(m, splitFrames(m)!, "pgts7:", { effects });
    };
    const first = run(FE.parse('listen "c"', "s1"), FE.bind("", "s1"), FE.execute(), FE.sync());
    expect(first.listenOps).toEqual([["listen", "c"]]);
    expect(run(FE.bind("", "s1"), FE.execute(), FE.sync()).listenOps).toEqual([["listen", "c"]]);
    run(FE.parse("set timezone = 'UTC'", "s2"), FE.sync());
    const again = run(FE.bind("", "s2"), FE.execute(), FE.sync());
    expect(again.settingsDirty).toBe(true);
    expect(again.listenOps).toEqual([]);
    // A name parsed again with other text forgets what it did.
    run(FE.parse("select 1", "s1"), FE.sync());
    expect(run(FE.bind("", "s1"), FE.execute(), FE.sync()).listenOps).toEqual([]);
  });

  test("startup options and switching between settings maps", () => {
    expect(parseOptions("-c search_path=a\\ b --work_mem=4MB -cgeqo=off")).toEqual([
      ["search_path", "a b"],
      ["work_mem", "4MB"],
      ["geqo", "off"],
    ]);
    const base = new Map([["role", "none"], ["session_authorization", "postgres"]]);
    const asUser = { superuser: "postgres" };
    expect(switchSql(base, new Map(base), asUser)).toBeNull();
    const a = new Map([...base, ["app.x", "1"], ["timezone", "UTC"]]);
    const b = new Map([...base, ["session_authorization", "alice"], ["timezone", "Asia/Tokyo"]]);
    expect(switchSql(a, b, asUser)).toBe(
      `RESET "app"."x"; SET SESSION AUTHORIZATION "alice"; SELECT pg_catalog.set_config('timezone', 'Asia/Tokyo', false)`,
    );
    // What a role-switched session leaves is reset as the engine's superuser,
    // and the next session's startup values are set as its user, before its role.
    const c = new Map([...base, ["role", "alice"], ["log_statement", "all"]]);
    const d = new Map([...base, ["session_authorization", "bob"], ["role", "carol"], [
      "work_mem",
      "8MB",
    ]]);
    expect(switchSql(c, d, asUser)).toBe(
      `SET SESSION AUTHORIZATION "postgres"; RESET "log_statement"; SET SESSION AUTHORIZATION "bob"; SELECT pg_catalog.set_config('work_mem', '8MB', false); SET ROLE "carol"`,
    );
    // Values read back from the backend (the session set them itself, maybe
    // before a SET SESSION AUTHORIZATION) are set as the superuser.
    expect(switchSql(c, d, { superuser: "postgres", valuesAs: "superuser" })).toBe(
      `SET SESSION AUTHORIZATION "postgres"; RESET "log_statement"; SELECT pg_catalog.set_config('work_mem', '8MB', false); SET SESSION AUTHORIZATION "bob"; SET ROLE "carol"`,
    );
  });

  test("a stored default that fails falls back to the ones under it, highest first, then the engine's", () => {
    // roleDefaults' order: all databases and roles, the database, the role, the role in the database.
    const stored: Array<[string, string]> = [
      ["default_text_search_config", "pg_catalog.english"],
      ["work_mem", "8MB"],
      ["Default_Text_Search_Config", "pg_catalog.simple"],
      ["default_text_search_config", "public.gone"],
    ];
    expect(lowerDefaults(stored, "default_text_search_config", "public.gone")).toEqual([
      "pg_catalog.simple",
      "pg_catalog.english",
    ]);
    expect(lowerDefaults(stored, "default_text_search_config", "pg_catalog.english")).toEqual([]);
    expect(lowerDefaults(stored, "work_mem", undefined)).toEqual([]);
    expect(valueStep("app.x", undefined).sql).toBe(`RESET "app"."x"`);
    expect(valueStep("role", "none").sql).toBe(
      "SELECT pg_catalog.set_config('role', 'none', false)",
    );
    const startup = new Map([["role", "grp"], ["default_text_search_config", "public.gone"]]);
    expect([...withValues(startup, [["role", "none"], ["default_text_search_config", undefined]])])
      .toEqual([["role", "none"]]);
  });
});
