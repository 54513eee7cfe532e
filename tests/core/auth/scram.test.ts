import { describe, expect, test } from "bun:test";
import {
  buildScramSecret,
  parseScramSecret,
  ScramExchange,
  scramVerifyPlainPassword,
} from "../../../src/core/auth/mod.ts";
import {
  base64Decode,
  base64Encode,
  hmacSha256,
  saslprep,
  scramKeys,
  scramSaltedPassword,
} from "../../../src/core/auth/scram.ts";
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

describe("SCRAM-SHA-256-PLUS (tls-server-end-point)", () => {
  const serverHash = new Uint8Array(32).fill(7);
  const clientNonce = "rOprNGfwEbeRWgbNEkqO";

  /** A client's exchange bound to `hash` (what the client computed from the server's certificate). */
  async function bound(hash: Uint8Array) {
    const ex = new ScramExchange(await rfcSecret(), {
      user: "user",
      serverNonce: RFC.serverNonce,
      channelBinding: serverHash,
      plus: true,
    });
    const bare = `n=user,r=${clientNonce}`;
    const serverFirst = dec.decode(
      await ex.clientFirst(enc.encode(`p=tls-server-end-point,,${bare}`)),
    );
    const header = enc.encode("p=tls-server-end-point,,");
    const cbind = new Uint8Array(header.length + hash.length);
    cbind.set(header);
    cbind.set(hash, header.length);
    const withoutProof = `c=${base64Encode(cbind)},r=${clientNonce}${RFC.serverNonce}`;
    const salted = await scramSaltedPassword("pencil", base64Decode(RFC.salt)!, 4096);
    const { clientKey, storedKey } = await scramKeys(salted);
    const signature = await hmacSha256(storedKey, `${bare},${serverFirst},${withoutProof}`);
    const proof = clientKey.map((b, i) => b ^ signature[i]!);
    return ex.clientFinal(enc.encode(`${withoutProof},p=${base64Encode(proof)}`));
  }

  test("an exchange bound to the server certificate's hash verifies", async () => {
    expect((await bound(serverHash)).ok).toBe(true);
  });

  test("a different hash (someone in the middle) fails: SCRAM channel binding check failed, 28000", async () => {
    expect(await failure(bound(new Uint8Array(32).fill(8)))).toEqual({
      code: "28000",
      message: "SCRAM channel binding check failed",
      detail: undefined,
    });
  });

  test("negotiation errors have PostgreSQL's messages", async () => {
    const secret = await rfcSecret();
    const first = async (text: string, plus: boolean) =>
      await failure(
        new ScramExchange(secret, { user: "u", channelBinding: serverHash, plus })
          .clientFirst(enc.encode(text)),
      );
    expect(await first("y,,n=,r=a", false)).toEqual({
      code: "08P01",
      message: "SCRAM channel binding negotiation error",
      detail:
        "The client supports SCRAM channel binding but thinks the server does not.  However, this server does support channel binding.",
    });
    expect(await first("n,,n=,r=a", true)).toMatchObject({
      message: "malformed SCRAM message",
      detail:
        "The client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel binding data.",
    });
    expect(await first("p=tls-unique,,n=,r=a", true)).toMatchObject({
      code: "08P01",
      message: 'unsupported SCRAM channel-binding type "tls-unique"',
    });
    // Over SSL a client may still choose plain SCRAM-SHA-256 with "n".
    const plain = new ScramExchange(secret, {
      user: "user",
      serverNonce: RFC.serverNonce,
      channelBinding: serverHash,
    });
    await plain.clientFirst(enc.encode(RFC.clientFirst));
    expect((await plain.clientFinal(enc.encode(RFC.clientFinal))).ok).toBe(true);
  });
});
