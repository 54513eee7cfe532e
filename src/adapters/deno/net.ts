/**
 * The Deno NetAdapter: node:net listeners (TCP and Unix), because the Deno
 * subprocess launcher hands a connection over with `child.send(msg,
 * socket)`, which takes node sockets only; a `Deno.Conn` can be neither sent
 * to a subprocess nor posted to a Worker. The Worker launcher relays any
 * Connection, so it works with this adapter too.
 */

import { NodeSocketNetAdapter } from "../node/nodenet.ts";

export class DenoNetAdapter extends NodeSocketNetAdapter {
  /** A socket Deno's node:net has read from does not reach a child intact. */
  readonly readsBeforeHandOff = false;
}
