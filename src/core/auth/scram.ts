/**
 * Server side of SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL's
 * auth-scram.c does it, on crypto.subtle (PBKDF2, HMAC, SHA-256).
 *
 * Owns the stored-secret format, exactly PostgreSQL's
 * `SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>`,
 * building one from a password, checking a plain password against one (the
 * `password` method), and `ScramExchange`, the two-round exchange. Over SSL
 * the exchange can be SCRAM-SHA-256-PLUS, bound to the TLS channel with
 * tls-server-end-point (the server certificate's hash); otherwise the gs2
 * header must be `n,,` or `y,,` and `p=` is refused with PostgreSQL's
 * message. A role without a usable secret
 * gets a mock exchange that always fails, so a client cannot tell a missing
 * role or password from a wrong password.
 */

import { ERRCODE, PgError } from "../elog.ts";

export const SCRAM_SHA_256_NAME = "SCRAM-SHA-256";
export const SCRAM_SHA_256_PLUS_NAME = "SCRAM-SHA-256-PLUS";
/** The one channel-binding type PostgreSQL (and pgts) supports. */
const CBIND_TYPE = "tls-server-end-point";
export const SCRAM_DEFAULT_ITERATIONS = 4096;
const SCRAM_KEY_LEN = 32;
const SCRAM_DEFAULT_SALT_LEN = 16;
const SCRAM_RAW_NONCE_LEN = 18;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A parsed SCRAM secret. */
export interface ScramSecret {
  iterations: number;
  salt: Uint8Array;
  storedKey: Uint8Array;
  serverKey: Uint8Array;
}

export function base64Encode(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/** Decodes base64, or returns null when it is not valid base64. */
export function base64Decode(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return null;
  try {
    const s = atob(text);
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

export async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data as BufferSource));
}

export async function hmacSha256(key: Uint8Array, data: Uint8Array | string): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey(
    "raw",
    key as BufferSource,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const msg = typeof data === "string" ? encoder.encode(data) : data;
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, msg as BufferSource));
}

/** Hi(): PBKDF2-HMAC-SHA-256 of the SASLprep'd password. */
export async function scramSaltedPassword(
  password: string,
  salt: Uint8Array,
  iterations: number,
): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(saslprep(password)),
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt: salt as BufferSource, iterations },
    key,
    SCRAM_KEY_LEN * 8,
  );
  return new Uint8Array(bits);
}

/** ClientKey, StoredKey and ServerKey from a salted password. */
export async function scramKeys(
  saltedPassword: Uint8Array,
): Promise<{ clientKey: Uint8Array; storedKey: Uint8Array; serverKey: Uint8Array }> {
  const clientKey = await hmacSha256(saltedPassword, "Client Key");
  return {
    clientKey,
    storedKey: await sha256(clientKey),
    serverKey: await hmacSha256(saltedPassword, "Server Key"),
  };
}

/** Parses a stored secret; null if it is not a well-formed SCRAM-SHA-256 secret. */
export function parseScramSecret(secret: string): ScramSecret | null {
  const m = /^SCRAM-SHA-256\$(\d+):([^$:]+)\$([^$:]+):([^$:]+)$/.exec(secret);
  if (m === null) return null;
  const iterations = Number(m[1]);
  const salt = base64Decode(m[2] as string);
  const storedKey = base64Decode(m[3] as string);
  const serverKey = base64Decode(m[4] as string);
  if (
    !Number.isSafeInteger(iterations) || iterations < 1 || salt === null ||
    storedKey?.length !== SCRAM_KEY_LEN || serverKey?.length !== SCRAM_KEY_LEN
  ) return null;
  return { iterations, salt, storedKey, serverKey };
}

export function formatScramSecret(s: ScramSecret): string {
  return `SCRAM-SHA-256$${s.iterations}:${base64Encode(s.salt)}$${base64Encode(s.storedKey)}:${
    base64Encode(s.serverKey)
  }`;
}

/** Builds a stored secret from a password (PostgreSQL's pg_be_scram_build_secret). */
export async function buildScramSecret(
  password: string,
  options: { iterations?: number; salt?: Uint8Array } = {},
): Promise<string> {
  const iterations = options.iterations ?? SCRAM_DEFAULT_ITERATIONS;
  const salt = options.salt ?? crypto.getRandomValues(new Uint8Array(SCRAM_DEFAULT_SALT_LEN));
  const { storedKey, serverKey } = await scramKeys(
    await scramSaltedPassword(password, salt, iterations),
  );
  return formatScramSecret({ iterations, salt, storedKey, serverKey });
}

