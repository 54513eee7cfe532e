/**
 * The postmaster's registry of its children (PostgreSQL's pmchild.c): one
 * pool of slots per child kind, so that one kind filling up cannot starve
 * another, plus unlimited dead-end entries.
 *
 * A slot is taken before a child is launched and released when its exit has
 * been processed, never earlier: until then the child may still be touching
 * shared state, and a new child in its slot would race with it. Only the
 * postmaster's server loop calls into this module.
 */

import { BACKEND_TYPES, type BackendType } from "./backendtype.ts";
import type { ChildProcess, Connection } from "../adapter.ts";
import type { BackendActivity } from "./pmstate.ts";

/** One child as the postmaster sees it (PostgreSQL's `PMChild`). */
export interface PMChild {
  readonly kind: BackendType;
  /** Index in the kind's pool (0-based); -1 for a dead-end entry, which takes no slot. */
  readonly slot: number;
  /** A unique id, stable before the child has a pid (dead-end entries never get one). */
  readonly id: number;
  /** 0 until launched. */
  pid: number;
  proc: ChildProcess | null;
  /** The display name (a worker's bgw_name, "client backend"...). */
  name: string;
  /** For a background worker: the registration it runs, and its bgw_type. */
  workerId?: number;
  workerType?: string;
  /** For a dead-end entry: the client the postmaster is rejecting. */
  client?: Connection;
  /** When the slot was taken (ms since the epoch): the activity view's backend_start. */
  readonly startedAt: number;
  /**
   * A backend past authentication, holding one of max_connections (PGPROC).
   * Backends still reading a startup packet or authenticating hold only a
   * slot of the larger pool, so clients stuck there cannot lock others out.
   */
  connection?: boolean;
  /** A backend's cancel key, once it has told it (after authentication): a CancelRequest must match it. */
  cancelKey?: number;
  /** For an in-process backend run: what it is doing now (pg_stat_activity's state and query). */
  activity?: () => BackendActivity;
}

/** A set of kinds, PostgreSQL's `BackendTypeMask`. */
export type BackendTypeMask = ReadonlySet<BackendType>;

export function btmask(...kinds: BackendType[]): BackendTypeMask {
  return new Set(kinds);
}

export function btmaskAllExcept(...kinds: BackendType[]): BackendTypeMask {
  return new Set(BACKEND_TYPES.filter((k) => !kinds.includes(k)));
}

/** Pool sizes per kind; a kind absent from the map gets one slot (a singleton). */
export type PoolSizes = Partial<Record<BackendType, number>>;

export class ChildRegistry {
  #pools = new Map<BackendType, (PMChild | null)[]>();
  #byId = new Map<number, PMChild>();
  #nextId = 1;

  constructor(sizes: PoolSizes) {
    for (const kind of BACKEND_TYPES) {
      if (kind === "dead_end_backend") continue;
      const n = sizes[kind] ?? 1;
      if (!Number.isInteger(n) || n < 0) {
        throw new RangeError(`Pool size for "${kind}" must be a non-negative integer, got ${n}`);
      }
      this.#pools.set(kind, new Array<PMChild | null>(n).fill(null));
    }
  }

  /**
   * Takes a free slot of the kind (PostgreSQL's `AssignPostmasterChildSlot`),
   * or returns null when the pool is full.
   */
  assignSlot(kind: Exclude<BackendType, "dead_end_backend">, name: string): PMChild | null {
    const pool = this.#pools.get(kind);
    if (pool === undefined) return null;
    const slot = pool.indexOf(null);
    if (slot < 0) return null;
    const child: PMChild = {
      kind,
      slot,
      id: this.#nextId++,
      pid: 0,
      proc: null,
      name,
      startedAt: Date.now(),
    };
    pool[slot] = child;
    this.#byId.set(child.id, child);
    return child;
  }

  /** Registers a dead-end entry, which takes no slot (PostgreSQL's `AllocDeadEndChild`). */
  allocDeadEnd(client: Connection): PMChild {
    const child: PMChild = {
      kind: "dead_end_backend",
      slot: -1,
      id: this.#nextId++,
      pid: 0,
      proc: null,
      name: "dead-end client backend",
      client,
      startedAt: Date.now(),
    };
    this.#byId.set(child.id, child);
    return child;
  }

  /**
   * Frees the child's slot (PostgreSQL's `ReleasePostmasterChildSlot`).
   * Returns false if the child was not registered, which the caller treats
   * as a sign of confusion about who is alive (a crash).
   */
  release(child: PMChild): boolean {
    if (this.#byId.get(child.id) !== child) return false;
    this.#byId.delete(child.id);
    if (child.slot >= 0) {
      const pool = this.#pools.get(child.kind);
      if (pool?.[child.slot] !== child) return false;
      pool[child.slot] = null;
    }
    return true;
  }

  findByPid(pid: number): PMChild | undefined {
    if (pid <= 0) return undefined;
    for (const child of this.#byId.values()) {
      if (child.pid === pid) return child;
    }
    return undefined;
  }

  findById(id: number): PMChild | undefined {
    return this.#byId.get(id);
  }

  /** The children whose kind is in the mask (all children without one). */
  *children(mask?: BackendTypeMask): IterableIterator<PMChild> {
    for (const child of this.#byId.values()) {
      if (mask === undefined || mask.has(child.kind)) yield child;
    }
  }

  /** PostgreSQL's `CountChildren(mask)`. */
  count(mask?: BackendTypeMask): number {
    let n = 0;
    for (const _ of this.children(mask)) n++;
    return n;
  }

  /**
   * InitProcess's check: gives `child` one of `maxConnections`, or says why
   * not. "reserved" when fewer than `reserved` would be left after it (the
   * caller passes 0 for a superuser), "reserved-for-role" when fewer than
   * `reserved` + `forRole` (InitPostgres's two checks). A child asks once;
   * again, it is "ok".
   */
  claimConnection(
    child: PMChild,
    limits: { maxConnections: number; reserved: number; forRole?: number },
  ): "ok" | "too-many" | "reserved" | "reserved-for-role" {
    if (child.connection === true) return "ok";
    let taken = 0;
    for (const c of this.#pools.get("backend") ?? []) if (c?.connection === true) taken++;
    if (taken >= limits.maxConnections) return "too-many";
    const left = limits.maxConnections - taken - 1;
    if (left < limits.reserved) return "reserved";
    if (left < limits.reserved + (limits.forRole ?? 0)) return "reserved-for-role";
    child.connection = true;
    return "ok";
  }

  /** Free slots left in the kind's pool. */
  freeSlots(kind: Exclude<BackendType, "dead_end_backend">): number {
    const pool = this.#pools.get(kind);
    return pool === undefined ? 0 : pool.filter((c) => c === null).length;
  }

  /** The pool's size. */
  poolSize(kind: Exclude<BackendType, "dead_end_backend">): number {
    return this.#pools.get(kind)?.length ?? 0;
  }

  /** The running singleton of a kind, if any. */
  singleton(kind: BackendType): PMChild | undefined {
    // A kind of one slot is in slot 0 when it runs: the server loop asks for
    // four kinds on every pass, so no scan of every child for it.
    const pool = this.#pools.get(kind);
    if (pool !== undefined && pool.length === 1) return pool[0] ?? undefined;
    for (const child of this.children(btmask(kind))) return child;
    return undefined;
  }
}
