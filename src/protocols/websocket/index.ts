/**
 * typhoon/websocket: a sans-I/O WebSocket engine (RFC 6455) with
 * permessage-deflate (RFC 7692), the opening handshake as pure functions,
 * and the default zlib codec.
 *
 * @example
 * ```ts
 * import { serverHandshake, WebSocketConnection, ZlibDeflateCodec } from "typhoon/websocket";
 *
 * const hs = serverHandshake({ method, httpVersion, headers }, { perMessageDeflate: true });
 * if (!hs.ok) return respond(hs.status, hs.headers);
 * respond(101, hs.headers);
 * const conn = new WebSocketConnection({
 *   role: "server",
 *   perMessageDeflate: hs.perMessageDeflate && { codec: new ZlibDeflateCodec(hs.perMessageDeflate, "server") },
 * });
 * ```
 *
 * @module
 */
export * from "./constants";
export * from "./connection";
export * from "./deflate";
export * from "./deflate-zlib";
export * from "./extensions";
export * from "./frame";
export * from "./handshake";
export { applyMask, applyMaskKey } from "./mask";
export { sha1 } from "./sha1";
export { isValidUtf8, Utf8Validator, utf8Step, validateUtf8, UTF8_ACCEPT, UTF8_REJECT } from "./utf8";
