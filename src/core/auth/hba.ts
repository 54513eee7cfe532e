/**
 * pg_hba.conf: parsing (PostgreSQL's tokenize_auth_file + parse_hba_line)
 * and matching (check_hba), with PostgreSQL's messages. A bad line raises
 * F0000 config_file_error whose context names the file and line, as
 * PostgreSQL's `line %d of configuration file "%s"`.
 *
 * pgts supports connection types local, host, hostssl, hostnossl,
 * hostgssenc, hostnogssenc (no GSS encryption, so hostgssenc lines never
 * match); methods trust, reject, password, md5, scram-sha-256 and cert, and
 * the clientcert option. Host names, samehost/samenet, regular expressions,
 * @file inclusion, include directives and other options after the method
 * are refused with a clear error rather than silently misread. This module reads no files: the caller
 * passes the text and the name to report.
 */

import { ERRCODE, PgError } from "../elog.ts";
import { cidrMask, inNetwork, type IpAddress, parseIp, unmapIPv4 } from "./inet.ts";

export type HbaConnType =
  | "local"
  | "host"
  | "hostssl"
  | "hostnossl"
  | "hostgssenc"
  | "hostnogssenc";

export type HbaMethod = "trust" | "reject" | "password" | "md5" | "scram-sha-256" | "cert";

/** The clientcert option: what a hostssl line asks of the client's certificate. */
export type HbaClientCert = "off" | "verify-ca" | "verify-full";

/** A token of a field; quoted tokens are never keywords. */
export interface HbaToken {
  value: string;
  quoted: boolean;
}

export type HbaAddress =
  | { kind: "all" }
  | { kind: "net"; address: IpAddress; mask: Uint8Array };

export interface HbaLine {
  fileName: string;
  lineNumber: number;
  /** The line as written, for log messages ("Connection matched ..."). */
  rawLine: string;
  connType: HbaConnType;
  databases: HbaToken[];
  users: HbaToken[];
  /** null for local lines. */
  address: HbaAddress | null;
  method: HbaMethod;
  /** clientcert=; "verify-full" for the cert method; absent: "off". */
  clientcert?: HbaClientCert;
}

const CONN_TYPES = new Set<string>([
  "local",
  "host",
  "hostssl",
  "hostnossl",
  "hostgssenc",
  "hostnogssenc",
]);
const METHODS = new Set<string>(["trust", "reject", "password", "md5", "scram-sha-256", "cert"]);
const UNSUPPORTED_METHODS = new Set<string>([
  "ident",
  "peer",
  "gss",
  "sspi",
  "pam",
  "bsd",
  "ldap",
  "radius",
  "oauth",
]);

function configError(
  where: { fileName: string; lineNumber: number },
  message: string,
  hint?: string,
): PgError {
  return new PgError(ERRCODE.CONFIG_FILE_ERROR, message, {
    severity: "FATAL",
    context: `line ${where.lineNumber} of configuration file "${where.fileName}"`,
    ...(hint === undefined ? {} : { hint }),
  });
}

/** Splits one logical line into fields, each a list of comma-separated tokens. */
function tokenizeLine(
  text: string,
  where: { fileName: string; lineNumber: number },
): HbaToken[][] {
  const fields: HbaToken[][] = [];
  let i = 0;
  const n = text.length;
  const isSpace = (c: string | undefined) => c === " " || c === "\t" || c === "\r";
  while (i < n) {
    while (i < n && isSpace(text[i])) i++;
    if (i >= n || text[i] === "#") break;
    const field: HbaToken[] = [];
    for (;;) {
      let value = "";
      let quoted = false;
      let inQuote = false;
      while (i < n) {
        const c = text[i] as string;
        if (inQuote) {
          if (c === '"') {
            if (text[i + 1] === '"') {
              value += '"';
              i += 2;
              continue;
            }
            inQuote = false;
          } else value += c;
          i++;
          continue;
        }
        if (isSpace(c) || c === "," || c === "#") break;
        if (c === '"') {
          inQuote = quoted = true;
        } else value += c;
        i++;
      }
      if (inQuote) throw configError(where, "unterminated quoted string");
      if (!quoted && value.startsWith("@")) {
        throw configError(where, `file inclusion ("${value}") is not supported by pgts`);
      }
      field.push({ value, quoted });
      if (text[i] === ",") {
        i++;
        continue;
      }
      break;
    }
    fields.push(field);
  }
  return fields;
}

