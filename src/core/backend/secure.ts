/**
 * SSL for the client connection (PostgreSQL's be-secure.c): the contract
 * between the backend, which decides when a connection becomes encrypted
 * (an SSLRequest answered 'S', or PostgreSQL 17's direct SSL), and the
 * runtime code that runs the TLS handshake on the connection's socket
 * (src/adapters/node/tls.ts, be-secure-openssl.c's part).
 *
 * The postmaster loads the files (PostgreSQL's SSL_context) at start and on
 * SIGHUP and hands every backend an `SslConfig`: plain strings, so it
 * crosses any adapter's boundary. The TLS session lives where the socket
 * lives: in the backend, whichever process or realm that is. This module
 * owns the channel-binding data (tls-server-end-point, RFC 5929), which it
 * computes with crypto.subtle; it never touches a socket itself.
 */

import type { Connection } from "../adapter.ts";

/** The protocol versions ssl_min_protocol_version and ssl_max_protocol_version name. */
export type TlsVersion = "TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3";

/** What the postmaster loaded from ssl_cert_file, ssl_key_file and ssl_ca_file. */
export interface SslConfig {
  /** The server certificate (chain), PEM. */
  readonly cert: string;
  /** Its private key, PEM. */
  readonly key: string;
  /** Root certificates for client certificates, PEM; null when ssl_ca_file is empty. */
  readonly ca: string | null;
  readonly minProtocol: TlsVersion;
  readonly maxProtocol: TlsVersion | null;
  /**
   * tls-server-end-point channel-binding data (the server certificate's
   * hash), base64; null when the certificate's signature algorithm has no
   * hash SCRAM-SHA-256-PLUS can use.
   */
  readonly serverEndPoint: string | null;
}

/** What the backend learns from a finished handshake. */
export interface SslSession {
  /** The decrypted byte stream; the raw connection is its transport from now on. */
  readonly connection: Connection;
  /** "TLSv1.3" and the like. */
  readonly protocol: string;
  readonly cipher: string;
  /** The cipher's secret key length in bits (256 for AES-256), for log_connections. */
  readonly bits: number;
  /** The ALPN protocol agreed on ("postgresql"), or null when the client offered none. */
  readonly alpn: string | null;
  /**
   * The client certificate, when one was presented. `valid` is true once it
   * verified against ssl_ca_file (an invalid one fails the handshake).
   */
  readonly peer: { readonly cn: string | null; readonly valid: boolean } | null;
  /** tls-server-end-point data, as `SslConfig.serverEndPoint` decoded. */
  readonly serverEndPoint: Uint8Array | null;
}

/** Runs TLS handshakes for one `SslConfig`; one per backend. */
export interface SslServer {
  /** Whether ssl_ca_file is set, so that client certificates can be verified. */
  readonly verifiesClients: boolean;
  /**
   * The server side of a handshake on `raw`. `early` holds bytes already
   * read from it (a direct-SSL ClientHello). Rejects with a CommError saying
   * why the handshake failed ("could not accept SSL connection: ...").
   */
  accept(raw: Connection, early: Uint8Array): Promise<SslSession>;
}

/** The first byte of a TLS handshake record, which no startup packet's length word starts with. */
export const TLS_HANDSHAKE_BYTE = 0x16;

/** The ALPN protocol name PostgreSQL 17 registered, and requires for direct SSL. */
export const PG_ALPN_PROTOCOL = "postgresql";

/** Signature-algorithm OIDs (DER body) and the hash tls-server-end-point takes for each. */
const SIGNATURE_HASHES: ReadonlyArray<readonly [string, "SHA-256" | "SHA-384" | "SHA-512"]> = [
  ["2a864886f70d010104", "SHA-256"], // md5WithRSAEncryption: MD5 is replaced by SHA-256
  ["2a864886f70d010105", "SHA-256"], // sha1WithRSAEncryption: SHA-1 likewise
  ["2a864886f70d01010b", "SHA-256"], // sha256WithRSAEncryption
  ["2a864886f70d01010c", "SHA-384"],
  ["2a864886f70d01010d", "SHA-512"],
  ["2a864886f70d01010e", "SHA-256"], // sha224WithRSAEncryption
  ["2a8648ce3d040301", "SHA-256"], // ecdsa-with-SHA224
  ["2a8648ce3d040302", "SHA-256"], // ecdsa-with-SHA256
  ["2a8648ce3d040303", "SHA-384"],
  ["2a8648ce3d040304", "SHA-512"],
  ["2a8648ce3d0401", "SHA-256"], // ecdsa-with-SHA1
];

/** The first certificate of a PEM text, as DER; null when there is none. */
export function pemCertificate(pem: string): Uint8Array | null {
  const m = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(pem);
  if (m === null) return null;
  const text = atob(m[1]!.replace(/\s+/g, ""));
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

/** Reads a DER tag and length at `at`: where the content starts and ends. */
function derItem(der: Uint8Array, at: number): { start: number; end: number } | null {
  let i = at + 1;
  const first = der[i++];
  if (first === undefined) return null;
  let len = first;
  if (first & 0x80) {
    const n = first & 0x7f;
    if (n === 0 || n > 4) return null;
    len = 0;
    for (let k = 0; k < n; k++) len = len * 256 + (der[i++] ?? 0);
  }
  return i + len > der.length ? null : { start: i, end: i + len };
}

/**
 * tls-server-end-point channel-binding data for a DER certificate: its hash
 * under its signature algorithm's hash, SHA-256 for MD5 and SHA-1 (RFC
 * 5929, section 4.1), as be_tls_get_certificate_hash computes it. Null for
 * an algorithm without such a hash (Ed25519, RSASSA-PSS), where PostgreSQL
 * cannot offer channel binding either.
 */
export async function certificateEndPoint(der: Uint8Array): Promise<Uint8Array | null> {
  // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm SEQUENCE { OID, ... }, ... }
  const cert = derItem(der, 0);
  if (cert === null) return null;
  const tbs = derItem(der, cert.start);
  if (tbs === null) return null;
  const alg = derItem(der, tbs.end);
  if (alg === null || der[alg.start] !== 0x06) return null;
  const oid = derItem(der, alg.start);
  if (oid === null) return null;
  const hex = Array.from(der.subarray(oid.start, oid.end), (b) => b.toString(16).padStart(2, "0"))
    .join("");
  const hash = SIGNATURE_HASHES.find(([o]) => o === hex)?.[1];
  if (hash === undefined) return null;
  return new Uint8Array(await crypto.subtle.digest(hash, der as Uint8Array<ArrayBuffer>));
}