/** Checks a cleartext password against a SCRAM secret (the `password` method). */
export async function scramVerifyPlainPassword(
  password: string,
  secret: ScramSecret,
): Promise<boolean> {
  const { serverKey } = await scramKeys(
    await scramSaltedPassword(password, secret.salt, secret.iterations),
  );
  return timingSafeEqual(serverKey, secret.serverKey);
}

export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

/**
 * SASLprep (RFC 4013) as far as pgts needs it: ASCII passes unchanged;
 * otherwise non-ASCII spaces map to U+0020, "mapped to nothing" characters
 * are dropped and the result is NFKC-normalised. If a prohibited character
 * remains, the raw password is used, as PostgreSQL does. (Unassigned code
 * points and the bidi rule are not checked.)
 */
export function saslprep(password: string): string {
  // deno-lint-ignore no-control-regex
  if (/^[\x00-\x7f]*$/.test(password)) return password;
  const mapped = password
    .replace(/[\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000]/g, " ")
    .replace(/[\u00ad\u034f\u1806\u180b-\u180d\u200c\u200d\u2060\ufe00-\ufe0f\ufeff]/g, "")
    .normalize("NFKC");
  const prohibited =
    // deno-lint-ignore no-control-regex
    /[\x00-\x1f\x7f-\x9f\u0340\u0341\u06dd\u070f\u180e\u200e\u200f\u2028-\u202e\u2060-\u2063\u206a-\u206f\ud800-\udfff\ue000-\uf8ff\ufdd0-\ufdef\ufeff\ufff9-\ufffd\ufffe\uffff]/u;
  return mapped.length === 0 || prohibited.test(mapped) ? password : mapped;
}

function malformed(detail: string): PgError {
  return new PgError(ERRCODE.PROTOCOL_VIOLATION, "malformed SCRAM message", {
    severity: "FATAL",
    detail,
  });
}

/** A character as PostgreSQL's sanitize_char shows it in a message. */
function sanitizeChar(c: string | undefined): string {
  if (c === undefined || c === "") return "0x00";
  const code = c.charCodeAt(0);
  return code >= 0x20 && code < 0x7f ? c : `0x${code.toString(16).padStart(2, "0")}`;
}

/** A string as PostgreSQL's sanitize_str shows it: non-printable characters become "?". */
function sanitizeString(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, "?");
}

/** A cursor over a SCRAM message, reading `x=value` attributes as read_attr_value does. */
class AttrReader {
  pos = 0;
  constructor(readonly text: string) {}

  get done(): boolean {
    return this.pos >= this.text.length;
  }

  #value(): string {
    const end = this.text.indexOf(",", this.pos);
    const v = end < 0 ? this.text.slice(this.pos) : this.text.slice(this.pos, end);
    this.pos = end < 0 ? this.text.length : end + 1;
    return v;
  }

  attr(name: string): string {
    const c = this.text[this.pos];
    if (c !== name) {
      throw malformed(`Expected attribute "${name}" but found "${sanitizeChar(c)}".`);
    }
    if (this.text[this.pos + 1] !== "=") {
      throw malformed(`Expected character "=" for attribute "${name}".`);
    }
    this.pos += 2;
    return this.#value();
  }

  any(): { name: string; value: string } {
    const c = this.text[this.pos] ?? "";
    if (!/^[A-Za-z]$/.test(c)) {
      throw malformed(`Attribute expected, but found invalid character "${sanitizeChar(c)}".`);
    }
    if (this.text[this.pos + 1] !== "=") {
      throw malformed(`Expected character "=" for attribute "${c}".`);
    }
    this.pos += 2;
    return { name: c, value: this.#value() };
  }
}

function checkMessage(data: Uint8Array): string {
  if (data.length === 0) throw malformed("The message is empty.");
  if (data.indexOf(0) >= 0) throw malformed("Message length does not match input length.");
  return decoder.decode(data);
}

/** Outcome of the final round: verified (with the server-final message) or not. */
/**
 * `clientKey` is the key the client proved it has (its proof XOR the client
 * signature): with the secret's salt, iterations and ServerKey it lets a
 * pooler log in elsewhere as the same role under the same secret (SCRAM
 * pass-through, as pgbouncer does); it never leaves the server process
 * that holds the client's session.
 */
