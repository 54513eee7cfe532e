/**
 * `ClientAuthentication`: the password part of PostgreSQL's auth.c as a small
 * async state machine. Given the pg_hba.conf method and the role's stored
 * secret, it produces the backend messages to send and consumes the client's
 * 'p' messages until it ends in AuthenticationOk or throws a FATAL PgError.
 *
 * Follows CheckPasswordAuth / CheckPWChallengeAuth: the `md5` method uses MD5
 * only when the stored secret is an md5 hash and switches to SCRAM otherwise;
 * a role without a password (or with a secret the method cannot use) gets a
 * mock exchange that fails with the same 28P01 as a wrong password, so a
 * client learns nothing. The reason is kept in `logDetail` for the server log
 * only, as PostgreSQL's errdetail_log. It owns no socket and reads no catalog.
 */

import { ERRCODE, PgError } from "../elog.ts";
import { MessageWriter } from "../protocol/writer.ts";
import {
  writeAuthenticationCleartextPassword,
  writeAuthenticationMD5Password,
  writeAuthenticationOk,
  writeAuthenticationSASL,
  writeAuthenticationSASLContinue,
  writeAuthenticationSASLFinal,
} from "../protocol/backend.ts";
import { parsePasswordMessage, parseSASLInitialResponse } from "../protocol/frontend.ts";
import type { ScramLogin } from "../engine/types.ts";
import type { HbaMethod } from "./hba.ts";
import { isMd5Secret, md5PasswordHash, md5SaltedResponse } from "./md5.ts";
import {
  base64Encode,
  parseScramSecret,
  SCRAM_SHA_256_NAME,
  SCRAM_SHA_256_PLUS_NAME,
  ScramExchange,
  type ScramSecret,
  scramVerifyPlainPassword,
  timingSafeEqual,
} from "./scram.ts";

export interface ClientAuthenticationOptions {
  /** The method of the matching pg_hba.conf line; `reject` is the caller's (hbaRejectError). */
  method: Exclude<HbaMethod, "reject" | "cert">;
  /** The user name from the startup packet. */
  user: string;
  /**
   * The role's stored password: a SCRAM secret, an md5 hash, a plain text
   * password (usable by the `password` method only), or null for none.
   */
  secret: string | null;
  /**
   * tls-server-end-point data when the connection is SSL: SCRAM-SHA-256-PLUS
   * is then offered first, as PostgreSQL offers it.
   */
  channelBinding?: Uint8Array | null;
}

/**
 * One step of the exchange. While not done, send `send` and pass the body of
 * the client's next 'p' message to `receive()`; read it with
 * `MessageReader.readAuthResponse(expect)`. When done, `send` ends with
 * AuthenticationOk.
 */
export type AuthStep =
  | { done: false; send: Uint8Array; expect: "password" | "sasl" }
  | { done: true; send: Uint8Array };

/** FATAL 28P01, the one message every password failure shows the client. */
export function passwordAuthFailedError(user: string): PgError {
  return new PgError(
    ERRCODE.INVALID_PASSWORD,
    `password authentication failed for user "${user}"`,
    { severity: "FATAL" },
  );
}

const encoder = new TextEncoder();

export class ClientAuthentication {
  #method: ClientAuthenticationOptions["method"];
  #user: string;
  #secret: string | null;
  #state: "new" | "password" | "md5" | "sasl-initial" | "sasl-final" | "done" = "new";
  #salt: Uint8Array | undefined;
  #scram: ScramExchange | undefined;
  #scramSecret: ScramSecret | null = null;
  #scramLogin: ScramLogin | null = null;
  #channelBinding: Uint8Array | null;
  #logDetail: string | undefined;

  constructor(options: ClientAuthenticationOptions) {
    if ((options.method as string) === "reject" || (options.method as string) === "cert") {
      throw new TypeError(`The ${options.method} method has no password exchange`);
    }
    this.#method = options.method;
    this.#user = options.user;
    this.#secret = options.secret;
    this.#channelBinding = options.channelBinding ?? null;
  }

  /** Why the last failure happened, for the server log only (never the client). */
  get logDetail(): string | undefined {
    return this.#logDetail;
  }

  /** After a SCRAM login against the role's stored secret: the keys to log in elsewhere as it. */
  get scramLogin(): ScramLogin | null {
    return this.#scramLogin;
  }

