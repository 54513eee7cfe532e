/**
 * @module
 * PostgreSQL frontend/backend protocol 3.0 for pgts: incremental framing of
 * both directions, startup-packet parsing and version negotiation, decoders
 * and encoders for every message the backend loop needs, and a coalescing
 * output writer. Web-standard APIs only; no sockets.
 *
 * Typical backend use:
 *
 * ```ts
 * const reader = new MessageReader({ allocate: (n) => messageContext.alloc(n) });
 * const out = new MessageWriter();
 * reader.push(chunk);
 * for (let m = reader.read(); m !== null; m = reader.read()) {
 *   if (m.type === FE.Query) {
 *     const sql = parseQuery(m.body);
 *     writeCommandComplete(out, "SELECT 0");
 *     writeReadyForQuery(out, "I");
 *   }
 * }
 * socket.write(out.take());
 * ```
 */

export * from "./constants.ts";
export { CommError, isCommError } from "./errors.ts";
export { concatBytes, MessageBuffer } from "./msgbuf.ts";
export { MessageWriter } from "./writer.ts";
export {
  type Allocator,
  type Message,
  MessageReader,
  type MessageReaderOptions,
} from "./reader.ts";
export * from "./startup.ts";
export * from "./frontend.ts";
export * from "./backend.ts";
export * from "./backend-reader.ts";
export { ConnectionReader, type StartupRead } from "./connreader.ts";
export { answersExpected, endsWithReadyForQuery } from "./pipeline.ts";
