/**
 * What the WASM pg_dump's libpq is owed by the server, told from the
 * protocol bytes going each way. The WASM libpq reads its socket through a
 * callback that must answer at once (an empty read is "server closed the
 * connection"), so the bridge holds libpq's write until every answer it
 * will read before its next write has arrived: one ReadyForQuery per
 * StartupMessage, Query, Sync and FunctionCall, or an authentication request
 * that libpq must answer first. Only message headers (and an
 * AuthenticationRequest's code) are looked at; the bytes go through as they
 * are. libpq is built without TLS and GSSAPI here, so the first message is
 * always the StartupMessage.
 */

import { AUTH_REQ, BE, FE } from "../../core/protocol/constants.ts";

/** Frontend message types after which the server owes a ReadyForQuery. */
const OWES_READY = new Set<number>([FE.Query, FE.Sync, FE.FunctionCall]);
/** AuthenticationRequest codes libpq answers with a message: cleartext, md5, SASL, SASL continue. */
const AUTH_NEEDS_ANSWER = new Set<number>([
  AUTH_REQ.PASSWORD,
  AUTH_REQ.MD5,
  AUTH_REQ.SASL,
  AUTH_REQ.SASL_CONT,
]);

/** Walks a stream of length-prefixed messages across chunk boundaries. */
class MessageWalker {
  /** Header bytes of the current message gathered so far (type, length, and for R the code). */
  #head = new Uint8Array(9);
  #headLen = 0;
  /** Bytes of the current message still to skip once its header is known. */
  #skip = 0;
  readonly #onMessage: (type: number, code: number) => void;
  /** The first message has no type byte (the StartupMessage). */
  #untypedFirst: boolean;

  constructor(options: { untypedFirst: boolean; onMessage: (type: number, code: number) => void }) {
    this.#untypedFirst = options.untypedFirst;
    this.#onMessage = options.onMessage;
  }

  push(bytes: Uint8Array): void {
    let i = 0;
    while (i < bytes.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, bytes.length - i);
        this.#skip -= n;
        i += n;
        if (this.#skip === 0) this.#end();
        continue;
      }
      this.#head[this.#headLen++] = bytes[i++] as number;
      this.#headerStep();
    }
  }

  #headerStep(): void {
    const untyped = this.#untypedFirst;
    const lenAt = untyped ? 0 : 1;
    if (this.#headLen < lenAt + 4) return;
    const len = new DataView(this.#head.buffer).getInt32(lenAt);
    const type = untyped ? -1 : (this.#head[0] as number);
    // An AuthenticationRequest's code is read too: it says whether libpq must answer.
    const want = type === BE.AuthenticationRequest && len >= 8 ? 9 : lenAt + 4;
    if (this.#headLen < want) return;
    this.#skip = len - (want - lenAt);
    if (this.#skip <= 0) {
      this.#skip = 0;
      this.#end();
    }
  }

  #end(): void {
    const untyped = this.#untypedFirst;
    const type = untyped ? -1 : (this.#head[0] as number);
    const code = type === BE.AuthenticationRequest && this.#headLen >= 9
      ? new DataView(this.#head.buffer).getInt32(5)
      : 0;
    this.#untypedFirst = false;
    this.#headLen = 0;
    this.#onMessage(type, code);
  }
}

/** The bookkeeping of one libpq connection through the bridge. */
export class OwedAnswers {
  /** ReadyForQuery messages the server still owes. */
  #owed = 0;
  /** The server asked for a password or SASL step and waits for libpq. */
  #authAsked = false;
  readonly #frontend = new MessageWalker({
    untypedFirst: true,
    onMessage: (type) => {
      if (type === -1 || OWES_READY.has(type)) this.#owed++;
      this.#authAsked = false;
    },
  });
  readonly #backend = new MessageWalker({
    untypedFirst: false,
    onMessage: (type, code) => {
      if (type === BE.ReadyForQuery && this.#owed > 0) this.#owed--;
      else if (type === BE.AuthenticationRequest && AUTH_NEEDS_ANSWER.has(code)) {
        this.#authAsked = true;
      }
    },
  });

  /** Bytes libpq wrote. */
  sent(bytes: Uint8Array): void {
    this.#frontend.push(bytes);
  }

  /** Bytes the server sent. */
  received(bytes: Uint8Array): void {
    this.#backend.push(bytes);
  }

  /** Whether libpq will read more before it writes again. */
  get waiting(): boolean {
    return this.#owed > 0 && !this.#authAsked;
  }
}
