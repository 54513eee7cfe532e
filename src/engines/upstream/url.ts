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
  readonly ssl: UpstreamSsl;
}

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
];

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
  const portText = q.get("port") ?? url.port;
  const port = portText === "" ? DEFAULT_PORT : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`Upstream URL port "${portText}" is not a valid port`);
  }
  const host = q.get("host") ??
    (url.hostname === EMPTY_HOST ? "" : decodeURIComponent(url.hostname));
  if (host.startsWith("/")) {
    const path = `${host.replace(/\/$/, "")}/.s.PGSQL.${port}`;
    const ssl: UpstreamSsl = { mode: "disable", rootCert, host: null, sni, channelBinding };
    return { address: { family: "unix", path }, user, password, database, display: path, ssl };
  }
  const h = host === "" ? "localhost" : host.replace(/^\[(.*)\]$/, "$1");
  const dial = q.get("hostaddr") ?? h;
  const ssl: UpstreamSsl = { mode: sslmode as SslMode, rootCert, host: h, sni, channelBinding };
  return {
    address: { family: "tcp", host: dial, port },
    user,
    password,
    database,
    display: `${h}:${port}`,
    ssl,
  };
}

/** The URL with its password replaced, for messages and logs. */
export function redact(value: string): string {
  return value.replace(/(\/\/[^:@/]*:)[^@/]*@/, "$1****@").replace(
    /([?&]password=)[^&]*/,
    "$1****",
  );
}
