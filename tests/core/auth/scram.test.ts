import { describe, expect, test } from "bun:test";
import {
  buildScramSecret,
  parseScramSecret,
  ScramExchange,
  scramVerifyPlainPassword,
} from "../../../src/core/auth/mod.ts";
import { base64Decode, saslprep } from "../../../src/core/auth/scram.ts";
import { PgError } from "../../../src/core/elog.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

// RFC 7677 section 3: user "user", password "pencil".
const RFC = {
  salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
  clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
  serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
  serverFirst:
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
  clientFinal:
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
  serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
};

async function rfcSecret() {
  const text = await buildScramSecret("pencil", { salt: base64Decode(RFC.salt)! });
  return parseScramSecret(text)!;
}

async function failure(p: Promise<unknown>) {
  try {
    await p;
  } catch (e) {
    const err = e as PgError;
    return { code: err.code, message: err.message, detail: err.detail };
  }
  throw new Error("expected failure");
}

describe("SCRAM-SHA-256", () => {
  test("the RFC 7677 exchange verifies the client proof and yields the server signature", async () => {
    const ex = new ScramExchange(await rfcSecret(), { user: "user", serverNonce: RFC.serverNonce });
    expect(dec.decode(await ex.clientFirst(enc.encode(RFC.clientFirst)))).toBe(RFC.serverFirst);
    const result = await ex.clientFinal(enc.encode(RFC.clientFinal));
    expect(result.ok).toBe(true);
    if (result.ok) expect(dec.decode(result.serverFinal)).toBe(RFC.serverFinal);
  });

  test("a wrong proof fails without an error message of its own", async () => {
    const ex = new ScramExchange(await rfcSecret(), { user: "user", serverNonce: RFC.serverNonce });
    await ex.clientFirst(enc.encode(RFC.clientFirst));
    const bad = RFC.clientFinal.replace("p=dHz", "p=dHy");
    expect(await ex.clientFinal(enc.encode(bad))).toEqual({ ok: false });
  });

  test("a mock exchange for a role without a secret runs to the end and fails", async () => {
    const ex = new ScramExchange(null, { user: "ghost", serverNonce: RFC.serverNonce });
    const first = dec.decode(await ex.clientFirst(enc.encode(RFC.clientFirst)));
    expect(first).toMatch(/^r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj\)hNlF\$k0,s=.+,i=4096$/);
    expect(await ex.clientFinal(enc.encode(RFC.clientFinal))).toEqual({ ok: false });
  });

  test("the stored secret has PostgreSQL's exact format", async () => {
    const text = await buildScramSecret("pencil", { salt: base64Decode(RFC.salt)! });
    expect(text).toMatch(
      /^SCRAM-SHA-256\$4096:W22ZaJ0SNY7soEsUEjb6gQ==\$[A-Za-z0-9+/=]{44}:[A-Za-z0-9+/=]{44}$/,
    );
    expect(parseScramSecret("SCRAM-SHA-256$4096:abc")).toBeNull();
    expect(parseScramSecret("md5abc")).toBeNull();
  });

  test("a built secret verifies its own password and no other (password method)", async () => {
    const parsed = parseScramSecret(await buildScramSecret("secret"))!;
    expect(parsed.iterations).toBe(4096);
    expect(parsed.salt.length).toBe(16);
    expect(await scramVerifyPlainPassword("secret", parsed)).toBe(true);
    expect(await scramVerifyPlainPassword("Secret", parsed)).toBe(false);
  });

  test("a gs2 header with y,, is accepted and checked in the final message", async () => {
    const ex = new ScramExchange(await rfcSecret(), { user: "user", serverNonce: RFC.serverNonce });
    await ex.clientFirst(enc.encode("y,,n=user,r=rOprNGfwEbeRWgbNEkqO"));
    expect(await failure(ex.clientFinal(enc.encode(RFC.clientFinal)))).toEqual({
      code: "08P01",
      message: "unexpected SCRAM channel-binding attribute in client-final-message",
      detail: undefined,
    });
  });

  test("channel binding data (p=) is refused with PostgreSQL's message", async () => {
    const ex = new ScramExchange(await rfcSecret(), { user: "user" });
    expect(await failure(ex.clientFirst(enc.encode("p=tls-server-end-point,,n=,r=abc"))))
      .toEqual({
        code: "08P01",
        message: "malformed SCRAM message",
        detail:
          "The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data.",
      });
  });

  test("malformed client messages fail with PostgreSQL's details", async () => {
    const first = async (text: string) =>
      await failure(new ScramExchange(null, { user: "u" }).clientFirst(enc.encode(text)));
    expect(await first("")).toMatchObject({ detail: "The message is empty." });
    expect(await first("x,,n=,r=a")).toMatchObject({
      detail: 'Unexpected channel-binding flag "x".',
    });
    expect(await first("n;,n=,r=a")).toMatchObject({
      detail: 'Comma expected, but found character ";".',
    });
    expect(await first("n,a=bob,n=,r=a")).toMatchObject({
      code: "0A000",
      message: "client uses authorization identity, but it is not supported",
    });
    expect(await first("n,,r=abc")).toMatchObject({
      detail: 'Expected attribute "n" but found "r".',
    });
    const ex = new ScramExchange(await rfcSecret(), { user: "user", serverNonce: RFC.serverNonce });
    await ex.clientFirst(enc.encode(RFC.clientFirst));
    expect(await failure(ex.clientFinal(enc.encode(RFC.clientFinal.replace("k0,p=", "k1,p=")))))
      .toEqual({
        code: "08P01",
        message: "invalid SCRAM response",
        detail: "Nonce does not match.",
      });
  });

  test("SASLprep leaves ASCII alone and normalises other text", () => {
    expect(saslprep("pencil")).toBe("pencil");
    expect(saslprep("I\u00adX")).toBe("IX");
    expect(saslprep("\u2168")).toBe("IX");
    expect(saslprep("a\u00a0b")).toBe("a b");
  });
});
