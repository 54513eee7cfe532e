/**
 * A Drizzle ORM application (drizzle-orm on node-postgres or postgres.js),
 * run against a server, printing one line per thing it checks: the
 * migrations of tests/fixtures/drizzle (two, in one transaction, as
 * drizzle-kit generates them: an enum, identity and serial columns, jsonb,
 * arrays, a foreign key, indexes, a view), inserts with RETURNING, upserts,
 * joins, the relational query API (json_agg and lateral joins), views,
 * transactions with rollback, savepoints and isolation levels, named
 * prepared statements run concurrently on a pool, and concurrent
 * transactions. `DRIZZLE_LINES` is what PostgreSQL 15 prints
 * (tests/e2e/upstream/drizzle_through_the_transaction_pool.test.ts checks
 * that against a PostgreSQL 15 started by the test).
 */

import { and, arrayContains, asc, count, desc, eq, gt, inArray, relations, sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  date,
  doublePrecision,
  index,
  integer,
  interval,
  jsonb,
  numeric,
  pgEnum,
  pgTable,
  pgView,
  serial,
  text,
  timestamp,
  uniqueIndex,
  uuid,
  varchar,
} from "drizzle-orm/pg-core";
import { resolve } from "node:path";

const MIGRATIONS = resolve(import.meta.dir, "../fixtures/drizzle");

export const mood = pgEnum("mood", ["sad", "ok", "happy"]);

export const users = pgTable("users", {
  id: serial("id").primaryKey(),
  name: text("name").notNull(),
  email: varchar("email", { length: 120 }).notNull(),
  mood: mood("mood").default("ok"),
  tags: text("tags").array().notNull().default(sql`'{}'::text[]`),
  profile: jsonb("profile").$type<{ lang: string; n?: number[] } | null>(),
  balance: numeric("balance", { precision: 12, scale: 2 }).default("0"),
  big: bigint("big", { mode: "bigint" }),
  ratio: doublePrecision("ratio"),
  born: date("born"),
  wait: interval("wait"),
  nick: text("nick").default("x"),
  token: uuid("token").defaultRandom().notNull(),
  createdAt: timestamp("created_at", { withTimezone: true }).defaultNow().notNull(),
}, (t) => [uniqueIndex("users_email_key").on(t.email), index("users_name_idx").on(t.name)]);

