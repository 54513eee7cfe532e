/**
 * One transaction-pool client's settings, kept as the PGlite engine keeps a
 * session's (src/engines/pglite/settings.ts, the one mechanism for both
 * engines): a map of what the client changed (startup parameters,
 * `options -c`, SET, RESET, set_config, SET ROLE, custom `a.b` settings),
 * read back from the upstream (`snapshotSql`) after input that may have
 * changed it, and put on whichever connection runs the client's next
 * transaction (`switchSql`, one Query, only the differences from the map
 * that connection carries).
 *
 * It runs its SQL with `PoolServer.query` on a connection the caller holds
 * and owns no connection itself.
 */

import { ereport, PgError } from "../../core/elog.ts";
import {
  parseOptions,
  parseSnapshot,
  type SettingsMap,
  snapshotSql,
  switchSql,
} from "../pglite/settings.ts";
import { scanStatements, settingName } from "../pglite/sqlscan.ts";
import type { PoolServer } from "./server.ts";

/**
 * Parameters that are the transaction's, not the session's (PostgreSQL's
 * GUC_NO_RESET): never part of a settings map.
 */
export const NOT_SESSION_STATE = [
  "transaction_isolation",
  "transaction_read_only",
  "transaction_deferrable",
];

/** Startup parameters that are not settings. */
const NOT_SETTINGS = new Set(["user", "database", "options", "replication"]);

export class ClientSettings {
  /** The map a connection is switched to for this client. */
  map: SettingsMap = new Map();
  /** The client's input may have changed its settings: read them back before the connection goes. */
  dirty = false;
  /**
   * The map the client logged in with: what RESET gives it back (its reset
   * values, in PostgreSQL). The upstream connection's own reset values are
   * its login's, so a RESET there drops the client's value, and it is put
   * back here (readBack).
   */
  #login: SettingsMap | null = null;
  /** Custom (dotted) settings the client touched: pg_settings does not list them. */
  #custom = new Set<string>();
  #loginRole: () => string;
  #pid: number;

  /**
   * `loginRole`: the role the pool's connections log in as; SET SESSION
   * AUTHORIZATION back to it is always allowed. `pid`: the client's
   * backend, for the server log.
   */
  constructor(options: { loginRole: () => string; pid: number }) {
    this.#loginRole = options.loginRole;
    this.#pid = options.pid;
  }

  #switchOptions() {
    return { superuser: this.#loginRole(), valuesAs: "superuser" as const };
  }

  /** A map another login with the same startup parameters was given. */
  adopt(map: SettingsMap): void {
    this.map = map;
    this.#login = map;
    for (const n of map.keys()) if (n.includes(".")) this.#custom.add(n);
  }

  /**
   * The startup parameters on top of `baseline` (a fresh connection's map),
   * put on `server` and read back; a parameter the upstream refuses throws
   * its error (the login fails with it, as in PostgreSQL).
   */
  async fromStartup(
    server: PoolServer,
    baseline: SettingsMap | null,
    params: Readonly<Record<string, string>>,
  ): Promise<void> {
    const map = new Map(baseline ?? server.carried ?? []);
    const put = (k: string, v: string) => {
      const name = k.toLowerCase();
      if (!NOT_SESSION_STATE.includes(name)) map.set(name, v);
      if (name.includes(".")) this.#custom.add(name);
    };
    // The `options` switches first, then the packet's own parameters, which
    // win over them, as in PostgreSQL (postinit.c).
    const opts = params["options"];
    if (opts !== undefined) {
      for (const [k, v] of parseOptions(opts)) put(k.replaceAll("-", "_"), v);
    }
    for (const [k, v] of Object.entries(params)) {
      if (!NOT_SETTINGS.has(k.toLowerCase())) put(k, v);
    }
    const sql = switchSql(server.carried ?? new Map(), map, this.#switchOptions());
    if (sql !== null) {
      const r = await server.query(sql);
      if (r.error !== null) throw r.error;
    }
    await this.readBack(server);
    this.#login = this.map;
  }

  /** Reads the map back from the connection the client is on. */
  async readBack(server: PoolServer): Promise<void> {
    const r = await server.query(snapshotSql(this.#custom, NOT_SESSION_STATE));
    if (r.error !== null) throw r.error;
    const map = parseSnapshot(r.rows);
    server.carried = map;
    this.map = map;
    // RESET, RESET ALL, SET … TO DEFAULT and DISCARD ALL went to the
    // connection's reset values: the client's login values go back on with
    // its next switch (the connection carries the map without them).
    const login = this.#login;
    if (login === null) return;
    let back: Map<string, string> | null = null;
    for (const [name, value] of login) {
      if (map.has(name)) continue;
      back ??= new Map(map);
      back.set(name, value);
    }
    if (back !== null) this.map = back;
  }

  /** The connection carries the client's map already: switchTo would send nothing. */
  carriedBy(server: PoolServer): boolean {
    return server.carried === this.map;
  }

  /**
   * Moves the connection to the client's map; null when done, else the
   * error to answer the client's input with (the connection then carries
   * what it really has, read back).
   */
  async switchTo(server: PoolServer): Promise<PgError | null> {
    const map = this.map;
    if (server.carried === map) return null;
    const sql = switchSql(server.carried ?? new Map(), map, this.#switchOptions());
    if (sql !== null) {
      const r = await server.query(sql);
      if (r.error !== null) {
        ereport("LOG", `settings switch for process ${this.#pid} failed: ${sql}`, {
          category: "pool",
          detail: `${r.error.message} (SQLSTATE ${r.error.code})`,
        });
        const carried = await server.query(snapshotSql(this.#custom, NOT_SESSION_STATE));
        server.carried = carried.error === null ? parseSnapshot(carried.rows) : null;
        return new PgError(
          r.error.code,
          `could not restore this session's settings on an upstream connection: ${r.error.message}`,
          {
            hint:
              "In transaction mode pgts sets each session's settings again on the connection that runs its transaction.",
          },
        );
      }
    }
    server.carried = map;
    return null;
  }

  /** Input whose text (`sql`, null for a Bind) may change settings went by. */
  note(sql: string | null): void {
    this.dirty = true;
    if (sql === null) return;
    // Dotted setting names SET, RESET or set_config'd.
    for (const st of scanStatements(sql)) {
      for (const n of st.setConfigNames) if (n.includes(".")) this.#custom.add(n.toLowerCase());
      const t = st.tokens;
      const w0 = t[0]?.text;
      if (w0 !== "set" && w0 !== "reset") continue;
      const i = t[1]?.text === "session" || t[1]?.text === "local" ? 2 : 1;
      const name = settingName(t, i);
      if (name !== null && name[0].includes(".")) this.#custom.add(name[0].toLowerCase());
    }
  }
}
