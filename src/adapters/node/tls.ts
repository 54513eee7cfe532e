/**
 * The TLS half of be-secure-openssl.c, on node:tls (OpenSSL under Bun's and
 * Deno's node compatibility alike): a server-side `TLSSocket` run over the
 * client's `Connection`, whichever adapter's that is (a Bun socket adopted
 * by a subprocess backend, a Bun or node:net socket served in-process, a
 * Deno socket). The raw connection becomes the TLS session's transport and
 * the backend gets a `Connection` of decrypted bytes back, so nothing after
 * the handshake knows the difference.
 *
 * The client half too (fe-secure-openssl.c): `openSslClient` runs a
 * handshake to an upstream PostgreSQL over a raw `Connection` and checks its
 * certificate as libpq's sslmode says.
 *
 * Loaded only when a connection asks for SSL (or when the postmaster checks
 * its SSL files): node:tls costs a backend that never needs it start-up time.
 */

import { Buffer } from "node:buffer";
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { Duplex } from "node:stream";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import {
  checkServerIdentity,
  connect as tlsConnect,
  createSecureContext,
  type PeerCertificate,
  type SecureContext,
  TLSSocket,
} from "node:tls";
import { CommError } from "../../core/protocol/errors.ts";
import type { Connection, RemoteAddress } from "../../core/adapter.ts";
import {
  certificateEndPoint,
  PG_ALPN_PROTOCOL,
  type SslConfig,
  type SslServer,
  type SslSession,
} from "../../core/backend/secure.ts";

/**
 * The secure context of a configuration (PostgreSQL's SSL_CTX). Throws
 * OpenSSL's complaint about a certificate or key that does not load, or a
 * key that does not match the certificate.
 */
export function secureContext(config: SslConfig): SecureContext {
  return createSecureContext({
    cert: config.cert,
    key: config.key,
    ...(config.ca !== null ? { ca: config.ca } : {}),
    minVersion: config.minProtocol,
    ...(config.maxProtocol !== null ? { maxVersion: config.maxProtocol } : {}),
  });
}

/** OpenSSL's reason of a node:tls error ("no start line"), as PostgreSQL's SSLerrmessage gives it. */
export function sslErrorMessage(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  const reason = /^error:[0-9A-Fa-f]+:[^:]*:[^:]*:(.+)$/.exec(message)?.[1]?.trim();
  if (reason === undefined) return message.trim();
  // BoringSSL (Bun) names reasons NO_START_LINE where OpenSSL says "no start line".
  return /^[A-Z0-9_]+$/.test(reason) ? reason.toLowerCase().replaceAll("_", " ") : reason;
}

/** Which part of an SSL configuration failed to load, and OpenSSL's reason. */
export interface SslLoadFailure {
  readonly part: "cert" | "key" | "pair" | "ca";
  readonly reason: string;
}

/**
 * Loads a configuration as be_tls_init does, part by part, so that a
 * failure names its file: the certificate, the key, whether they match, the
 * root certificates. Null when everything loads.
 */
export function checkSslConfig(config: SslConfig): SslLoadFailure | null {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(config.cert);
  } catch (e) {
    return { part: "cert", reason: sslErrorMessage(e) };
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(config.key);
  } catch (e) {
    return { part: "key", reason: sslErrorMessage(e) };
  }
  if (!cert.checkPrivateKey(key)) return { part: "pair", reason: "key values mismatch" };
  if (config.ca !== null) {
    const blocks = config.ca.match(CERT_BLOCK);
    if (blocks === null) return { part: "ca", reason: "no certificate or crl found" };
    for (const block of blocks) {
      try {
        new X509Certificate(block);
      } catch (e) {
        return { part: "ca", reason: sslErrorMessage(e) };
      }
    }
  }
  try {
    secureContext(config);
  } catch (e) {
    return { part: "pair", reason: sslErrorMessage(e) };
  }
  return null;
}

/**
 * The last secure context built, with its configuration: the backends of a
 * realm, and the runs of a pooled backend process (which get the
 * configuration anew each time), share it until a reload changes the files.
 */
let cached: { config: SslConfig; context: SecureContext } | null = null;

