/**
 * The upstream's address and pgts's own credentials, from the `engine`
 * setting: `postgres://user:password@host:port/database?...`, the libpq URI
 * form. A host that starts with "/" (or `?host=/dir`) names a Unix-socket
 * directory, as in libpq. Only what pgts can honour is accepted: TLS is not
 * spoken to the upstream, so `sslmode` may be absent, "disable", "allow" or
 * "prefer" (the last two fall back to plain, as libpq would without TLS).
 */

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
}

const DEFAULT_PORT = 5432;
const EMPTY_HOST = "pgts-empty-host.invalid";
const PLAIN_SSLMODES = new Set(["disable", "allow", "prefer"]);

/** True when `value` is an upstream URL rather than an engine name. */
export function isUpstreamUrl(value: string): boolean {
  return /^postgres(ql)?:\/\//.test(value);
}

/** Parses the URL; a RangeError says what is wrong with it. */
export function parseUpstreamUrl(value: string): UpstreamTarget {
  if (!isUpstreamUrl(value)) {
    throw new RangeError(`Upstream URL must start with "postgres://": "${redact(value)}"`);
  }
  let url: URL;
  try {
    // URL only parses the authority of special schemes; "http:" is one.
    // libpq allows an empty host (the default socket, or ?host=); http not.
    const http = value.replace(/^postgres(ql)?:\/\//, "http://").replace(
      /^http:\/\/([^/?#]*@)?(?=[/?#]|$)/,
      `http://$1${EMPTY_HOST}`,
    );
    url = new URL(http);
  } catch {
    throw new RangeError(`Upstream URL is not a valid URI: "${redact(value)}"`);
  }
  const q = url.searchParams;
  for (const key of q.keys()) {
    if (!["host", "port", "user", "password", "dbname", "sslmode"].includes(key)) {
      throw new RangeError(`Upstream URL parameter "${key}" is not supported`);
    }
  }
  const sslmode = q.get("sslmode");
  if (sslmode !== null && !PLAIN_SSLMODES.has(sslmode)) {
    throw new RangeError(
      `Upstream URL sslmode "${sslmode}" is not supported: pgts speaks to the upstream without TLS`,
    );
  }
  const user = q.get("user") ?? decodeURIComponent(url.username);
  if (user === "") throw new RangeError("Upstream URL must name a user");
  const rawPassword = q.get("password") ?? (url.password === "" ? null : url.password);
  const password = rawPassword === null ? null : decodeURIComponent(rawPassword);
  const path = decodeURIComponent(url.pathname.replace(/^\//, ""));
  const database = q.get("dbname") ?? (path === "" ? user : path);
  const portText = q.get("port") ?? url.port;
  const port = portText === "" ? DEFAULT_PORT : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`Upstream URL port "${portText}" is not a valid port`);
  }
  const host = q.get("host") ??
    (url.hostname === EMPTY_HOST ? "" : decodeURIComponent(url.hostname));
  if (host.startsWith("/")) {
    const path = `${host.replace(/\/$/, "")}/.s.PGSQL.${port}`;
    return { address: { family: "unix", path }, user, password, database, display: path };
  }
  const h = host === "" ? "localhost" : host.replace(/^\[(.*)\]$/, "$1");
  return {
    address: { family: "tcp", host: h, port },
    user,
    password,
    database,
    display: `${h}:${port}`,
  };
}

/** The URL with its password replaced, for messages and logs. */
export function redact(value: string): string {
  return value.replace(/(\/\/[^:@/]*:)[^@/]*@/, "$1****@").replace(
    /([?&]password=)[^&]*/,
    "$1****",
  );
}
