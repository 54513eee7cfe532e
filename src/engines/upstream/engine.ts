/**
 * The upstream engine: pgts in front of a real PostgreSQL server, reached
 * at the `engine` URL. Every session is a dedicated upstream connection
 * (session mode), opened with pgts's own credentials from the URL.
 *
 * Who is who. The client authenticates to pgts (pg_hba.conf, its method)
 * against the role as the upstream stores it: `lookupRole` reads the
 * upstream's pg_authid (secret included) with the URL's credentials, or
 * pg_roles when the URL's user may not read pg_authid (then no secret is
 * known and only trust can admit a client). The upstream session logs in
 * as the URL's user and, when the client is another role, starts with
 * `role` set to the client's role (a startup parameter: the upstream checks
 * that the URL's user is a member of it). So the URL's user is the ceiling
 * of every session's privileges: a client can RESET ROLE back to it. Give
 * pgts a non-superuser role granted the client roles unless every client
 * may be superuser.
 *
 * The client's database, application_name, options and other startup
 * parameters go upstream as the client sent them. The engine holds no
 * shared state and opens no connection until asked, so one instance can
 * be made per backend process, or shared in-process by any module.
 */

import { ERRCODE, isPgError, PgError } from "../../core/elog.ts";
import type { Engine, EngineSession, RoleInfo, SessionStartup } from "../../core/engine/types.ts";
import { MessageWriter, writeTerminate } from "../../core/protocol/mod.ts";
import {
  type OpenOptions,
  openUpstream,
  simpleQuery,
  type UpstreamConnect,
  type UpstreamConnection,
  type UpstreamStartTls,
} from "./connect.ts";
import {
  type AuthFileLookup,
  AuthFileSecrets,
  roleFromRow,
  roleLookupSql,
  upstreamLoginFor,
} from "./auth-file.ts";
import { UpstreamSession } from "./session.ts";
import { parseUpstreamUrl, type UpstreamTarget } from "./url.ts";

export interface UpstreamEngineOptions {
  /** Dials the upstream (node:net in the server glue; anything in tests). */
  readonly connect: UpstreamConnect;
  /** Bounds connecting and the startup exchange; default 10 s. */
  readonly connectTimeoutMs?: number;
  /** The TLS handshake for sslmode (none: allow and prefer are plain, require fails). */
  readonly startTls?: UpstreamStartTls;
  /**
   * "client" (the default): a client that logged in with SCRAM is logged in
   * upstream as its own role, with the keys it proved; "url": always as the
   * URL's user, with `role` set to the client's.
   */
  readonly loginAs?: "client" | "url";
  /** auth_file's entry for a role: its secret, and how it logs in upstream (auth-file.ts). */
  readonly authFile?: AuthFileLookup;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const INSUFFICIENT_PRIVILEGE = "42501";

/** A name as a SQL literal that no quoting rule can break: hex, decoded upstream. */
export function literal(text: string): string {
  let hex = "";
  for (const b of new TextEncoder().encode(text)) hex += b.toString(16).padStart(2, "0");
  return `convert_from(decode('${hex}', 'hex'), 'UTF8')`;
}

export class UpstreamEngine implements Engine {
  readonly target: UpstreamTarget;
  #connect: UpstreamConnect;
  #startTls: UpstreamStartTls | undefined;
  #loginAs: "client" | "url";
  #authFile: AuthFileLookup | undefined;
  #secrets = new AuthFileSecrets();
  #timeoutMs: number;
  #sessions = new Set<UpstreamSession>();
  #closed = false;

  /** `url` is the `engine` setting; a RangeError says what is wrong with it. */
  constructor(url: string, options: UpstreamEngineOptions) {
    this.target = parseUpstreamUrl(url);
    this.#connect = options.connect;
    this.#startTls = options.startTls;
    this.#loginAs = options.loginAs ?? "client";
    this.#authFile = options.authFile;
    this.#timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  }

  #open(
    database: string,
    params: Record<string, string>,
    login?: OpenOptions["login"],
  ): Promise<UpstreamConnection> {
    if (this.#closed) {
      return Promise.reject(
        new PgError(ERRCODE.ADMIN_SHUTDOWN, "the upstream engine is closed", { severity: "FATAL" }),
      );
    }
    return openUpstream(this.target, {
      connect: this.#connect,
      startTls: this.#startTls,
      database,
      params,
      timeoutMs: this.#timeoutMs,
      login,
    });
  }

  async lookupRole(name: string): Promise<RoleInfo | null> {
    const entry = (await this.#authFile?.(name)) ?? null;
    const upstream = await this.#open(this.target.database, { application_name: "pgts" });
    try {
      const where = `WHERE rolname = ${literal(name)}`;
      let rows: (string | null)[][];
      if (entry !== null) {
        // auth_file has the secret: the upstream gives only the flags.
        rows = await simpleQuery(
          upstream,
          `SELECT rolsuper, rolcanlogin FROM pg_catalog.pg_roles ${where}`,
        );
        const row = rows[0];
        if (row === undefined) return null;
        const secret = await this.#secrets.secretOf(name, entry);
        return { name, superuser: row[0] === "t", canLogin: row[1] === "t", secret };
      }
      const sql = roleLookupSql(where);
      try {
        rows = await simpleQuery(upstream, sql.authid);
      } catch (e) {
        if (!isPgError(e) || e.code !== INSUFFICIENT_PRIVILEGE) throw e;
        rows = await simpleQuery(upstream, sql.roles);
      }
      const row = rows[0];
      return row === undefined ? null : roleFromRow(name, row);
    } catch (e) {
      if (isPgError(e) && e.severity !== "FATAL") {
        throw new PgError(
          ERRCODE.SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
          `could not look up role "${name}" on the upstream server: ${e.message}`,
          { severity: "FATAL" },
        );
      }
      throw e;
    } finally {
      upstream.conn.write(MessageWriter.encode((w) => writeTerminate(w)));
      upstream.conn.end();
    }
  }

  async startSession(
    startup: SessionStartup,
  ): Promise<{ session: EngineSession; parameterStatus: Array<[string, string]> }> {
    const params: Record<string, string> = {};
    for (const [name, value] of Object.entries(startup.params)) {
      // Whom to log in as is pgts's choice, not the client's.
      if (name !== "user" && name !== "database" && name !== "replication") params[name] = value;
    }
    const login = this.#loginAs === "client"
      ? upstreamLoginFor(startup.user, {
        entry: (await this.#authFile?.(startup.user)) ?? null,
        scram: startup.scram,
        urlUser: this.target.user,
      })
      : null;
    if (login === null && startup.user !== this.target.user) params["role"] = startup.user;
    const upstream = await this.#open(startup.database, params, login ?? undefined);
    const session: UpstreamSession = new UpstreamSession(upstream, {
      target: this.target,
      connect: this.#connect,
      onEnd: () => this.#sessions.delete(session),
    });
    this.#sessions.add(session);
    return { session, parameterStatus: upstream.parameterStatus };
  }

  /** Closes every session still open; later calls to start one fail with 57P01. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#sessions].map((s) => s.close().catch(() => {})));
  }
}
