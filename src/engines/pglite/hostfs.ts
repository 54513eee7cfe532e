/**
 * Emscripten's view of a data directory kept true to the host's.
 *
 * NODEFS, the file system PGlite's backend reads and writes a data
 * directory through, keeps a node for every path it has looked up, with the
 * mode bits it saw then. Two ways that view goes stale turn a passing
 * condition into a permanent one, where PostgreSQL on the host would try
 * again and succeed:
 * - Emscripten checks permissions itself against the noted mode before the
 *   host's open(2) is called. A relation file noted while its directory was
 *   read-only is refused for ever after the permissions come back. The host
 *   checks anyway, so Emscripten's check is turned off.
 * - A create the host refuses (EACCES, ENOSPC, EROFS) leaves the new node in
 *   Emscripten's name table: every later O_CREAT|O_EXCL of that file fails
 *   with EEXIST, though no file exists. The node is taken out again.
 */

/** The part of Emscripten's FS this touches. */
export interface HostFs {
  ignorePermissions: boolean;
  nameTable: ({ name: string; parent: { id: number }; name_next: unknown } | undefined)[];
  hashName(parentId: number, name: string): number;
  hashRemoveNode(node: unknown): void;
}

type Mknod = (parent: { id: number }, name: string, mode: number, dev: number) => unknown;

/** Wraps NODEFS's mknod in place (every node of NODEFS shares its node_ops). */
export function forgetFailedCreates(
  nodefs: { node_ops: Record<string, unknown> },
  fs: HostFs,
): void {
  const mknod = nodefs.node_ops["mknod"] as Mknod | undefined;
  if (typeof mknod !== "function") return;
  nodefs.node_ops["mknod"] = function (
    this: unknown,
    parent: { id: number },
    name: string,
    mode: number,
    dev: number,
  ) {
    try {
      return mknod.call(this, parent, name, mode, dev);
    } catch (e) {
      let node = fs.nameTable[fs.hashName(parent.id, name)];
      while (node !== undefined && node !== null) {
        if (node.parent === parent && node.name === name) {
          fs.hashRemoveNode(node);
          break;
        }
        node = node.name_next as typeof node;
      }
      throw e;
    }
  };
}

/** After Emscripten's start-up, which turns its own permission checks on. */
export function leavePermissionsToTheHost(fs: HostFs): void {
  fs.ignorePermissions = true;
}