const isKeyword = (t: HbaToken, word: string) => !t.quoted && t.value === word;

function single(
  field: HbaToken[],
  where: { fileName: string; lineNumber: number },
  what: string,
  hint?: string,
): HbaToken {
  if (field.length > 1) throw configError(where, `multiple values specified for ${what}`, hint);
  return field[0] as HbaToken;
}

function parseAddress(
  fields: HbaToken[][],
  at: number,
  where: { fileName: string; lineNumber: number },
): { address: HbaAddress; next: number } {
  const field = fields[at];
  if (field === undefined) throw configError(where, "end-of-line before IP address specification");
  const tok = single(field, where, "host address", "Specify one address range per line.");
  if (isKeyword(tok, "all")) return { address: { kind: "all" }, next: at + 1 };
  if (isKeyword(tok, "samehost") || isKeyword(tok, "samenet")) {
    throw configError(where, `address "${tok.value}" is not supported by pgts`);
  }
  const slash = tok.value.indexOf("/");
  const host = slash >= 0 ? tok.value.slice(0, slash) : tok.value;
  const address = parseIp(host);
  if (address === null) {
    if (host.includes(":") || /^[\d.]+$/.test(host)) {
      throw configError(where, `invalid IP address "${host}": Name or service not known`);
    }
    if (slash >= 0) {
      throw configError(
        where,
        `specifying both host name and CIDR mask is invalid: "${tok.value}"`,
      );
    }
    throw configError(where, `host names ("${host}") are not supported by pgts`);
  }
  if (slash >= 0) {
    const mask = cidrMask(tok.value.slice(slash + 1), address.family);
    if (mask === null) throw configError(where, `invalid CIDR mask in address "${tok.value}"`);
    return { address: { kind: "net", address, mask }, next: at + 1 };
  }
  const maskField = fields[at + 1];
  if (maskField === undefined) {
    throw configError(
      where,
      "end-of-line before netmask specification",
      "Specify an address range in CIDR notation, or provide a separate netmask.",
    );
  }
  const maskTok = single(maskField, where, "netmask");
  const mask = parseIp(maskTok.value);
  if (mask === null) {
    throw configError(where, `invalid IP mask "${maskTok.value}": Name or service not known`);
  }
  if (mask.family !== address.family) throw configError(where, "IP address and mask do not match");
  return { address: { kind: "net", address, mask: mask.bytes }, next: at + 2 };
}

