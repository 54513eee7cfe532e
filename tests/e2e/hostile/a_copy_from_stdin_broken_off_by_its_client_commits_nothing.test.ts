/**
 * A COPY FROM STDIN that its client breaks off, after the CopyInResponse
 * and some CopyData, commits nothing and leaves the engine to the next
 * client at once, however it is broken off: a message that has no place in
 * a COPY (PostgreSQL's ERROR "unexpected message type", then FATAL
 * "protocol synchronization was lost"), a type byte that is no frontend message at all (FATAL
 * 08P01), a malformed length word (the connection is closed, as
 * PostgreSQL's pq_getmessage closes it), a close without CopyDone or
 * CopyFail, and a Terminate. The COPY's exec reads the client's data as it
 * arrives (src/engines/pglite/copyfeed.ts), so every one of these must end
 * that exec too. Under the default adapter and `--adapter subprocess`.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type pg from "pg";
import {
  concat,
  cstr,
  errorFields,
  message,
  pgClient,
  RawConnection,
  sleep,
  startSqlServer,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";
import type { PgtsServer } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });

const enc = new TextEncoder();

/** A length word that no message may have (less than its own 4 bytes). */
function badLength(type: string): Uint8Array {
  return new Uint8Array([type.charCodeAt(0), 0, 0, 0, 2]);
}

/**
 * ms until `client` gets `select 1` answered. Each try waits for the engine
 * at most engine_wait_timeout (200 ms here), so a holder shows as 55P03 and
 * the next try follows at once.
 */
async function servedWithin(client: pg.Client): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    try {
      const r = await client.query("select 1 as one");
      expect(r.rows[0].one).toBe(1);
      return performance.now() - t0;
    } catch (e) {
      if ((e as { code?: string }).code !== "55P03" || performance.now() - t0 > 20_000) throw e;
    }
  }
}

for (const adapter of [undefined, "subprocess"] as const) {
  describe(`${adapter ?? "default"} adapter`, () => {
    let server: PgtsServer;
    let other: pg.Client & { asyncErrors: Error[] };
    beforeAll(async () => {
      server = await startSqlServer({
        ...(adapter !== undefined ? { adapter } : {}),
        settings: { engine_wait_timeout: "200ms" },
      });
      other = await pgClient(server);
    }, 90_000);
    afterAll(async () => {
      await other?.end().catch(() => {});
    });

    /** A raw session inside `copy <table> from stdin`, two rows of CopyData sent and taken. */
    async function copying(table: string): Promise<RawConnection> {
      await other.query(`create table ${table} (n int)`);
      const raw = await RawConnection.open(server);
      await raw.startup();
      raw.send(message("Q", cstr(`copy ${table} from stdin`)));
      expect((await raw.until("G"))?.type).toBe("G");
      raw.send(message("d", enc.encode("1\n2\n")));
      await sleep(100);
      // The COPY runs on the engine, reading the data as it comes: it holds the engine.
      await expect(other.query("select count(*) from pg_class")).rejects.toMatchObject({
        code: "55P03",
      });
      return raw;
    }

    async function rows(table: string): Promise<number> {
      const r = await other.query(`select count(*)::int as n from ${table}`);
      return r.rows[0].n;
    }

    test("a Query mid-COPY: ERROR and FATAL 08P01 as in PostgreSQL, the engine freed, nothing committed", async () => {
      const raw = await copying("unexpected");
      raw.send(message("Q", cstr("insert into unexpected values (3)")));
      const got = (await raw.drain()).filter((m) => m.type === "E").map((m) => errorFields(m.body));
      expect(got).toEqual([
        expect.objectContaining({
          S: "ERROR",
          C: "08P01",
          M: "unexpected message type 0x51 during COPY from stdin",
        }),
        expect.objectContaining({
          S: "FATAL",
          C: "08P01",
          M: "terminating connection because protocol synchronization was lost",
        }),
      ]);
      expect(await servedWithin(other)).toBeLessThan(1000);
      expect(await rows("unexpected")).toBe(0);
    });

    test("an invalid message type mid-COPY ends the session (FATAL 08P01) and frees the engine", async () => {
      const raw = await copying("invalid");
      raw.send(message("x", new Uint8Array(3)));
      const got = (await raw.drain()).filter((m) => m.type === "E").map((m) => errorFields(m.body));
      expect(got).toEqual([
        expect.objectContaining({ S: "FATAL", C: "08P01", M: "invalid frontend message type 120" }),
      ]);
      expect(await servedWithin(other)).toBeLessThan(1000);
      expect(await rows("invalid")).toBe(0);
    });

    test("a malformed CopyData mid-COPY closes the connection and frees the engine", async () => {
      const raw = await copying("malformed");
      raw.send(badLength("d"));
      await raw.drain();
      expect(await servedWithin(other)).toBeLessThan(1000);
      expect(await rows("malformed")).toBe(0);
    });

    test("a close without CopyDone or CopyFail frees the engine", async () => {
      const raw = await copying("closed");
      raw.close();
      expect(await servedWithin(other)).toBeLessThan(1000);
      expect(await rows("closed")).toBe(0);
    });

    test("a COPY waiting for the engine while another's client leaves mid-COPY gets its data", async () => {
      await other.query("create table next_copy (n int)");
      for (let round = 0; round < 3; round++) {
        const gone = await copying(`left_${round}`);
        const next = await RawConnection.open(server);
        await next.startup();
        next.send(message("Q", cstr("copy next_copy from stdin")));
        await sleep(50);
        gone.close();
        expect((await next.until("G"))?.type).toBe("G");
        next.send(concat(message("d", enc.encode("1\n2\n")), message("c", new Uint8Array(0))));
        const done = await next.until("C");
        expect(new TextDecoder().decode(done!.body)).toBe("COPY 2\0");
        expect((await next.until("Z"))?.type).toBe("Z");
        next.close();
        expect(await rows(`left_${round}`)).toBe(0);
      }
      expect(await rows("next_copy")).toBe(6);
    });

    test("a Terminate mid-COPY frees the engine", async () => {
      const raw = await copying("terminated");
      raw.send(message("X", new Uint8Array(0)));
      await raw.drain();
      expect(await servedWithin(other)).toBeLessThan(1000);
      expect(await rows("terminated")).toBe(0);
      expect(other.asyncErrors).toEqual([]);
    });
  });
}
