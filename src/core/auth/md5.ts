/**
 * MD5 (RFC 1321) and PostgreSQL's md5 password scheme.
 *
 * crypto.subtle has no MD5, so this is a small synchronous implementation,
 * used only for the legacy `md5` method: the stored secret is
 * "md5" + hex(md5(password + username)), and the client answers a 4-byte salt
 * with "md5" + hex(md5(hex(md5(password + username)) + salt)).
 * Never use MD5 for anything new.
 */

const encoder = new TextEncoder();

// Per-round shift amounts and the sine-derived constants of RFC 1321.
const S = [
  7,
  12,
  17,
  22,
  7,
  12,
  17,
  22,
  7,
  12,
  17,
  22,
  7,
  12,
  17,
  22,
  5,
  9,
  14,
  20,
  5,
  9,
  14,
  20,
  5,
  9,
  14,
  20,
  5,
  9,
  14,
  20,
  4,
  11,
  16,
  23,
  4,
  11,
  16,
  23,
  4,
  11,
  16,
  23,
  4,
  11,
  16,
  23,
  6,
  10,
  15,
  21,
  6,
  10,
  15,
  21,
  6,
  10,
  15,
  21,
  6,
  10,
  15,
  21,
];
const K = new Int32Array(64);
for (let i = 0; i < 64; i++) K[i] = Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) | 0;

/** The 16-byte MD5 digest of `data` (strings are hashed as UTF-8). */
export function md5(data: Uint8Array | string): Uint8Array {
  const input = typeof data === "string" ? encoder.encode(data) : data;
  const bitLen = input.length * 8;
  const padded = new Uint8Array(((input.length + 8) >>> 6) * 64 + 64);
  padded.set(input);
  padded[input.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, bitLen >>> 0, true);
  view.setUint32(padded.length - 4, Math.floor(bitLen / 2 ** 32), true);

  let a0 = 0x67452301, b0 = 0xefcdab89 | 0, c0 = 0x98badcfe | 0, d0 = 0x10325476;
  const M = new Int32Array(16);
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) M[i] = view.getInt32(off + i * 4, true);
    let a = a0, b = b0, c = c0, d = d0;
    for (let i = 0; i < 64; i++) {
      let f: number, g: number;
      if (i < 16) {
        f = (b & c) | (~b & d);
        g = i;
      } else if (i < 32) {
        f = (d & b) | (~d & c);
        g = (5 * i + 1) & 15;
      } else if (i < 48) {
        f = b ^ c ^ d;
        g = (3 * i + 5) & 15;
      } else {
        f = c ^ (b | ~d);
        g = (7 * i) & 15;
      }
      const sum = (a + f + (K[i] as number) + (M[g] as number)) | 0;
      const s = S[i] as number;
      a = d;
      d = c;
      c = b;
      b = (b + ((sum << s) | (sum >>> (32 - s)))) | 0;
    }
    a0 = (a0 + a) | 0;
    b0 = (b0 + b) | 0;
    c0 = (c0 + c) | 0;
    d0 = (d0 + d) | 0;
  }
  const out = new Uint8Array(16);
  const ov = new DataView(out.buffer);
  ov.setInt32(0, a0, true);
  ov.setInt32(4, b0, true);
  ov.setInt32(8, c0, true);
  ov.setInt32(12, d0, true);
  return out;
}

/** Lowercase hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/** Hex MD5 digest. */
export function md5Hex(data: Uint8Array | string): string {
  return toHex(md5(data));
}

/** PostgreSQL's stored md5 secret: "md5" + md5hex(password + user). */
export function md5PasswordHash(password: string, user: string): string {
  return "md5" + md5Hex(password + user);
}

/** True when `secret` has the shape of a stored md5 secret. */
export function isMd5Secret(secret: string): boolean {
  return /^md5[0-9a-f]{32}$/.test(secret);
}

/**
 * What a client sends for AuthenticationMD5Password: "md5" + md5hex(stored
 * hash without its "md5" prefix + salt).
 */
export function md5SaltedResponse(storedHash: string, salt: Uint8Array): string {
  const inner = encoder.encode(storedHash.slice(3));
  const buf = new Uint8Array(inner.length + salt.length);
  buf.set(inner);
  buf.set(salt, inner.length);
  return "md5" + md5Hex(buf);
}
