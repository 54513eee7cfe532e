import { describe, expect, test } from "bun:test";
import {
  buildScramSecret,
  ClientAuthentication,
  md5PasswordHash,
  md5SaltedResponse,
} from "../../../src/core/auth/mod.ts";
import {
  BackendMessageReader,
  MessageReader,
  MessageWriter,
  parseAuthenticationRequest,
  writePasswordMessage,
  writeSASLInitialResponse,
} from "../../../src/core/protocol/mod.ts";
import type { PgError } from "../../../src/core/elog.ts";

function requests(bytes: Uint8Array) {
  const r = new BackendMessageReader();
  r.push(bytes);
  const out = [];
  for (let m = r.read(); m !== null; m = r.read()) out.push(parseAuthenticationRequest(m.body));
  return out;
}

function pMessage(build: (w: MessageWriter) => void): Uint8Array {
  const r = new MessageReader();
  r.push(MessageWriter.encode(build));
  return r.readAuthResponse()!;
}

async function failure(p: Promise<unknown>) {
  try {
    await p;
  } catch (e) {
    const err = e as PgError;
    return { code: err.code, severity: err.severity, message: err.message };
  }
  throw new Error("expected failure");
}

describe("ClientAuthentication", () => {
  test("trust sends AuthenticationOk at once", async () => {
    const step = await new ClientAuthentication({ method: "trust", user: "u", secret: null })
      .start();
    expect(step.done).toBe(true);
    expect(requests(step.send)).toEqual([{ code: 0 }]);
  });

  test("md5 with an md5 secret sends a salt and accepts the salted answer", async () => {
    const secret = md5PasswordHash("pw", "u");
    const auth = new ClientAuthentication({ method: "md5", user: "u", secret });
    const step = await auth.start();
    const [req] = requests(step.send);
    expect(req?.code).toBe(5);
    const salt = (req as { salt: Uint8Array }).salt;
    const done = await auth.receive(
      pMessage((w) => writePasswordMessage(w, md5SaltedResponse(secret, salt))),
    );
    expect(done.done).toBe(true);
    expect(requests(done.send)).toEqual([{ code: 0 }]);
  });

  test("md5 with a SCRAM secret switches to SCRAM, as PostgreSQL does", async () => {
    const auth = new ClientAuthentication({
      method: "md5",
      user: "u",
      secret: await buildScramSecret("pw"),
    });
    const step = await auth.start();
    expect(step).toMatchObject({ done: false, expect: "sasl" });
    expect(requests(step.send)).toEqual([{ code: 10, mechanisms: ["SCRAM-SHA-256"] }]);
  });

  test("a role without a password fails with 28P01 and keeps the reason for the log", async () => {
    const auth = new ClientAuthentication({ method: "password", user: "u", secret: null });
    await auth.start();
    expect(await failure(auth.receive(pMessage((w) => writePasswordMessage(w, "x"))))).toEqual({
      code: "28P01",
      severity: "FATAL",
      message: 'password authentication failed for user "u"',
    });
    expect(auth.logDetail).toBe('User "u" has no password assigned.');
  });

  test("an empty cleartext password is refused", async () => {
    const auth = new ClientAuthentication({ method: "password", user: "u", secret: "pw" });
    await auth.start();
    expect(await failure(auth.receive(pMessage((w) => writePasswordMessage(w, ""))))).toEqual({
      code: "28P01",
      severity: "FATAL",
      message: "empty password returned by client",
    });
  });

  test("an unknown SASL mechanism is a protocol violation", async () => {
    const auth = new ClientAuthentication({ method: "scram-sha-256", user: "u", secret: null });
    await auth.start();
    const body = pMessage((w) =>
      writeSASLInitialResponse(w, { mechanism: "SCRAM-SHA-256-PLUS", data: null })
    );
    expect(await failure(auth.receive(body))).toEqual({
      code: "08P01",
      severity: "FATAL",
      message: "client selected an invalid SASL authentication mechanism",
    });
  });
});
