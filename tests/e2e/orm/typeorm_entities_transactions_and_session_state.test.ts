/**
 * TypeORM against pgts, as its users write it: decorated entities with a
 * `uuid` primary key (TypeORM's default `uuid_generate_v4()`, so
 * `CREATE EXTENSION "uuid-ossp"`) and `synchronize: true`;
 * `manager.transaction("SERIALIZABLE", …)` (which sends
 * `SET TRANSACTION ISOLATION LEVEL SERIALIZABLE` and once poisoned the
 * engine for every session); temporary tables made by two connections of
 * one pool; `pg_try_advisory_lock` as a migration lock held by one
 * DataSource while another tries; `PREPARE TRANSACTION` refused with 55000
 * and the connection going on. After each, other connections and new ones
 * still work. The default (in-process) server and --adapter subprocess (ENGINE_TEST_ADAPTERS), one server each.
 *
 * The entity is TypeORM's decorators applied as TypeScript compiles them
 * with `experimentalDecorators` (a property decorator is called with the
 * prototype and the name, then the class decorator with the class): bun
 * test reads no tsconfig.json below the project's root, and the project
 * has no decorators elsewhere to give it one.
 */

import "reflect-metadata";
import { describe, expect, test } from "bun:test";
import { Column, DataSource, Entity, PrimaryGeneratedColumn, QueryFailedError } from "typeorm";
import { sharedServer, useSqlServers, waitFor } from "../../helpers/pgts-sql.ts";
import type { PgtsServer } from "../../helpers/pgts.ts";
import { ENGINE_TEST_ADAPTERS } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });

class Item {
  id!: string;
  name!: string;
  qty!: number;
}
PrimaryGeneratedColumn("uuid")(Item.prototype, "id");
Column({ type: "text" })(Item.prototype, "name");
Column({ type: "int", default: 0 })(Item.prototype, "qty");
Entity({ name: "typeorm_item" })(Item);

const sources = new Set<DataSource>();

async function dataSource(server: PgtsServer, poolSize = 2): Promise<DataSource> {
  const ds = new DataSource({
    type: "postgres",
    host: server.host,
    port: server.port,
    username: "postgres",
    database: "postgres",
    entities: [Item],
    synchronize: true,
    uuidExtension: "uuid-ossp",
    poolSize,
    connectTimeoutMS: 10_000,
  });
  sources.add(ds);
  await ds.initialize();
  return ds;
}

async function destroy(ds: DataSource): Promise<void> {
  sources.delete(ds);
  if (ds.isInitialized) await ds.destroy();
}

