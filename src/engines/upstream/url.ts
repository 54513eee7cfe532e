/**
 * The upstream's address and pgts's own credentials, from the `engine`
 * setting: `postgres://user:password@host:port/database?...`, the libpq URI
 * form. A host that starts with "/" (or `?host=/dir`) names a Unix-socket
 * directory, as in libpq. `hostaddr` dials that address while `host` stays
 * the name the server's certificate is checked against and sent as SNI.
 *
 * TLS parameters have libpq's meanings: `sslmode` (disable, allow, prefer
 * — the default — require, verify-ca, verify-full), `sslrootcert` (a PEM
 * file; `system` for the runtime's roots, which implies verify-full; with
 * `require`, a root file makes it verify the chain as verify-ca does),
 * `sslsni` (1, the default, sends the host name) and `channel_binding`
 * (disable, prefer, require). Unix sockets never use TLS.
 *
 * Several hosts (`postgres://h1:5432,h2:5433/db`, or `?host=h1,h2&port=..`)
 * are tried in order, as libpq does, until one is reachable and matches
 * `target_session_attrs` (any, read-write, read-only, primary, standby,
 * prefer-standby); `address`, `display` and `ssl` are the first host's.
 */

import { ERRCODE, PgError } from "../../core/elog.ts";

/** Where the upstream listens. */
export type UpstreamAddress =
  | { readonly family: "tcp"; readonly host: string; readonly port: number }
  | { readonly family: "unix"; readonly path: string };

export interface UpstreamTarget {
  readonly address: UpstreamAddress;
  /** The role pgts logs in as upstream. */
  readonly user: string;
  /** Null when the URL has none: only trust works then. */
  readonly password: string | null;
  /** The database of the URL: role lookups go there. */
  readonly database: string;
  /** How the address is shown in messages: `host:port` or the socket path. */
  readonly display: string;
  readonly ssl: UpstreamSsl;
  /** Every host, in the order they are tried (the first is `address`); absent: `address` alone. */
  readonly hosts?: readonly UpstreamHost[];
  /** Absent: any. */
  readonly targetSessionAttrs?: TargetSessionAttrs;
}

/** One host of the URL. */
export interface UpstreamHost {
  readonly address: UpstreamAddress;
  readonly display: string;
  readonly ssl: UpstreamSsl;
}

export type TargetSessionAttrs =
  | "any"
  | "read-write"
  | "read-only"
  | "primary"
  | "standby"
  | "prefer-standby";

const TARGET_SESSION_ATTRS = new Set([
  "any",
  "read-write",
  "read-only",
  "primary",
  "standby",
  "prefer-standby",
]);

export type SslMode = "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full";

export interface UpstreamSsl {
  readonly mode: SslMode;
  /** The sslrootcert path, "system", or null (none given). */
  readonly rootCert: string | null;
  /** The host name to verify and send as SNI (the URL's host, not hostaddr); null for a socket. */
  readonly host: string | null;
  readonly sni: boolean;
  readonly channelBinding: "disable" | "prefer" | "require";
}

/** No TLS: for connections made from a libpq-style target without sslmode (pgts restore). */
export const NO_SSL: UpstreamSsl = {
  mode: "disable",
  rootCert: null,
  host: null,
  sni: true,
  channelBinding: "prefer",
};

