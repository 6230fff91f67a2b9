/**
 * Errors with two sides and a stable code.
 *
 * - {@link LocalProtocolError}: the caller misused an API (wrote a body on a
 *   204, sent a response twice, ...). A bug in the program, not in the peer.
 * - {@link RemoteProtocolError}: the peer misbehaved (bad framing, a header
 *   too large, an invalid frame). Carries the HTTP status or WebSocket close
 *   code that answers it.
 *
 * Messages follow one style: sentence case, no trailing period, what was
 * attempted, then the state after a colon.
 *
 * @module
 */

/** Fields shared by both sides of a protocol error. */
export interface ProtocolErrorOptions {
  /** The HTTP status that answers this error (400, 413, 431, ...). */
  status?: number;
  /** The WebSocket close code that answers this error (1002, 1007, 1009, ...). */
  closeCode?: number;
  /**
   * Byte offset at which the error was found, counted from the first byte the
   * connection received (whatever the chunks were), when known.
   */
  position?: number;
  cause?: unknown;
}

/** Base class of {@link LocalProtocolError} and {@link RemoteProtocolError}. */
export class ProtocolError extends Error {
  /** A stable machine-readable code such as `ERR_HEADERS_TOO_LARGE`. */
  readonly code: string;
  /** The HTTP status implied by this error, if any. */
  readonly status: number | undefined;
  /** The WebSocket close code implied by this error, if any. */
  readonly closeCode: number | undefined;
  /** Byte offset where the error was found, counted from the connection's first input byte, if known. */
  readonly position: number | undefined;

  constructor(code: string, message: string, options: ProtocolErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status;
    this.closeCode = options.closeCode;
    this.position = options.position;
  }
}

/**
 * The caller used the API in a way the protocol does not allow.
 *
 * @example
 * ```ts
 * try { conn.write(id, body) } catch (e) {
 *   if (e instanceof LocalProtocolError) console.error(e.code) // ERR_BODY_NOT_ALLOWED
 * }
 * ```
 */
export class LocalProtocolError extends ProtocolError {
  override name = "LocalProtocolError";
}

/**
 * The peer sent something the protocol does not allow. `status` (HTTP) or
 * `closeCode` (WebSocket) says how the connection answers it.
 *
 * @example
 * ```ts
 * if (event.type === "error") console.log(event.error.status) // 400
 * ```
 */
export class RemoteProtocolError extends ProtocolError {
  override name = "RemoteProtocolError";
}
