/**
 * `MessageReader`: incremental framing of the frontend byte stream, the
 * counterpart of pqcomm.c's pq_getmessage and the checks in
 * backend_startup.c (ProcessStartupPacket) and postgres.c (SocketBackend).
 *
 * Feed it whatever TCP chunks arrive with `push()`, then pull whole messages:
 * `readStartupPacket()` before the StartupMessage (int32 length, no type
 * byte), `readAuthResponse()` while authenticating, `read()` afterwards. Each
 * returns null until a whole message is buffered. A message that lies inside
 * one chunk comes back as a subarray of that chunk (no copy); one that spans
 * chunks is assembled in a buffer from the optional `allocate` function, so a
 * backend can place it in its MessageContext.
 *
 * The reader keeps references to pushed chunks until they are consumed:
 * callers must not reuse a chunk's memory (pass a copy if the runtime
 * recycles read buffers). Errors are thrown as `PgError`s with PostgreSQL's
 * texts; `CommError`s are the ones PostgreSQL only logs before closing.
 */

import { CommError, protocolViolation } from "./errors.ts";
import type { PgError } from "../elog.ts";
import { type Allocator, ByteQueue } from "./bytequeue.ts";
import {
  FE,
  MAX_STARTUP_PACKET_LENGTH,
  PG_MAX_AUTH_TOKEN_LENGTH,
  PQ_LARGE_MESSAGE_LIMIT,
  PQ_SMALL_MESSAGE_LIMIT,
} from "./constants.ts";

export type { Allocator };

/** One framed message: its type byte and its body (without type and length). */
export interface Message {
  type: number;
  body: Uint8Array;
}

export interface MessageReaderOptions {
  /** Buffers for bodies that span chunks; default `new Uint8Array(n)`. */
  allocate?: Allocator;
  /** Limit for Query, Parse, Bind, FunctionCall, CopyData; default PQ_LARGE_MESSAGE_LIMIT. */
  maxMessageSize?: number;
  /** Limit for the short messages (Sync, Execute, ...); default PQ_SMALL_MESSAGE_LIMIT. */
  smallMessageLimit?: number;
}

const defaultAllocate: Allocator = (n) => new Uint8Array(n);

/** Length-limit tables by their two limits: every connection's reader shares one. */
const limitTables = new Map<string, Int32Array>();

/**
 * Per-type length limits, as SocketBackend picks them (-1: not a valid
 * type): `large` for the messages that carry data, `small` for the rest.
 * One table per pair of limits, never written after it is made: a 1 KiB
 * table for each of ten thousand idle connections would be 10 MiB.
 */
function lengthLimits(large: number, small: number): Int32Array {
  const key = `${large}:${small}`;
  let limits = limitTables.get(key);
  if (limits !== undefined) return limits;
  limits = new Int32Array(256).fill(-1);
  for (const t of [FE.Query, FE.FunctionCall, FE.Bind, FE.Parse, FE.CopyData]) limits[t] = large;
  for (
    const t of [
      FE.Terminate,
      FE.Close,
      FE.Describe,
      FE.Execute,
      FE.Flush,
      FE.Sync,
      FE.CopyDone,
      FE.CopyFail,
    ]
  ) {
    limits[t] = small;
  }
  limitTables.set(key, limits);
  return limits;
}

export class MessageReader {
  #queue = new ByteQueue();
  #allocate: Allocator;
  readonly #limits: Int32Array;
  #typed = false;

  constructor(options: MessageReaderOptions = {}) {
    this.#allocate = options.allocate ?? defaultAllocate;
    const large = options.maxMessageSize ?? PQ_LARGE_MESSAGE_LIMIT;
    const small = Math.min(options.smallMessageLimit ?? PQ_SMALL_MESSAGE_LIMIT, large);
    if (!Number.isInteger(large) || large < 4 || large > PQ_LARGE_MESSAGE_LIMIT) {
      throw new RangeError(`maxMessageSize must be an integer from 4 to ${PQ_LARGE_MESSAGE_LIMIT}`);
    }
    if (!Number.isInteger(small) || small < 4) {
      throw new RangeError("smallMessageLimit must be an integer of at least 4");
    }
    this.#limits = lengthLimits(large, small);
  }

  /** Appends a chunk received from the client. */
  push(chunk: Uint8Array): void {
    this.#queue.push(chunk);
  }

  /** Bytes buffered and not yet returned as messages. */
  get buffered(): number {
    return this.#queue.size;
  }

