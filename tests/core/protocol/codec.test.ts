import { describe, expect, test } from "bun:test";
import {
  BackendMessageReader,
  BE,
  type BindMessage,
  MessageReader,
  MessageWriter,
  parseAuthenticationRequest,
  parseBackendKeyData,
  parseBind,
  parseClose,
  parseCommandComplete,
  parseCopyFail,
  parseDataRow,
  parseDataRowText,
  parseDescribe,
  parseErrorResponse,
  parseExecute,
  parseNotificationResponse,
  parseParameterStatus,
  parseParse,
  parsePasswordMessage,
  parseQuery,
  parseReadyForQuery,
  parseRowDescription,
  parseSASLInitialResponse,
  pgErrorFromFields,
  writeAuthenticationMD5Password,
  writeAuthenticationOk,
  writeAuthenticationSASL,
  writeBackendKeyData,
  writeBind,
  writeBindComplete,
  writeClose,
  writeCloseComplete,
  writeCommandComplete,
  writeCopyData,
  writeCopyDone,
  writeCopyFail,
  writeDataRow,
  writeDescribe,
  writeEmptyQueryResponse,
  writeErrorResponse,
  writeExecute,
  writeFlush,
  writeFunctionCall,
  writeNoData,
  writeNoticeResponse,
  writeNotificationResponse,
  writeParameterStatus,
  writeParse,
  writeParseComplete,
  writePasswordMessage,
  writeQuery,
  writeReadyForQuery,
  writeRowDescription,
  writeSASLInitialResponse,
} from "../../../src/core/protocol/mod.ts";
import { PgError } from "../../../src/core/elog.ts";

function one(build: (w: MessageWriter) => void) {
  const r = new MessageReader();
  r.push(MessageWriter.encode(build));
  const m = r.read();
  if (m === null) throw new Error("no message");
  return m;
}

function auth(build: (w: MessageWriter) => void): Uint8Array {
  const r = new MessageReader();
  r.push(MessageWriter.encode(build));
  const body = r.readAuthResponse();
  if (body === null) throw new Error("no message");
  return body;
}

function backend(build: (w: MessageWriter) => void) {
  const r = new BackendMessageReader();
  r.push(MessageWriter.encode(build));
  const out = [];
  for (let m = r.read(); m !== null; m = r.read()) out.push(m);
  return out;
}