export const posts = pgTable("posts", {
  id: integer("id").primaryKey().generatedAlwaysAsIdentity(),
  userId: integer("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  title: text("title").notNull(),
  published: boolean("published").notNull().default(false),
}, (t) => [index("posts_user_id_idx").on(t.userId)]);

export const usersRelations = relations(users, ({ many }) => ({ posts: many(posts) }));
export const postsRelations = relations(posts, ({ one }) => ({
  author: one(users, { fields: [posts.userId], references: [users.id] }),
}));

export const publishedPosts = pgView("published_posts").as((qb) =>
  qb.select({ id: posts.id, title: posts.title }).from(posts).where(sql`${posts.published}`)
);

const schema = { users, posts, usersRelations, postsRelations, mood };

export type DrizzleDriver = "pg" | "postgres.js";

/** What PostgreSQL 15 prints (checked by the upstream test against one). */
export const DRIZZLE_LINES: readonly string[] = [
  `migrations: [{"n":2,"nick":"'x'::text"}]`,
  'inserted: [{"id":1,"name":"ann","mood":"happy","tags":["a","b"],"balance":"10.50","big":"9007199254740993n","born":"1990-02-03","wait":"1 day 02:00:00"},{"id":2,"name":"bob","mood":"ok","tags":["b"],"balance":"0.00","big":"-1n","born":null,"wait":null},{"id":3,"name":"cy","mood":"sad","tags":[],"balance":"0.00","big":null,"born":null,"wait":null}]',
  "token is uuid: true",
  'upsert: [{"id":1,"name":"ann2!"}]',
  "conflict nothing: []",
  'where: [{"name":"ann2!","profile":{"n":[1,2],"lang":"fi"},"ratio":0.25},{"name":"bob","profile":null,"ratio":null}]',
  'join: [{"u":"ann2!","p":"hello"},{"u":"ann2!","p":"draft"},{"u":"bob","p":"bob\'s"}]',
  'group: [{"u":"ann2!","n":2},{"u":"bob","n":1},{"u":"cy","n":0}]',
  'relational: [{"name":"ann2!","posts":[{"title":"draft"},{"title":"hello"}]},{"name":"bob","posts":[{"title":"bob\'s"}]},{"name":"cy","posts":[]}]',
  'findFirst: {"title":"bob\'s","author":{"email":"bob@x"}}',
  'view: [{"id":3,"title":"bob\'s"},{"id":1,"title":"hello"}]',
  "$count: 2",
  'json path: [{"lang":"fi"},{"lang":null},{"lang":"en"}]',
  'enum values: [{"r":"{sad,ok,happy}"}]',
  'rollback: "TransactionRollbackError"',
  'after rollback: {"b":"0.00"}',
  'inner failed: "23505"',
  'after savepoint: {"b":"1.00"}',
  'tx isolation: [{"transaction_isolation":"repeatable read"}]',
  'fk violation: "23503"',
  'identity always: "428C9"',
  'prepared: "ann2!,bob,cy,ann2!,bob,cy,ann2!,bob,cy,ann2!,bob,cy,ann2!,bob,cy,ann2!,bob,cy,ann2!,bob"',
  "concurrent transactions: 10 committed, 13 posts",
  "delete cascade: 1",
  "posts left: 3",
];

/** The SQLSTATE of a failed Drizzle query (its driver's error is the cause). */
function code(e: unknown): unknown {
  const err = e as { code?: unknown; cause?: { code?: unknown } };
  return err.cause?.code ?? err.code;
}

/**
 * Runs the application against `url` (a database with nothing in it) with
 * the given driver and a pool of five connections; returns its lines.
 */
export async function drizzleLines(url: string, driver: DrizzleDriver): Promise<string[]> {
  const lines: string[] = [];
  const out = (label: string, v: unknown) =>
    lines.push(
      `${label}: ${JSON.stringify(v, (_k, x) => typeof x === "bigint" ? `${x}n` : x)}`,
    );
  // deno-lint-ignore no-explicit-any
  let db: any;
  let end: () => Promise<void>;
  /** The rows of db.execute's result, as both drivers give them. */
  // deno-lint-ignore no-explicit-any
  const rows = (r: any): unknown[] => Array.isArray(r) ? [...r] : r.rows;
  if (driver === "pg") {
    const pg = (await import("pg")).default;
    const { drizzle } = await import("drizzle-orm/node-postgres");
    const { migrate } = await import("drizzle-orm/node-postgres/migrator");
    const pool = new pg.Pool({ connectionString: url, max: 5 });
    db = drizzle(pool, { schema });
    end = () => pool.end();
    await migrate(db, { migrationsFolder: MIGRATIONS });
  } else {
    const postgres = (await import("postgres")).default;
    const { drizzle } = await import("drizzle-orm/postgres-js");
    const { migrate } = await import("drizzle-orm/postgres-js/migrator");
    const client = postgres(url, { max: 5, onnotice: () => {} });
    db = drizzle(client, { schema });
    end = () => client.end();
    await migrate(db, { migrationsFolder: MIGRATIONS });
  }
  try {
    out(
      "migrations",
      rows(
        await db.execute(sql`select (select count(*)::int from drizzle.__drizzle_migrations) as n,
          (select column_default from information_schema.columns
            where table_name = 'users' and column_name = 'nick') as nick`),
      ),
    );

    const ins = await db.insert(users).values([
      {
        name: "ann",
        email: "ann@x",
        mood: "happy",
        tags: ["a", "b"],
        profile: { lang: "fi", n: [1, 2] },
        balance: "10.50",
        big: 9007199254740993n,
        ratio: 0.25,
        born: "1990-02-03",
        wait: "1 day 02:00:00",
      },
      { name: "bob", email: "bob@x", tags: ["b"], profile: null, big: -1n },
      { name: "cy", email: "cy@x", mood: "sad", tags: [], profile: { lang: "en" } },
    ]).returning({
      id: users.id,
      name: users.name,
      mood: users.mood,
      tags: users.tags,
      balance: users.balance,
      big: users.big,
      born: users.born,
      wait: users.wait,
    });
    out("inserted", ins);
    const tokens: { t: string }[] = await db.select({ t: users.token }).from(users);
    out("token is uuid", tokens.every((r) => /^[0-9a-f-]{36}$/.test(r.t)));

    await db.insert(posts).values([
      { userId: ins[0].id, title: "hello", published: true },
      { userId: ins[0].id, title: "draft" },
      { userId: ins[1].id, title: "bob's", published: true },
    ]);
    out(
      "upsert",
      await db.insert(users).values({ name: "ann2", email: "ann@x" })
        .onConflictDoUpdate({ target: users.email, set: { name: sql`excluded.name || '!'` } })
        .returning({ id: users.id, name: users.name }),
    );
    out(
      "conflict nothing",
      await db.insert(users).values({ name: "z", email: "bob@x" }).onConflictDoNothing()
        .returning(),
    );
    out(
      "where",
      await db.select({ name: users.name, profile: users.profile, ratio: users.ratio })
        .from(users).where(and(gt(users.id, 0), arrayContains(users.tags, ["b"])))
        .orderBy(asc(users.id)),
    );
    out(
      "join",
      await db.select({ u: users.name, p: posts.title }).from(posts)
        .innerJoin(users, eq(posts.userId, users.id)).orderBy(desc(posts.title)),
    );
    out(
      "group",
      await db.select({ u: users.name, n: count(posts.id) }).from(users)
        .leftJoin(posts, eq(posts.userId, users.id)).groupBy(users.name).orderBy(users.name),
    );
    out(
      "relational",
      await db.query.users.findMany({
        columns: { name: true },
        with: { posts: { columns: { title: true }, orderBy: [asc(posts.title)] } },
        orderBy: [asc(users.id)],
      }),
    );
    out(
      "findFirst",
      await db.query.posts.findFirst({
        columns: { title: true },
        with: { author: { columns: { email: true } } },
        where: eq(posts.title, "bob's"),
      }),
    );
    out("view", await db.select().from(publishedPosts).orderBy(publishedPosts.title));
    out("$count", await db.$count(users, inArray(users.mood, ["ok", "happy"])));
    out(
      "json path",
      await db.select({ lang: sql`${users.profile}->>'lang'` }).from(users).orderBy(users.id),
    );
    out("enum values", rows(await db.execute(sql`select enum_range(null::mood)::text as r`)));

    // Transactions: rollback, a savepoint rolled back, isolation levels.
    try {
      // deno-lint-ignore no-explicit-any
      await db.transaction(async (tx: any) => {
        await tx.update(users).set({ balance: "999" }).where(eq(users.name, "bob"));
        tx.rollback();
      });
    } catch (e) {
      out("rollback", (e as Error).constructor.name);
    }
    const bob = () => db.select({ b: users.balance }).from(users).where(eq(users.name, "bob"));
    out("after rollback", (await bob())[0]);
    // deno-lint-ignore no-explicit-any
    await db.transaction(async (tx: any) => {
      await tx.update(users).set({ balance: "1" }).where(eq(users.name, "bob"));
      try {
        // deno-lint-ignore no-explicit-any
        await tx.transaction(async (tx2: any) => {
          await tx2.update(users).set({ balance: "2" }).where(eq(users.name, "bob"));
          await tx2.insert(users).values({ name: "dup", email: "cy@x" });
        });
      } catch (e) {
        out("inner failed", code(e));
      }
    }, { isolationLevel: "serializable" });
    out("after savepoint", (await bob())[0]);
    try {
      // deno-lint-ignore no-explicit-any
      await db.transaction(async (tx: any) => {
        out("tx isolation", rows(await tx.execute(sql`show transaction_isolation`)));
        await tx.insert(posts).values({ userId: 99999, title: "orphan" });
      }, { isolationLevel: "repeatable read", accessMode: "read write" });
    } catch (e) {
      out("fk violation", code(e));
    }
    try {
      await db.insert(posts).values({ id: 5, userId: 1, title: "x" });
    } catch (e) {
      out("identity always", code(e));
    }

    // A named prepared statement run 20 times at once on the pool of five.
    const byEmail = db.select({ name: users.name }).from(users)
      .where(eq(users.email, sql.placeholder("e"))).prepare("user_by_email");
    const found: { name: string }[][] = await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) => byEmail.execute({ e: ["ann@x", "bob@x", "cy@x"][i % 3] }),
      ),
    );
    out("prepared", found.map((r) => r[0]!.name).join(","));
    // Ten transactions at once, each reading and writing.
    const done = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        // deno-lint-ignore no-explicit-any
        db.transaction(async (tx: any) => {
          const [{ n }] = await tx.select({ n: count() }).from(posts);
          await tx.insert(posts).values({ userId: ins[2].id, title: `t${i}` });
          return n;
        })),
    );
    lines.push(
      `concurrent transactions: ${done.length} committed, ${await db.$count(posts)} posts`,
    );
    out(
      "delete cascade",
      (await db.delete(users).where(eq(users.name, "cy")).returning({ id: users.id })).length,
    );
    out("posts left", await db.$count(posts));
  } finally {
    await end();
  }
  return lines;
}
