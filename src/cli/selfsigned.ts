/**
 * A self-signed X.509 certificate made with crypto.subtle alone, for
 * `pgts init --ssl` where the openssl program is not installed (the single
 * binary on a bare machine). An ECDSA P-256 key, signed with SHA-256; the
 * certificate is a version 3 certificate for `commonName`, with
 * subjectAltName localhost, 127.0.0.1 and ::1, basicConstraints CA:TRUE (so
 * that a client can take it as its own root: sslrootcert=server.crt), and
 * the key identifiers openssl would add. The DER is written here, field by
 * field, as RFC 5280 lays it out.
 */

const encoder = new TextEncoder();

/** A DER element: tag, definite length, content. */
function der(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const length = parts.reduce((n, p) => n + p.length, 0);
  const head: number[] = [tag];
  if (length < 0x80) head.push(length);
  else {
    const bytes: number[] = [];
    for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256);
    head.push(0x80 | bytes.length, ...bytes);
  }
  const out = new Uint8Array(head.length + length);
  out.set(head);
  let at = head.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const sequence = (...parts: Uint8Array[]) => der(0x30, ...parts);

/** An OID from its dotted form. */
function oid(dotted: string): Uint8Array {
  const [a, b, ...rest] = dotted.split(".").map(Number);
  const bytes: number[] = [a! * 40 + b!];
  for (const n of rest) {
    const chunk: number[] = [n & 0x7f];
    for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) {
      chunk.unshift(0x80 | (v & 0x7f));
    }
    bytes.push(...chunk);
  }
  return der(0x06, Uint8Array.from(bytes));
}

/** A non-negative INTEGER from big-endian magnitude bytes. */
function integer(magnitude: Uint8Array): Uint8Array {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const m = magnitude.subarray(i);
  return (m[0]! & 0x80) !== 0 ? der(0x02, Uint8Array.of(0), m) : der(0x02, m);
}

/** UTCTime before 2050, GeneralizedTime from then on (RFC 5280, 4.1.2.5). */
function time(d: Date): Uint8Array {
  const iso = d.toISOString().replace(/[-:T]/g, "").slice(0, 14); // YYYYMMDDHHMMSS
  return d.getUTCFullYear() < 2050
    ? der(0x17, encoder.encode(`${iso.slice(2)}Z`))
    : der(0x18, encoder.encode(`${iso}Z`));
}

function name(commonName: string): Uint8Array {
  return sequence(der(0x31, sequence(oid("2.5.4.3"), der(0x0c, encoder.encode(commonName)))));
}

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return sequence(
    oid(id),
    ...(critical ? [der(0x01, Uint8Array.of(0xff))] : []),
    der(0x04, value),
  );
}

/** ECDSA's raw r||s signature (what crypto.subtle gives) as the DER SEQUENCE X.509 carries. */
function ecdsaSignature(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  return sequence(integer(raw.subarray(0, half)), integer(raw.subarray(half)));
}

function pem(label: string, bytes: Uint8Array): string {
  const b64 = btoa(String.fromCharCode(...bytes));
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

export interface SelfSignedPem {
  /** The certificate, PEM. */
  readonly cert: string;
  /** Its private key, PKCS#8 PEM. */
  readonly key: string;
}

/** Makes the key pair and the certificate; valid from now for `days` (default ten years). */
export async function makeSelfSignedCertificate(
  options: { commonName?: string; days?: number } = {},
): Promise<SelfSignedPem> {
  const commonName = options.commonName ?? "localhost";
  const days = options.days ?? 3650;
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  // The key identifier: SHA-1 of the public key's bits (RFC 5280, 4.2.1.2,
  // method 1); for P-256 the BIT STRING is the last 65 bytes of the SPKI.
  const keyId = new Uint8Array(await crypto.subtle.digest("SHA-1", spki.subarray(-65)));
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] = (serial[0]! & 0x7f) | 0x01; // positive, and not zero
  const ecdsaWithSha256 = sequence(oid("1.2.840.10045.4.3.2"));
  const now = Date.now() - 60_000; // a little slack for clocks behind ours
  const subject = name(commonName);
  const altNames = sequence(
    der(0x82, encoder.encode("localhost")),
    der(0x87, Uint8Array.of(127, 0, 0, 1)),
    der(0x87, Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)),
  );
  const tbs = sequence(
    der(0xa0, der(0x02, Uint8Array.of(2))), // version 3
    integer(serial),
    ecdsaWithSha256,
    subject, // issuer: itself
    sequence(time(new Date(now)), time(new Date(now + days * 86_400_000))),
    subject,
    spki,
    der(
      0xa3,
      sequence(
        extension("2.5.29.14", false, der(0x04, keyId)), // subjectKeyIdentifier
        extension("2.5.29.35", false, sequence(der(0x80, keyId))), // authorityKeyIdentifier
        extension("2.5.29.19", true, sequence(der(0x01, Uint8Array.of(0xff)))), // CA:TRUE
        extension("2.5.29.17", false, altNames), // subjectAltName
      ),
    ),
  );
  const signature = new Uint8Array(
    await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      pair.privateKey,
      tbs as Uint8Array<ArrayBuffer>,
    ),
  );
  const cert = sequence(
    tbs,
    ecdsaWithSha256,
    der(0x03, Uint8Array.of(0), ecdsaSignature(signature)),
  );
  return { cert: pem("CERTIFICATE", cert), key: pem("PRIVATE KEY", pkcs8) };
}