function contextOf(config: SslConfig): SecureContext {
  const c = cached?.config;
  if (
    cached === null || c === undefined ||
    !(c === config || (c.cert === config.cert && c.key === config.key && c.ca === config.ca &&
      c.minProtocol === config.minProtocol && c.maxProtocol === config.maxProtocol))
  ) {
    cached = { config, context: secureContext(config) };
  }
  return cached.context;
}

export function openSslServer(config: SslConfig): SslServer {
  return {
    verifiesClients: config.ca !== null,
    accept: (raw, early) => accept(raw, early, config, contextOf(config)),
  };
}

/** The raw connection as the stream node:tls reads ciphertext from and writes it to. */
class Transport extends Duplex {
  #raw: Connection;

  constructor(raw: Connection, early: Uint8Array) {
    super();
    this.#raw = raw;
    if (early.length > 0) this.push(Buffer.from(early));
    raw.onData = (chunk) => {
      if (!this.push(Buffer.from(chunk))) raw.pause();
    };
    raw.onClose = () => {
      this.push(null);
      this.destroy();
    };
    raw.resume();
  }

  override _read(): void {
    this.#raw.resume();
  }

  override _write(chunk: Uint8Array, _encoding: string, done: (e?: Error | null) => void): void {
    if (this.#raw.write(chunk)) done();
    else this.#raw.drained().then(() => done(), done);
  }

  override _final(done: (e?: Error | null) => void): void {
    this.#raw.end();
    done();
  }

  override _destroy(e: Error | null, done: (e?: Error | null) => void): void {
    // Ending, not destroying: what node:tls wrote last (the FATAL before a
    // close, a close_notify) must still reach the client. Deno's TLSSocket
    // destroys its transport as it ends. TlsConnection.destroy() drops the
    // raw connection itself.
    this.#raw.end();
    done(e);
  }
}

/** How long an ended TLS session may take to hand its last records to a client that is not reading. */
const END_TIMEOUT_MS = 10_000;

/** The decrypted side of a TLS session, as a Connection. */
class TlsConnection implements Connection {
  readonly remote: RemoteAddress;
  onClose: (() => void) | null = null;
  #socket: TLSSocket;
  #raw: Connection;
  #onData: ((chunk: Uint8Array) => void) | null = null;
  #paused = true;
  /** Plaintext that arrived while nobody read (before `onData` and `resume()`). */
  #queued: Uint8Array[] = [];
  #closed = false;
  /** Set by end(): resolves once the last records went to the raw connection and it was ended. */
  #ended: Promise<void> | null = null;

