/**
 * `SELECT * FROM pg_stat_activity` (and a column list of any of the
 * view's columns) is answered at once while another session's statement
 * holds the engine, as every PostgreSQL backend answers it, with what the
 * engine's view gives once it is free: the same columns, types and
 * RowDescription, the same values in text and in binary, timestamps
 * written for the session's own DateStyle and TimeZone (Asia/Kolkata's
 * +05:30, America/St_Johns' -03:30, in ISO with DMY and MDY), and
 * PostgreSQL's visibility rules for a role that is not a superuser
 * (another role's row: `<insufficient privilege>` and NULLs). A DateStyle
 * whose output names the zone's abbreviation (SQL) waits for the engine,
 * as before. node-postgres in text, and the extended protocol's Bind
 * asking for binary results (hand-built: node-postgres reads binary values
 * as UTF-8 text); the default server and --adapter subprocess.
 */

import { describe, expect, test } from "bun:test";
import type pg from "pg";
import {
  concat,
  cstr,
  int32,
  message,
  pgClient,
  RawConnection,
  sharedServer,
  sleep,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";
import { type Adapter, backendPid } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });

type Pg = Awaited<ReturnType<typeof pgClient>>;

/** Values as the server sent them: text as strings, binary as bytes. */
const raw = { getTypeParser: () => (v: unknown) => v } as unknown as pg.CustomTypesConfig;

interface Answer {
  readonly fields: unknown[][];
  readonly rows: Map<number, unknown[]>;
  /** When it came (Date.now()). */
  readonly at: number;
}

/** `sql`'s answer on `c` in text, rows by pid. */
async function read(c: Pg, sql: string): Promise<Answer> {
  const r = await c.query({ text: sql, rowMode: "array", types: raw });
  const pidAt = r.fields.findIndex((f) => f.name === "pid");
  return {
    fields: r.fields.map((f) => [
      f.name,
      f.tableID,
      f.columnID,
      f.dataTypeID,
      f.dataTypeSize,
      f.dataTypeModifier,
      f.format,
    ]),
    rows: new Map((r.rows as unknown[][]).map((row) => [Number(row[pidAt]), row])),
    at: Date.now(),
  };
}

const enc = new TextEncoder();
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/**
 * `sql`'s answer on `c` with every result column in binary (Bind's one
 * result format code 1): the RowDescription's bytes, and each row's values
 * as hex, by pid (an int4, the third column of `SELECT *`).
 */
async function readBinary(c: RawConnection, sql: string): Promise<Answer> {
  c.send(concat(
    message("P", concat(cstr(""), cstr(sql), Uint8Array.of(0, 0))),
    message("B", concat(cstr(""), cstr(""), Uint8Array.of(0, 0, 0, 0, 0, 1, 0, 1))),
    message("D", concat(enc.encode("P"), cstr(""))),
    message("E", concat(cstr(""), int32(0))),
    message("S"),
  ));
  const fields: unknown[][] = [];
  const rows = new Map<number, unknown[]>();
  for (;;) {
    const m = await c.next();
    if (m === null || m.type === "E") throw new Error(`no answer to ${sql}`);
    if (m.type === "Z") break;
    if (m.type === "T") fields.push([hex(m.body)]);
    if (m.type !== "D") continue;
    const dv = new DataView(m.body.buffer, m.body.byteOffset);
    const row: unknown[] = [];
    for (let i = 0, at = 2; i < dv.getInt16(0); i++) {
      const len = dv.getInt32(at);
      at += 4;
      row.push(len < 0 ? null : hex(m.body.subarray(at, at + len)));
      at += Math.max(len, 0);
    }
    rows.set(parseInt(String(row[2]), 16), row);
  }
  return { fields, rows, at: Date.now() };
}

/** The view's columns whose values a session's next statement changes. */
const MOVING = new Set([
  "xact_start",
  "query_start",
  "state_change",
  "state",
  "query",
  "wait_event_type",
  "wait_event",
]);
const COLUMNS = [
  "datid",
  "datname",
  "pid",
  "leader_pid",
  "usesysid",
  "usename",
  "application_name",
  "client_addr",
  "client_hostname",
  "client_port",
  "backend_start",
  "xact_start",
  "query_start",
  "state_change",
  "wait_event_type",
  "wait_event",
  "state",
  "backend_xid",
  "backend_xmin",
  "query_id",
  "query",
  "backend_type",
];

