/**
 * `pgts init`: initdb for pgts. Creates the data directory (mode 0700),
 * writes postgresql.conf with every parameter's default commented out,
 * pg_hba.conf and pg_ident.conf, and the PGTS_VERSION marker; then hands the
 * directory to the engine to create its cluster, a copy of the cluster image
 * (src/engines/pglite/image.ts) renamed to the superuser and given its
 * password. On failure it removes what it created, as initdb does.
 */

import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { userInfo } from "node:os";
import { join, resolve } from "node:path";
import { CLUSTER_FORMAT, ENGINE_DIR, VERSION_FILE } from "../core/datadir.ts";
import {
  buildClusterImage,
  cachedImagePath,
  findClusterImage,
  imagesEnabled,
  type ImageSource,
  initCluster,
} from "../engines/pglite/mod.ts";
import { AUTO_CONFIG_FILENAME, AUTO_CONFIG_HEADER } from "../core/guc/guc.ts";
import { PARAMETERS } from "../core/guc/tables.ts";
import { checkTimeZone, formatValue, type ParamDef } from "../core/guc/values.ts";
import { strerror } from "../adapters/node/fs-errors.ts";
import { CliExit, type CliIO, dataDirFrom, parseVerbArgs, PROGNAME } from "./args.ts";
import { writeSelfSignedCertificate } from "./init_ssl.ts";

export const AUTH_METHODS = ["trust", "reject", "scram-sha-256", "md5", "password"] as const;
export type AuthMethod = (typeof AUTH_METHODS)[number];

export const INIT_USAGE =
  `${PROGNAME} init -D DATADIR [-U NAME] [-A METHOD] [--pwfile FILE] [--ssl]`;

export const INIT_HELP = `${PROGNAME} init creates a new pgts database cluster.

Usage:
  ${INIT_USAGE}

Options:
  -D, --pgdata=DATADIR   location for this database cluster (default: $PGDATA)
  -U, --username=NAME    database superuser name (default: postgres)
  -A, --auth=METHOD      authentication method for local and host connections in
                         pg_hba.conf: ${AUTH_METHODS.join(", ")} (default: trust)
      --pwfile=FILE      read the password for the new superuser from FILE
      --ssl              write a self-signed certificate (server.crt, server.key;
                         by the openssl program, or by pgts when it is missing)
                         and set ssl = on
  -h, --help             show this help, then exit

Environment:
  PGTS_CACHE_DIR         where the cluster image is kept (default:
                         $XDG_CACHE_HOME/pgts, else ~/.cache/pgts); the first
                         init makes it, later ones copy it
  PGTS_CLUSTER_IMAGE=off run PGlite's initdb (about 10 s) instead of copying
`;

/**
 * Creates the engine's cluster in ENGINE_DIR under the data directory, with
 * the bootstrap superuser (renamed to -U's name) and its password (a SCRAM
 * secret). PGlite keeps its own files (and its own postgresql.conf) there,
 * apart from pgts's. The cluster is a copy of the cluster image; the first
 * init on a machine (per PGlite version) makes that image, which takes as
 * long as PGlite's initdb, and says so.
 */
async function createEngineCluster(
  dataDir: string,
  options: { user: string; password?: string },
  io: CliIO,
): Promise<void> {
  let image: ImageSource | null = findClusterImage();
  const path = cachedImagePath();
  if (image === null && imagesEnabled() && path !== null) {
    io.out(`creating cluster image ${path} (once per PGlite version, about 10 s) ... `);
    try {
      image = await buildClusterImage();
      io.out("ok\n");
    } catch (e) {
      // Not fatal: initdb in place still makes the cluster, only slower.
      io.out("failed\n");
      io.err(
        `${PROGNAME}: warning: could not create cluster image "${path}": ` +
          `${e instanceof Error ? e.message : String(e)}\n`,
      );
    }
  }
  io.out(
    image === null
      ? "running PGlite's initdb ... "
      : `copying cluster image${typeof image === "string" ? ` ${image}` : ""} ... `,
  );
  await initCluster(join(dataDir, ENGINE_DIR), { ...options, image: image ?? false });
  io.out("ok\n");
}

