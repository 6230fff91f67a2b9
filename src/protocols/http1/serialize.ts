/**
 * Checks and encodings shared by both sides of HTTP/1.1 output: header names
 * and values that cannot split a message, chunk framing, and the joining of
 * output parts into one buffer.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { latin1Write } from "../../core/bytes";
import { LocalProtocolError } from "../../core/errors";

/** RFC 9110 §5.6.2: token = 1*tchar. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 9110 §5.5: field-value chars are HTAB, SP, VCHAR and obs-text; never CR, LF or NUL. */
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/** True if `name` is a valid header field name (a token). */
export function isValidHeaderName(name: string): boolean {
  return TOKEN.test(name);
}

/** True if `value` can be sent as a header field value without splitting the message. */
export function isValidHeaderValue(value: string): boolean {
  return !INVALID_VALUE.test(value);
}

/**
 * Throws {@link LocalProtocolError} unless the header can be sent safely.
 *
 * @example
 * ```ts
 * assertHeader("X-Id", "1");          // fine
 * assertHeader("X-Id", "1\r\nEvil: 1"); // throws ERR_INVALID_HEADER_VALUE
 * ```
 */
export function assertHeader(name: string, value: string): void {
  // Most responses repeat the same few headers: remember those already checked.
  if (CHECKED_NAMES.has(name) && CHECKED_VALUES.has(value)) return;
  checkHeader(name, value);
  if (CHECKED_NAMES.size < 512) CHECKED_NAMES.add(name);
  if (CHECKED_VALUES.size < 2048 && value.length <= 128) CHECKED_VALUES.add(value);
}

/** Names and short values that passed {@link checkHeader}; bounded. */
const CHECKED_NAMES = new Set<string>();
const CHECKED_VALUES = new Set<string>();

function checkHeader(name: string, value: string): void {
  if (!TOKEN.test(name)) {
    throw new LocalProtocolError("ERR_INVALID_HEADER_NAME", `Cannot send header ${JSON.stringify(name)}: the name is not a token`);
  }
  if (INVALID_VALUE.test(value)) {
    throw new LocalProtocolError(
      "ERR_INVALID_HEADER_VALUE",
      `Cannot send header ${name}: the value ${JSON.stringify(value)} has a character that is not allowed (CR, LF, NUL or a control character)`,
    );
  }
}

/** {@link connectionOptions}: `close` is listed. */
export const CONNECTION_CLOSE = 1;
/** {@link connectionOptions}: `keep-alive` is listed. */
export const CONNECTION_KEEP_ALIVE = 2;

/**
 * The persistence options of a Connection header value (RFC 9112 §9.3): a
 * bit set of {@link CONNECTION_CLOSE} and {@link CONNECTION_KEEP_ALIVE},
 * tokens compared without case, optional whitespace around each ignored.
 */
export function connectionOptions(value: string): number {
  if (!/close|keep-alive/i.test(value)) return 0;
  let options = 0;
  for (const t of value.split(",")) {
    const token = t.replace(/^[ \t]+|[ \t]+$/g, "").toLowerCase();
    if (token === "close") options |= CONNECTION_CLOSE;
    else if (token === "keep-alive") options |= CONNECTION_KEEP_ALIVE;
  }
  return options;
}

/** ASCII-case-insensitive comparison of a header name with a lowercase name. */
export function nameIs(name: string, lower: string): boolean {
  const n = name.length;
  if (n !== lower.length) return false;
  if (name === lower) return true;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i);
    const l = lower.charCodeAt(i);
    // Equal, or an uppercase ASCII letter whose lowercase is `l`.
    if (c !== l && (c + 0x20 !== l || c < 0x41 || c > 0x5a)) return false;
  }
  return true;
}

/** A list of output parts: latin1 strings (heads, chunk framing) and bytes (bodies). */
export type OutputParts = Array<string | Uint8Array>;

/** Total byte length of output parts (strings are latin1: one byte per char). */
export function partsLength(parts: OutputParts): number {
  let n = 0;
  for (const p of parts) n += typeof p === "string" ? p.length : p.byteLength;
  return n;
}

/**
 * Joins output parts into one buffer with one allocation: strings are
 * written into it as latin1 (cheaper than joining them into one string and
 * encoding that).
 *
 * @example
 * ```ts
 * joinParts(["HTTP/1.1 200 OK\r\n\r\n", body], 19 + body.length)
 * ```
 */
export function joinParts(parts: OutputParts, total: number): Uint8Array {
  if (parts.length === 1) {
    const only = parts[0]!;
    return typeof only === "string" ? Buffer.from(only, "latin1") : only;
  }
  const out = Buffer.allocUnsafe(total);
  let offset = 0;
  for (const p of parts) {
    if (typeof p === "string") offset += latin1Write(out, p, offset);
    else {
      out.set(p, offset);
      offset += p.byteLength;
    }
  }
  // Never send bytes of the unzeroed allocation, should `total` be too high.
  return offset === total ? out : out.subarray(0, offset);
}

/** Parses a non-negative decimal Content-Length; -1 if it is not one. */
export function parseContentLength(value: string): number {
  const v = value.trim();
  if (v.length === 0 || v.length > 15 || !/^[0-9]+$/.test(v)) return -1;
  return Number(v);
}