/**
 * `off` (answered while the engine was held) against `on` (the engine's
 * answer afterwards): the same fields; the same rows, column by column,
 * for the sessions that did nothing in between (`still`); for the others
 * (`moved`) the columns their statements do not change.
 */
function expectSame(off: Answer, on: Answer, still: number[], moved: number[]): void {
  expect(off.fields).toEqual(on.fields);
  for (const pid of still) {
    expect({ pid, row: off.rows.get(pid) }).toEqual({ pid, row: on.rows.get(pid) });
  }
  for (const pid of moved) {
    const keep = (row: unknown[] | undefined) =>
      row?.map((v, i) => (MOVING.has(COLUMNS[i]!) ? "(moves)" : v));
    expect({ pid, row: keep(off.rows.get(pid)) }).toEqual({ pid, row: keep(on.rows.get(pid)) });
  }
}

for (const adapter of [undefined, "subprocess"] as Array<Adapter | undefined>) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test(
      "SELECT * FROM pg_stat_activity answers at once behind pg_sleep, as the engine's view would",
      async () => {
        const admin = await pgClient(server());
        await admin.query(
          "create role psa_watcher login; create role psa_other login",
        );
        // Sessions that stay idle throughout: one of the watcher's role, one of
        // another role (the watcher has no privileges of it), one over the
        // Unix socket (no client address).
        const idleOwn = await pgClient(server(), { user: "psa_watcher" });
        const idleOther = await pgClient(server(), { user: "psa_other" });
        const idleUnix = await pgClient(server(), { user: "psa_watcher", unix: true });
        await idleOwn.query("set application_name = 'idle own'");
        await idleOther.query("select 1");
        // The watchers set their styles before the engine is taken.
        const kolkata = await pgClient(server(), { user: "psa_watcher" });
        await kolkata.query("set timezone = 'Asia/Kolkata'");
        const stJohns = await pgClient(server(), { user: "psa_watcher" });
        await stJohns.query("set timezone = 'America/St_Johns'; set datestyle = 'ISO, DMY'");
        const sqlStyle = await pgClient(server(), { user: "psa_watcher" });
        await sqlStyle.query("set timezone = 'Asia/Kolkata'; set datestyle = 'SQL, DMY'");
        const superuser = await pgClient(server());
        await superuser.query("set timezone = 'America/St_Johns'");
        const binary = await RawConnection.open(server());
        const binaryPid = (await binary.startup({ user: "psa_watcher", database: "postgres" })).pid;

        const sleeper = await pgClient(server());
        let sleptAt = 0;
        const slept = sleeper.query("select pg_sleep(4)").then(() => sleptAt = Date.now());
        // Until the sleep holds the engine.
        for (;;) {
          const r = await admin.query(
            "select state, query, wait_event from pg_stat_activity where pid = $1",
            [backendPid(sleeper)],
          );
          const row = r.rows[0];
          if (
            row?.state === "active" && row.query === "select pg_sleep(4)" && row.wait_event === null
          ) {
            break;
          }
        }
        const star = "SELECT * FROM pg_stat_activity";
        const offKolkata = await read(kolkata, star);
        const offStJohns = await read(stJohns, star);
        const offBinary = await readBinary(binary, star);
        const offSuper = await read(superuser, `${star} WHERE usename LIKE 'psa%'`);
        const offColumns = await read(
          kolkata,
          "select backend_start, client_addr, pid, datid, backend_type, query_id, backend_xid" +
            " from pg_stat_activity where pid <> pg_backend_pid()",
        );
        const sqlStyled = read(sqlStyle, star);
        // All of it while the sleep went on.
        expect(sleptAt).toBe(0);
        // SQL's DateStyle writes the zone's abbreviation: the engine's, which is busy.
        expect(
          await Promise.race([sqlStyled.then(() => "answered"), sleep(300).then(() => "waits")]),
        )
          .toBe("waits");

        // What each shows, in its session's zone.
        const sleeperRow = offKolkata.rows.get(backendPid(sleeper))!;
        expect(sleeperRow[COLUMNS.indexOf("query")]).toBe("<insufficient privilege>");
        expect(sleeperRow[COLUMNS.indexOf("state")]).toBeNull();
        expect(sleeperRow[COLUMNS.indexOf("backend_type")]).toBeNull();
        expect(sleeperRow[COLUMNS.indexOf("usename")]).toBe("postgres");
        const own = offKolkata.rows.get(backendPid(kolkata))!;
        expect(own[COLUMNS.indexOf("state")]).toBe("active");
        expect(own[COLUMNS.indexOf("query")]).toBe(star);
        expect(own[COLUMNS.indexOf("backend_type")]).toBe("client backend");
        expect(String(own[COLUMNS.indexOf("backend_start")])).toMatch(
          /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?\+05:30$/,
        );
        // Its own times are its statement's, one instant.
        const [xact, query, change] = ["xact_start", "query_start", "state_change"].map((c) =>
          own[COLUMNS.indexOf(c)]
        );
        expect([query, change]).toEqual([xact, xact]);
        expect(String(offStJohns.rows.get(backendPid(stJohns))![COLUMNS.indexOf("backend_start")]))
          .toMatch(/-0[23]:30$/);
        const superRow = offSuper.rows.get(backendPid(sleeper));
        expect(superRow).toBeUndefined(); // not a psa role
        expect(offSuper.rows.get(backendPid(idleOwn))![COLUMNS.indexOf("application_name")]).toBe(
          "idle own",
        );
        expect(offColumns.fields.map((f) => f[0])).toEqual([
          "backend_start",
          "client_addr",
          "pid",
          "datid",
          "backend_type",
          "query_id",
          "backend_xid",
        ]);
        expect(offColumns.rows.get(backendPid(idleOwn))![1]).toBe("127.0.0.1");
        expect(offColumns.rows.get(backendPid(idleUnix))![1]).toBeNull();

        const styled = await sqlStyled;
        expect(String(styled.rows.get(backendPid(idleOwn))![COLUMNS.indexOf("backend_start")]))
          .toMatch(/^\d\d\/\d\d\/\d{4} \d\d:\d\d:\d\d(\.\d+)? IST$/);

        await slept;
        // The same statements on the engine, now free.
        const onKolkata = await read(kolkata, star);
        const onStJohns = await read(stJohns, star);
        const onBinary = await readBinary(binary, star);
        const onSuper = await read(superuser, `${star} WHERE usename LIKE 'psa%'`);
        const onColumns = await read(
          kolkata,
          "select backend_start, client_addr, pid, datid, backend_type, query_id, backend_xid" +
            " from pg_stat_activity where pid <> pg_backend_pid()",
        );
        const still = [
          backendPid(idleOwn),
          backendPid(idleOther),
          backendPid(idleUnix),
          backendPid(admin),
        ];
        const moved = [
          backendPid(sleeper),
          backendPid(kolkata),
          backendPid(stJohns),
          backendPid(sqlStyle),
          binaryPid,
        ];
        expectSame(offKolkata, onKolkata, still, moved);
        expectSame(offStJohns, onStJohns, still, moved);
        expectSame(offBinary, onBinary, still, moved);
        expectSame(offSuper, onSuper, [
          backendPid(idleOwn),
          backendPid(idleUnix),
          backendPid(idleOther),
        ], [
          backendPid(kolkata),
          backendPid(stJohns),
          backendPid(sqlStyle),
          binaryPid,
        ]);
        expectSame(offColumns, onColumns, [...still, ...moved], []);
        // Binary is binary: an int4 pid, an 8-byte timestamptz, inet's family 2.
        const bin = offBinary.rows.get(backendPid(idleOwn))!;
        expect(String(bin[COLUMNS.indexOf("pid")])).toHaveLength(8);
        expect(String(bin[COLUMNS.indexOf("backend_start")])).toHaveLength(16);
        expect(bin[COLUMNS.indexOf("client_addr")]).toBe("022000047f000001");
        binary.socket.end();
      },
      60_000,
    );
  });
}
