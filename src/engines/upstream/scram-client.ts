/**
 * The client side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802/7677,
 * 5929), as libpq's fe-auth-scram.c does it: over TLS with the server's
 * tls-server-end-point data when the upstream offers -PLUS ("p=" in the
 * GS2 header), "y" when pgts could bind but was not offered it, "n"
 * without TLS; an empty user name in the messages (PostgreSQL takes the
 * startup packet's), and the server's signature checked before the
 * exchange is trusted. crypto.subtle only.
 */

import {
  base64Decode,
  base64Encode,
  hmacSha256,
  scramKeys,
  scramSaltedPassword,
  timingSafeEqual,
} from "../../core/auth/scram.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** The GS2 headers: no channel binding / could but not offered / tls-server-end-point. */
const GS2_NONE = "n,,";
const GS2_NOT_OFFERED = "y,,";
const GS2_BOUND = "p=tls-server-end-point,,";
const NONCE_BYTES = 18;

/** Why an exchange failed; the caller turns it into the client's error. */
export class ScramClientError extends Error {
  override readonly name = "ScramClientError";
}

/** What a SCRAM login proves without the password: ClientKey, and the secret it belongs to. */
export interface ScramKeys {
  readonly clientKey: Uint8Array;
  readonly serverKey: Uint8Array;
  readonly salt: Uint8Array;
  readonly iterations: number;
}

/** The keys of a `ScramLogin` (base64 fields); null when one does not decode. */
export function scramKeysOf(login: {
  clientKey: string;
  serverKey: string;
  salt: string;
  iterations: number;
}): ScramKeys | null {
  const clientKey = base64Decode(login.clientKey);
  const serverKey = base64Decode(login.serverKey);
  const salt = base64Decode(login.salt);
  if (clientKey === null || serverKey === null || salt === null) return null;
  return { clientKey, serverKey, salt, iterations: login.iterations };
}

export class ScramClient {
  #password: string;
  #nonce: string;
  #clientFirstBare: string;
  #serverSignature: Uint8Array | null = null;
  #gs2: string;
  /** What `c=` carries: the GS2 header, then the binding data when bound. */
  #binding: Uint8Array;

  /**
   * `channel`: `endPoint` (the server certificate's tls-server-end-point
   * hash) to bind to it (SCRAM-SHA-256-PLUS), or `tls` true when the
   * connection is encrypted but the upstream did not offer -PLUS.
   */
  #keys: ScramKeys | null;

  /**
   * `password`: the role's password, or the keys a client proved it has when
   * it logged in to pgts against the same stored secret (SCRAM pass-through:
   * no password is known, and the upstream must use that secret's salt and
   * iteration count).
   */
  constructor(
    password: string | ScramKeys,
    channel: { endPoint?: Uint8Array; tls?: boolean } = {},
  ) {
    this.#password = typeof password === "string" ? password : "";
    this.#keys = typeof password === "string" ? null : password;
    this.#gs2 = channel.endPoint !== undefined
      ? GS2_BOUND
      : channel.tls === true
      ? GS2_NOT_OFFERED
      : GS2_NONE;
    const header = encoder.encode(this.#gs2);
    const data = channel.endPoint ?? new Uint8Array(0);
    this.#binding = new Uint8Array(header.length + data.length);
    this.#binding.set(header);
    this.#binding.set(data, header.length);
    this.#nonce = base64Encode(crypto.getRandomValues(new Uint8Array(NONCE_BYTES)));
    this.#clientFirstBare = `n=,r=${this.#nonce}`;
  }

  /** client-first-message, the SASLInitialResponse's data. */
  clientFirst(): Uint8Array {
    return encoder.encode(this.#gs2 + this.#clientFirstBare);
  }

  /** server-first-message in, client-final-message (with the proof) out. */
  async clientFinal(serverFirstBytes: Uint8Array): Promise<Uint8Array> {
    const serverFirst = decoder.decode(serverFirstBytes);
    const attrs = parseAttributes(serverFirst);
    const nonce = attrs.get("r");
    const salt = base64Decode(attrs.get("s") ?? "");
    const iterations = Number(attrs.get("i"));
    if (nonce === undefined || !nonce.startsWith(this.#nonce) || nonce === this.#nonce) {
      throw new ScramClientError("invalid SCRAM response (nonce mismatch)");
    }
    if (salt === null || salt.length === 0) {
      throw new ScramClientError("malformed SCRAM message (invalid salt)");
    }
    if (!Number.isSafeInteger(iterations) || iterations < 1) {
      throw new ScramClientError("malformed SCRAM message (invalid iteration count)");
    }
    let clientKey: Uint8Array;
    let storedKey: Uint8Array;
    let serverKey: Uint8Array;
    const keys = this.#keys;
    if (keys !== null) {
      if (iterations !== keys.iterations || !timingSafeEqual(salt, keys.salt)) {
        throw new ScramClientError(
          "the upstream's SCRAM secret for this role is not the one the client logged in with",
        );
      }
      clientKey = keys.clientKey;
      storedKey = new Uint8Array(
        await crypto.subtle.digest("SHA-256", clientKey as Uint8Array<ArrayBuffer>),
      );
      serverKey = keys.serverKey;
    } else {
      const salted = await scramSaltedPassword(this.#password, salt, iterations);
      ({ clientKey, storedKey, serverKey } = await scramKeys(salted));
    }
    const withoutProof = `c=${base64Encode(this.#binding)},r=${nonce}`;
    const authMessage = `${this.#clientFirstBare},${serverFirst},${withoutProof}`;
    const clientSignature = await hmacSha256(storedKey, authMessage);
    const proof = new Uint8Array(clientKey.length);
    for (let i = 0; i < proof.length; i++) {
      proof[i] = (clientKey[i] as number) ^ (clientSignature[i] as number);
    }
    this.#serverSignature = await hmacSha256(serverKey, authMessage);
    return encoder.encode(`${withoutProof},p=${base64Encode(proof)}`);
  }

  /** server-final-message: throws unless the server proved it knows the secret. */
  verifyServerFinal(serverFinalBytes: Uint8Array): void {
    const attrs = parseAttributes(decoder.decode(serverFinalBytes));
    const error = attrs.get("e");
    if (error !== undefined) throw new ScramClientError(`SCRAM authentication failed: ${error}`);
    const v = base64Decode(attrs.get("v") ?? "");
    if (
      this.#serverSignature === null || v === null || !timingSafeEqual(v, this.#serverSignature)
    ) {
      throw new ScramClientError("incorrect server signature");
    }
  }
}

function parseAttributes(message: string): Map<string, string> {
  const attrs = new Map<string, string>();
  for (const part of message.split(",")) {
    const eq = part.indexOf("=");
    if (eq === 1) attrs.set(part[0] as string, part.slice(2));
  }
  return attrs;
}