  /** The first messages to send: a request for a password, or AuthenticationOk for trust. */
  start(): Promise<AuthStep> {
    if (this.#state !== "new") throw new TypeError("Authentication already started");
    switch (this.#method) {
      case "trust":
        return Promise.resolve(this.#ok());
      case "password":
        this.#state = "password";
        return Promise.resolve({
          done: false,
          send: MessageWriter.encode(writeAuthenticationCleartextPassword),
          expect: "password",
        });
      case "md5":
        if (this.#secret !== null && isMd5Secret(this.#secret)) {
          this.#state = "md5";
          this.#salt = crypto.getRandomValues(new Uint8Array(4));
          const salt = this.#salt;
          return Promise.resolve({
            done: false,
            send: MessageWriter.encode((w) => writeAuthenticationMD5Password(w, salt)),
            expect: "password",
          });
        }
        return Promise.resolve(this.#startScram());
      case "scram-sha-256":
        return Promise.resolve(this.#startScram());
      default: {
        const never: never = this.#method;
        throw new TypeError(`Unknown method ${String(never)}`);
      }
    }
  }

  #startScram(): AuthStep {
    const secret = this.#secret === null ? null : parseScramSecret(this.#secret);
    if (secret === null) {
      this.#logDetail = this.#secret === null
        ? `User "${this.#user}" has no password assigned.`
        : `User "${this.#user}" does not have a valid SCRAM secret.`;
    }
    this.#scramSecret = secret;
    this.#state = "sasl-initial";
    const mechanisms = this.#channelBinding === null
      ? [SCRAM_SHA_256_NAME]
      : [SCRAM_SHA_256_PLUS_NAME, SCRAM_SHA_256_NAME];
    return {
      done: false,
      send: MessageWriter.encode((w) => writeAuthenticationSASL(w, mechanisms)),
      expect: "sasl",
    };
  }

  #ok(extra?: Uint8Array): AuthStep {
    this.#state = "done";
    const w = new MessageWriter({ initialSize: 64 + (extra?.length ?? 0) });
    if (extra !== undefined) writeAuthenticationSASLFinal(w, extra);
    writeAuthenticationOk(w);
    return { done: true, send: w.take() };
  }

  #fail(detail: string): PgError {
    this.#state = "done";
    this.#logDetail ??= detail;
    return passwordAuthFailedError(this.#user);
  }

  /** Consumes the body of the client's 'p' message. Rejects with a FATAL PgError. */
  async receive(body: Uint8Array): Promise<AuthStep> {
    switch (this.#state) {
      case "password":
        return await this.#checkPassword(readPassword(body));
      case "md5": {
        const answer = readPassword(body);
        const expected = md5SaltedResponse(this.#secret as string, this.#salt as Uint8Array);
        if (!timingSafeEqual(encoder.encode(answer), encoder.encode(expected))) {
          throw this.#fail(`Password does not match for user "${this.#user}".`);
        }
        return this.#ok();
      }
      case "sasl-initial": {
        const init = parseSASLInitialResponse(body);
        const plus = init.mechanism === SCRAM_SHA_256_PLUS_NAME && this.#channelBinding !== null;
        if (init.mechanism !== SCRAM_SHA_256_NAME && !plus) {
          this.#state = "done";
          throw new PgError(
            ERRCODE.PROTOCOL_VIOLATION,
            "client selected an invalid SASL authentication mechanism",
            { severity: "FATAL" },
          );
        }
        this.#scram = new ScramExchange(this.#scramSecret, {
          user: this.#user,
          channelBinding: this.#channelBinding,
          plus,
        });
        const serverFirst = await this.#scram.clientFirst(
          init.data ?? new Uint8Array(0),
        );
        this.#state = "sasl-final";
        return {
          done: false,
          send: MessageWriter.encode((w) => writeAuthenticationSASLContinue(w, serverFirst)),
          expect: "sasl",
        };
      }
      case "sasl-final": {
        const result = await (this.#scram as ScramExchange).clientFinal(body);
        if (!result.ok) throw this.#fail(`Password does not match for user "${this.#user}".`);
        const secret = this.#scramSecret;
        if (secret !== null) {
          this.#scramLogin = {
            clientKey: base64Encode(result.clientKey),
            serverKey: base64Encode(secret.serverKey),
            salt: base64Encode(secret.salt),
            iterations: secret.iterations,
          };
        }
        return this.#ok(result.serverFinal);
      }
      case "new":
      case "done":
        throw new TypeError(`No authentication message expected (state ${this.#state})`);
      default: {
        const never: never = this.#state;
        throw new TypeError(`Unknown state ${String(never)}`);
      }
    }
  }

  async #checkPassword(password: string): Promise<AuthStep> {
    const secret = this.#secret;
    if (secret === null) throw this.#fail(`User "${this.#user}" has no password assigned.`);
    let ok: boolean;
    const scram = parseScramSecret(secret);
    if (scram !== null) ok = await scramVerifyPlainPassword(password, scram);
    else if (isMd5Secret(secret)) {
      ok = timingSafeEqual(
        encoder.encode(md5PasswordHash(password, this.#user)),
        encoder.encode(secret),
      );
    } else ok = timingSafeEqual(encoder.encode(password), encoder.encode(secret));
    if (!ok) throw this.#fail(`Password does not match for user "${this.#user}".`);
    return this.#ok();
  }
}

/** A PasswordMessage's text; an empty one fails as recv_password_packet fails. */
function readPassword(body: Uint8Array): string {
  const password = parsePasswordMessage(body);
  if (password === "") {
    throw new PgError(ERRCODE.INVALID_PASSWORD, "empty password returned by client", {
      severity: "FATAL",
    });
  }
  return password;
}
