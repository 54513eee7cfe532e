/**
 * Protocol 3.0 constants: message type bytes (PostgreSQL's `PqMsg_*` from
 * protocol.h), error and notice field codes (`PG_DIAG_*`), startup request
 * codes, authentication request codes and the size limits pqcomm.c and
 * backend_startup.c enforce.
 *
 * Pure data; nothing here allocates or reads the network.
 */

/** `PG_PROTOCOL(major, minor)`: the int32 a StartupMessage begins with. */
export function pgProtocol(major: number, minor: number): number {
  return ((major << 16) | minor) >>> 0;
}

export const PG_PROTOCOL_EARLIEST = pgProtocol(3, 0);
/** The newest protocol pgts speaks; clients asking for more get NegotiateProtocolVersion. */
export const PG_PROTOCOL_LATEST = pgProtocol(3, 0);

export const CANCEL_REQUEST_CODE = pgProtocol(1234, 5678);
export const NEGOTIATE_SSL_CODE = pgProtocol(1234, 5679);
export const NEGOTIATE_GSS_CODE = pgProtocol(1234, 5680);

/** The one byte that answers an SSLRequest or GSSENCRequest: go ahead with the handshake. */
export const ENCRYPTION_ACCEPTED = 0x53; // 'S'
/** The one byte that answers an SSLRequest or GSSENCRequest: not supported, go on in plain text. */
export const ENCRYPTION_REFUSED = 0x4e; // 'N'

/** Largest startup packet accepted (backend_startup.c's MAX_STARTUP_PACKET_LENGTH). */
export const MAX_STARTUP_PACKET_LENGTH = 10000;
/** Longest cancel key accepted in a CancelRequest (protocol 3.2 allows up to 256 bytes). */
export const MAX_CANCEL_KEY_LENGTH = 256;
/** Limit for messages that should be short (libpq.h). */
export const PQ_SMALL_MESSAGE_LIMIT = 10000;
/** Limit for messages that can be long: MaxAllocSize - 1. */
export const PQ_LARGE_MESSAGE_LIMIT = 0x3fffffff - 1;
/** Longest password or SASL message accepted during authentication (auth.h). */
export const PG_MAX_AUTH_TOKEN_LENGTH = 65535;

/** Frontend message type bytes. */
export const FE = {
  Bind: 0x42, // 'B'
  Close: 0x43, // 'C'
  Describe: 0x44, // 'D'
  Execute: 0x45, // 'E'
  FunctionCall: 0x46, // 'F'
  Flush: 0x48, // 'H'
  Parse: 0x50, // 'P'
  Query: 0x51, // 'Q'
  Sync: 0x53, // 'S'
  Terminate: 0x58, // 'X'
  CopyFail: 0x66, // 'f'
  CopyDone: 0x63, // 'c'
  CopyData: 0x64, // 'd'
  /** PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse all use 'p'. */
  PasswordMessage: 0x70, // 'p'
} as const;

/** Backend message type bytes. */
export const BE = {
  ParseComplete: 0x31, // '1'
  BindComplete: 0x32, // '2'
  CloseComplete: 0x33, // '3'
  NotificationResponse: 0x41, // 'A'
  CommandComplete: 0x43, // 'C'
  DataRow: 0x44, // 'D'
  ErrorResponse: 0x45, // 'E'
  CopyInResponse: 0x47, // 'G'
  CopyOutResponse: 0x48, // 'H'
  EmptyQueryResponse: 0x49, // 'I'
  BackendKeyData: 0x4b, // 'K'
  NoticeResponse: 0x4e, // 'N'
  AuthenticationRequest: 0x52, // 'R'
  ParameterStatus: 0x53, // 'S'
  RowDescription: 0x54, // 'T'
  FunctionCallResponse: 0x56, // 'V'
  CopyBothResponse: 0x57, // 'W'
  ReadyForQuery: 0x5a, // 'Z'
  NoData: 0x6e, // 'n'
  PortalSuspended: 0x73, // 's'
  ParameterDescription: 0x74, // 't'
  NegotiateProtocolVersion: 0x76, // 'v'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
} as const;

/** The field codes of an ErrorResponse or NoticeResponse (postgres_ext.h's PG_DIAG_*). */
export const PG_DIAG = {
  SEVERITY: 0x53, // 'S'
  SEVERITY_NONLOCALIZED: 0x56, // 'V'
  SQLSTATE: 0x43, // 'C'
  MESSAGE_PRIMARY: 0x4d, // 'M'
  MESSAGE_DETAIL: 0x44, // 'D'
  MESSAGE_HINT: 0x48, // 'H'
  STATEMENT_POSITION: 0x50, // 'P'
  INTERNAL_POSITION: 0x70, // 'p'
  INTERNAL_QUERY: 0x71, // 'q'
  CONTEXT: 0x57, // 'W'
  SCHEMA_NAME: 0x73, // 's'
  TABLE_NAME: 0x74, // 't'
  COLUMN_NAME: 0x63, // 'c'
  DATATYPE_NAME: 0x64, // 'd'
  CONSTRAINT_NAME: 0x6e, // 'n'
  SOURCE_FILE: 0x46, // 'F'
  SOURCE_LINE: 0x4c, // 'L'
  SOURCE_FUNCTION: 0x52, // 'R'
} as const;

/** Authentication request codes carried in an 'R' message (protocol.h AUTH_REQ_*). */
export const AUTH_REQ = {
  OK: 0,
  PASSWORD: 3,
  MD5: 5,
  GSS: 7,
  GSS_CONT: 8,
  SSPI: 9,
  SASL: 10,
  SASL_CONT: 11,
  SASL_FIN: 12,
} as const;

/** ReadyForQuery transaction status: idle, in a transaction block, in a failed block. */
export type TransactionStatus = "I" | "T" | "E";
