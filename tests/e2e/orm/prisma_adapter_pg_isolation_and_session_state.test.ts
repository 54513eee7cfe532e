/**
 * Prisma ORM 7 against pgts through `@prisma/adapter-pg` (node-postgres
 * underneath), with the Rust-free client: the `prisma-client` generator
 * writes TypeScript that runs the query compiler as WASM, so nothing is
 * fetched but npm packages. What its users do: an interactive
 * `$transaction(fn, { isolationLevel: "Serializable" })` (BEGIN with the
 * level, which once poisoned the engine for every session), and after it
 * the pool, another client and a new connection; two interactive
 * transactions at once, each on its own pooled connection with its own
 * temporary table; `pg_try_advisory_lock(72707369)`, the key Prisma
 * Migrate locks, held by one app instance and refused to another until it
 * stops; `PREPARE TRANSACTION` refused with 55000 (P2010) and the client
 * going on. The default (in-process) server and --adapter subprocess (ENGINE_TEST_ADAPTERS), one server each.
 *
 * `prisma generate` runs before the tests, into a directory under the
 * project's .tmp (the generated client imports @prisma/client's runtime,
 * found through the project's node_modules). The CLI insists on the native
 * schema engine binary, downloaded from binaries.prisma.sh, even for
 * generate, which never runs it; PRISMA_SCHEMA_ENGINE_BINARY names a
 * program instead so that nothing is downloaded. The schema engine (db
 * push, migrate) is therefore not run: tables are made with raw SQL.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PrismaPg } from "@prisma/adapter-pg";
import { sharedServer, useSqlServers, waitFor } from "../../helpers/pgts-sql.ts";
import { BUN, ENGINE_TEST_ADAPTERS, type PgtsServer, ROOT } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });

const SCHEMA = `
generator client {
  provider = "prisma-client"
  output   = "./client"
}

datasource db {
  provider = "postgresql"
}

model PrismaAccount {
  id      Int    @id @default(autoincrement())
  name    String @unique
  balance Int
}
`;

const TABLE = `create table if not exists "PrismaAccount" (
  id serial primary key, name text not null unique, balance int not null)`;

interface Account {
  name: string;
  balance: number;
}
/** The part of the generated client the tests use. */
interface Client {
  prismaAccount: {
    create(a: { data: Account }): Promise<Account>;
    update(a: { where: { name: string }; data: Record<string, unknown> }): Promise<Account>;
    findUniqueOrThrow(a: { where: { name: string } }): Promise<Account>;
    count(a?: { where: { name: string } }): Promise<number>;
    deleteMany(): Promise<unknown>;
  };
  $transaction<T>(
    fn: (tx: Client) => Promise<T>,
    options?: { isolationLevel?: string; timeout?: number; maxWait?: number },
  ): Promise<T>;
  $queryRawUnsafe<T = Record<string, unknown>[]>(sql: string): Promise<T>;
  $executeRawUnsafe(sql: string): Promise<number>;
  $disconnect(): Promise<void>;
}

let dir = "";
let PrismaClient: new (options: { adapter: PrismaPg }) => Client;

beforeAll(async () => {
  mkdirSync(join(ROOT, ".tmp"), { recursive: true });
  dir = mkdtempSync(join(ROOT, ".tmp", "orm-prisma-"));
  writeFileSync(join(dir, "schema.prisma"), SCHEMA);
  const p = Bun.spawn(
    [
      BUN,
      join(ROOT, "node_modules/prisma/build/index.js"),
      "generate",
      "--schema",
      "schema.prisma",
    ],
    {
      cwd: dir,
      env: {
        ...process.env,
        PRISMA_SCHEMA_ENGINE_BINARY: "/bin/false",
        PRISMA_HIDE_UPDATE_MESSAGE: "1",
        CHECKPOINT_DISABLE: "1",
      },
      stdout: "pipe",
      stderr: "pipe",
    },
  );
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  if (code !== 0) throw new Error(`prisma generate failed (${code}):\n${out}\n${err}`);
  ({ PrismaClient } = await import(join(dir, "client", "client.ts")));
}, 60_000);

afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

const clients = new Set<Client>();

function prisma(server: PgtsServer, max = 2): Client {
  const c = new PrismaClient({
    adapter: new PrismaPg({
      connectionString: `postgresql://postgres@${server.host}:${server.port}/postgres`,
      max,
      connectionTimeoutMillis: 10_000,
    }),
  });
  clients.add(c);
  return c;
}

async function disconnect(c: Client): Promise<void> {
  if (clients.delete(c)) await c.$disconnect();
}

afterAll(async () => {
  for (const c of [...clients]) await disconnect(c);
});