describe("frontend message round trips", () => {
  test("Query, Parse, Bind, Describe, Execute, Close, CopyFail decode what was encoded", () => {
    expect(parseQuery(one((w) => writeQuery(w, "select 'ü'")).body)).toBe("select 'ü'");
    const parse = { name: "s1", query: "select $1::int", paramTypes: [23, 0] };
    expect(parseParse(one((w) => writeParse(w, parse)).body)).toEqual(parse);
    const bind: BindMessage = {
      portal: "",
      statement: "s1",
      paramFormats: [1],
      params: [new Uint8Array([0, 0, 0, 5]), null],
      resultFormats: [0, 1],
    };
    expect(parseBind(one((w) => writeBind(w, bind)).body)).toEqual(bind);
    expect(parseDescribe(one((w) => writeDescribe(w, { target: "S", name: "s1" })).body))
      .toEqual({ target: "S", name: "s1" });
    expect(parseClose(one((w) => writeClose(w, { target: "P", name: "p" })).body))
      .toEqual({ target: "P", name: "p" });
    expect(parseExecute(one((w) => writeExecute(w, { portal: "p", maxRows: 10 })).body))
      .toEqual({ portal: "p", maxRows: 10 });
    expect(parseCopyFail(one((w) => writeCopyFail(w, "no")).body)).toBe("no");
  });

  test("Flush, CopyData, CopyDone and FunctionCall are framed with their type bytes", () => {
    expect(String.fromCharCode(one(writeFlush).type)).toBe("H");
    expect([...one((w) => writeCopyData(w, new Uint8Array([1, 2]))).body]).toEqual([1, 2]);
    expect(String.fromCharCode(one(writeCopyDone).type)).toBe("c");
    expect(String.fromCharCode(one((w) => writeFunctionCall(w, new Uint8Array(4))).type))
      .toBe("F");
  });

  test("password and SASL messages decode", () => {
    expect(parsePasswordMessage(auth((w) => writePasswordMessage(w, "pw")))).toBe("pw");
    const init = { mechanism: "SCRAM-SHA-256", data: new TextEncoder().encode("n,,n=,r=abc") };
    expect(parseSASLInitialResponse(auth((w) => writeSASLInitialResponse(w, init))))
      .toEqual(init);
    expect(
      parseSASLInitialResponse(
        auth((w) => writeSASLInitialResponse(w, { mechanism: "X", data: null })),
      ),
    ).toEqual({ mechanism: "X", data: null });
  });

  test("malformed bodies fail with pqformat's texts", () => {
    const bad = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return [(e as PgError).code, (e as PgError).message];
      }
      return null;
    };
    expect(bad(() => parseQuery(new Uint8Array([0x61])))).toEqual([
      "08P01",
      "invalid string in message",
    ]);
    expect(bad(() => parseQuery(new Uint8Array([0x61, 0, 0x62])))).toEqual([
      "08P01",
      "invalid message format",
    ]);
    expect(bad(() => parseExecute(new Uint8Array([0, 1])))).toEqual([
      "08P01",
      "insufficient data left in message",
    ]);
    expect(bad(() => parseDescribe(new Uint8Array([])))).toEqual([
      "08P01",
      "no data left in message",
    ]);
    expect(bad(() => parseDescribe(new Uint8Array([0x58, 0])))).toEqual([
      "08P01",
      "invalid DESCRIBE message subtype 88",
    ]);
    expect(bad(() => parseClose(new Uint8Array([0x58, 0])))).toEqual([
      "08P01",
      "invalid CLOSE message subtype 88",
    ]);
    const twoFormatsOneParam = one((w) =>
      writeBind(w, {
        portal: "",
        statement: "",
        paramFormats: [0, 1],
        params: [null],
        resultFormats: [],
      })
    ).body;
    expect(bad(() => parseBind(twoFormatsOneParam))).toEqual([
      "08P01",
      "bind message has 2 parameter formats but 1 parameters",
    ]);
    expect(bad(() => parsePasswordMessage(new Uint8Array([0x61, 0, 0x62, 0])))).toEqual([
      "08P01",
      "invalid password packet size",
    ]);
  });
});

