/**
 * The admin API: what an operator asks a running pgts (the postmaster's
 * state and children, a child's memory contexts, background workers, the
 * archiver's pg_stat_archiver row, reload, stop), as hono routes under `/admin` and as the rows the psql admin
 * console (console.ts) shows.
 *
 * It is off unless a token is configured, and then answers only requests
 * with `Authorization: Bearer <token>` (compared in constant time); without
 * a token the routes do not exist (404), with a wrong one they say 401.
 * Everything it reports comes from an `AdminSource`; it changes nothing but
 * through `reload()` and `stop()`, which only queue signals to the
 * postmaster.
 */

import type { Context, Hono, MiddlewareHandler } from "hono";
import type { BackendMemoryContext } from "../core/mcxt/mod.ts";
import type { BackgroundWorkerInfo, PMState } from "../core/postmaster/mod.ts";
import type { ArchiverStats } from "../engines/pglite/pgstat_archiver.ts";

/** One row of the activity view (pg_stat_activity's columns that pgts knows). */
export interface ActivityRow {
  readonly pid: number;
  readonly kind: string;
  readonly name: string;
  /** null for a child that is not a client backend run in this realm. */
  readonly state: string | null;
  /** ISO 8601. */
  readonly backend_start: string;
  readonly query: string | null;
}

export interface AdminStatus {
  readonly pmState: PMState;
  readonly children: readonly ActivityRow[];
}

export type StopMode = "smart" | "fast" | "immediate";
export const STOP_MODES: readonly StopMode[] = ["smart", "fast", "immediate"];

/** What the admin API and console read from the server. */
export interface AdminSource {
  status(): AdminStatus;
  /** pg_backend_memory_contexts of a child; null when there is no such child in this realm. */
  memory(pid: number): BackendMemoryContext[] | null;
  workers(): BackgroundWorkerInfo[];
  /** pg_stat_archiver's row: zeros and nulls when no archiver ever ran on the data directory. */
  archiver(): Promise<ArchiverStats>;
  reload(): void;
  requestStop(mode: StopMode): void;
}

async function sameToken(a: string, b: string): Promise<boolean> {
  const enc = new TextEncoder();
  const [x, y] = await Promise.all([
    crypto.subtle.digest("SHA-256", enc.encode(a)),
    crypto.subtle.digest("SHA-256", enc.encode(b)),
  ]);
  const p = new Uint8Array(x);
  const q = new Uint8Array(y);
  let diff = 0;
  for (let i = 0; i < p.length; i++) diff |= p[i]! ^ q[i]!;
  return diff === 0;
}

function requireToken(token: string | undefined): MiddlewareHandler {
  return async (c, next) => {
    if (token === undefined || token === "") {
      return c.json({ message: "the admin API is disabled (no admin token is configured)" }, 404);
    }
    const header = c.req.header("Authorization") ?? "";
    const m = /^Bearer\s+(.+)$/i.exec(header);
    if (m === null || !(await sameToken(m[1]!.trim(), token))) {
      c.header("WWW-Authenticate", 'Bearer realm="pgts admin"');
      return c.json(
        { message: m === null ? "admin token required" : "invalid admin token", code: "28000" },
        401,
      );
    }
    await next();
  };
}

function pidParam(c: Context): number | null {
  const text = c.req.param("pid") ?? "";
  return /^\d{1,10}$/.test(text) ? Number(text) : null;
}

/** Adds the `/admin/*` routes to `app`. */
export function mountAdmin(app: Hono, source: AdminSource, token: string | undefined): void {
  app.use("/admin/*", requireToken(token));
  app.get("/admin/status", (c) => c.json(source.status()));
  app.get("/admin/children/:pid/memory", (c) => {
    const pid = pidParam(c);
    if (pid === null) return c.json({ message: "pid must be a positive integer" }, 400);
    const contexts = source.memory(pid);
    if (contexts === null) {
      return c.json({
        message: `process ${pid} is not a child whose memory contexts this server can read`,
        hint: "Memory contexts are reported for the backend runs of this server's realm.",
      }, 404);
    }
    return c.json({ pid, contexts });
  });
  app.get("/admin/workers", (c) => c.json({ workers: source.workers() }));
  app.get("/admin/archiver", async (c) => c.json(await source.archiver()));
  app.post("/admin/reload", (c) => {
    source.reload();
    return c.json({ reload: "requested" }, 202);
  });
  app.post("/admin/stop", async (c) => {
    let mode = c.req.query("mode");
    if (mode === undefined) {
      const body = await c.req.json().catch(() => ({})) as { mode?: unknown };
      mode = typeof body?.mode === "string" ? body.mode : "fast";
    }
    if (!(STOP_MODES as readonly string[]).includes(mode)) {
      return c.json({
        message: `invalid shutdown mode "${mode}"`,
        hint: `Use one of ${STOP_MODES.join(", ")}.`,
      }, 400);
    }
    source.requestStop(mode as StopMode);
    return c.json({ stop: mode }, 202);
  });
}
