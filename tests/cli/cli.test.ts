import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Guc } from "../../src/core/guc/guc.ts";
import { nodeConfigReader } from "../../src/adapters/node/config-reader.ts";
import { defaultTimezone } from "../../src/cli/init.ts";
import { fakeCluster, fakePostmaster, pgts, tempDir } from "./helpers.ts";

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => {
  tmp = tempDir("pgts-cli-");
});
afterEach(() => tmp.cleanup());

describe("help and usage", () => {
  test("--help lists every verb and --version names pgts", async () => {
    const help = await pgts(["--help"]);
    expect(help.code).toBe(0);
    for (const verb of ["init", "start", "stop", "reload", "status"]) {
      expect(help.out).toContain(`pgts ${verb}`);
    }
    const version = await pgts(["--version"]);
    expect(version.out).toMatch(/^pgts \(pgts\) \d+\.\d+\.\d+/);
  });

  test("each verb's --help documents all of its options", async () => {
    const want: Record<string, string[]> = {
      init: ["--pgdata", "--username", "--auth", "--pwfile", "--help"],
      start: ["--pgdata", "--port", "-c NAME=VALUE", "--adapter", "--help"],
      stop: ["--pgdata", "--mode", "--timeout", "--no-wait", "--help"],
      reload: ["--pgdata", "--help"],
      status: ["--pgdata", "--help"],
    };
    for (const [verb, options] of Object.entries(want)) {
      const r = await pgts([verb, "--help"]);
      expect(r.code).toBe(0);
      expect(r.out).toContain(`Usage:\n  pgts ${verb}`);
      for (const o of options) expect(r.out).toContain(o);
    }
  });

  test("an unknown option is an error with the usage, exit 1", async () => {
    const r = await pgts(["stop", "-D", tmp.path, "--bogus"]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      "pgts stop: unrecognized option '--bogus'\n" +
        "Usage: pgts stop -D DATADIR [-m SHUTDOWN-MODE] [-t SECS] [-W]\n" +
        'Try "pgts stop --help" for more information.\n',
    );
    expect((await pgts(["frobnicate"])).err).toContain(
      'pgts: unrecognized operation mode "frobnicate"',
    );
    expect((await pgts(["status", "-D"])).err).toContain("option '--pgdata' requires an argument");
    expect((await pgts(["status", "-D", tmp.path, "extra"])).err).toContain(
      'too many command-line arguments (first is "extra")',
    );
  });

  test("without -D or PGDATA the verbs say so", async () => {
    const r = await pgts(["status"]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      "pgts: no database directory specified and environment variable PGDATA unset",
    );
    fakeCluster(tmp.path);
    expect((await pgts(["status"], { PGDATA: tmp.path })).code).toBe(3);
  });
});