  constructor(socket: TLSSocket, raw: Connection) {
    this.#socket = socket;
    this.#raw = raw;
    this.remote = raw.remote;
    socket.on("data", (chunk: Uint8Array) => {
      if (this.#onData === null || this.#paused) {
        this.#queued.push(chunk);
        socket.pause();
      } else this.#onData(chunk);
    });
    socket.on("close", () => {
      if (this.#closed) return;
      this.#closed = true;
      this.onClose?.();
    });
    socket.on("error", () => {
      // "close" follows; that is what a Connection reports.
    });
  }

  get onData(): ((chunk: Uint8Array) => void) | null {
    return this.#onData;
  }

  set onData(fn: ((chunk: Uint8Array) => void) | null) {
    this.#onData = fn;
    this.#deliverQueued();
  }

  resume(): void {
    this.#paused = false;
    this.#deliverQueued();
    if (!this.#paused) this.#socket.resume();
  }

  pause(): void {
    this.#paused = true;
    this.#socket.pause();
  }

  #deliverQueued(): void {
    const fn = this.#onData;
    while (fn !== null && this.#queued.length > 0 && this.#onData === fn && !this.#paused) {
      fn(this.#queued.shift()!);
    }
  }

  write(bytes: Uint8Array): boolean {
    if (this.#closed) return true;
    // A copy: the caller may reuse its memory (MessageContext) before
    // node:tls has encrypted the bytes.
    return this.#socket.write(Buffer.from(bytes));
  }

  drained(): Promise<void> {
    if (this.#ended !== null) return this.#ended.then(() => this.#raw.drained());
    if (this.#closed || !this.#socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#socket.off("drain", done);
        this.#socket.off("close", done);
        resolve();
      };
      this.#socket.on("drain", done);
      this.#socket.on("close", done);
    });
  }

  end(): void {
    if (this.#ended !== null) return;
    this.#ended = new Promise<void>((resolve) => {
      // A client that stopped reading must not keep the socket open for
      // ever once the session is over (in-process, nothing else closes it).
      const stuck = setTimeout(() => this.#raw.destroy(), END_TIMEOUT_MS);
      const done = () => {
        clearTimeout(stuck);
        this.#raw.end(); // after what node:tls wrote last, then a FIN
        resolve();
      };
      if (this.#closed) return done();
      // "finish": every byte was handed to TLS; its records reach the raw
      // connection on the next turns (not at all, under Deno, once the
      // process has exited: hence drained() waits for this).
      this.#socket.once("finish", () => setTimeout(done, 0));
      this.#socket.once("close", done);
      this.#socket.end();
    });
  }

  destroy(): void {
    this.#socket.destroy();
    this.#raw.destroy();
  }
}

/** The key length a cipher suite's name says (OpenSSL's SSL_CIPHER_get_bits for the common suites). */
function cipherBits(name: string): number {
  if (/CHACHA20|AES[_-]?256/i.test(name)) return 256;
  if (/AES[_-]?128/i.test(name)) return 128;
  return 0;
}

const DENO = (globalThis as { Deno?: unknown }).Deno !== undefined;

/**
 * Deno's node:tls asks for the client certificate but does not verify it
 * against the secure context's roots (`authorized` stays false). There the
 * check is made here: the certificate is signed by one of ssl_ca_file's
 * certificates and within its validity period. Bun's OpenSSL verifies the
 * whole chain itself.
 */
function issuedByCa(raw: Uint8Array, caPem: string): boolean {
  let peer: X509Certificate;
  try {
    peer = new X509Certificate(Buffer.from(raw));
  } catch {
    return false;
  }
  const now = Date.now();
  if (now < Date.parse(peer.validFrom) || now > Date.parse(peer.validTo)) return false;
  for (const block of caPem.match(CERT_BLOCK) ?? []) {
    try {
      const ca = new X509Certificate(block);
      if (peer.checkIssued(ca) && peer.verify(ca.publicKey)) return true;
    } catch {
      // not a certificate this runtime reads: try the next
    }
  }
  return false;
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

function accept(
  raw: Connection,
  early: Uint8Array,
  config: SslConfig,
  context: SecureContext,
): Promise<SslSession> {
  const transport = new Transport(raw, early);
  const socket = new TLSSocket(transport, {
    isServer: true,
    secureContext: context,
    // A client certificate is asked for when there is a root store to check
    // it against, as PostgreSQL's SSL_VERIFY_PEER with ssl_ca_file; it is
    // not required here: pg_hba.conf's clientcert and cert decide that.
    requestCert: config.ca !== null,
    rejectUnauthorized: false,
    ALPNProtocols: [PG_ALPN_PROTOCOL],
  });
  return new Promise<SslSession>((resolve, reject) => {
    const fail = (why: string) => {
      socket.destroy();
      reject(new CommError(`could not accept SSL connection: ${why}`));
    };
    const onError = (e: unknown) => fail(sslErrorMessage(e));
    const onClose = () => fail("EOF detected");
    socket.once("error", onError);
    socket.once("close", onClose);
    socket.once("secure", () => {
      socket.off("error", onError);
      socket.off("close", onClose);
      const cert = socket.getPeerCertificate() as
        | { subject?: { CN?: string | string[] }; raw?: Uint8Array }
        | null;
      let peer: SslSession["peer"] = null;
      if (cert !== null && cert.subject !== undefined) {
        const verified = socket.authorized ||
          (DENO && config.ca !== null && cert.raw !== undefined &&
            issuedByCa(cert.raw, config.ca));
        if (!verified) {
          // OpenSSL would have failed the handshake here (SSL_VERIFY_PEER).
          fail("certificate verify failed");
          return;
        }
        const cn = cert.subject.CN;
        peer = { cn: (Array.isArray(cn) ? cn[0] : cn) ?? null, valid: true };
      }
      const alpn = socket.alpnProtocol;
      const cipher = socket.getCipher()?.name ?? "";
      resolve({
        connection: new TlsConnection(socket, raw),
        protocol: socket.getProtocol() ?? "",
        cipher,
        bits: cipherBits(cipher),
        alpn: typeof alpn === "string" ? alpn : null,
        peer,
        serverEndPoint: config.serverEndPoint === null
          ? null
          : Uint8Array.from(atob(config.serverEndPoint), (c) => c.charCodeAt(0)),
      });
    });
  });
}

/** What the client side checks of the server's certificate (libpq's sslmode). */
export interface SslClientOptions {
  /** SNI, or null. */
  readonly servername: string | null;
  /** sslrootcert: a PEM file, "system" (the runtime's roots), or null for ~/.postgresql/root.crt. */
  readonly rootCert: string | null;
  readonly verify: "none" | "ca" | "full";
  /** The host name the certificate must be for (verify "full"). */
  readonly host: string;
}

/**
 * The client side of a handshake on `raw`, after the server's 'S': the
 * decrypted connection and the certificate's tls-server-end-point hash.
 * Rejects with libpq's reasons: a root file that does not exist or does not
 * load, "SSL error: certificate verify failed", a host name mismatch.
 */
export async function openSslClient(
  raw: Connection,
  options: SslClientOptions,
): Promise<{ connection: Connection; endPoint: Uint8Array | null }> {
  let ca: string | undefined;
  if (options.verify !== "none" && options.rootCert !== "system") {
    const file = options.rootCert ?? join(homedir(), ".postgresql", "root.crt");
    try {
      ca = readFileSync(file, "utf8");
    } catch (e) {
      const code = (e as { code?: string }).code;
      throw new Error(
        code === "ENOENT"
          ? `root certificate file "${file}" does not exist`
          : `could not read root certificate file "${file}": ${sslErrorMessage(e)}`,
      );
    }
  }
  const transport = new Transport(raw, new Uint8Array(0));
  const socket = tlsConnect({
    socket: transport as unknown as import("node:net").Socket,
    ...(options.servername !== null ? { servername: options.servername } : {}),
    ...(ca !== undefined ? { ca } : {}),
    ALPNProtocols: [PG_ALPN_PROTOCOL],
    // Checked below, so that the failure reads as libpq's.
    rejectUnauthorized: false,
    checkServerIdentity: () => undefined,
  });
  await new Promise<void>((resolve, reject) => {
    const fail = (why: string) => {
      socket.destroy();
      reject(new Error(why));
    };
    const onError = (e: unknown) => fail(`SSL error: ${sslErrorMessage(e)}`);
    const onClose = () => fail("SSL SYSCALL error: EOF detected");
    socket.once("error", onError);
    socket.once("close", onClose);
    socket.once("secureConnect", () => {
      socket.off("error", onError);
      socket.off("close", onClose);
      resolve();
    });
  });
  const cert = socket.getPeerCertificate(false) as PeerCertificate | null;
  const fail = (why: string): never => {
    socket.destroy();
    throw new Error(why);
  };
  if (options.verify !== "none" && !socket.authorized) {
    // libpq's words, with OpenSSL's reason ("self signed certificate in
    // certificate chain", "unable to verify leaf signature").
    const why = socket.authorizationError;
    const reason = why === undefined || why === null
      ? ""
      : ` (${String(why instanceof Error ? why.message : why).toLowerCase().replaceAll("_", " ")})`;
    fail(`SSL error: certificate verify failed${reason}`);
  }
  if (options.verify === "full") {
    if (cert === null || checkServerIdentity(options.host, cert) !== undefined) {
      const names = cert === null ? [] : certificateNames(cert);
      const first = names[0] ?? "";
      fail(
        names.length === 0
          ? "could not get server's host name from server certificate"
          : `server certificate for "${first}"${
            names.length > 1
              ? ` (and ${names.length - 1} other name${names.length > 2 ? "s" : ""})`
              : ""
          } does not match host name "${options.host}"`,
      );
    }
  }
  const der = cert?.raw;
  return {
    connection: new TlsConnection(socket, raw),
    endPoint: der === undefined ? null : await certificateEndPoint(new Uint8Array(der)),
  };
}

/** The names a certificate is for: its SANs (DNS and IP), else its CN. */
function certificateNames(cert: PeerCertificate): string[] {
  const san = cert.subjectaltname;
  if (typeof san === "string" && san !== "") {
    return san.split(/,\s*/).map((n) => n.replace(/^(DNS|IP Address):/, ""));
  }
  const cn = cert.subject?.CN;
  return cn === undefined ? [] : Array.isArray(cn) ? cn : [cn];
}
