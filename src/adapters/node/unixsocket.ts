/**
 * Unix-domain socket files: removing a stale `.s.PGSQL.<port>` left by a
 * postmaster that died, and refusing to steal one that a live server still
 * answers on (PostgreSQL decides this with the socket's lock file; a probe
 * connection says the same thing without one).
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