/** What a fresh connection and an existing one answer: both must work. */
async function othersStillWork(server: PgtsServer, ds: DataSource): Promise<void> {
  const fresh = await dataSource(server, 1);
  expect(await fresh.getRepository(Item).countBy({ name: "nobody" })).toBe(0);
  const [row] = await fresh.query("select current_setting('transaction_isolation') as iso");
  expect(row.iso).toBe("read committed");
  await destroy(fresh);
  const [again] = await ds.query("select current_setting('transaction_isolation') as iso");
  expect(again.iso).toBe("read committed");
}

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("synchronize makes a uuid-keyed table; a SERIALIZABLE transaction commits and the server serves on", async () => {
      const ds = await dataSource(server());
      try {
        const repo = ds.getRepository(Item);
        const saved = await repo.save(repo.create({ name: "bolt", qty: 1 }));
        expect(saved.id).toMatch(
          /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
        );
        const [def] = await ds.query(
          "select column_default from information_schema.columns" +
            " where table_name = 'typeorm_item' and column_name = 'id'",
        );
        expect(def.column_default).toBe("uuid_generate_v4()");

        const seen = await ds.manager.transaction("SERIALIZABLE", async (m) => {
          await m.increment(Item, { id: saved.id }, "qty", 5);
          const [r] = await m.query("select current_setting('transaction_isolation') as iso");
          return r.iso as string;
        });
        expect(seen).toBe("serializable");
        expect((await repo.findOneByOrFail({ id: saved.id })).qty).toBe(6);

        // A READ ONLY one too: its write fails, and the next transaction is ordinary.
        const err = await ds.manager.transaction("REPEATABLE READ", async (m) => {
          await m.query("set transaction read only");
          return await m.insert(Item, { name: "nope" }).then(() => null, (e: unknown) => e);
        });
        expect(err).toBeInstanceOf(QueryFailedError);
        expect((err as QueryFailedError & { driverError: { code: string } }).driverError.code)
          .toBe("25006");
        await repo.save(repo.create({ name: "nut" }));
        expect(await repo.countBy({ name: "nut" })).toBeGreaterThanOrEqual(1);
        await othersStillWork(server(), ds);
      } finally {
        await destroy(ds);
      }
    });

    test("two connections of one pool each have their own temporary table", async () => {
      const ds = await dataSource(server());
      const a = ds.createQueryRunner();
      const b = ds.createQueryRunner();
      try {
        await a.connect();
        await b.connect();
        const pidA = (await a.query("select pg_backend_pid() as pid"))[0].pid;
        const pidB = (await b.query("select pg_backend_pid() as pid"))[0].pid;
        expect(pidA).not.toBe(pidB);
        for (const [r, v] of [[a, "from a"], [b, "from b"]] as const) {
          await r.query("create temp table scratch (v text)");
          await r.query("insert into scratch values ($1)", [v]);
        }
        expect(await a.query("select v from scratch")).toEqual([{ v: "from a" }]);
        expect(await b.query("select v from scratch")).toEqual([{ v: "from b" }]);
        expect(await a.hasTable("scratch")).toBe(false); // TypeORM looks in current_schema()
      } finally {
        await a.release();
        await b.release();
        await destroy(ds);
      }
      // Gone with the sessions: a new connection has no such table.
      const fresh = await dataSource(server(), 1);
      const e = await fresh.query("select * from scratch").then(() => null, (x: unknown) => x);
      expect((e as { driverError?: { code?: string } }).driverError?.code).toBe("42P01");
      await destroy(fresh);
    });

    test("pg_try_advisory_lock as a migration lock: one app instance holds it, the other waits its turn", async () => {
      const first = await dataSource(server(), 1);
      const second = await dataSource(server(), 1);
      try {
        const take = async (ds: DataSource) =>
          (await ds.query("select pg_try_advisory_lock(72707369) as ok"))[0].ok as boolean;
        expect(await take(first)).toBe(true);
        expect(await take(second)).toBe(false);
        // The first instance stops: the lock is free once its backend has
        // ended, which follows the disconnect (in PostgreSQL too).
        await destroy(first);
        expect(await waitFor("the first instance's lock to be freed", () => take(second))).toBe(
          true,
        );
        const third = await dataSource(server(), 1);
        expect(await take(third)).toBe(false);
        expect((await second.query("select pg_advisory_unlock(72707369) as ok"))[0].ok).toBe(true);
        expect(await take(third)).toBe(true);
        await destroy(third);
      } finally {
        await destroy(first);
        await destroy(second);
      }
    });

    test("PREPARE TRANSACTION gets 55000 and the connection goes on", async () => {
      const ds = await dataSource(server());
      const r = ds.createQueryRunner();
      try {
        await r.connect();
        await r.startTransaction();
        await r.query("insert into typeorm_item (name) values ('two-phase')");
        const e = await r.query("prepare transaction 'typeorm_tx1'").then(
          () => null,
          (x: unknown) => x,
        );
        expect(e).toBeInstanceOf(QueryFailedError);
        const d = (e as { driverError: { code: string; message: string } }).driverError;
        expect(d.code).toBe("55000");
        expect(d.message).toBe("prepared transactions are disabled");
        await r.rollbackTransaction();
        expect(await ds.getRepository(Item).countBy({ name: "two-phase" })).toBe(0);
        expect((await r.query("select 1 as one"))[0].one).toBe(1);
        await othersStillWork(server(), ds);
      } finally {
        await r.release();
        await destroy(ds);
      }
    });
  });
}