  /**
   * Whether the whole messages buffered and not yet read end with a
   * Terminate: the client said goodbye before it closed, so a close seen
   * while its last input still runs is not a lost client. Walks the length
   * words from the next message on; for the message phase only.
   */
  endsInTerminate(): boolean {
    const size = this.#queue.size;
    let at = 0;
    let last = -1;
    while (at + 5 <= size) {
      const len = this.#queue.peekInt32(at + 1);
      if (len < 4) return false;
      last = this.#queue.peekByte(at);
      at += 1 + len;
    }
    return at === size && last === FE.Terminate;
  }

  /** The next byte without taking it, or null when nothing is buffered (direct SSL's check). */
  peekByte(): number | null {
    return this.#queue.size < 1 ? null : this.#queue.peekByte(0);
  }

  /**
   * The body of the next startup-phase packet (StartupMessage, SSLRequest,
   * GSSENCRequest, CancelRequest), after its length word; null if incomplete.
   * Parse it with `parseStartupPacket`.
   */
  readStartupPacket(): Uint8Array | null {
    const q = this.#queue;
    if (q.size < 4) return null;
    const len = q.peekInt32(0) - 4;
    if (len < 4 || len > MAX_STARTUP_PACKET_LENGTH) {
      throw new CommError("invalid length of startup packet");
    }
    if (q.size < len + 4) return null;
    q.skip(4);
    return q.take(len, this.#allocate);
  }

  /**
   * The next message of the normal phase, checked as SocketBackend checks it:
   * a valid frontend type byte (else FATAL "invalid frontend message type %d")
   * and a length within that type's limit (else "invalid message length").
   */
  read(): Message | null {
    const limit = this.#typeLimit();
    return limit < 0 ? null : this.#framed(this.#queue.peekByte(0), limit);
  }

  /**
   * As `read()`, with the same checks, but the whole message, type byte and
   * length word included: a subarray of the chunk that holds it (no copy),
   * else assembled in a buffer from `allocate`. For a caller that hands the
   * client's messages on as they came (the backend's command loop).
   */
  readFrame(): Uint8Array | null {
    const limit = this.#typeLimit();
    const len = limit < 0 ? -1 : this.#wholeLength(limit);
    return len < 0 ? null : this.#queue.take(len + 1, this.#allocate);
  }

  /**
   * The length limit of the next message's type, checked as SocketBackend
   * checks the type byte; -1 while no byte is buffered.
   */
  #typeLimit(): number {
    const q = this.#queue;
    this.#typed = true;
    if (q.size < 1) return -1;
    const type = q.peekByte(0);
    const limit = this.#limits[type] as number;
    if (limit < 0) throw protocolViolation(`invalid frontend message type ${type}`);
    return limit;
  }

  /**
   * The body of the client's next authentication message ('p'), or null if
   * incomplete. Any other type fails as recv_password_packet and
   * CheckSASLAuth fail ("expected password response, got message type %d").
   */
  readAuthResponse(expect: "password" | "sasl" = "password"): Uint8Array | null {
    const q = this.#queue;
    this.#typed = true;
    if (q.size < 1) return null;
    const type = q.peekByte(0);
    if (type !== FE.PasswordMessage) {
      throw protocolViolation(
        expect === "sasl"
          ? `expected SASL response, got message type ${type}`
          : `expected password response, got message type ${type}`,
      );
    }
    return this.#framed(type, PG_MAX_AUTH_TOKEN_LENGTH)?.body ?? null;
  }

  #framed(type: number, limit: number): Message | null {
    const len = this.#wholeLength(limit);
    if (len < 0) return null;
    const q = this.#queue;
    q.skip(5);
    return { type, body: q.take(len - 4, this.#allocate) };
  }

  /**
   * The next message's length word, checked against `limit`, once the whole
   * message is buffered; -1 until then.
   */
  #wholeLength(limit: number): number {
    const q = this.#queue;
    if (q.size < 5) return -1;
    const len = q.peekInt32(1);
    if (len < 4 || len > limit) throw new CommError("invalid message length");
    return q.size < len + 1 ? -1 : len;
  }

  /**
   * Every byte buffered, unframed and in a buffer of its own (not from
   * `allocate`), for a caller that stops framing here (a pass-through
   * session after startup). Empty when nothing is buffered.
   */
  drain(): Uint8Array {
    const q = this.#queue;
    return q.take(q.size, defaultAllocate);
  }

  /**
   * Call when the client closed the connection: the error PostgreSQL would
   * log for a half-received message, or null if nothing was pending.
   */
  eof(): PgError | null {
    const n = this.#queue.size;
    if (n === 0) return null;
    if (!this.#typed) return new CommError("incomplete startup packet");
    if (n < 5) return new CommError("unexpected EOF within message length word");
    return new CommError("incomplete message from client");
  }
}
