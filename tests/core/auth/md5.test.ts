import { describe, expect, test } from "bun:test";
import {
  isMd5Secret,
  md5Hex,
  md5PasswordHash,
  md5SaltedResponse,
} from "../../../src/core/auth/mod.ts";

describe("md5", () => {
  test("matches the RFC 1321 test suite", () => {
    const vectors: [string, string][] = [
      ["", "d41d8cd98f00b204e9800998ecf8427e"],
      ["a", "0cc175b9c0f1b6a831c399e269772661"],
      ["abc", "900150983cd24fb0d6963f7d28e17f72"],
      ["message digest", "f96b697d7cb7938d525a2f31aaf161d0"],
      ["abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"],
      [
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "d174ab98d277d9f5a5611c2c9f419d9f",
      ],
      [
        "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
        "57edf4a22be3c955ac49da2e2107b67a",
      ],
    ];
    for (const [input, hex] of vectors) expect(md5Hex(input)).toBe(hex);
  });

  test("handles inputs around the 56-byte padding boundary", () => {
    // Reference digests from coreutils md5sum.
    expect(md5Hex("a".repeat(55))).toBe("ef1772b6dff9a122358552954ad0df65");
    expect(md5Hex("a".repeat(56))).toBe("3b0c8ac703f828b04c6c197006d17218");
    expect(md5Hex("a".repeat(64))).toBe("014842d480b571495a4a0363793f7367");
  });

  test("builds PostgreSQL's stored md5 secret and the salted client answer", () => {
    // SELECT 'md5' || md5('secret' || 'alice')
    const stored = md5PasswordHash("secret", "alice");
    expect(stored).toBe("md5" + md5Hex("secretalice"));
    expect(isMd5Secret(stored)).toBe(true);
    expect(isMd5Secret("SCRAM-SHA-256$4096:x$y:z")).toBe(false);
    const salt = new Uint8Array([1, 2, 3, 4]);
    const inner = new TextEncoder().encode(stored.slice(3));
    const expected = "md5" + md5Hex(new Uint8Array([...inner, ...salt]));
    expect(md5SaltedResponse(stored, salt)).toBe(expected);
  });
});
