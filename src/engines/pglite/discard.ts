/**
 * What the engine takes off the backend for one session: its prepared
 * statements, WITH HOLD cursors, LISTEN channels and (DISCARD ALL)
 * session-level advisory locks (DISCARD ALL,
 * DEALLOCATE ALL and the session's end, as PostgreSQL's commands/discard.c
 * and backend exit drop a backend's; at the end also its temporary schemas
 * and a backup it started), and whatever it left open (a COPY, an unsynced
 * batch, a transaction block: AbortOutOfAnyTransaction).
 *
 * In the one backend these are every session's, so each is done by the
 * session's names only. Runs SQL through its host, only while the engine
 * is held for the session or for the engine's own work.
 */

import { MessageWriter, writeCommandComplete } from "../../core/protocol/mod.ts";
import { BE } from "../../core/protocol/constants.ts";
import type { PgError } from "../../core/elog.ts";
import { engineName } from "./enginenames.ts";
import type { ListenRegistry } from "./notify.ts";
import type { PgliteSession } from "./session.ts";
import { concat, fe, noticeResponse, quoteIdent, readInt32, readyForQuery } from "./wire.ts";

/** What the engine lends for this work. */
export interface DiscardHost {
  /** Runs bytes as pgts's own work, or as session `as`: the whole answer. */
  runRaw(bytes: Uint8Array, as?: PgliteSession): Promise<Uint8Array>;
  /** The rows of `sql`; throws its first error. */
  query(sql: string): Promise<Array<Array<string | null>>>;
  readonly listeners: Pick<ListenRegistry, "reconcileSql">;
  /** Puts the session's startup settings back; warnings for what could not be. */
  resetSettings(s: PgliteSession): Promise<PgError[]>;
  /** Drops the session's temporary schemas (tempschemas.ts). */
  dropTemp(s: PgliteSession): Promise<void>;
  /** Makes the backend the bootstrap superuser again. */
  asBootstrapSuperuser(): Promise<void>;
}

/** DEALLOCATE ALL and DISCARD ALL, for this session's state only; answered through `out`. */
export async function discard(
  host: DiscardHost,
  s: PgliteSession,
  options: { kind: "discard all" | "deallocate all"; out: (b: Uint8Array) => void },
): Promise<void> {
  const out = options.out;
  await closeStatements(host, s);
  if (options.kind === "discard all") {
    // Its currval/lastval values go with its next exec (sequences.ts).
    s.sequencesDiscarded = true;
    await closeHoldCursors(host, s);
    // PostgreSQL's DISCARD ALL runs pg_advisory_unlock_all(): the session's
    // session-level advisory locks go (advisory.ts, by the session's pid).
    await host.runRaw(fe.query("select pg_catalog.pg_advisory_unlock_all()"), s);
    s.unnamedParse = null;
    const warnings = await host.resetSettings(s);
    if (warnings.length > 0) out(concat(warnings.map(noticeResponse)));
    s.settingsDirty = true;
    s.settingsFromStartup = false;
    s.listens.clear();
    s.pendingListen = [];
    await reconcileListens(host);
    await host.runRaw(fe.query("DISCARD PLANS"));
    if (s.temp[0] !== 0) await host.runRaw(fe.query("DISCARD TEMP"), s);
  }
  const tag = options.kind === "discard all" ? "DISCARD ALL" : "DEALLOCATE ALL";
  out(concat([
    MessageWriter.encode((w) => writeCommandComplete(w, tag)),
    readyForQuery(s.transactionStatus),
  ]));
}

/** `s` left something on the backend that closeSession must take off. */
export function leftOnBackend(s: PgliteSession): boolean {
  return s.statements.size > 0 || s.holdCursors.size > 0 || s.listens.size > 0 ||
    s.temp[0] !== 0 || s.backupStarted;
}

/**
 * Takes a closed session's state off the backend, its open work already
 * rolled back: statements, WITH HOLD cursors, channels, temporary schemas,
 * and a backup it started.
 */
export async function closeSession(host: DiscardHost, s: PgliteSession): Promise<void> {
  await closeStatements(host, s);
  await closeHoldCursors(host, s);
  if (s.listens.size > 0) {
    s.listens.clear();
    await reconcileListens(host);
  }
  await host.dropTemp(s);
  if (s.backupStarted) {
    // Its backup ends with it (PostgreSQL's do_pg_abort_backup); the
    // error of a backup already stopped is of no interest.
    s.backupStarted = false;
    await host.asBootstrapSuperuser();
    await host.runRaw(fe.query("select pg_catalog.pg_backup_stop(false)"));
  }
}

/**
 * Closes `s`'s WITH HOLD cursors (its end, DISCARD ALL), one Query each:
 * one that a rollback already took away is an error nobody sees.
 */
export async function closeHoldCursors(host: DiscardHost, s: PgliteSession): Promise<void> {
  if (s.holdCursors.size === 0) return;
  const msgs = [...s.holdCursors].map((n) =>
    fe.query(`CLOSE ${quoteIdent(engineName(s.prefix, n))}`)
  );
  s.holdCursors.clear();
  await host.runRaw(concat(msgs));
}

/** Closes `s`'s prepared statements (its end, DISCARD ALL, DEALLOCATE ALL). */
export async function closeStatements(host: DiscardHost, s: PgliteSession): Promise<void> {
  s.statementEffects.clear();
  if (s.statements.size === 0) return;
  const msgs = [...s.statements].map((n) => fe.close("S", n));
  s.statements.clear();
  await host.runRaw(concat([...msgs, fe.sync()]));
}

/** Makes the backend listen to the union of the sessions' channels (notify.ts), and no more. */
export async function reconcileListens(host: DiscardHost): Promise<void> {
  const actual = (await host.query("select pg_catalog.pg_listening_channels()"))
    .map((r) => r[0] ?? "");
  const sql = host.listeners.reconcileSql(actual);
  if (sql !== null) await host.runRaw(fe.query(sql));
}

/**
 * Ends whatever `s` left open on the backend: a COPY, an unsynced batch
 * (its implicit transaction is aborted, not committed) and a transaction
 * block. False when the backend could not be brought back to idle.
 */
export async function abortOpenWork(host: DiscardHost, s: PgliteSession): Promise<boolean> {
  try {
    const out = await host.runRaw(concat([
      fe.copyFail("connection ended"),
      fe.execute("pgts: abort the unsynced batch"),
      fe.sync(),
      fe.query("ROLLBACK"),
    ]));
    s.resetStatus();
    return lastStatus(out) === "I";
  } catch {
    return false;
  }
}

/** Status byte of the last ReadyForQuery in a backend byte stream. */
function lastStatus(buf: Uint8Array): string | null {
  let at = 0;
  let status: string | null = null;
  while (at + 5 <= buf.length) {
    const len = readInt32(buf, at + 1);
    if (buf[at] === BE.ReadyForQuery) status = String.fromCharCode(buf[at + 5]!);
    at += 1 + len;
  }
  return status;
}
