/**
 * A data directory whose files become read-only under a running server
 * (chmod by an operator, a volume remounted), then writable again.
 * PostgreSQL's answers are the anchor: a statement that must write a
 * relation file gets ERROR 42501 "could not open file …: Permission
 * denied", CHECKPOINT fails with an ERROR, everything else goes on; once
 * the permissions are back, the same statements work, with no restart. A
 * checkpoint that cannot write pg_logical's state PANICs in PostgreSQL too:
 * that is a crash, recovered from by itself once the directory is writable.
 *
 * Permissions bind nobody with CAP_DAC_OVERRIDE: as root, the server runs
 * under `setpriv` with that capability dropped from its bounding set.
 */

import { afterEach, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { pgClient, useSqlServers, waitFor } from "../../helpers/pgts-sql.ts";
import {
  ENGINE_TEST_ADAPTERS,
  type PgtsServer,
  startPgts,
  usePgtsServers,
} from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 120_000 });

const DROP_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"];

/** How the server must run for file modes to bind it; null when that cannot be arranged. */
function unprivileged(): string[] | null {
  if (process.getuid?.() !== 0) return [];
  const probe = spawnSync(DROP_DAC[0]!, [...DROP_DAC.slice(1), "true"]);
  return probe.status === 0 ? DROP_DAC : null;
}

const WRAP = unprivileged();
if (WRAP === null) {
  console.warn("skipping the read-only tests: setpriv cannot drop CAP_DAC_OVERRIDE");
}

/** Directories made read-only by a test: writable again before the server's directory is removed. */
const locked: string[] = [];
afterEach(() => {
  for (const dir of locked.splice(0)) chmod("u+w", dir);
});
// The servers startPgts started: stopped and removed after each test, a failed one's too.
usePgtsServers({ timeoutMs: 120_000 });

function chmod(mode: string, dir: string): void {
  const r = spawnSync("chmod", ["-R", mode, dir]);
  if (r.status !== 0) throw new Error(`chmod ${mode} ${dir}: ${r.stderr}`);
}

async function errorOf(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as { code?: string; message: string };
    return { code: err.code, message: err.message };
  }
  throw new Error("the statement succeeded");
}

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    test.skipIf(WRAP === null)(
      "relation files read-only: writes get clean errors, the session and new ones go on, and all works again once writable",
      async () => {
        const server: PgtsServer = await startPgts({
          ...(adapter === undefined ? {} : { adapter }),
          wrap: WRAP ?? [],
          settings: { fsync: "off" },
        });
        const base = join(server.dataDir, "pglite", "base");
        const setup = await pgClient(server);
        // A committed change still in shared buffers: the next checkpoint must write it.
        await setup.query("CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)");
        await setup.end();
        const c = await pgClient(server);
        // The table's file open in a transaction that goes on after the chmod.
        await c.query("BEGIN; INSERT INTO kept VALUES (2)");

        chmod("a-w", base);
        locked.push(base);
        // The rows fit the open file; their free-space map is a new file, refused.
        const insert = await errorOf(c.query("INSERT INTO kept SELECT generate_series(3, 50000)"));
        expect(insert).toMatchObject({ code: "42501" });
        expect(insert.message).toMatch(/^could not create file ".*_fsm": Permission denied$/);
        await c.query("ROLLBACK");
        // A file first looked at now (a catalog no statement had read), refused.
        const unread = await errorOf(c.query("SELECT * FROM pg_catalog.pg_seclabel"));
        expect(unread).toMatchObject({ code: "42501" });
        const create = await errorOf(c.query("CREATE TABLE more (n int)"));
        expect(create.message).toMatch(/Permission denied/);
        // Dirty pages of files the engine still has open are written (as
        // PostgreSQL's are); one that must open a file gets a clean ERROR.
        await c.query("CHECKPOINT").catch((e: Error) => {
          expect(e.message).toMatch(/Permission denied/);
        });
        // What needs no relation file still works, in this session and a new one.
        expect((await c.query("SELECT 6 * 7 AS x")).rows).toEqual([{ x: 42 }]);
        const other = await pgClient(server);
        expect((await other.query("SELECT 40 + 2 AS x")).rows).toEqual([{ x: 42 }]);

        // Writable again: the same statements work, with no restart (neither
        // the refused free-space map nor the refused index stays refused).
        chmod("u+w", base);
        await c.query("CHECKPOINT");
        expect((await c.query("SELECT * FROM pg_catalog.pg_seclabel")).rows).toEqual([]);
        expect((await c.query("SELECT count(*)::int AS n FROM kept")).rows).toEqual([{ n: 1 }]);
        await c.query("INSERT INTO kept SELECT generate_series(2, 50000)");
        await c.query("CREATE TABLE more (n int); INSERT INTO more VALUES (7)");
        expect((await other.query("SELECT count(*)::int AS n FROM kept")).rows).toEqual([{
          n: 50000,
        }]);
        expect((await other.query("SELECT n FROM more")).rows).toEqual([{ n: 7 }]);
        await c.end();
        await other.end();
        expect((await server.stop("fast")).code).toBe(0);
      },
    );

    test.skipIf(WRAP === null)(
      "the whole cluster read-only: a CHECKPOINT that cannot write PANICs as PostgreSQL's does, and the server recovers by itself once writable",
      async () => {
        const server: PgtsServer = await startPgts({
          ...(adapter === undefined ? {} : { adapter }),
          wrap: WRAP ?? [],
          settings: { fsync: "off" },
        });
        const cluster = join(server.dataDir, "pglite");
        const c = await pgClient(server);
        await c.query("CREATE TABLE kept (n int); INSERT INTO kept VALUES (1), (2)");
        chmod("a-w", cluster);
        locked.push(cluster);
        const checkpoint = await errorOf(c.query("CHECKPOINT"));
        expect(checkpoint.message).toMatch(/Permission denied|engine/);
        chmod("u+w", cluster);
        const rows = await waitFor("the server to serve again by itself", async () => {
          try {
            const again = await pgClient(server);
            try {
              return (await again.query("SELECT count(*)::int AS n FROM kept")).rows;
            } finally {
              await again.end();
            }
          } catch {
            return undefined;
          }
        }, { timeoutMs: 60_000, detail: () => server.log });
        expect(rows).toEqual([{ n: 2 }]);
        expect(server.log).toContain("PANIC");
        expect((await server.stop("fast")).code).toBe(0);
      },
    );
  });
}