describe("backend messages", () => {
  test("a whole query response is coalesced and parsed back", () => {
    const msgs = backend((w) => {
      writeRowDescription(w, [{ name: "n", typeOid: 23, typeSize: 4 }, { name: "t", typeOid: 25 }]);
      writeDataRow(w, ["1", null]);
      writeDataRow(w, [new Uint8Array([0x32]), "ß"]);
      writeCommandComplete(w, "SELECT 2");
      writeReadyForQuery(w, "T");
    });
    expect(msgs.map((m) => String.fromCharCode(m.type)).join("")).toBe("TDDCZ");
    expect(parseRowDescription(msgs[0]!.body)).toEqual([
      {
        name: "n",
        tableOid: 0,
        columnAttr: 0,
        typeOid: 23,
        typeSize: 4,
        typeModifier: -1,
        format: 0,
      },
      {
        name: "t",
        tableOid: 0,
        columnAttr: 0,
        typeOid: 25,
        typeSize: -1,
        typeModifier: -1,
        format: 0,
      },
    ]);
    expect(parseDataRowText(msgs[1]!.body)).toEqual(["1", null]);
    expect(parseDataRow(msgs[2]!.body)[0]).toEqual(new Uint8Array([0x32]));
    expect(parseDataRowText(msgs[2]!.body)[1]).toBe("ß");
    expect(parseCommandComplete(msgs[3]!.body)).toBe("SELECT 2");
    expect(parseReadyForQuery(msgs[4]!.body)).toBe("T");
  });

  test("an ErrorResponse carries every field of the PgError and turns back into one", () => {
    const err = new PgError("23505", 'duplicate key value violates unique constraint "k"', {
      detail: "Key (id)=(1) already exists.",
      hint: "h",
      position: 8,
      context: "SQL function",
      schema: "public",
      table: "t",
      column: "id",
      dataType: "int4",
      constraint: "k",
    });
    const [m] = backend((w) =>
      writeErrorResponse(w, err, { file: "nbtinsert.c", line: 666, routine: "_bt_check_unique" })
    );
    expect(m!.type).toBe(BE.ErrorResponse);
    const f = parseErrorResponse(m!.body);
    expect(f).toEqual({
      severity: "ERROR",
      severityV: "ERROR",
      code: "23505",
      message: err.message,
      detail: "Key (id)=(1) already exists.",
      hint: "h",
      position: 8,
      context: "SQL function",
      schema: "public",
      table: "t",
      column: "id",
      dataType: "int4",
      constraint: "k",
      file: "nbtinsert.c",
      line: 666,
      routine: "_bt_check_unique",
    });
    const back = pgErrorFromFields(f);
    expect([back.code, back.message, back.severity, back.detail]).toEqual([
      "23505",
      err.message,
      "ERROR",
      "Key (id)=(1) already exists.",
    ]);
    expect(back.fields.constraint).toBe("k");
  });

  test("a NoticeResponse keeps its severity", () => {
    const [m] = backend((w) =>
      writeNoticeResponse(w, new PgError("00000", "hello", { severity: "NOTICE" }))
    );
    expect(String.fromCharCode(m!.type)).toBe("N");
    expect(parseErrorResponse(m!.body)).toMatchObject({ severity: "NOTICE", message: "hello" });
  });

  test("authentication, key data, status and notifications round trip", () => {
    const msgs = backend((w) => {
      writeAuthenticationOk(w);
      writeAuthenticationMD5Password(w, new Uint8Array([1, 2, 3, 4]));
      writeAuthenticationSASL(w, ["SCRAM-SHA-256"]);
      writeBackendKeyData(w, 77, 0x0a0b0c0d);
      writeParameterStatus(w, "server_version", "15.0");
      writeNotificationResponse(w, { pid: 9, channel: "ch", payload: "p" });
      writeEmptyQueryResponse(w);
      writeParseComplete(w);
      writeBindComplete(w);
      writeCloseComplete(w);
      writeNoData(w);
    });
    expect(parseAuthenticationRequest(msgs[0]!.body)).toEqual({ code: 0 });
    expect(parseAuthenticationRequest(msgs[1]!.body)).toEqual({
      code: 5,
      salt: new Uint8Array([1, 2, 3, 4]),
    });
    expect(parseAuthenticationRequest(msgs[2]!.body)).toEqual({
      code: 10,
      mechanisms: ["SCRAM-SHA-256"],
    });
    expect(parseBackendKeyData(msgs[3]!.body)).toEqual({
      pid: 77,
      key: new Uint8Array([10, 11, 12, 13]),
    });
    expect(parseParameterStatus(msgs[4]!.body)).toEqual({ name: "server_version", value: "15.0" });
    expect(parseNotificationResponse(msgs[5]!.body)).toEqual({
      pid: 9,
      channel: "ch",
      payload: "p",
    });
    expect(msgs.slice(6).map((m) => String.fromCharCode(m.type)).join("")).toBe("I123n");
  });

  test("the backend reader frames a stream split at every byte", () => {
    const bytes = MessageWriter.encode((w) => {
      writeCommandComplete(w, "SELECT 1");
      writeReadyForQuery(w, "I");
    });
    const r = new BackendMessageReader();
    const types: string[] = [];
    for (const b of bytes) {
      r.push(new Uint8Array([b]));
      for (let m = r.read(); m !== null; m = r.read()) types.push(String.fromCharCode(m.type));
    }
    expect(types).toEqual(["C", "Z"]);
  });
});