const iso = async (c: Client) =>
  (await c.$queryRawUnsafe<{ i: string }[]>(
    "select current_setting('transaction_isolation') as i",
  ))[0]!.i;

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("a Serializable interactive transaction commits; the pool, other clients and new connections serve on", async () => {
      const db = prisma(server());
      try {
        await db.$executeRawUnsafe(TABLE);
        await db.prismaAccount.deleteMany();
        await db.prismaAccount.create({ data: { name: "a", balance: 100 } });
        await db.prismaAccount.create({ data: { name: "b", balance: 0 } });
        const seen = await db.$transaction(async (tx) => {
          await tx.prismaAccount.update({
            where: { name: "a" },
            data: { balance: { decrement: 30 } },
          });
          await tx.prismaAccount.update({
            where: { name: "b" },
            data: { balance: { increment: 30 } },
          });
          return await iso(tx);
        }, { isolationLevel: "Serializable" });
        expect(seen).toBe("serializable");
        expect((await db.prismaAccount.findUniqueOrThrow({ where: { name: "a" } })).balance)
          .toBe(70);
        // One that throws is rolled back.
        const thrown = await db.$transaction(async (tx) => {
          await tx.prismaAccount.update({ where: { name: "a" }, data: { balance: 0 } });
          throw new Error("changed my mind");
        }, { isolationLevel: "RepeatableRead" }).then(() => "", (e: Error) => e.message);
        expect(thrown).toBe("changed my mind");
        expect((await db.prismaAccount.findUniqueOrThrow({ where: { name: "a" } })).balance)
          .toBe(70);
        expect(await iso(db)).toBe("read committed");

        const other = prisma(server(), 1);
        expect(await other.prismaAccount.count()).toBe(2);
        expect(await iso(other)).toBe("read committed");
        await disconnect(other);
      } finally {
        await disconnect(db);
      }
    });

    test("two interactive transactions at once each have their own connection and temporary table", async () => {
      const db = prisma(server());
      try {
        const work = (v: string) =>
          db.$transaction(async (tx) => {
            await tx.$executeRawUnsafe("create temp table if not exists scratch (v text)");
            await tx.$executeRawUnsafe(`insert into scratch values ('${v}')`);
            const pid = (await tx.$queryRawUnsafe<{ pid: number }[]>(
              "select pg_backend_pid() as pid",
            ))[0]!.pid;
            return [pid, await tx.$queryRawUnsafe("select v from scratch")] as const;
          }, { maxWait: 20_000, timeout: 20_000 });
        const [[pidA, rowsA], [pidB, rowsB]] = await Promise.all([work("a"), work("b")]);
        expect(pidA).not.toBe(pidB);
        expect(rowsA).toEqual([{ v: "a" }]);
        expect(rowsB).toEqual([{ v: "b" }]);
      } finally {
        await disconnect(db);
      }
    });

    test("Prisma Migrate's advisory lock key is one app instance's until it stops", async () => {
      const first = prisma(server(), 1);
      const second = prisma(server(), 1);
      try {
        const take = async (c: Client) =>
          (await c.$queryRawUnsafe<{ ok: boolean }[]>(
            "select pg_try_advisory_lock(72707369) as ok",
          ))[0]!.ok;
        expect(await take(first)).toBe(true);
        expect(await take(second)).toBe(false);
        await disconnect(first);
        // Released when first's backend ends, which follows the disconnect
        // (in PostgreSQL too): second gets it within moments, not at once.
        expect(await waitFor("the first instance's lock to be freed", () => take(second))).toBe(
          true,
        );
        await second.$queryRawUnsafe("select pg_advisory_unlock(72707369)");
      } finally {
        await disconnect(first);
        await disconnect(second);
      }
    });

    test("PREPARE TRANSACTION gets 55000 (P2010) and the client goes on", async () => {
      const db = prisma(server());
      try {
        await db.$executeRawUnsafe(TABLE);
        const e = await db.$transaction(async (tx) => {
          await tx.prismaAccount.create({ data: { name: "two-phase", balance: 1 } });
          return await tx.$executeRawUnsafe("prepare transaction 'prisma_tx1'").then(
            () => null,
            (x: unknown) => x,
          );
        }) as { code?: string; meta?: { driverAdapterError?: { cause?: { code?: string } } } };
        expect(e?.code).toBe("P2010");
        expect(e?.meta?.driverAdapterError?.cause?.code).toBe("55000");
        // PostgreSQL ended the transaction at the error: nothing of it stays.
        expect(await db.prismaAccount.count({ where: { name: "two-phase" } })).toBe(0);
        expect(await iso(db)).toBe("read committed");
        const other = prisma(server(), 1);
        expect(await other.prismaAccount.count({ where: { name: "two-phase" } })).toBe(0);
        await disconnect(other);
      } finally {
        await disconnect(db);
      }
    });
  });
}
