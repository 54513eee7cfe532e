/**
 * Sequelize against pgts, as its users write it: `sync({ force: true })`
 * of models with an association, queries and updates;
 * `transaction({ isolationLevel: SERIALIZABLE })` (START TRANSACTION, then
 * `SET TRANSACTION ISOLATION LEVEL SERIALIZABLE`, which once poisoned the
 * engine for every session) and the other sessions and new connections
 * after it; two concurrent transactions on two pooled connections, each
 * with its own temporary table; a session advisory lock taken by one app
 * instance and refused to another until the first stops; `PREPARE
 * TRANSACTION` refused with 55000 and the connection going on. The default
 * (in-process) server and --adapter subprocess (ENGINE_TEST_ADAPTERS), one server each.
 */

import { describe, expect, test } from "bun:test";
import { DataTypes, QueryTypes, Sequelize, Transaction } from "sequelize";
import { sharedServer, useSqlServers, waitFor } from "../../helpers/pgts-sql.ts";
import type { PgtsServer } from "../../helpers/pgts.ts";
import { ENGINE_TEST_ADAPTERS } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });

const open = new Set<Sequelize>();

function sequelize(server: PgtsServer, max = 2): Sequelize {
  const sq = new Sequelize("postgres", "postgres", "", {
    host: server.host,
    port: server.port,
    dialect: "postgres",
    logging: false,
    pool: { max, min: 0, acquire: 20_000 },
  });
  open.add(sq);
  return sq;
}

async function close(sq: Sequelize): Promise<void> {
  if (open.delete(sq)) await sq.close();
}

async function one<T>(sq: Sequelize, sql: string, t?: Transaction): Promise<T> {
  const rows = await sq.query(sql, {
    type: QueryTypes.SELECT,
    ...(t === undefined ? {} : { transaction: t }),
  });
  return Object.values(rows[0] as Record<string, unknown>)[0] as T;
}

function models(sq: Sequelize) {
  const Author = sq.define("SeqAuthor", {
    id: { type: DataTypes.UUID, defaultValue: DataTypes.UUIDV4, primaryKey: true },
    name: { type: DataTypes.STRING, allowNull: false, unique: true },
  });
  const Post = sq.define("SeqPost", {
    title: { type: DataTypes.STRING, allowNull: false },
    likes: { type: DataTypes.INTEGER, defaultValue: 0 },
  });
  Author.hasMany(Post, { foreignKey: "authorId" });
  Post.belongsTo(Author, { foreignKey: "authorId" });
  return { Author, Post };
}

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("sync, queries with an association, and a SERIALIZABLE transaction; the server serves on", async () => {
      const sq = sequelize(server());
      try {
        const { Author, Post } = models(sq);
        await sq.sync({ force: true });
        const ann = await Author.create({ name: "ann" });
        await Post.bulkCreate([
          { title: "one", authorId: ann.get("id") },
          { title: "two", authorId: ann.get("id") },
        ]);
        const found = await Author.findOne({ where: { name: "ann" }, include: [Post] });
        expect((found?.get("SeqPosts") as unknown[]).length).toBe(2);

        const iso = await sq.transaction(
          { isolationLevel: Transaction.ISOLATION_LEVELS.SERIALIZABLE },
          async (t) => {
            await Post.increment("likes", { by: 3, where: { title: "one" }, transaction: t });
            return await one<string>(sq, "select current_setting('transaction_isolation')", t);
          },
        );
        expect(iso).toBe("serializable");
        expect((await Post.findOne({ where: { title: "one" } }))?.get("likes")).toBe(3);
        // A failing SERIALIZABLE transaction is rolled back, and nothing sticks.
        const err = await sq.transaction(
          { isolationLevel: Transaction.ISOLATION_LEVELS.SERIALIZABLE },
          async (t) => {
            await Post.create({ title: "three", authorId: ann.get("id") }, { transaction: t });
            await Author.create({ name: "ann" }, { transaction: t });
          },
        ).then(() => null, (e: { parent?: { code?: string } }) => e.parent?.code);
        expect(err).toBe("23505");
        expect(await Post.count()).toBe(2);
        expect(await one<string>(sq, "select current_setting('transaction_isolation')"))
          .toBe("read committed");

        const fresh = sequelize(server(), 1);
        expect(await one<number>(fresh, 'select count(*)::int from "SeqPosts"')).toBe(2);
        expect(await one<string>(fresh, "show transaction_isolation")).toBe("read committed");
        await close(fresh);
      } finally {
        await close(sq);
      }
    });

    test("two concurrent transactions on two pooled connections each have their own temporary table", async () => {
      const sq = sequelize(server());
      try {
        // Two statements at once open the pool's two connections. Sequelize
        // takes a connection back a few ticks after its query's answer: wait
        // for both, or the pool gives both transactions the one it has back,
        // one after the other (under the subprocess adapter it did, every
        // time this case ran alone).
        await Promise.all([sq.query("select pg_sleep(0.05)"), sq.query("select pg_sleep(0.05)")]);
        const pool = (sq.connectionManager as unknown as { pool: { available: number } }).pool;
        await waitFor("both connections back in the pool", () => pool.available === 2 || undefined);
        const work = (v: string) =>
          sq.transaction(async (t) => {
            await sq.query("create temp table if not exists scratch (v text)", { transaction: t });
            await sq.query("insert into scratch values (:v)", {
              replacements: { v },
              transaction: t,
            });
            const rows = await sq.query("select v from scratch", {
              type: QueryTypes.SELECT,
              transaction: t,
            });
            return [await one<number>(sq, "select pg_backend_pid()", t), rows] as const;
          });
        const [[pidA, rowsA], [pidB, rowsB]] = await Promise.all([work("a"), work("b")]);
        expect(pidA).not.toBe(pidB);
        expect(rowsA).toEqual([{ v: "a" }]);
        expect(rowsB).toEqual([{ v: "b" }]);
      } finally {
        await close(sq);
      }
    });

    test("a session advisory lock is one app instance's until it stops", async () => {
      const first = sequelize(server(), 1);
      const second = sequelize(server(), 1);
      try {
        const take = (sq: Sequelize) => one<boolean>(sq, "select pg_try_advisory_lock(1, 2)");
        expect(await take(first)).toBe(true);
        expect(await take(first)).toBe(true); // re-entrant for its holder
        expect(await take(second)).toBe(false);
        await close(first);
        // Free once first's backend has ended, which follows the close (in PostgreSQL too).
        expect(await waitFor("the first instance's lock to be freed", () => take(second))).toBe(
          true,
        );
        expect(await one<boolean>(second, "select pg_advisory_unlock(1, 2)")).toBe(true);
      } finally {
        await close(first);
        await close(second);
      }
    });

    test("PREPARE TRANSACTION gets 55000 and the connection goes on", async () => {
      const sq = sequelize(server(), 1);
      try {
        const t = await sq.transaction();
        await sq.query("create table if not exists seq_2pc (x int)", { transaction: t });
        const e = await sq.query("prepare transaction 'seq_tx1'", { transaction: t }).then(
          () => null,
          (x: { parent?: { code?: string; message?: string } }) => x.parent,
        );
        expect(e?.code).toBe("55000");
        expect(e?.message).toBe("prepared transactions are disabled");
        await t.rollback();
        expect(await one<string | null>(sq, "select to_regclass('seq_2pc')::text")).toBeNull();
        expect(await one<number>(sq, "select 1")).toBe(1);
        const other = sequelize(server(), 1);
        expect(await one<number>(other, "select 2")).toBe(2);
        await close(other);
      } finally {
        await close(sq);
      }
    });
  });
}
