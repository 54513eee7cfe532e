/**
 * The same sessions against PostgreSQL and pgts, side by side: each
 * scenario of scripts/differential-scenarios.ts is a list of steps, each a
 * statement sent by one of a few node-postgres sessions, run in order on
 * both servers in a database of its own; every step whose answer differs
 * (its rows or command tag, its SQLSTATE, the notifications a session got)
 * is printed. A scenario's sessions may use a second database (`databases`),
 * for what PostgreSQL shares between databases. What pgts keeps per session in one backend (prepared
 * statements, cursors, settings, roles, temporary tables, locks, LISTEN) is
 * where it can differ. Run with
 *   ./node_modules/.bin/bun scripts/differential.ts [--pg PORT] [--pgts PORT] [--messages]
 *     [SCENARIO...]
 * against servers already running on 127.0.0.1 with trust for "postgres",
 * e.g. `bash ../shared/bench/pg-reference.sh 25999` and
 * `./node_modules/.bin/bun mod.ts start -D DIR -p 61010` (the defaults).
 * `--messages` prints each error's message beside its SQLSTATE; `--random
 * N [--seed S]` runs N random scenarios (differential-random.ts) instead of
 * the written ones, `--catalog N [--seed S]` N random scenarios of shared
 * catalogs changed from two databases (differential-catalog.ts). A step's
 * `{db_a}` and `{db_b}` are the scenario's databases. Exits 1
 * when a scenario differs. Known differences (a PostgreSQL 18 engine against
 * PostgreSQL 15, and what the engine README lists) show up too: read them.
 */

import process from "node:process";
import { parseArgs } from "node:util";
import pg from "pg";
import { catalogScenarios } from "./differential-catalog.ts";
import { randomScenarios } from "./differential-random.ts";
import { type Scenario, SCENARIOS } from "./differential-scenarios.ts";

const { values, positionals } = parseArgs({
  options: {
    pg: { type: "string", default: "25999" },
    pgts: { type: "string", default: "61010" },
    messages: { type: "boolean", default: false },
    random: { type: "string" },
    catalog: { type: "string" },
    seed: { type: "string", default: "1" },
  },
  allowPositionals: true,
});
/** How long a step may take before it counts as hung. */
const STEP_MS = 4000;

type Rows = pg.QueryArrayResult | pg.QueryArrayResult[];

function answerText(r: Rows): string {
  if (Array.isArray(r)) return r.map(answerText).join(" | ");
  return r.rows.length === 0 && r.fields.length === 0
    ? r.command
    : `${r.command} ${JSON.stringify(r.rows)}`;
}

function client(port: number, user: string, database: string): pg.Client {
  return new pg.Client({ host: "127.0.0.1", port, user, database });
}

/** The scenario's steps on the server at `port`, each step's answer as a line. */
async function run(port: number, sc: Scenario, database: string): Promise<string[]> {
  const admin = client(port, "postgres", "postgres");
  await admin.connect();
  for (const d of [database, `${database}_b`]) {
    await admin.query(`drop database if exists ${d}`).catch(() => {});
  }
  await admin.query(`create database ${database}`);
  if (sc.databases?.includes("b")) await admin.query(`create database ${database}_b`);
  await admin.end();
  if (sc.setup !== undefined) {
    // In the second database too, when a session uses it.
    const targets = sc.databases?.includes("b") && sc.setupBoth === true
      ? [database, `${database}_b`]
      : [database];
    for (const d of targets) {
      const su = client(port, "postgres", d);
      await su.connect();
      for (const q of sc.setup) await su.query(q);
      await su.end();
    }
  }
  const count = Math.max(...sc.steps.map(([i]) => i)) + 1;
  const notes: string[] = [];
  const sessions: pg.Client[] = [];
  for (let i = 0; i < count; i++) {
    const c = client(
      port,
      sc.users?.[i] ?? "postgres",
      sc.databases?.[i] === "b" ? `${database}_b` : database,
    );
    c.on(
      "error",
      (e: Error & { code?: string }) => notes.push(`s${i} error ${e.code ?? e.message}`),
    );
    c.on("notification", (m) => notes.push(`s${i} notified ${m.channel} ${m.payload ?? ""}`));
    await c.connect();
    sessions.push(c);
  }
  const out: string[] = [];
  for (const [i, step] of sc.steps) {
    const sql = step.replaceAll("{db_a}", database).replaceAll("{db_b}", `${database}_b`);
    let answer: string;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const hung = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject({ code: "HUNG" }), STEP_MS);
      });
      answer = answerText(
        await Promise.race([sessions[i]!.query({ text: sql, rowMode: "array" }), hung]),
      );
    } catch (e) {
      const err = e as { code?: string; message?: string };
      answer = `ERROR ${err.code ?? err.message}${
        values.messages && err.code ? ` ${err.message}` : ""
      }`;
    } finally {
      clearTimeout(timer);
    }
    // Notifications of the step come in after its answer.
    await new Promise((r) => setTimeout(r, 30));
    out.push(`s${i} ${sql.slice(0, 70)} => ${answer}`);
    out.push(...notes.splice(0).map((n) => `   ${n}`));
  }
  for (const c of sessions) await c.end().catch(() => {});
  return out;
}

let differing = 0;
const scenarios = values.catalog !== undefined
  ? catalogScenarios(Number(values.catalog), Number(values.seed))
  : values.random === undefined
  ? SCENARIOS
  : randomScenarios(Number(values.random), Number(values.seed));
for (const [n, sc] of scenarios.entries()) {
  if (positionals.length > 0 && !positionals.includes(sc.name)) continue;
  const database = `differential_${n}`;
  const reference = await run(Number(values.pg), sc, database);
  const ours = await run(Number(values.pgts), sc, database);
  const lines: string[] = [];
  for (let k = 0; k < Math.max(reference.length, ours.length); k++) {
    if (reference[k] !== ours[k]) {
      lines.push(`  PostgreSQL: ${reference[k] ?? "-"}`, `  pgts:       ${ours[k] ?? "-"}`);
    }
  }
  if (lines.length > 0) {
    differing++;
    console.log(`## ${sc.name}\n${lines.join("\n")}`);
  } else console.log(`same: ${sc.name}`);
}
console.log(`${differing} scenario(s) differ`);
process.exit(differing > 0 ? 1 : 0);
