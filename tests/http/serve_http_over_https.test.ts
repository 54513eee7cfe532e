/**
 * `pgts serve-http --tls-cert F --tls-key F`: SQL over HTTPS with a
 * certificate a client verifies against its CA, and the refusals a user
 * meets: only one of the two options, or a file that cannot be read.
 */

import { afterAll, beforeAll, expect, test } from "bun:test";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUN, pgtsCommand, ROOT, TEST_RUNTIME } from "../helpers/pgts.ts";
import { TestCertificates } from "../helpers/tls.ts";

let dir: string;
let certs: TestCertificates;
const children: ChildProcess[] = [];

beforeAll(() => {
  certs = new TestCertificates();
  dir = mkdtempSync(join(tmpdir(), "pgts-https-"));
  const init = spawnSync(BUN, ["mod.ts", "init", "-D", join(dir, "data")], {
    cwd: ROOT,
    encoding: "utf8",
  });
  if (init.status !== 0) throw new Error(`pgts init failed: ${init.stderr}`);
}, 120_000);

afterAll(() => {
  for (const c of children) c.kill("SIGKILL");
  certs?.remove();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs serve-http with `args`; the port once it listens, or its exit code and log. */
function serveHttp(
  args: string[],
): Promise<{ port: number } | { code: number | null; log: string }> {
  const [cmd, ...rest] = pgtsCommand(TEST_RUNTIME, [
    "serve-http",
    "-D",
    join(dir, "data"),
    "--port",
    "0",
    ...args,
  ]);
  const child = spawn(cmd!, rest, { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
  children.push(child);
  let log = "";
  return new Promise((resolve) => {
    child.stderr!.on("data", (d) => {
      log += d;
      const m = /serving SQL over HTTP on https:\/\/127\.0\.0\.1:(\d+)\/sql/.exec(log);
      if (m !== null) resolve({ port: Number(m[1]) });
    });
    child.on("exit", (code) => resolve({ code, log }));
  });
}

/** POST /sql over HTTPS, verifying the server against `ca`. */
function postSql(
  port: number,
  query: string,
  ca: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: "127.0.0.1",
      servername: "localhost",
      port,
      path: "/sql",
      method: "POST",
      ca,
      headers: {
        "Content-Type": "application/json",
        "Neon-Connection-String": "postgres://postgres@localhost/postgres",
      },
    }, (res) => {
      let body = "";
      res.on("data", (d) => body += d);
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end(JSON.stringify({ query }));
  });
}

test(
  "serve-http --tls-cert/--tls-key answers SQL over HTTPS to a client that verifies it",
  async () => {
    const served = await serveHttp([
      "--tls-cert",
      certs.path("server.crt"),
      "--tls-key",
      certs.path("server.key"),
    ]);
    if (!("port" in served)) throw new Error(`serve-http did not start:\n${served.log}`);
    const ok = await postSql(served.port, "select 40 + 2 as answer", certs.read("ca.crt"));
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).rows).toEqual([{ answer: 42 }]);
    // A client that trusts another CA refuses the server.
    const wrong = await postSql(served.port, "select 1", certs.read("other-ca.crt")).then(
      () => "accepted",
      (e: Error & { code?: string }) => e.code ?? e.message,
    );
    expect(wrong).not.toBe("accepted");
  },
  60_000,
);

test(
  "one of --tls-cert and --tls-key alone, or an unreadable file, is refused at start",
  async () => {
    const alone = await serveHttp(["--tls-cert", certs.path("server.crt")]);
    expect("code" in alone && alone.code).toBe(1);
    expect("log" in alone ? alone.log : "").toContain(
      "--tls-cert and --tls-key must be given together",
    );
    const missing = await serveHttp([
      "--tls-cert",
      join(dir, "nope.crt"),
      "--tls-key",
      certs.path("server.key"),
    ]);
    expect("code" in missing && missing.code).toBe(1);
    expect("log" in missing ? missing.log : "").toContain(
      `could not load server certificate file "${join(dir, "nope.crt")}"`,
    );
  },
  60_000,
);
