import { describe, expect, test } from "bun:test";
import {
  isCommError,
  MessageWriter,
  parseNegotiateProtocolVersion,
  parseStartupPacket,
  pgProtocol,
  writeCancelRequest,
  writeGSSENCRequest,
  writeNegotiateProtocolVersion,
  writeSSLRequest,
  writeStartupMessage,
} from "../../../src/core/protocol/mod.ts";
import { isPgError } from "../../../src/core/elog.ts";

const body = (build: (w: MessageWriter) => void) => MessageWriter.encode(build).subarray(4);

function thrown(fn: () => unknown) {
  try {
    fn();
  } catch (e) {
    if (!isPgError(e)) throw e;
    return { code: e.code, message: e.message, severity: e.severity, comm: isCommError(e) };
  }
  throw new Error("expected a PgError");
}

describe("startup packets", () => {
  test("a StartupMessage separates user, database, options and GUCs", () => {
    const p = parseStartupPacket(body((w) =>
      writeStartupMessage(w, {
        user: "alice",
        database: "shop",
        options: "-c search_path=x",
        application_name: "psql",
        client_encoding: "UTF8",
      })
    ));
    expect(p).toMatchObject({
      kind: "startup",
      version: pgProtocol(3, 0),
      user: "alice",
      database: "shop",
      options: "-c search_path=x",
      applicationName: "psql",
      replication: false,
      negotiate: null,
    });
    if (p.kind !== "startup") throw new Error();
    expect(p.gucs).toEqual([["application_name", "psql"], ["client_encoding", "UTF8"]]);
  });

  test("the database defaults to the user name", () => {
    const p = parseStartupPacket(body((w) => writeStartupMessage(w, { user: "bob" })));
    expect(p).toMatchObject({ database: "bob" });
  });

  test("replication accepts booleans and database, and refuses anything else", () => {
    const rep = (v: string) =>
      parseStartupPacket(body((w) => writeStartupMessage(w, { user: "u", replication: v })));
    expect(rep("database")).toMatchObject({ replication: "database" });
    expect(rep("on")).toMatchObject({ replication: true });
    expect(rep("0")).toMatchObject({ replication: false });
    expect(thrown(() => rep("maybe"))).toEqual({
      code: "22023",
      message: 'invalid value for parameter "replication": "maybe"',
      severity: "FATAL",
      comm: false,
    });
  });

  test("a missing user name is FATAL 28000", () => {
    expect(thrown(() => parseStartupPacket(body((w) => writeStartupMessage(w, {}))))).toEqual({
      code: "28000",
      message: "no PostgreSQL user name specified in startup packet",
      severity: "FATAL",
      comm: false,
    });
  });

  test("a packet without its terminator is an invalid layout", () => {
    const full = body((w) => writeStartupMessage(w, { user: "u" }));
    expect(thrown(() => parseStartupPacket(full.subarray(0, full.length - 1)))).toMatchObject({
      code: "08P01",
      message: "invalid startup packet layout: expected terminator as last byte",
    });
  });

  test("protocol 2.0 and 4.0 are refused with the supported range", () => {
    for (const [major, minor] of [[2, 0], [4, 1]] as const) {
      expect(thrown(() =>
        parseStartupPacket(
          body((w) => writeStartupMessage(w, { user: "u" }, { version: pgProtocol(major, minor) })),
        )
      )).toEqual({
        code: "0A000",
        message: `unsupported frontend protocol ${major}.${minor}: server supports 3.0 to 3.0`,
        severity: "FATAL",
        comm: false,
      });
    }
  });

  test("a client asking for 3.2 gets NegotiateProtocolVersion and runs at 3.0", () => {
    const p = parseStartupPacket(
      body((w) => writeStartupMessage(w, { user: "u" }, { version: pgProtocol(3, 2) })),
    );
    expect(p).toMatchObject({
      version: pgProtocol(3, 0),
      requestedVersion: pgProtocol(3, 2),
      negotiate: { version: pgProtocol(3, 0), unrecognizedOptions: [] },
    });
  });

  test("unknown _pq_ options are reported, known ones kept", () => {
    const p = parseStartupPacket(
      body((w) =>
        writeStartupMessage(w, { user: "u", "_pq_.compression": "on", "_pq_.known": "1" })
      ),
      { knownProtocolOptions: ["_pq_.known"] },
    );
    expect(p).toMatchObject({
      protocolOptions: { "_pq_.known": "1" },
      negotiate: { version: pgProtocol(3, 0), unrecognizedOptions: ["_pq_.compression"] },
    });
    const npv = MessageWriter.encode((w) =>
      writeNegotiateProtocolVersion(w, pgProtocol(3, 0), ["_pq_.compression"])
    );
    expect(String.fromCharCode(npv[0]!)).toBe("v");
    expect(parseNegotiateProtocolVersion(npv.subarray(5))).toEqual({
      version: pgProtocol(3, 0),
      unrecognizedOptions: ["_pq_.compression"],
    });
  });

  test("SSLRequest and GSSENCRequest are recognised", () => {
    expect(parseStartupPacket(body(writeSSLRequest))).toEqual({ kind: "ssl" });
    expect(parseStartupPacket(body(writeGSSENCRequest))).toEqual({ kind: "gssenc" });
  });

  test("CancelRequest carries a 4-byte key or a protocol 3.2 long key", () => {
    const short = parseStartupPacket(body((w) => writeCancelRequest(w, 4242, 0x01020304)));
    expect(short).toEqual({ kind: "cancel", pid: 4242, key: new Uint8Array([1, 2, 3, 4]) });
    const long = new Uint8Array(32).fill(7);
    expect(parseStartupPacket(body((w) => writeCancelRequest(w, 1, long)))).toEqual({
      kind: "cancel",
      pid: 1,
      key: long,
    });
  });

  test("cancel requests with bad lengths are logged only", () => {
    const noKey = body((w) => writeCancelRequest(w, 1, new Uint8Array(0)));
    expect(thrown(() => parseStartupPacket(noKey))).toEqual({
      code: "08P01",
      message: "invalid length of cancel key in cancel request packet",
      severity: "LOG",
      comm: true,
    });
    const tooLong = body((w) => writeCancelRequest(w, 1, new Uint8Array(257)));
    expect(thrown(() => parseStartupPacket(tooLong)).message).toBe(
      "invalid length of cancel key in cancel request packet",
    );
    expect(thrown(() => parseStartupPacket(noKey.subarray(0, 6))).message).toBe(
      "invalid length of cancel request packet",
    );
  });
});