export type ScramResult =
  | { ok: true; serverFinal: Uint8Array; clientKey: Uint8Array }
  | { ok: false };

let mockNonce: Uint8Array | undefined;

/**
 * One SCRAM-SHA-256 exchange, PostgreSQL's scram_state. `secret` null means
 * a mock exchange: it runs to the end and fails, like a wrong password.
 */
export class ScramExchange {
  #secret: ScramSecret | null;
  #user: string;
  #serverNonce: string;
  /** tls-server-end-point data when the connection is SSL (channel binding is possible). */
  #cbindData: Uint8Array | null;
  /** Whether the client chose SCRAM-SHA-256-PLUS (state->channel_binding_in_use). */
  #plus: boolean;
  #cbindFlag = "";
  #clientNonce = "";
  #clientFirstBare = "";
  #serverFirst = "";
  #state: "init" | "continue" | "finished" = "init";

  constructor(
    secret: ScramSecret | null,
    options: {
      user: string;
      serverNonce?: string;
      /** The server's tls-server-end-point data, when the connection is SSL. */
      channelBinding?: Uint8Array | null;
      /** The client selected SCRAM-SHA-256-PLUS (only with `channelBinding`). */
      plus?: boolean;
    },
  ) {
    this.#secret = secret;
    this.#user = options.user;
    this.#cbindData = options.channelBinding ?? null;
    this.#plus = options.plus === true;
    if (this.#plus && this.#cbindData === null) {
      throw new TypeError("SCRAM-SHA-256-PLUS needs channel-binding data");
    }
    this.#serverNonce = options.serverNonce ??
      base64Encode(crypto.getRandomValues(new Uint8Array(SCRAM_RAW_NONCE_LEN)));
  }