function parseLine(
  fields: HbaToken[][],
  where: { fileName: string; lineNumber: number; rawLine: string },
): HbaLine {
  const typeTok = single(
    fields[0] as HbaToken[],
    where,
    "connection type",
    "Specify exactly one connection type per line.",
  );
  if (/^include(_if_exists|_dir)?$/.test(typeTok.value)) {
    throw configError(where, `"${typeTok.value}" directives are not supported by pgts`);
  }
  if (!CONN_TYPES.has(typeTok.value)) {
    throw configError(where, `invalid connection type "${typeTok.value}"`);
  }
  const connType = typeTok.value as HbaConnType;
  const databases = fields[1];
  if (databases === undefined) {
    throw configError(where, "end-of-line before database specification");
  }
  const users = fields[2];
  if (users === undefined) throw configError(where, "end-of-line before role specification");
  for (const t of [...databases, ...users]) {
    if (!t.quoted && t.value.startsWith("/")) {
      throw configError(where, `regular expressions ("${t.value}") are not supported by pgts`);
    }
  }
  let at = 3;
  let address: HbaAddress | null = null;
  if (connType !== "local") {
    const a = parseAddress(fields, at, where);
    address = a.address;
    at = a.next;
  }
  const methodField = fields[at];
  if (methodField === undefined) {
    throw configError(where, "end-of-line before authentication method");
  }
  const methodTok = single(
    methodField,
    where,
    "authentication type",
    "Specify exactly one authentication type per line.",
  );
  if (UNSUPPORTED_METHODS.has(methodTok.value)) {
    throw configError(
      where,
      `authentication method "${methodTok.value}" is not supported by pgts`,
      "Use trust, reject, password, md5, scram-sha-256 or cert.",
    );
  }
  if (!METHODS.has(methodTok.value)) {
    throw configError(where, `invalid authentication method "${methodTok.value}"`);
  }
  const method = methodTok.value as HbaMethod;
  if (method === "cert" && connType !== "hostssl") {
    throw configError(where, "cert authentication is only supported on hostssl connections");
  }
  let clientcert: HbaClientCert = method === "cert" ? "verify-full" : "off";
  for (const field of fields.slice(at + 1)) {
    for (const t of field) {
      const eq = t.value.indexOf("=");
      if (eq < 0) {
        throw configError(where, `authentication option not in name=value format: ${t.value}`);
      }
      const name = t.value.slice(0, eq);
      const value = t.value.slice(eq + 1);
      if (name !== "clientcert") {
        throw configError(where, `authentication option "${name}" is not supported by pgts`);
      }
      if (connType !== "hostssl") {
        throw configError(where, 'clientcert can only be configured for "hostssl" rows');
      }
      if (value === "verify-full") clientcert = "verify-full";
      else if (value === "verify-ca") {
        if (method === "cert") {
          throw configError(
            where,
            'clientcert only accepts "verify-full" when using "cert" authentication',
          );
        }
        clientcert = "verify-ca";
      } else throw configError(where, `invalid value for clientcert: "${value}"`);
    }
  }
  return {
    fileName: where.fileName,
    lineNumber: where.lineNumber,
    rawLine: where.rawLine,
    connType,
    databases,
    users,
    address,
    method,
    ...(clientcert !== "off" ? { clientcert } : {}),
  };
}

/**
 * Parses the text of a pg_hba.conf. Comments, blank lines and backslash
 * continuations are handled; the first bad line throws F0000 with the file
 * and line in its context.
 */
export function parseHba(text: string, options: { fileName?: string } = {}): HbaLine[] {
  const fileName = options.fileName ?? "pg_hba.conf";
  const lines = text.split("\n");
  const out: HbaLine[] = [];
  for (let i = 0; i < lines.length; i++) {
    const lineNumber = i + 1;
    let raw = lines[i] as string;
    // A trailing backslash continues the line (PostgreSQL 16+).
    while (/\\\r?$/.test(raw) && i + 1 < lines.length) {
      raw = raw.replace(/\\\r?$/, "") + (lines[++i] as string);
    }
    const where = { fileName, lineNumber, rawLine: raw.trim() };
    const fields = tokenizeLine(raw, where);
    if (fields.length === 0) continue;
    out.push(parseLine(fields, where));
  }
  return out;
}

/** What check_hba looks at for one connection. */
export interface HbaConnection {
  /** "local" for a Unix socket, "host" for TCP. */
  type: "local" | "host";
  database: string;
  user: string;
  /** The client's numeric address; required for "host". */
  address?: string;
  /** Whether the connection is SSL-encrypted (hostssl / hostnossl). */
  ssl?: boolean;
  /** `replication` from the startup packet. */
  replication?: boolean | "database";
  /** Role membership for "+group" and samerole; default: no memberships. */
  isMember?: (user: string, role: string) => boolean | Promise<boolean>;
}

/**
 * Whether the line's database list admits the connection, from token `from`
 * on. A promise only when a role membership has to be looked up: most lines
 * are decided at once, with no promise per line and connection.
 */
function matchDatabase(line: HbaLine, c: HbaConnection, from = 0): boolean | Promise<boolean> {
  const physical = c.replication === true;
  const tokens = line.databases;
  for (let i = from; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (physical) {
      if (isKeyword(t, "replication")) return true;
      continue;
    }
    if (isKeyword(t, "all")) return true;
    if (isKeyword(t, "sameuser")) {
      if (c.database === c.user) return true;
    } else if (isKeyword(t, "samerole") || isKeyword(t, "samegroup")) {
      const member = c.isMember?.(c.user, c.database) ?? false;
      if (member === true) return true;
      if (member !== false) return member.then((yes) => yes || matchDatabase(line, c, i + 1));
    } else if (isKeyword(t, "replication")) {
      continue; // never matches a normal connection
    } else if (t.value === c.database) return true;
  }
  return false;
}

