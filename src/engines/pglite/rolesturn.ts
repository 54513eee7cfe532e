/**
 * The cluster's turn to change roles: one transaction at a time, in any
 * database, runs a statement that creates, alters, drops or grants roles.
 *
 * PostgreSQL's pg_authid is one shared catalog: CREATE ROLE in two
 * databases at once makes two rows, each with its own oid. pgts keeps a
 * copy in every engine and, after a transaction that changed roles, makes
 * every other copy the same as the changed one (pg_authid.ts). Two such
 * transactions at once, in two databases, each made its own role in a copy
 * that lacked the other's (and two databases copied from one template
 * allocate the same oids), and the later copy wiped the earlier role out
 * everywhere: of 40 roles made in each of two databases at once, 30 and 29
 * were left. With the turn, a role statement waits for the transaction that
 * holds it to end, and then for that transaction's copy to reach its own
 * engine, so every change starts from every earlier one (session.ts).
 *
 * The holder keeps the turn until its transaction ends (its copy is then
 * queued for every other engine, and the next holder's statement waits for
 * it) or its session does; one idle in its block while a role statement
 * waits is ended after pgts.engine_hold_timeout (dbengines.ts), as an idle
 * holder of an engine is. A DO block whose body has a role statement
 * takes the turn too (statementtext.ts). What it does not cover: roles
 * changed inside a function, which pgts does not see before it runs.
 */

/** FIFO, and reentrant for its holder. */
export class RolesTurn<S> {
  #holder: S | null = null;
  readonly #queue: Array<{ readonly who: S; readonly go: () => void }> = [];

  /** Who holds the turn; null: nobody. */
  get holder(): S | null {
    return this.#holder;
  }

  /**
   * Resolves true once `who` holds the turn, or false when `timeoutMs`
   * passed first (then it is not in line any more).
   */
  take(who: S, timeoutMs: number): Promise<boolean> {
    if (this.#holder === null || this.#holder === who) {
      this.#holder = who;
      return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const entry = {
        who,
        go: () => {
          clearTimeout(timer);
          resolve(true);
        },
      };
      this.#queue.push(entry);
      if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => {
          const at = this.#queue.indexOf(entry);
          if (at < 0) return;
          this.#queue.splice(at, 1);
          resolve(false);
        }, timeoutMs);
      }
    });
  }

  /** `who`'s transaction (or session) ended: the turn goes to the next in line. */
  done(who: S): void {
    if (this.#holder !== who) {
      const at = this.#queue.findIndex((e) => e.who === who);
      if (at >= 0) this.#queue.splice(at, 1);
      return;
    }
    const next = this.#queue.shift();
    this.#holder = next?.who ?? null;
    next?.go();
  }
}
