/**
 * The hono app of the HTTP adapter: `POST /sql` (Neon's SQL-over-HTTP),
 * the `/admin` API, and clear JSON answers for everything else: a body over
 * the limit is 413, a route that does not exist 404, a wrong method 405, and
 * an unexpected failure 500. No error leaves the app as a thrown exception,
 * so one bad request never stops the server from serving the next.
 *
 * The app is portable: it reads the client's address from `c.env`
 * (`HttpBindings`), which the runtime's serve() fills in, and is the same
 * object under Bun, Deno and a `fetch`-handler host.
 */

import { Hono } from "hono";
import { ERRCODE } from "../core/elog.ts";
import { type AdminSource, mountAdmin } from "./admin.ts";
import { HttpError, parseSqlRequest, type SqlRequest, toHttpError } from "./neon.ts";
import type { RunAnswer } from "./run.ts";

/** What the runtime passes along with a request. */
export interface HttpBindings {
  /** The client's numeric IP address, when the host tells it. */
  readonly remoteAddress?: string;
}

export interface AppOptions {
  /** Runs a parsed SQL request as a backend run. */
  sql(request: SqlRequest, remoteAddress: string | null): Promise<RunAnswer>;
  readonly admin: AdminSource;
  /** The admin API's bearer token; undefined or "" turns the API off. */
  readonly adminToken?: string;
  /** The largest request body accepted, in bytes. */
  readonly maxBodyBytes: number;
}

const NEON_HEADERS = [
  "Neon-Connection-String",
  "Neon-Raw-Text-Output",
  "Neon-Array-Mode",
  "Neon-Batch-Isolation-Level",
  "Neon-Batch-Read-Only",
  "Neon-Batch-Deferrable",
  "Authorization",
  "Content-Type",
];

function tooLarge(limit: number): HttpError {
  return new HttpError(413, {
    message: `request body is too large (max is ${limit} bytes)`,
    code: ERRCODE.PROGRAM_LIMIT_EXCEEDED,
  });
}

/** Reads the body as text, refusing more than `limit` bytes without reading them all. */
export async function readBodyLimited(req: Request, limit: number): Promise<string> {
  const declared = req.headers.get("Content-Length");
  if (declared !== null && Number(declared) > limit) throw tooLarge(limit);
  if (req.body === null) return "";
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new HttpError(400, {
      message: "request body is not valid UTF-8",
      code: ERRCODE.PROTOCOL_VIOLATION,
    });
  }
}

export function createApp(options: AppOptions): Hono<{ Bindings: HttpBindings }> {
  const app = new Hono<{ Bindings: HttpBindings }>();

  app.options("/sql", (c) => {
    c.header("Access-Control-Allow-Origin", "*");
    c.header("Access-Control-Allow-Methods", "POST, OPTIONS");
    c.header("Access-Control-Allow-Headers", NEON_HEADERS.join(", "));
    return c.body(null, 204);
  });

  app.post("/sql", async (c) => {
    c.header("Access-Control-Allow-Origin", "*");
    let answer: RunAnswer;
    try {
      const body = await readBodyLimited(c.req.raw, options.maxBodyBytes);
      const request = parseSqlRequest(c.req.raw.headers, body);
      answer = await options.sql(request, c.env?.remoteAddress ?? null);
    } catch (e) {
      const err = toHttpError(e);
      answer = { status: err.status, body: err.body };
    }
    for (const [k, v] of Object.entries(answer.headers ?? {})) c.header(k, v);
    return c.json(answer.body as Record<string, unknown>, answer.status as 200);
  });

  app.all("/sql", (c) => {
    c.header("Allow", "POST, OPTIONS");
    return c.json({ message: `method ${c.req.method} is not allowed on /sql` }, 405);
  });

  mountAdmin(app as unknown as Hono, options.admin, options.adminToken);

  app.notFound((c) =>
    c.json({ message: `no route for ${c.req.method} ${new URL(c.req.url).pathname}` }, 404)
  );
  app.onError((e, c) => {
    const err = toHttpError(e);
    return c.json(err.body, err.status as 500);
  });
  return app;
}
