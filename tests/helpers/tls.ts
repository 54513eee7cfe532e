/**
 * Certificates for the TLS tests, made with the openssl program (installed
 * by scripts/ensure-openssl.sh when missing): a CA, a server certificate it
 * signed for localhost and 127.0.0.1, client certificates with a given CN,
 * and an unrelated self-signed CA to fail verification with. Everything
 * lives in one temporary directory, removed by `remove()`.
 */

import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./pgts.ts";

function run(args: string[], cwd: string): void {
  const r = spawnSync("openssl", args, { cwd, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")} failed:\n${r.stderr}`);
}

/** Installs openssl when it is missing (as scripts/ensure-postgres.sh does for psql). */
export function ensureOpenssl(): void {
  const r = spawnSync("bash", [join(ROOT, "scripts/ensure-openssl.sh")], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`scripts/ensure-openssl.sh failed:\n${r.stderr}`);
}

export class TestCertificates {
  readonly dir: string;

  constructor() {
    ensureOpenssl();
    this.dir = mkdtempSync(join(tmpdir(), "pgts-tls-"));
    const d = this.dir;
    run([
      "req",
      "-x509",
      "-new",
      "-nodes",
      "-newkey",
      "rsa:2048",
      "-days",
      "2",
      "-subj",
      "/CN=pgts test CA",
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
    ], d);
    run([
      "req",
      "-x509",
      "-new",
      "-nodes",
      "-newkey",
      "rsa:2048",
      "-days",
      "2",
      "-subj",
      "/CN=someone else's CA",
      "-keyout",
      "other-ca.key",
      "-out",
      "other-ca.crt",
    ], d);
    this.#signed("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1");
  }

  #signed(name: string, cn: string, ext?: string): void {
    const d = this.dir;
    run([
      "req",
      "-new",
      "-nodes",
      "-newkey",
      "rsa:2048",
      "-subj",
      `/CN=${cn}`,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
    ], d);
    run([
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "2",
      ...(ext !== undefined ? ["-extfile", writeExt(d, name, ext)] : []),
      "-out",
      `${name}.crt`,
    ], d);
    chmodSync(join(d, `${name}.key`), 0o600);
  }

  /** A client certificate with `cn` as its CN, signed by the CA; the paths of its files. */
  client(cn: string): { cert: string; key: string } {
    const name = `client-${cn}`;
    this.#signed(name, cn);
    return { cert: this.path(`${name}.crt`), key: this.path(`${name}.key`) };
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  read(name: string): string {
    return readFileSync(this.path(name), "utf8");
  }

  /** Copies the server's certificate and key (0600), and the CA, into a data directory. */
  install(dataDir: string): void {
    copyFileSync(this.path("server.crt"), join(dataDir, "server.crt"));
    copyFileSync(this.path("server.key"), join(dataDir, "server.key"));
    chmodSync(join(dataDir, "server.key"), 0o600);
    copyFileSync(this.path("ca.crt"), join(dataDir, "root.crt"));
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function writeExt(dir: string, name: string, ext: string): string {
  const file = join(dir, `${name}.ext`);
  writeFileSync(file, `${ext}\n`);
  return file;
}