/** Whether the line's role list admits the connection, from token `from` on; as matchDatabase. */
function matchRole(line: HbaLine, c: HbaConnection, from = 0): boolean | Promise<boolean> {
  const tokens = line.users;
  for (let i = from; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (!t.quoted && t.value.startsWith("+")) {
      const member = c.isMember?.(c.user, t.value.slice(1)) ?? false;
      if (member === true) return true;
      if (member !== false) return member.then((yes) => yes || matchRole(line, c, i + 1));
    } else if (isKeyword(t, "all") || t.value === c.user) return true;
  }
  return false;
}

function matchAddress(line: HbaLine, client: IpAddress | null): boolean {
  const a = line.address;
  if (a === null || a.kind === "all") return true;
  if (client === null) return false;
  if (inNetwork(client, a.address, a.mask)) return true;
  const v4 = unmapIPv4(client);
  return v4 !== null && inNetwork(v4, a.address, a.mask);
}

/**
 * The first line that applies to the connection (check_hba), or null, in
 * which case the caller raises `noHbaEntryError`. pgts has no GSS
 * encryption, so hostgssenc lines never match.
 */
export async function matchHba(
  lines: readonly HbaLine[],
  conn: HbaConnection,
): Promise<HbaLine | null> {
  let client: IpAddress | null = null;
  if (conn.type === "host") {
    if (conn.address === undefined) throw new TypeError("A host connection needs an address");
    client = parseIp(conn.address);
    if (client === null) throw new TypeError(`Not a numeric IP address: ${conn.address}`);
  }
  for (const line of lines) {
    if (line.connType === "local") {
      if (conn.type !== "local") continue;
    } else {
      if (conn.type === "local") continue;
      if (line.connType === "hostgssenc") continue;
      if (line.connType === "hostssl" && conn.ssl !== true) continue;
      if (line.connType === "hostnossl" && conn.ssl === true) continue;
      if (!matchAddress(line, client)) continue;
    }
    const database = matchDatabase(line, conn);
    if (database === false || (database !== true && !(await database))) continue;
    const role = matchRole(line, conn);
    if (role === false || (role !== true && !(await role))) continue;
    return line;
  }
  return null;
}

/** Who is connecting, as the 28000 messages name it. */
export interface ConnectionIdentity {
  /** Numeric client address, or "[local]" for a Unix socket. */
  host: string;
  user: string;
  database: string;
  replication?: boolean | "database";
  /** Whether the connection is SSL-encrypted: the messages end "SSL encryption" then. */
  ssl?: boolean;
}

/** FATAL 28000 when no line matched (ClientAuthentication's uaImplicitReject). */
export function noHbaEntryError(who: ConnectionIdentity): PgError {
  const encryption = who.ssl === true ? "SSL encryption" : "no encryption";
  const message = who.replication === true
    ? `no pg_hba.conf entry for replication connection from host "${who.host}", user "${who.user}", ${encryption}`
    : `no pg_hba.conf entry for host "${who.host}", user "${who.user}", database "${who.database}", ${encryption}`;
  return new PgError(ERRCODE.INVALID_AUTHORIZATION_SPECIFICATION, message, { severity: "FATAL" });
}

/** FATAL 28000 when the matching line says `reject` (uaReject). */
export function hbaRejectError(who: ConnectionIdentity): PgError {
  const encryption = who.ssl === true ? "SSL encryption" : "no encryption";
  const message = who.replication === true
    ? `pg_hba.conf rejects replication connection for host "${who.host}", user "${who.user}", ${encryption}`
    : `pg_hba.conf rejects connection for host "${who.host}", user "${who.user}", database "${who.database}", ${encryption}`;
  return new PgError(ERRCODE.INVALID_AUTHORIZATION_SPECIFICATION, message, { severity: "FATAL" });
}
