/**
 * max_connections, superuser_reserved_connections and reserved_connections
 * through a real pgts server: past the limit a client gets FATAL 53300
 * "sorry, too many clients already"; the last reserved slots go only to
 * superusers, the reserved_connections before them to roles with
 * privileges of pg_use_reserved_connections too; a slot is usable again
 * once its client has left; and a statement that computes does not keep
 * the postmaster from refusing.
 */

import { expect, test } from "bun:test";
import {
  connectError,
  pgClient,
  psql,
  sendCancelRequest,
  sharedServer,
  useSqlServers,
  waitFor,
} from "../../helpers/pgts-sql.ts";

useSqlServers();
const server = sharedServer({
  settings: { max_connections: 3, superuser_reserved_connections: 1 },
});

test("non-superusers get the unreserved slots, a superuser the last, then 53300 for everyone", async () => {
  const setup = await psql(server(), ["-c", "create role app login password 'app-pw'"]);
  expect(setup.err).toBe("");
  const app1 = await pgClient(server(), { user: "app" });
  const app2 = await pgClient(server(), { user: "app" });
  expect((await app1.query("select current_user as u")).rows).toEqual([{ u: "app" }]);

  const reserved = await connectError(server(), { user: "app" });
  expect(reserved?.code).toBe("53300");
  expect(reserved?.severity).toBe("FATAL");
  expect(reserved?.message).toBe(
    "remaining connection slots are reserved for roles with the SUPERUSER attribute",
  );

  // The refused backend's slot is free once the postmaster has reaped it; in
  // PostgreSQL its PGPROC is free before the client even reads the FATAL.
  const admin = await waitFor("the superuser to get the reserved slot", async () => {
    try {
      return await pgClient(server(), { user: "postgres" });
    } catch (e) {
      if ((e as Error).message !== "sorry, too many clients already") throw e;
      return undefined;
    }
  }, { timeoutMs: 3_000 });
  expect((await admin.query("select 'superuser in the reserved slot' as v")).rows.length).toBe(1);

  const tooMany = await connectError(server(), { user: "postgres" });
  expect(tooMany?.code).toBe("53300");
  expect(tooMany?.message).toBe("sorry, too many clients already");
  const tooManyApp = await connectError(server(), { user: "app" });
  expect(tooManyApp?.code).toBe("53300");

  // Those already connected were not disturbed.
  expect((await app2.query("select 2 as v")).rows).toEqual([{ v: 2 }]);
  expect(app1.asyncErrors).toEqual([]);

  // With the superuser gone, a slot is free for a non-superuser again, once
  // the backend that held it has exited.
  await admin.end();
  await app1.end();
  const again = await waitFor("a non-superuser slot to be free again", async () => {
    const e = await connectError(server(), { user: "app" });
    return e === null ? true : undefined;
  });
  expect(again).toBe(true);
  await app2.end();
});

test("while a statement computes, a client past the limit still gets 53300 at once", async () => {
  // The slots of the test before are free once their backends are reaped.
  const slot = () =>
    waitFor("a free slot", async () => {
      try {
        return await pgClient(server());
      } catch {
        return undefined;
      }
    }, { timeoutMs: 5_000 });
  const [a, b] = [await slot(), await slot()];
  // A PL/pgSQL loop: no host call, the engine is busy until it is cancelled.
  const running = a.query("do $$ begin loop end loop; end $$").then(() => null, (e) => e);
  const c = await slot();
  const started = performance.now();
  const refused = await connectError(server());
  expect(refused?.code).toBe("53300");
  expect(performance.now() - started).toBeLessThan(3_000);
  // The loop ends only by a cancel: its client's CancelRequest.
  const { processID, secretKey } = a as unknown as { processID: number; secretKey: number };
  await sendCancelRequest(server(), processID, secretKey);
  expect((await running)?.code).toBe("57014");
  await Promise.all([a.end(), b.end(), c.end()]);
});

const reservedServer = sharedServer({
  settings: { max_connections: 4, superuser_reserved_connections: 1, reserved_connections: 1 },
});

test("reserved_connections: its slots go to roles with privileges of pg_use_reserved_connections, then the superusers' last", async () => {
  const setup = await psql(reservedServer(), [
    "-c",
    "create role plain login; create role monitor login in role pg_use_reserved_connections",
  ]);
  expect(setup.err).toBe("");
  const open = [
    await pgClient(reservedServer(), { user: "plain" }),
    await pgClient(reservedServer(), { user: "plain" }),
  ];
  try {
    const plain = await connectError(reservedServer(), { user: "plain" });
    expect([plain?.code, plain?.severity, plain?.message]).toEqual([
      "53300",
      "FATAL",
      'remaining connection slots are reserved for roles with privileges of the "pg_use_reserved_connections" role',
    ]);
    open.push(await pgClient(reservedServer(), { user: "monitor" }));
    const second = await connectError(reservedServer(), { user: "monitor" });
    expect(second?.message).toBe(
      "remaining connection slots are reserved for roles with the SUPERUSER attribute",
    );
    open.push(await pgClient(reservedServer()));
    expect((await connectError(reservedServer()))?.message).toBe(
      "sorry, too many clients already",
    );
  } finally {
    for (const c of open) await c.end();
  }
});