  /** Handles client-first-message; returns server-first-message. */
  async clientFirst(data: Uint8Array): Promise<Uint8Array> {
    if (this.#state !== "init") throw this.#badState();
    let text = checkMessage(data);
    const flag = text[0];
    const plusWithoutData = () =>
      malformed(
        "The client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel binding data.",
      );
    if (flag === "n" || flag === "y") {
      if (this.#plus) throw plusWithoutData();
      if (flag === "y" && this.#cbindData !== null) {
        throw new PgError(ERRCODE.PROTOCOL_VIOLATION, "SCRAM channel binding negotiation error", {
          severity: "FATAL",
          detail:
            "The client supports SCRAM channel binding but thinks the server does not.  However, this server does support channel binding.",
        });
      }
      if (text[1] !== ",") {
        throw malformed(`Comma expected, but found character "${sanitizeChar(text[1])}".`);
      }
    } else if (flag === "p") {
      if (!this.#plus) {
        throw malformed(
          "The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data.",
        );
      }
      // p=<type>, then the rest as after "n,".
      const comma = text.indexOf(",");
      if (text[1] !== "=" || comma < 0) {
        throw malformed(`Expected "=" after attribute "p".`);
      }
      const type = text.slice(2, comma);
      if (type !== CBIND_TYPE) {
        throw new PgError(
          ERRCODE.PROTOCOL_VIOLATION,
          `unsupported SCRAM channel-binding type "${sanitizeString(type)}"`,
          { severity: "FATAL" },
        );
      }
      text = "p" + text.slice(comma);
    } else {
      throw malformed(`Unexpected channel-binding flag "${sanitizeChar(flag)}".`);
    }
    this.#cbindFlag = flag;
    if (text[2] === "a") {
      throw new PgError(
        ERRCODE.FEATURE_NOT_SUPPORTED,
        "client uses authorization identity, but it is not supported",
        { severity: "FATAL" },
      );
    }
    if (text[2] !== ",") {
      throw malformed(`Unexpected attribute "${sanitizeChar(text[2])}" in client-first-message.`);
    }
    this.#clientFirstBare = text.slice(3);
    if (this.#clientFirstBare[0] === "m") {
      throw new PgError(
        ERRCODE.FEATURE_NOT_SUPPORTED,
        "client requires an unsupported SCRAM extension",
        { severity: "FATAL" },
      );
    }
    const r = new AttrReader(this.#clientFirstBare);
    r.attr("n"); // ignored: the user name comes from the startup packet
    this.#clientNonce = r.attr("r");
    if (!/^[\x21-\x2b\x2d-\x7e]*$/.test(this.#clientNonce)) {
      throw new PgError(ERRCODE.PROTOCOL_VIOLATION, "non-printable characters in SCRAM nonce", {
        severity: "FATAL",
      });
    }
    while (!r.done) r.any(); // optional extensions are ignored

    if (this.#secret === null) this.#secret = await mockSecret(this.#user);
    this.#serverFirst = `r=${this.#clientNonce}${this.#serverNonce},s=${
      base64Encode(this.#secret.salt)
    },i=${this.#secret.iterations}`;
    this.#state = "continue";
    return encoder.encode(this.#serverFirst);
  }

  /** Handles client-final-message; verifies the proof. */
  async clientFinal(data: Uint8Array): Promise<ScramResult> {
    if (this.#state !== "continue" || this.#secret === null) throw this.#badState();
    this.#state = "finished";
    const text = checkMessage(data);
    const r = new AttrReader(text);
    const cbind = r.attr("c");
    if (this.#plus) {
      // base64 of the gs2 header and the certificate hash (read_client_final_message).
      const header = encoder.encode(`p=${CBIND_TYPE},,`);
      const cbindInput = new Uint8Array(header.length + this.#cbindData!.length);
      cbindInput.set(header);
      cbindInput.set(this.#cbindData!, header.length);
      if (cbind !== base64Encode(cbindInput)) {
        throw new PgError(
          ERRCODE.INVALID_AUTHORIZATION_SPECIFICATION,
          "SCRAM channel binding check failed",
          { severity: "FATAL" },
        );
      }
    } else if (
      !(cbind === "biws" && this.#cbindFlag === "n") &&
      !(cbind === "eSws" && this.#cbindFlag === "y")
    ) {
      throw new PgError(
        ERRCODE.PROTOCOL_VIOLATION,
        "unexpected SCRAM channel-binding attribute in client-final-message",
        { severity: "FATAL" },
      );
    }
    const finalNonce = r.attr("r");
    let proofAt: number;
    let attr: { name: string; value: string };
    do {
      proofAt = r.pos - 1;
      attr = r.any();
    } while (attr.name !== "p");
    const proof = base64Decode(attr.value);
    if (proof === null || proof.length !== SCRAM_KEY_LEN) {
      throw malformed("Malformed proof in client-final-message.");
    }
    if (!r.done || text.endsWith(",")) {
      throw malformed("Garbage found at the end of client-final-message.");
    }
    if (finalNonce !== this.#clientNonce + this.#serverNonce) {
      throw new PgError(ERRCODE.PROTOCOL_VIOLATION, "invalid SCRAM response", {
        severity: "FATAL",
        detail: "Nonce does not match.",
      });
    }
    const authMessage = `${this.#clientFirstBare},${this.#serverFirst},${text.slice(0, proofAt)}`;
    const secret = this.#secret;
    const clientSignature = await hmacSha256(secret.storedKey, authMessage);
    const clientKey = proof.map((b, i) => b ^ (clientSignature[i] as number));
    const ok = timingSafeEqual(await sha256(clientKey), secret.storedKey);
    if (!ok || this.#mock) return { ok: false };
    const serverSignature = await hmacSha256(secret.serverKey, authMessage);
    return {
      ok: true,
      serverFinal: encoder.encode(`v=${base64Encode(serverSignature)}`),
      clientKey,
    };
  }

  get #mock(): boolean {
    return mockSecrets.has(this.#secret as ScramSecret);
  }

  #badState(): PgError {
    return new PgError(ERRCODE.PROTOCOL_VIOLATION, "invalid SCRAM exchange state", {
      severity: "FATAL",
    });
  }
}

const mockSecrets = new WeakSet<ScramSecret>();

/**
 * A secret no password matches, with a salt derived from the user name and a
 * per-process nonce so that repeated probes see a stable salt.
 */
async function mockSecret(user: string): Promise<ScramSecret> {
  mockNonce ??= crypto.getRandomValues(new Uint8Array(32));
  const u = encoder.encode(user);
  const buf = new Uint8Array(u.length + mockNonce.length);
  buf.set(u);
  buf.set(mockNonce, u.length);
  const salt = (await sha256(buf)).subarray(0, SCRAM_DEFAULT_SALT_LEN);
  const s: ScramSecret = {
    iterations: SCRAM_DEFAULT_ITERATIONS,
    salt,
    storedKey: crypto.getRandomValues(new Uint8Array(SCRAM_KEY_LEN)),
    serverKey: crypto.getRandomValues(new Uint8Array(SCRAM_KEY_LEN)),
  };
  mockSecrets.add(s);
  return s;
}
