/**
 * LISTEN/NOTIFY across sessions of one backend. The backend listens to the
 * union of the channels its sessions listen to; each NotificationResponse it
 * produces is delivered only to the sessions listening on that channel,
 * with the pid of the session that sent it (as PostgreSQL does, the sender
 * gets its own notification too when it listens).
 *
 * A session's LISTEN/UNLISTEN take effect for routing when its transaction
 * ends without an error or ROLLBACK, as they do in PostgreSQL; `reconcileSql`
 * then brings the backend's own listening set back to the union, because one
 * session's UNLISTEN must not stop another's deliveries.
 *
 * Never delivers to a session that does not listen on the channel.
 */

import type { ListenOp } from "./statementtext.ts";
import { parseNotification, quoteIdent, withNotifierPid } from "./wire.ts";

export interface Listener {
  readonly pid: number;
  readonly listens: Set<string>;
  deliverAsync(bytes: Uint8Array): void;
}

export class ListenRegistry {
  #sessions = new Set<Listener>();

  add(s: Listener): void {
    this.#sessions.add(s);
  }

  remove(s: Listener): void {
    this.#sessions.delete(s);
  }

  /**
   * The LISTENs and UNLISTENs of a transaction that committed, without
   * those its ROLLBACK TO SAVEPOINTs undid, as PostgreSQL keeps them. A
   * savepoint not among `ops` started before all of them.
   */
  apply(s: Listener, ops: readonly ListenOp[]): void {
    applyListenOps(s.listens, ops);
  }

  union(): Set<string> {
    const u = new Set<string>();
    for (const s of this.#sessions) for (const ch of s.listens) u.add(ch);
    return u;
  }

  /**
   * Routes one NotificationResponse produced while `sender` owned the
   * backend; returns the copy for the sender's own stream, or null. The
   * backend sends it once the transaction committed, with the LISTENs of
   * that transaction in effect (PostgreSQL's AtCommit_Notify): the sender's
   * pending ones (applied to its set at its ReadyForQuery 'I') count for
   * its own copy.
   */
  route(
    msg: Uint8Array,
    sender: {
      readonly pid: number;
      readonly pendingListen?: readonly ListenOp[];
      readonly pendingListenSpoiled?: boolean;
    },
  ): Uint8Array | null {
    const { channel } = parseNotification(msg.subarray(5));
    const bytes = withNotifierPid(msg, sender.pid);
    let own: Uint8Array | null = null;
    for (const s of this.#sessions) {
      if (s === sender) {
        const pending = sender.pendingListenSpoiled === true ? [] : sender.pendingListen ?? [];
        const listens = pending.length === 0
          ? s.listens
          : applyListenOps(new Set(s.listens), pending);
        if (listens.has(channel)) own = bytes;
      } else if (s.listens.has(channel)) s.deliverAsync(bytes);
    }
    return own;
  }

  /** SQL that makes the backend listen to exactly the union; null when it already does. */
  reconcileSql(actual: Iterable<string>): string | null {
    const want = this.union();
    const stmts: string[] = [];
    const have = new Set(actual);
    for (const ch of have) if (!want.has(ch)) stmts.push(`UNLISTEN ${quoteIdent(ch)}`);
    for (const ch of want) if (!have.has(ch)) stmts.push(`LISTEN ${quoteIdent(ch)}`);
    return stmts.length === 0 ? null : stmts.join("; ");
  }
}

/** `listens` after a committed transaction's LISTENs and UNLISTENs (ListenRegistry.apply); returned. */
function applyListenOps(listens: Set<string>, ops: readonly ListenOp[]): Set<string> {
  // The transaction's own, then each open savepoint's, innermost last.
  const levels: Array<{ name: string | null; ops: ListenOp[] }> = [{ name: null, ops: [] }];
  for (const op of ops) {
    const [kind, name] = op;
    if (kind === "savepoint") {
      levels.push({ name, ops: [] });
      continue;
    }
    if (kind === "listen" || kind === "unlisten") {
      levels[levels.length - 1]!.ops.push(op);
      continue;
    }
    const at = levels.findLastIndex((l) => l.name === name);
    if (kind === "release") {
      const from = at > 0 ? at : 1;
      levels[from - 1]!.ops.push(...levels.splice(from).flatMap((l) => l.ops));
    } else {
      // ROLLBACK TO keeps the savepoint, and nothing done after it.
      levels.splice(at > 0 ? at + 1 : 1);
      levels[levels.length - 1]!.ops = [];
    }
  }
  for (const level of levels) {
    for (const [op, ch] of level.ops) {
      if (op === "listen") listens.add(ch);
      else if (ch === "*") listens.clear();
      else listens.delete(ch);
    }
  }
  return listens;
}
