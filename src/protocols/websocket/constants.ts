/**
 * Opcodes, close codes, error codes and default limits of the WebSocket
 * engine (RFC 6455, RFC 7692).
 *
 * @module
 */

// ---------------------------------------------------------------- opcodes

/** RFC 6455 §5.2: %x0 denotes a continuation frame. */
export const OPCODE_CONTINUATION = 0x0;
/** RFC 6455 §5.2: %x1 denotes a text frame. */
export const OPCODE_TEXT = 0x1;
/** RFC 6455 §5.2: %x2 denotes a binary frame. */
export const OPCODE_BINARY = 0x2;
/** RFC 6455 §5.2: %x8 denotes a connection close. */
export const OPCODE_CLOSE = 0x8;
/** RFC 6455 §5.2: %x9 denotes a ping. */
export const OPCODE_PING = 0x9;
/** RFC 6455 §5.2: %xA denotes a pong. */
export const OPCODE_PONG = 0xa;

/** RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less". */
export const MAX_CONTROL_PAYLOAD = 125;
/** A close payload holds a 2-byte code, so a reason has at most 123 bytes. */
export const MAX_CLOSE_REASON_BYTES = 123;

// ------------------------------------------------------------ close codes
// Names from the IANA "WebSocket Close Code Number Registry" (RFC 6455 §11.7).

/** 1000: the purpose for which the connection was established has been fulfilled. */
export const NORMAL_CLOSURE = 1000;
/** 1001: an endpoint is "going away" (server shutting down, page navigated away). */
export const GOING_AWAY = 1001;
/** 1002: an endpoint is terminating the connection due to a protocol error. */
export const PROTOCOL_ERROR = 1002;
/** 1003: an endpoint received a type of data it cannot accept. */
export const UNSUPPORTED_DATA = 1003;
/** 1005: reserved; reported when a close frame carried no status code. Never sent. */
export const NO_STATUS_RECEIVED = 1005;
/** 1006: reserved; reported when the connection closed without a close frame. Never sent. */
export const ABNORMAL_CLOSURE = 1006;
/** 1007: data within a message was not consistent with its type (e.g. non-UTF-8 text). */
export const INVALID_FRAME_PAYLOAD_DATA = 1007;
/** 1008: a message violates the endpoint's policy. */
export const POLICY_VIOLATION = 1008;
/** 1009: a message is too big to process. */
export const MESSAGE_TOO_BIG = 1009;
/** 1010: (client) the server did not negotiate an extension the client requires. */
export const MANDATORY_EXTENSION = 1010;
/** 1011: (server) an unexpected condition prevented fulfilling the request. */
export const INTERNAL_ERROR = 1011;
/** 1012: IANA-registered: the service is restarting. */
export const SERVICE_RESTART = 1012;
/** 1013: IANA-registered: try again later (temporary overload). */
export const TRY_AGAIN_LATER = 1013;
/** 1014: IANA-registered: a gateway received an invalid upstream response. */
export const BAD_GATEWAY = 1014;
/** 1015: reserved; reported when the TLS handshake failed. Never sent. */
export const TLS_HANDSHAKE = 1015;

/**
 * True if `code` may appear in a close frame on the wire (RFC 6455 §7.4):
 * 1000-1003, 1007-1014 (1012-1014 are in the IANA registry and sent by real
 * servers; ws and browsers accept them) and 3000-4999 (registered libraries
 * and private use). 1004-1006 and 1015 are reserved and "MUST NOT be set as
 * a status code in a Close control frame by an endpoint"; 0-999, 1016-2999
 * and 5000+ are unassigned or not to be used.
 *
 * @example
 * ```ts
 * isValidCloseCode(1000) // true
 * isValidCloseCode(1005) // false: reserved
 * isValidCloseCode(4000) // true: private use
 * ```
 */
export function isValidCloseCode(code: number): boolean {
  return (
    (code >= 1000 && code <= 1003) ||
    (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999)
  );
}

// ------------------------------------------------------------ error codes