function confValue(def: ParamDef): string {
  const shown = formatValue(def, def.boot);
  if (def.type === "string") return `'${shown.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
  return shown;
}

/**
 * shared_buffers as `pgts init` writes it, as initdb writes the value it
 * selected. PGlite's shared memory is part of its WebAssembly heap, which
 * the engine touches whole when it starts: each MB costs ~4 ms of every
 * start (of each database's engine) and a MB of memory from the first
 * moment. 32MB holds pgbench's scale 1 whole; PostgreSQL's 128MB made the
 * first answer 0.3 s later (1.37 → 1.09 s, scripts/bench/startup.ts).
 * Select-only on data four times this size ran ~20% slower than with
 * 128MB: raise it for a larger working set.
 */
export const INIT_SHARED_BUFFERS = "32MB";

/**
 * postgresql.conf with every settable parameter at its default, commented
 * out, but for TimeZone and log_timezone (the machine's zone, as initdb
 * selects it) and shared_buffers, which init selects.
 */
export function postgresqlConf(options: { timezone: string }): string {
  const lines = [
    "# pgts configuration file",
    "# ----------------------------",
    "#",
    '# One parameter per line: name = value (the "=" is optional). A "#" starts a',
    '# comment. Lines below show each parameter\'s default; remove the "#" to change',
    "# one. Memory units: B, kB, MB, GB, TB; time units: us, ms, s, min, h, d.",
    "# Parameters marked (restart) take effect only when the server restarts;",
    '# others on "pgts reload". include, include_if_exists and include_dir read',
    "# more files, relative to this one.",
    "",
  ];
  for (const def of PARAMETERS) {
    // PostgreSQL's other parameters are accepted too, and listed in its
    // documentation rather than here.
    if (def.context === "internal" || def.generated === true) continue;
    if (def.refuse?.(def.boot)?.whole === true) continue;
    const line = def.name === "log_timezone" || def.name === "TimeZone"
      ? `${def.name} = '${options.timezone}'`
      : def.name === "shared_buffers"
      ? `shared_buffers = ${INIT_SHARED_BUFFERS}`
      : `#${def.name} = ${confValue(def)}`;
    const note = def.context === "postmaster" ? " (restart)" : "";
    lines.push(`${line.length < 40 ? line.padEnd(40) : `${line} `}# ${def.description}${note}`);
  }
  return `${lines.join("\n")}\n`;
}

/**
 * The zone init writes for TimeZone and log_timezone, as initdb's
 * select_default_timezone: the TZ environment variable when it names a
 * zone (`Europe/Berlin`, `:Europe/Berlin`); else the zone /etc/localtime
 * links to, spelled as the link spells it (`Etc/UTC` from
 * `/usr/share/zoneinfo/Etc/UTC`, as initdb's check_system_link_file takes
 * it); else the runtime's idea of the machine's zone.
 */
export function defaultTimezone(
  tzEnv: string | undefined,
  localtimeLink: string | null = readLocaltimeLink(),
): string {
  const named = tzEnv?.replace(/^:/, "");
  if (named !== undefined && isZoneName(named)) {
    try {
      return new Intl.DateTimeFormat("en-US", { timeZone: named }).resolvedOptions().timeZone;
    } catch {
      // Not a zone this runtime knows: the machine's, below.
    }
  }
  const at = localtimeLink?.lastIndexOf("zoneinfo/") ?? -1;
  if (localtimeLink !== null && at >= 0) {
    const linked = localtimeLink.slice(at + "zoneinfo/".length);
    if (isZoneName(linked) && checkTimeZone(linked) === null) return linked;
  }
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

/** Spelled as a zone name: `Europe/Berlin`, `Etc/GMT+5`, `UTC`. */
function isZoneName(s: string): boolean {
  return /^[A-Za-z][A-Za-z0-9_+\-]*(\/[A-Za-z0-9_+\-]+)*$/.test(s);
}

/** Where /etc/localtime links to, or null (not a link, not there, not Linux-like). */
function readLocaltimeLink(): string | null {
  try {
    return readlinkSync("/etc/localtime");
  } catch {
    return null;
  }
}

/** pg_hba.conf allowing local and loopback connections with `method`. */
export function pgHbaConf(method: AuthMethod): string {
  const row = (type: string, address: string) =>
    `${type.padEnd(8)}${"all".padEnd(16)}${"all".padEnd(16)}${address.padEnd(24)}${method}`;
  return [
    "# pgts client authentication: the first matching line decides.",
    "# TYPE  DATABASE        USER            ADDRESS                 METHOD",
    "",
    "# Unix-domain socket connections",
    row("local", ""),
    "# IPv4 loopback",
    row("host", "127.0.0.1/32"),
    "# IPv6 loopback",
    row("host", "::1/128"),
    "",
  ].join("\n");
}

/**
 * The name of the user running init, as initdb prints it. Bun's
 * os.userInfo() says "unknown" on some systems where getpwuid works (a
 * root shell without $USER), so the password file is asked then.
 */
function osUserName(): string {
  const info = userInfo();
  if (info.username !== "unknown") return info.username;
  try {
    for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
      const [name, , uid] = line.split(":");
      if (name !== undefined && uid === String(info.uid)) return name;
    }
  } catch {
    // no password file: keep what os.userInfo() said
  }
  return info.username;
}

function fail(io: CliIO, message: string, hint?: string): never {
  io.err(`${PROGNAME}: error: ${message}\n`);
  if (hint !== undefined) io.err(`${PROGNAME}: hint: ${hint}\n`);
  throw new CliExit(1);
}