describe("init", () => {
  test("creates a 0700 cluster whose postgresql.conf loads with every default", async () => {
    const dir = join(tmp.path, "data");
    const r = await pgts(["init", "-D", dir, "-U", "alice"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`creating directory ${dir} ... ok`);
    expect(r.out).toContain("selecting default shared_buffers ... 32MB");
    expect(r.out).toContain(`pgts start -D ${dir}`);
    expect(r.err).toContain('enabling "trust" authentication for local connections');
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (
      const f of [
        "postgresql.conf",
        "postgresql.auto.conf",
        "pg_hba.conf",
        "pg_ident.conf",
        "PGTS_VERSION",
      ]
    ) {
      expect(existsSync(join(dir, f))).toBe(true);
    }
    const guc = new Guc({ reader: nodeConfigReader, configFile: join(dir, "postgresql.conf") });
    guc.load();
    expect(guc.get("port")).toBe("5432");
    expect(guc.get("shared_buffers")).toBe("32MB");
    expect(readFileSync(join(dir, "postgresql.conf"), "utf8")).toContain("#port = 5432");
    expect(readFileSync(join(dir, "pg_hba.conf"), "utf8")).toMatch(
      /^host\s+all\s+all\s+::1\/128\s+trust$/m,
    );
  });

  test("selects the machine's time zone for TimeZone and log_timezone, as initdb does", async () => {
    const dir = join(tmp.path, "zoned");
    const r = await pgts(["init", "-D", dir], { TZ: "America/Argentina/Buenos_Aires" });
    expect(r.code).toBe(0);
    expect(r.out).toContain("selecting default time zone ... America/Argentina/Buenos_Aires");
    const guc = new Guc({ reader: nodeConfigReader, configFile: join(dir, "postgresql.conf") });
    guc.load();
    expect(guc.get("TimeZone")).toBe("America/Argentina/Buenos_Aires");
    expect(guc.get("log_timezone")).toBe("America/Argentina/Buenos_Aires");
  });

  test("without TZ, the zone /etc/localtime links to, as the link spells it (initdb's check_system_link_file)", () => {
    expect(defaultTimezone(undefined, "/usr/share/zoneinfo/Etc/UTC")).toBe("Etc/UTC");
    expect(defaultTimezone(undefined, "../usr/share/zoneinfo/Europe/Berlin")).toBe(
      "Europe/Berlin",
    );
    // TZ first; a link that names no zone, or none at all: the runtime's zone.
    expect(defaultTimezone("Asia/Tokyo", "/usr/share/zoneinfo/Etc/UTC")).toBe("Asia/Tokyo");
    const runtimes = Intl.DateTimeFormat().resolvedOptions().timeZone;
    expect(defaultTimezone(undefined, "/usr/share/zoneinfo/Not/A_Zone")).toBe(runtimes);
    expect(defaultTimezone(undefined, "/etc/some-file")).toBe(runtimes);
    expect(defaultTimezone(undefined, null)).toBe(runtimes);
  });

  test("--auth with a password method needs --pwfile and writes the method", async () => {
    const dir = join(tmp.path, "data");
    const bad = await pgts(["init", "-D", dir, "--auth", "scram-sha-256"]);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain(
      "must specify a password for the superuser to enable password authentication",
    );
    expect(existsSync(dir)).toBe(false);
    writeFileSync(join(tmp.path, "pw"), "secret\n");
    const ok = await pgts([
      "init",
      "-D",
      dir,
      "-A",
      "scram-sha-256",
      "--pwfile",
      join(tmp.path, "pw"),
    ]);
    expect(ok.code).toBe(0);
    expect(readFileSync(join(dir, "pg_hba.conf"), "utf8")).toMatch(
      /^local\s+all\s+all\s+scram-sha-256$/m,
    );
    expect((await pgts(["init", "-D", dir, "-A", "ident"])).err).toContain(
      'invalid authentication method "ident"',
    );
  });

  test("refuses a directory that is not empty", async () => {
    writeFileSync(join(tmp.path, "x"), "");
    const r = await pgts(["init", "-D", tmp.path]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`pgts: error: directory "${tmp.path}" exists but is not empty`);
  });
});

describe("status, reload and stop against a running server", () => {
  test("status reports no server with exit 3, and a missing directory with exit 4", async () => {
    fakeCluster(tmp.path);
    expect(await pgts(["status", "-D", tmp.path])).toEqual({
      code: 3,
      out: "pgts: no server running\n",
      err: "",
    });
    const gone = await pgts(["status", "-D", join(tmp.path, "nope")]);
    expect(gone.code).toBe(4);
    expect(gone.err).toBe(`pgts: directory "${join(tmp.path, "nope")}" does not exist\n`);
  });

  test("status names the running server's PID and its options", async () => {
    fakeCluster(tmp.path);
    await using pm = await fakePostmaster(tmp.path);
    const r = await pgts(["status", "-D", tmp.path]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      `pgts: server is running (PID: ${pm.pid})\npgts "start" "-D" "${tmp.path}"\n`,
    );
  });

  test("status treats a lock file of a dead process as no server", async () => {
    fakeCluster(tmp.path);
    const dead = Bun.spawn(["true"]);
    await dead.exited;
    writeFileSync(join(tmp.path, "postmaster.pid"), `${dead.pid}\n`);
    expect((await pgts(["status", "-D", tmp.path])).code).toBe(3);
  });

  test("reload sends SIGHUP and says server signaled", async () => {
    fakeCluster(tmp.path);
    await using _pm = await fakePostmaster(tmp.path);
    const r = await pgts(["reload", "-D", tmp.path]);
    expect(r).toEqual({ code: 0, out: "server signaled\n", err: "" });
    await Bun.sleep(200);
    expect(readFileSync(join(tmp.path, "signals.log"), "utf8")).toBe("SIGHUP\n");
  });

  test("stop sends the mode's signal and waits for the pid file to vanish", async () => {
    fakeCluster(tmp.path);
    await using _pm = await fakePostmaster(tmp.path);
    const r = await pgts(["stop", "-D", tmp.path, "-m", "immediate"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^waiting for server to shut down\.\.\.\.+ done\nserver stopped\n$/);
    expect(readFileSync(join(tmp.path, "signals.log"), "utf8")).toBe("SIGQUIT\n");
    expect(existsSync(join(tmp.path, "postmaster.pid"))).toBe(false);
  });

  test("stop gives up after --timeout with pg_ctl's message and hint", async () => {
    fakeCluster(tmp.path);
    await using _pm = await fakePostmaster(tmp.path, ["--ignore-smart"]);
    const r = await pgts(["stop", "-D", tmp.path, "-m", "smart", "--timeout", "1"]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/ failed\n$/);
    expect(r.err).toContain("pgts: server does not shut down\n");
    expect(r.err).toContain('HINT: The "-m fast" option immediately disconnects sessions');
  });

  test("stop and reload without a server name the missing PID file", async () => {
    fakeCluster(tmp.path);
    for (const verb of ["stop", "reload"]) {
      const r = await pgts([verb, "-D", tmp.path]);
      expect(r.code).toBe(1);
      expect(r.err).toBe(
        `pgts: PID file "${tmp.path}/postmaster.pid" does not exist\nIs server running?\n`,
      );
    }
    expect((await pgts(["stop", "-D", tmp.path, "-m", "slow"])).err).toContain(
      'pgts: unrecognized shutdown mode "slow"',
    );
  });
});
