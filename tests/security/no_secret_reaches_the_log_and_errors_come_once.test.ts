/**
 * What a role's attempts leave behind: no password or secret in any line
 * the server logs (the init password, a wrong password, a new role's
 * password, an upstream URL's password), and an ordinary role's refused
 * ALTER ROLE … SUPERUSER gets PostgreSQL's one 42501 and nothing more (it
 * used to add an "engine failure" when the engine re-read pg_authid as
 * that role). Under the default server and --adapter inproc.
 */

import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  connectError,
  pgClient,
  psql,
  startSqlServer,
  useSqlServers,
} from "../helpers/pgts-sql.ts";
import type { Adapter } from "../helpers/pgts.ts";

useSqlServers({ timeoutMs: 120_000 });

const INIT_SECRET = "init-secret-4711";
const WRONG_SECRET = "wrong-secret-4712";
const ROLE_SECRET = "role-secret-4713";

for (const adapter of [undefined, "subprocess"] as Array<Adapter | undefined>) {
  describe(`${adapter ?? "default"} server`, () => {
    test("no password reaches the server log, and a refused ALTER ROLE is one error", async () => {
      const dir = mkdtempSync(join(tmpdir(), "pgts-secrets-"));
      try {
        const pwfile = join(dir, "pw");
        writeFileSync(pwfile, `${INIT_SECRET}\n`);
        const s = await startSqlServer({
          initArgs: ["-U", "postgres", "--auth", "scram-sha-256", "--pwfile", pwfile],
          perTest: true,
          settings: { log_connections: true, log_disconnections: true },
          ...(adapter === undefined ? {} : { adapter }),
        });
        const admin = await pgClient(s, { password: INIT_SECRET });
        await admin.query(`create role mallory login password '${ROLE_SECRET}'`);
        const bad = await connectError(s, { user: "mallory", password: WRONG_SECRET });
        expect(bad?.code).toBe("28P01");

        const r = await psql(s, ["-U", "mallory", "-c", "ALTER ROLE mallory SUPERUSER"], {
          env: { PGPASSWORD: ROLE_SECRET },
        });
        expect(r.code).not.toBe(0);
        expect(r.err.trim().split("\n")).toEqual([
          "ERROR:  permission denied to alter role",
          "DETAIL:  Only roles with the SUPERUSER attribute may change the SUPERUSER attribute.",
        ]);
        await admin.end();
        for (const secret of [INIT_SECRET, WRONG_SECRET, ROLE_SECRET]) {
          expect(s.log).not.toContain(secret);
        }
        expect(s.log).not.toContain("engine failure");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