const DEFAULT_PORT = 5432;
const EMPTY_HOST = "pgts-empty-host.invalid";
const SSL_MODES = new Set(["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]);
const PARAMETERS = [
  "host",
  "hostaddr",
  "port",
  "user",
  "password",
  "dbname",
  "sslmode",
  "sslrootcert",
  "sslsni",
  "channel_binding",
  "target_session_attrs",
];

/** True when `value` is an upstream URL rather than an engine name. */
export function isUpstreamUrl(value: string): boolean {
  return /^postgres(ql)?:\/\//.test(value);
}

/**
 * The `engine` setting as a server reads it at start (`pgts start`,
 * `serve-http`): true for an upstream URL, checked, false for an engine
 * name; a URL that does not parse is FATAL 22023, as a bad setting is.
 */
export function checkEngineSetting(value: string): boolean {
  if (!isUpstreamUrl(value)) return false;
  try {
    parseUpstreamUrl(value);
  } catch (e) {
    throw new PgError(
      ERRCODE.INVALID_PARAMETER_VALUE,
      `invalid value for parameter "engine": ${(e as Error).message}`,
      { severity: "FATAL" },
    );
  }
  return true;
}

/** Parses the URL; a RangeError says what is wrong with it. */
export function parseUpstreamUrl(value: string): UpstreamTarget {
  if (!isUpstreamUrl(value)) {
    throw new RangeError(`Upstream URL must start with "postgres://": "${redact(value)}"`);
  }
  // The host list is taken out of the authority before URL parses the rest:
  // "h1:5432,h2:5433" is no URL host.
  const rest = value.replace(/^postgres(ql)?:\/\//, "");
  const authorityEnd = rest.search(/[/?#]/);
  const authority = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd);
  const at = authority.lastIndexOf("@");
  const userinfo = at < 0 ? "" : authority.slice(0, at + 1);
  const hostList = authority.slice(at + 1);
  let url: URL;
  try {
    // URL only parses the authority of special schemes; "http:" is one.
    url = new URL(
      `http://${userinfo}${EMPTY_HOST}${authorityEnd < 0 ? "" : rest.slice(authorityEnd)}`,
    );
  } catch {
    throw new RangeError(`Upstream URL is not a valid URI: "${redact(value)}"`);
  }
  const q = url.searchParams;
  for (const key of q.keys()) {
    if (!PARAMETERS.includes(key)) {
      throw new RangeError(`Upstream URL parameter "${key}" is not supported`);
    }
  }
  const rootCert = q.get("sslrootcert");
  const sslmode = q.get("sslmode") ?? (rootCert === "system" ? "verify-full" : "prefer");
  if (!SSL_MODES.has(sslmode)) {
    throw new RangeError(`Upstream URL sslmode "${sslmode}" is invalid`);
  }
  if (rootCert === "system" && sslmode !== "verify-full") {
    throw new RangeError(`Upstream URL sslrootcert "system" requires sslmode "verify-full"`);
  }
  const channelBinding = q.get("channel_binding") ?? "prefer";
  if (channelBinding !== "disable" && channelBinding !== "prefer" && channelBinding !== "require") {
    throw new RangeError(`Upstream URL channel_binding "${channelBinding}" is invalid`);
  }
  const sni = (q.get("sslsni") ?? "1") !== "0";
  const user = q.get("user") ?? decodeURIComponent(url.username);
  if (user === "") throw new RangeError("Upstream URL must name a user");
  const rawPassword = q.get("password") ?? (url.password === "" ? null : url.password);
  const password = rawPassword === null ? null : decodeURIComponent(rawPassword);
  const path = decodeURIComponent(url.pathname.replace(/^\//, ""));
  const database = q.get("dbname") ?? (path === "" ? user : path);
  const attrs = q.get("target_session_attrs") ?? "any";
  if (!TARGET_SESSION_ATTRS.has(attrs)) {
    throw new RangeError(`Upstream URL target_session_attrs "${attrs}" is invalid`);
  }
  // host[:port] entries of the authority, or ?host= and ?port= lists.
  const fromAuthority = hostList === "" ? [] : splitHosts(hostList);
  const hostNames = q.has("host")
    ? q.get("host")!.split(",")
    : fromAuthority.length === 0
    ? [""]
    : fromAuthority.map((h) => h.host);
  const portTexts = q.has("port")
    ? q.get("port")!.split(",")
    : fromAuthority.length === 0
    ? [""]
    : fromAuthority.map((h) => h.port);
  const hostaddrs = q.get("hostaddr")?.split(",") ?? [];
  if (portTexts.length !== 1 && portTexts.length !== hostNames.length) {
    throw new RangeError(
      `Upstream URL has ${hostNames.length} hosts and ${portTexts.length} ports`,
    );
  }
  const hosts: UpstreamHost[] = hostNames.map((rawHost, i) => {
    const portText = portTexts.length === 1 ? portTexts[0]! : portTexts[i]!;
    const port = portText === "" ? DEFAULT_PORT : Number(portText);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new RangeError(`Upstream URL port "${portText}" is not a valid port`);
    }
    const host = decodeURIComponent(rawHost);
    if (host.startsWith("/")) {
      const path = `${host.replace(/\/$/, "")}/.s.PGSQL.${port}`;
      const ssl: UpstreamSsl = { mode: "disable", rootCert, host: null, sni, channelBinding };
      return { address: { family: "unix", path }, display: path, ssl };
    }
    const h = host === "" ? "localhost" : host.replace(/^\[(.*)\]$/, "$1");
    const dial = hostaddrs[i] ?? (hostaddrs.length === 1 ? hostaddrs[0]! : h);
    const ssl: UpstreamSsl = { mode: sslmode as SslMode, rootCert, host: h, sni, channelBinding };
    return { address: { family: "tcp", host: dial, port }, display: `${h}:${port}`, ssl };
  });
  const first = hosts[0]!;
  return {
    address: first.address,
    user,
    password,
    database,
    display: first.display,
    ssl: first.ssl,
    hosts,
    targetSessionAttrs: attrs as TargetSessionAttrs,
  };
}

/** "h1:5432,[::1]:5433,h3" as host and port texts (empty when absent). */
function splitHosts(list: string): Array<{ host: string; port: string }> {
  return list.split(",").map((entry) => {
    const m = /^(\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(entry);
    if (m === null) throw new RangeError(`Upstream URL host "${entry}" is invalid`);
    return { host: m[1]!, port: m[2] ?? "" };
  });
}

/** The URL with its password replaced, for messages and logs. */
export function redact(value: string): string {
  return value.replace(/(\/\/[^:@/]*:)[^@/]*@/, "$1****@").replace(
    /([?&]password=)[^&]*/,
    "$1****",
  );
}
