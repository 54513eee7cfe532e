/**
 * Unix-domain socket files: removing a stale `.s.PGSQL.<port>` left by a
 * postmaster that died, and refusing to steal one that a live server still
 * answers on (PostgreSQL decides this with the socket's lock file; a probe
 * connection says the same thing without one); giving a new one the mode
 * and group unix_socket_permissions and unix_socket_group ask for.
 */

import fs from "node:fs";
import net from "node:net";

/** Removes `path` if it is a socket nobody listens on; throws if somebody does. */
export async function removeStaleSocket(path: string): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(path);
  } catch {
    return; // Nothing there.
  }
  if (!stat.isSocket()) {
    throw new Error(`could not bind Unix address "${path}": file exists and is not a socket`);
  }
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect({ path });
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (alive) {
    throw new Error(
      `could not bind Unix address "${path}": address already in use; is another postmaster already running?`,
    );
  }
  unlinkQuietly(path);
}

/** Unlinks a socket file at shutdown; a file already gone is fine. */
export function unlinkQuietly(path: string): void {
  try {
    fs.unlinkSync(path);
  } catch {
    // Already removed (or never created): nothing to clean up.
  }
}

/** A group's id from a number or a name in /etc/group; null when there is no such group. */
function groupId(group: string): number | null {
  if (/^[0-9]+$/.test(group)) return Number(group);
  let text: string;
  try {
    text = fs.readFileSync("/etc/group", "utf8");
  } catch {
    return null;
  }
  for (const line of text.split("\n")) {
    const [name, , gid] = line.split(":");
    if (name === group && gid !== undefined && /^[0-9]+$/.test(gid)) return Number(gid);
  }
  return null;
}

/**
 * Gives a socket file just bound the group and mode asked for, as
 * PostgreSQL's Setup_AF_UNIX does (group first, then the mode); throws with
 * PostgreSQL's words when it cannot, and the socket is then not served.
 */
export function setSocketAccess(
  path: string,
  access: { readonly permissions?: number; readonly group?: string },
): void {
  if (access.group !== undefined && access.group !== "") {
    const gid = groupId(access.group);
    if (gid === null) throw new Error(`group "${access.group}" does not exist`);
    try {
      fs.chownSync(path, -1, gid);
    } catch (e) {
      throw new Error(`could not set group of file "${path}": ${(e as Error).message}`);
    }
  }
  if (access.permissions !== undefined) {
    try {
      fs.chmodSync(path, access.permissions);
    } catch (e) {
      throw new Error(`could not set permissions of file "${path}": ${(e as Error).message}`);
    }
  }
}