/** Stable codes of the errors raised by the engine and the handshake helpers. */
export const WS_ERR = {
  /** An opcode the protocol reserves (3-7, 11-15). 1002. */
  INVALID_OPCODE: "WS_ERR_INVALID_OPCODE",
  /** RSV1 set without a negotiated extension, or on a continuation/control frame. 1002. */
  UNEXPECTED_RSV_1: "WS_ERR_UNEXPECTED_RSV_1",
  /** RSV2 or RSV3 set (no extension uses them). 1002. */
  UNEXPECTED_RSV_2_3: "WS_ERR_UNEXPECTED_RSV_2_3",
  /** A server received an unmasked frame. 1002. */
  EXPECTED_MASK: "WS_ERR_EXPECTED_MASK",
  /** A client received a masked frame. 1002. */
  UNEXPECTED_MASK: "WS_ERR_UNEXPECTED_MASK",
  /** A fragmented control frame. 1002. */
  EXPECTED_FIN: "WS_ERR_EXPECTED_FIN",
  /** A control frame with more than 125 bytes of payload. 1002. */
  INVALID_CONTROL_PAYLOAD_LENGTH: "WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH",
  /** A 64-bit payload length with its most significant bit set. 1002. */
  INVALID_PAYLOAD_LENGTH: "WS_ERR_INVALID_PAYLOAD_LENGTH",
  /** A continuation frame with no message to continue. 1002. */
  UNEXPECTED_CONTINUATION: "WS_ERR_UNEXPECTED_CONTINUATION",
  /** A new text/binary frame while a fragmented message is unfinished. 1002. */
  EXPECTED_CONTINUATION: "WS_ERR_EXPECTED_CONTINUATION",
  /** A text message or close reason that is not UTF-8. 1007. */
  INVALID_UTF8: "WS_ERR_INVALID_UTF8",
  /** Compressed data that does not inflate. 1007. */
  INVALID_COMPRESSED_DATA: "WS_ERR_INVALID_COMPRESSED_DATA",
  /** A frame larger than `maxFrameSize`. 1009. */
  FRAME_TOO_BIG: "WS_ERR_FRAME_TOO_BIG",
  /** A message larger than `maxMessageSize` (inflated size when compressed). 1009. */
  MESSAGE_TOO_BIG: "WS_ERR_MESSAGE_TOO_BIG",
  /** A close frame with a 1-byte payload. 1002. */
  INVALID_CLOSE_PAYLOAD: "WS_ERR_INVALID_CLOSE_PAYLOAD",
  /** A close code that may not appear on the wire. 1002 (remote) or a local misuse. */
  INVALID_CLOSE_CODE: "WS_ERR_INVALID_CLOSE_CODE",
  /** A call that the connection's state does not allow (local). */
  INVALID_STATE: "WS_ERR_INVALID_STATE",
  /** A ping/pong payload or close reason too long for a control frame (local). */
  CONTROL_PAYLOAD_TOO_LARGE: "WS_ERR_CONTROL_PAYLOAD_TOO_LARGE",
  /** A fragment whose type differs from the message it continues (local). */
  FRAGMENT_TYPE_MISMATCH: "WS_ERR_FRAGMENT_TYPE_MISMATCH",
  /** The opening handshake was invalid (see the message). */
  INVALID_HANDSHAKE: "WS_ERR_INVALID_HANDSHAKE",
  /** An extension negotiation offer or response was invalid. */
  INVALID_EXTENSION: "WS_ERR_INVALID_EXTENSION",
  /** A subprotocol negotiation was invalid. */
  INVALID_SUBPROTOCOL: "WS_ERR_INVALID_SUBPROTOCOL",
} as const;

// ---------------------------------------------------------------- limits

/**
 * Default `maxMessageSize`: 16 MiB. Tornado's `websocket_max_message_size`
 * is 10 MiB, ws's `maxPayload` 100 MiB; 16 MiB is the size of the largest
 * Autobahn messages (cases 9.1.6 and 9.2.6), which must pass.
 */
export const DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024;

/**
 * Default `maxFrameSize`: 16 MiB, the same as the message limit (ws applies
 * its single `maxPayload` to frames and messages alike; Tornado has no
 * separate frame limit).
 */
export const DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024;

/** Limits may not go below this, so that any control frame always fits. */
export const MIN_SIZE_LIMIT = MAX_CONTROL_PAYLOAD;

/**
 * Default permessage-deflate `threshold`: messages shorter than 1 KiB are
 * sent uncompressed (ws's default is also 1024 bytes; smaller messages
 * rarely shrink enough to pay for the deflate call).
 */
export const DEFAULT_COMPRESSION_THRESHOLD = 1024;