export async function runInit(args: string[], io: CliIO): Promise<number> {
  const v = parseVerbArgs("init", args, {
    options: {
      pgdata: { type: "string", short: "D" },
      username: { type: "string", short: "U" },
      auth: { type: "string", short: "A" },
      pwfile: { type: "string" },
      ssl: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    usage: INIT_USAGE,
    io,
  });
  if (v.help) {
    io.out(INIT_HELP);
    return 0;
  }
  if (v.pgdata === undefined && (io.env.PGDATA ?? "") === "") {
    fail(
      io,
      "no data directory specified",
      "You must identify the directory where the data for this database system " +
        "will reside.  Do this with either the invocation option -D or the " +
        "environment variable PGDATA.",
    );
  }
  const dataDir = resolve(dataDirFrom("init", v.pgdata, io));
  const method = (v.auth ?? "trust") as AuthMethod;
  if (!AUTH_METHODS.includes(method)) {
    fail(
      io,
      `invalid authentication method "${v.auth}"`,
      `Use one of: ${AUTH_METHODS.join(", ")}.`,
    );
  }
  let password: string | undefined;
  if (v.pwfile !== undefined) {
    try {
      password = readFileSync(v.pwfile, "utf8").split("\n")[0]!.replace(/\r$/, "");
    } catch (e) {
      fail(io, `could not open file "${v.pwfile}" for reading: ${strerror(e)}`);
    }
    if (password === "") fail(io, `password file "${v.pwfile}" is empty`);
  }
  if (["scram-sha-256", "md5", "password"].includes(method) && password === undefined) {
    fail(io, "must specify a password for the superuser to enable password authentication");
  }
  const osUser = io.env.USER || io.env.LOGNAME || osUserName();
  // Not the OS user, as initdb's default is: PGlite's bootstrap superuser is
  // "postgres", and a second superuser named after the OS user (under Bun
  // without $USER, "unknown") was a role nobody asked for.
  const user = v.username ?? "postgres";
  if (user === "") fail(io, "superuser name must not be empty");
  if (user.startsWith("pg_")) {
    fail(io, `superuser name "${user}" is disallowed; role names cannot begin with "pg_"`);
  }

  io.out(`The files belonging to this database system will be owned by user "${osUser}".\n`);
  io.out("This user must also own the server process.\n\n");

  let made: "directory" | "contents";
  if (existsSync(dataDir)) {
    if (readdirSync(dataDir).length > 0) {
      fail(
        io,
        `directory "${dataDir}" exists but is not empty`,
        `If you want to create a new database system, either remove or empty the ` +
          `directory "${dataDir}" or run ${PROGNAME} init with an argument other than "${dataDir}".`,
      );
    }
    io.out(`fixing permissions on existing directory ${dataDir} ... `);
    chmodSync(dataDir, 0o700);
    made = "contents";
  } else {
    io.out(`creating directory ${dataDir} ... `);
    try {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      chmodSync(dataDir, 0o700);
    } catch (e) {
      io.out("\n");
      fail(io, `could not create directory "${dataDir}": ${strerror(e)}`);
    }
    made = "directory";
  }
  io.out("ok\n");

  try {
    io.out(`selecting default shared_buffers ... ${INIT_SHARED_BUFFERS}\n`);
    const tz = defaultTimezone(io.env["TZ"]);
    io.out(`selecting default time zone ... ${tz}\n`);
    io.out("creating configuration files ... ");
    writeFileSync(`${dataDir}/postgresql.conf`, postgresqlConf({ timezone: tz }), {
      mode: 0o600,
    });
    writeFileSync(`${dataDir}/${AUTO_CONFIG_FILENAME}`, AUTO_CONFIG_HEADER, { mode: 0o600 });
    writeFileSync(`${dataDir}/pg_hba.conf`, pgHbaConf(method), { mode: 0o600 });
    writeFileSync(
      `${dataDir}/pg_ident.conf`,
      "# pgts user name maps\n# MAPNAME       SYSTEM-USERNAME         PG-USERNAME\n",
      { mode: 0o600 },
    );
    writeFileSync(`${dataDir}/${VERSION_FILE}`, `${CLUSTER_FORMAT}\n`, { mode: 0o600 });
    io.out("ok\n");
    if (v.ssl) {
      io.out("creating self-signed certificate ... ");
      const made = await writeSelfSignedCertificate(dataDir);
      io.out(`ok (${made.tool})\n`);
    }
    await createEngineCluster(dataDir, {
      user,
      ...(password === undefined ? {} : { password }),
    }, io);
  } catch (e) {
    io.out("\n");
    io.err(`${PROGNAME}: error: ${e instanceof Error ? e.message : String(e)}\n`);
    if (made === "directory") {
      io.err(`${PROGNAME}: removing data directory "${dataDir}"\n`);
      rmSync(dataDir, { recursive: true, force: true });
    } else {
      io.err(`${PROGNAME}: removing contents of data directory "${dataDir}"\n`);
      for (const name of readdirSync(dataDir)) {
        rmSync(`${dataDir}/${name}`, { recursive: true, force: true });
      }
    }
    return 1;
  }

  if (method === "trust") {
    io.err(`${PROGNAME}: warning: enabling "trust" authentication for local connections\n`);
    io.err(
      `${PROGNAME}: hint: You can change this by editing pg_hba.conf or using the option -A ` +
        `the next time you run ${PROGNAME} init.\n`,
    );
  }
  io.out(`\nSuccess. You can now start the database server using:\n\n`);
  io.out(`    ${PROGNAME} start -D ${dataDir}\n\n`);
  return 0;
}
