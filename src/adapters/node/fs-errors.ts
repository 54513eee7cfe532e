/**
 * System error texts for node:fs failures, so that messages read like
 * PostgreSQL's "%m" ("No such file or directory"), not like Node's
 * "ENOENT: no such file or directory, open '...'". Shared by the Bun and
 * Deno adapters, which both run node:fs.
 */

const STRERROR: Readonly<Record<string, string>> = {
  ENOENT: "No such file or directory",
  EACCES: "Permission denied",
  EPERM: "Operation not permitted",
  EEXIST: "File exists",
  EISDIR: "Is a directory",
  ENOTDIR: "Not a directory",
  ENOSPC: "No space left on device",
  EROFS: "Read-only file system",
  EMFILE: "Too many open files",
  ENOTEMPTY: "Directory not empty",
  ESRCH: "No such process",
};

/** The node error code ("ENOENT"), or undefined for a non-system error. */
export function errorCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** The C library's description of a failure, as PostgreSQL's %m prints it. */
export function strerror(e: unknown): string {
  const code = errorCode(e);
  if (code !== undefined && code in STRERROR) return STRERROR[code]!;
  return e instanceof Error ? e.message : String(e);
}
