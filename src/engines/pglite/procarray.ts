/**
 * The sessions of one engine, as PostgreSQL's procarray.c lists a
 * cluster's backends: who is served, found by pid across every database
 * of the cluster, signalled (pg_cancel_backend, pg_terminate_backend),
 * shown in pg_stat_activity, and passed to the backend's signal functions
 * (backends.ts) when they changed since the last exec.
 *
 * It owns the set of this database's sessions and what the backend last
 * saw of them: after a connection starts or ends, the next exec carries
 * only that change (backends.ts BackendsUpdate), and the whole list when
 * the backend may have missed one. It runs no SQL; it must never give the
 * backend a list that leaves out a session that can be signalled.
 */

import { ERRCODE, PgError } from "../../core/elog.ts";
import type { ActivityRow, BackendEntry, BackendSignal, BackendsUpdate } from "./backends.ts";
import type { PgliteSession } from "./session.ts";

/** The other databases' sessions, in a cluster of several (dbengines.ts). */
export interface OtherDatabases {
  /** The sessions of the cluster's other databases. */
  sessions(): Iterable<PgliteSession>;
  /** Bumped whenever a session of any database starts or ends. */
  version(): number;
}

export class ProcArray {
  readonly #sessions = new Set<PgliteSession>();
  readonly #others: OtherDatabases | null;
  /** Bumped when a session starts or ends; the sessions go to the backend with the next exec. */
  #version = 0;
  #sent = -1;
  /** The sessions the backend has, as the last update gave them; null: it gets the whole list next. */
  #sentSessions: Set<PgliteSession> | null = null;

  constructor(others: OtherDatabases | null) {
    this.#others = others;
  }

  get size(): number {
    return this.#sessions.size;
  }

  add(s: PgliteSession): void {
    this.#sessions.add(s);
    this.#version++;
  }

  /** False when `s` was not (or no longer) here. */
  remove(s: PgliteSession): boolean {
    const was = this.#sessions.delete(s);
    this.#version++;
    return was;
  }

  /** This database's sessions. */
  [Symbol.iterator](): IterableIterator<PgliteSession> {
    return this.#sessions.values();
  }

  /** The session `pid` of any database of the cluster. */
  find(pid: number): PgliteSession | undefined {
    for (const s of this.#sessions) if (s.pid === pid) return s;
    for (const s of this.#others?.sessions() ?? []) if (s.pid === pid) return s;
    return undefined;
  }

  /**
   * The update forExec gave may not have reached the backend (its exec did
   * not run, or failed): the next exec gets the whole list.
   */
  resend(): void {
    this.#sent = -1;
    this.#sentSessions = null;
  }

  /**
   * The sessions as the signal functions check them (this database's and,
   * in a cluster of several, every other's), when they changed since the
   * last exec: the sessions that started and the pids of those that ended
   * since, or all of them after a resend.
   */
  forExec(): BackendsUpdate | undefined {
    const version = this.#others?.version() ?? this.#version;
    if (this.#sent === version) return undefined;
    this.#sent = version;
    const others = this.#others === null ? null : new Set(this.#others.sessions());
    const sent = this.#sentSessions;
    if (sent === null) {
      const all = new Set([...this.#sessions, ...(others ?? [])]);
      this.#sentSessions = all;
      return { whole: true, entries: [...all].map(entryOf), gone: [] };
    }
    // Walked in place: a change is a session or two among possibly hundreds.
    const gone: number[] = [];
    for (const s of sent) {
      if (this.#sessions.has(s) || others?.has(s) === true) continue;
      sent.delete(s);
      gone.push(s.pid);
    }
    const entries: BackendEntry[] = [];
    for (const s of this.#sessions) {
      if (!sent.has(s)) {
        sent.add(s);
        entries.push(entryOf(s));
      }
    }
    for (const s of others ?? []) {
      if (!sent.has(s)) {
        sent.add(s);
        entries.push(entryOf(s));
      }
    }
    return { whole: false, entries, gone };
  }

  /** pg_stat_activity's rows: every session of every database, as it is now. */
  activityRows(): ActivityRow[] {
    const rows = this.ownActivityRows();
    for (const s of this.#others?.sessions() ?? []) rows.push(s.activityRow());
    return rows;
  }

  /** pg_stat_activity's rows of this database's sessions. */
  ownActivityRows(): ActivityRow[] {
    return [...this.#sessions].map((s) => s.activityRow());
  }

  /** Signals of an exec: pg_cancel_backend and pg_terminate_backend (checked by the caller), roles changed. */
  signal(signals: readonly BackendSignal[]): void {
    const all = [...this.#sessions, ...(this.#others?.sessions() ?? [])];
    for (const [pid, kind] of signals) {
      for (const s of all) {
        if (s.pid !== pid) continue;
        if (kind === "cancel") s.cancel();
        else if (kind === "roles") s.rolesDirty = true;
        else if (kind === "databases") s.databasesDirty = true;
        else if (kind === "terminate") {
          s.terminate(
            new PgError(
              ERRCODE.ADMIN_SHUTDOWN,
              "terminating connection due to administrator command",
              { severity: "FATAL" },
            ),
            { closeAfterSignaller: true },
          );
        }
      }
    }
  }

  /** How many WITH HOLD cursors the other sessions of this engine have open. */
  holdCursorsOfOthers(s: PgliteSession): number {
    let n = 0;
    for (const o of this.#sessions) if (o !== s) n += o.holdCursors.size;
    return n;
  }

  /** Ends every session of this database with `reason`. */
  terminateAll(reason: PgError): void {
    for (const s of this.#sessions) s.terminate(reason);
  }
}

/** What the backend's signal functions know of session `s`. */
function entryOf(s: PgliteSession): BackendEntry {
  return { pid: s.pid, roleOid: s.userOid, statementPrefix: s.prefix, client: s.client };
}
