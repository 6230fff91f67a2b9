/**
 * The opening handshake (RFC 6455 §4) as pure functions for the HTTP layer:
 * the server checks an upgrade request and gets either the 101 response
 * headers or a rejection (status + headers + error); the client builds its
 * request headers and checks the server's answer. Subprotocols and
 * extensions (permessage-deflate) are negotiated on the way. No I/O, no
 * `node:crypto`: SHA-1 is ours (`sha1.ts`) unless another is passed in.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { LocalProtocolError, RemoteProtocolError } from "../../core/errors";
import { WS_ERR } from "./constants";
import {
  acceptDeflateResponse,
  buildDeflateOffer,
  negotiateDeflate,
  PERMESSAGE_DEFLATE,
  validateDeflateClientOptions,
  validateDeflateServerOptions,
  type PerMessageDeflateClientOptions,
  type PerMessageDeflateParams,
  type PerMessageDeflateServerOptions,
} from "./deflate";
import { isToken, parseExtensions, type Extension } from "./extensions";
import { sha1 } from "./sha1";

/** RFC 6455 §1.3: the GUID appended to the key before hashing. */
export const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** RFC 6455 §4.1: the only protocol version. */
export const WEBSOCKET_VERSION = "13";

/**
 * Request or response headers: a flat `[name, value, ...]` list, an object
 * with `getAll(name)` (such as `HTTPHeaders`), or a function returning the
 * values of a header (name given in lower case).
 */
export type HeaderSource =
  | readonly string[]
  | { getAll(name: string): readonly string[] }
  | ((name: string) => readonly string[] | string | null | undefined);

function headerValues(headers: HeaderSource, name: string): string[] {
  if (typeof headers === "function") {
    const v = headers(name);
    if (v === null || v === undefined) return [];
    return typeof v === "string" ? [v] : [...v];
  }
  if (Array.isArray(headers)) {
    const flat = headers as readonly string[];
    const out: string[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      if (flat[i]!.toLowerCase() === name) out.push(flat[i + 1]!);
    }
    return out;
  }
  return [...(headers as { getAll(name: string): readonly string[] }).getAll(name)];
}

/** Splits comma-separated list values into trimmed, non-empty elements. */
function listElements(values: readonly string[]): string[] {
  const out: string[] = [];
  for (const v of values) {
    for (const part of v.split(",")) {
      const t = part.trim();
      if (t !== "") out.push(t);
    }
  }
  return out;
}

function hasToken(values: readonly string[], token: string): boolean {
  return listElements(values).some((t) => t.toLowerCase() === token);
}

/** RFC 6455 §4.1: a base64-encoded 16-byte value is 22 characters and "==". */
const KEY_PATTERN = /^[A-Za-z0-9+/]{22}==$/;

/**
 * True if `key` is a valid `Sec-WebSocket-Key`: "a base64-encoded value that,
 * when decoded, is 16 bytes in length" (RFC 6455 §4.1).
 *
 * @example
 * ```ts
 * isValidClientKey("dGhlIHNhbXBsZSBub25jZQ==") // true
 * isValidClientKey("too-short") // false
 * ```
 */
export function isValidClientKey(key: string): boolean {
  return KEY_PATTERN.test(key);
}

/**
 * A fresh `Sec-WebSocket-Key`: 16 random bytes, base64 (RFC 6455 §4.1: "The
 * nonce MUST be selected randomly for each connection").
 *
 * @example
 * ```ts
 * generateClientKey() // e.g. "x3JJHMbDL1EzLkh9GBhXDw=="
 * ```
 */
export function generateClientKey(
  randomBytes: (bytes: Uint8Array) => void = (b) => globalThis.crypto.getRandomValues(b as Uint8Array<ArrayBuffer>),
): string {
  const bytes = new Uint8Array(16);
  randomBytes(bytes);
  return Buffer.from(bytes).toString("base64");
}

/**
 * `Sec-WebSocket-Accept` for a key: base64 of the SHA-1 of the key followed
 * by the GUID (RFC 6455 §4.2.2).
 *
 * @example
 * ```ts
 * computeAcceptKey("dGhlIHNhbXBsZSBub25jZQ==") // "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" (RFC 6455 §1.3)
 * ```
 */
export function computeAcceptKey(key: string, hash: (data: Uint8Array) => Uint8Array = sha1): string {
  return Buffer.from(hash(Buffer.from(key + WEBSOCKET_GUID, "latin1"))).toString("base64");
}

/**
 * Parses `Sec-WebSocket-Protocol` values: a comma-separated list of tokens
 * (RFC 6455 §4.1: "elements that comprise this value MUST be non-empty
 * strings with characters in the range U+0021 to U+007E not including
 * separator characters ... and MUST all be unique strings"). Throws a
 * {@link RemoteProtocolError} (`WS_ERR_INVALID_SUBPROTOCOL`, status 400)
 * otherwise.
 *
 * @example
 * ```ts
 * parseSubprotocols(["chat, superchat"]) // ["chat", "superchat"]
 * ```
 */
export function parseSubprotocols(values: string | readonly string[]): string[] {
  const list = listElements(typeof values === "string" ? [values] : values);
  const seen = new Set<string>();
  for (const p of list) {
    if (!isToken(p)) {
      throw new RemoteProtocolError(WS_ERR.INVALID_SUBPROTOCOL, `Invalid Sec-WebSocket-Protocol: ${JSON.stringify(p)} is not a token`, { status: 400 });
    }
    if (seen.has(p)) {
      throw new RemoteProtocolError(WS_ERR.INVALID_SUBPROTOCOL, `Invalid Sec-WebSocket-Protocol: ${JSON.stringify(p)} is repeated`, { status: 400 });
    }
    seen.add(p);
  }
  return list;
}

/**
 * True if the request asks for a WebSocket (`Upgrade: websocket`), whether or
 * not the rest of it is valid: the HTTP layer's cue to call
 * {@link serverHandshake}.
 *
 * @example
 * ```ts
 * isWebSocketUpgrade(["Upgrade", "websocket", "Connection", "Upgrade"]) // true
 * ```
 */
export function isWebSocketUpgrade(headers: HeaderSource): boolean {
  return hasToken(headerValues(headers, "upgrade"), "websocket");
}

// ------------------------------------------------------------------ server

/** What the server needs of the request. */
export interface UpgradeRequest {
  /** The request method (must be GET). */
  method: string;
  /** The HTTP version: `"1.1"`, `"HTTP/1.1"`... (must be at least 1.1). */
  httpVersion: string;
  headers: HeaderSource;
}

/** Server handshake options. */
export interface ServerHandshakeOptions {
  /**
   * Picks a subprotocol from the client's list (in the client's order), or
   * returns null/undefined for none. Returning one that was not offered is
   * a bug and throws a {@link LocalProtocolError}.
   * @default none is chosen
   */
  selectSubprotocol?: (offered: readonly string[]) => string | null | undefined;
  /**
   * Accept permessage-deflate offers: `true` for the defaults, an options
   * object, or `false`.
   * @default false (as ws's server and Tornado)
   */
  perMessageDeflate?: boolean | PerMessageDeflateServerOptions;
  /** SHA-1 for the accept key. @default the built-in one */
  hash?: (data: Uint8Array) => Uint8Array;
}

/** The handshake succeeded: answer `101 Switching Protocols` with `headers`. */
export interface ServerHandshakeAccept {
  readonly ok: true;
  readonly status: 101;
  /** Flat response headers: Upgrade, Connection, Sec-WebSocket-Accept, and the negotiated ones. */
  readonly headers: string[];
  readonly subprotocol: string | null;
  /** The negotiated permessage-deflate, to build the engine's codec from; null if none. */
  readonly perMessageDeflate: PerMessageDeflateParams | null;
}

/** The handshake failed: answer `status` with `headers` and close. */
export interface ServerHandshakeReject {
  readonly ok: false;
  /** 400 (bad request), 405 (not GET) or 426 (another WebSocket version). */
  readonly status: number;
  /** Extra response headers (`Sec-WebSocket-Version: 13`, `Allow: GET`). */
  readonly headers: string[];
  readonly error: RemoteProtocolError;
}

/** What {@link serverHandshake} returns. */
export type ServerHandshakeResult = ServerHandshakeAccept | ServerHandshakeReject;

function reject(status: number, message: string, headers: string[] = []): ServerHandshakeReject {
  return {
    ok: false,
    status,
    headers,
    error: new RemoteProtocolError(WS_ERR.INVALID_HANDSHAKE, `Cannot accept the WebSocket handshake: ${message}`, { status }),
  };
}

function versionAtLeast11(version: string): boolean {
  const m = /^(?:HTTP\/)?(\d+)\.(\d+)$/.exec(version.trim());
  if (m === null) return false;
  const major = Number(m[1]);
  return major > 1 || (major === 1 && Number(m[2]) >= 1);
}

/**
 * Checks a WebSocket upgrade request (RFC 6455 §4.2.1) and negotiates the
 * subprotocol and extensions (§4.2.2). Returns the 101 response headers, or
 * the status to reject with: 405 for a method other than GET, 426 with
 * `Sec-WebSocket-Version: 13` for another protocol version, 400 for
 * anything else. Origin checks are the application's (the `Origin` header
 * is left to it). Unknown extensions are ignored; permessage-deflate is
 * negotiated when enabled. `Sec-WebSocket-Extensions` is parsed only then
 * (a malformed one is a 400); with `perMessageDeflate` off it is ignored.
 *
 * @example
 * ```ts
 * const result = serverHandshake({
 *   method: "GET",
 *   httpVersion: "1.1",
 *   headers: ["Host", "example.com", "Upgrade", "websocket", "Connection", "Upgrade",
 *             "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version", "13"],
 * });
 * // result.ok === true; result.headers includes "Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
 * ```
 */
export function serverHandshake(request: UpgradeRequest, options: ServerHandshakeOptions = {}): ServerHandshakeResult {
  const pmd = options.perMessageDeflate ?? false;
  if (typeof pmd !== "boolean") validateDeflateServerOptions(pmd);
  if (options.selectSubprotocol !== undefined && typeof options.selectSubprotocol !== "function") {
    throw new TypeError("selectSubprotocol must be a function");
  }
  const headers = request.headers;
  // RFC 6455 §4.1: "The method of the request MUST be GET, and the HTTP version
  // MUST be at least 1.1."
  if (request.method !== "GET") return reject(405, `the method is ${request.method}, not GET`, ["Allow", "GET"]);
  if (!versionAtLeast11(request.httpVersion)) return reject(400, `HTTP/${request.httpVersion} is older than HTTP/1.1`);
  // RFC 6455 §4.2.1: "An |Upgrade| header field containing the value "websocket",
  // treated as an ASCII case-insensitive value."
  if (!hasToken(headerValues(headers, "upgrade"), "websocket")) return reject(400, 'the Upgrade header does not name "websocket"');
  // "A |Connection| header field that includes the token "Upgrade", treated as an
  // ASCII case-insensitive value."
  if (!hasToken(headerValues(headers, "connection"), "upgrade")) return reject(400, 'the Connection header lacks "Upgrade"');
  // "A |Host| header field containing the server's authority."
  const host = headerValues(headers, "host");
  if (host.length !== 1 || host[0]!.trim() === "") return reject(400, "the request needs exactly one Host header");
  // "A |Sec-WebSocket-Version| header field, with a value of 13." §4.2.2: "If this
  // version does not match a version understood by the server, the server MUST
  // abort the WebSocket handshake described in this section and instead send an
  // appropriate HTTP error code (such as 426 Upgrade Required) and a
  // |Sec-WebSocket-Version| header field indicating the version(s) the server is
  // capable of understanding."
  const versions = headerValues(headers, "sec-websocket-version");
  const versionHeader = ["Sec-WebSocket-Version", WEBSOCKET_VERSION];
  if (versions.length === 0) return reject(400, "the Sec-WebSocket-Version header is missing", versionHeader);
  if (versions.length !== 1 || versions[0]!.trim() !== WEBSOCKET_VERSION) {
    return reject(426, `the WebSocket version ${versions.join(", ")} is not 13`, versionHeader);
  }
  // "A |Sec-WebSocket-Key| header field with a base64-encoded value that, when
  // decoded, is 16 bytes in length."
  const keys = headerValues(headers, "sec-websocket-key");
  if (keys.length !== 1) return reject(400, "the request needs exactly one Sec-WebSocket-Key header");
  const key = keys[0]!.trim();
  if (!isValidClientKey(key)) return reject(400, `the Sec-WebSocket-Key ${JSON.stringify(key)} is not 16 bytes in base64`);

  let subprotocol: string | null = null;
  const protocolValues = headerValues(headers, "sec-websocket-protocol");
  if (protocolValues.length > 0) {
    let offered: string[];
    try {
      offered = parseSubprotocols(protocolValues);
    } catch (error) {
      return { ok: false, status: 400, headers: [], error: error as RemoteProtocolError };
    }
    const chosen = offered.length > 0 ? options.selectSubprotocol?.(offered) : null;
    if (chosen !== null && chosen !== undefined) {
      if (!offered.includes(chosen)) {
        throw new LocalProtocolError(
          WS_ERR.INVALID_SUBPROTOCOL,
          `Cannot select the subprotocol ${JSON.stringify(chosen)}: the client offered ${offered.join(", ")}`,
        );
      }
      subprotocol = chosen;
    }
  }

  let deflate: PerMessageDeflateParams | null = null;
  let extensionsResponse: string | null = null;
  // The header is read only when there is something to negotiate: with
  // compression off it is ignored, malformed or not, as Tornado ignores the
  // extensions it does not use (RFC 6455 §9.1 leaves the choice to the server).
  if (pmd !== false) {
    const extensionValues = headerValues(headers, "sec-websocket-extensions");
    if (extensionValues.length > 0) {
      let extensions: Extension[];
      try {
        extensions = parseExtensions(extensionValues);
      } catch (error) {
        return { ok: false, status: 400, headers: [], error: error as RemoteProtocolError };
      }
      const negotiated = negotiateDeflate(extensions, pmd === true ? {} : pmd);
      if (negotiated !== null) {
        deflate = negotiated.params;
        extensionsResponse = negotiated.response;
      }
    }
  }

  const response = [
    "Upgrade", "websocket",
    "Connection", "Upgrade",
    "Sec-WebSocket-Accept", computeAcceptKey(key, options.hash),
  ];
  // RFC 6455 §4.2.2: the selected subprotocol, if any, and the extensions in use.
  if (subprotocol !== null) response.push("Sec-WebSocket-Protocol", subprotocol);
  if (extensionsResponse !== null) response.push("Sec-WebSocket-Extensions", extensionsResponse);
  return { ok: true, status: 101, headers: response, subprotocol, perMessageDeflate: deflate };
}

// ------------------------------------------------------------------ client

/** Client handshake options. */
export interface ClientHandshakeOptions {
  /** Subprotocols to offer, in order of preference. @default [] */
  protocols?: readonly string[];
  /**
   * Offer permessage-deflate: `true` for the defaults, an options object,
   * or `false`.
   * @default false
   */
  perMessageDeflate?: boolean | PerMessageDeflateClientOptions;
  /** A fixed key (tests); by default a random one. */
  key?: string;
  /** Random bytes for the key. @default globalThis.crypto.getRandomValues */
  randomBytes?: (bytes: Uint8Array) => void;
}

/** What the client sends, and remembers to check the answer. */
export interface ClientHandshake {
  readonly key: string;
  /** Headers to add to the GET request (the HTTP client adds Host and the rest). */
  readonly headers: string[];
  readonly protocols: readonly string[];
  readonly perMessageDeflate: PerMessageDeflateClientOptions | null;
}

/**
 * Builds the client's handshake headers (RFC 6455 §4.1).
 *
 * @example
 * ```ts
 * const hs = createClientHandshake({ protocols: ["chat"], perMessageDeflate: true });
 * hs.headers;
 * // ["Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Key", hs.key,
 * //  "Sec-WebSocket-Version", "13", "Sec-WebSocket-Protocol", "chat",
 * //  "Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"]
 * ```
 */
export function createClientHandshake(options: ClientHandshakeOptions = {}): ClientHandshake {
  const protocols = [...(options.protocols ?? [])];
  const seen = new Set<string>();
  for (const p of protocols) {
    if (typeof p !== "string" || !isToken(p)) throw new TypeError(`A subprotocol must be a token, got ${JSON.stringify(p)}`);
    if (seen.has(p)) throw new TypeError(`The subprotocol ${JSON.stringify(p)} is repeated`);
    seen.add(p);
  }
  const pmdOption = options.perMessageDeflate ?? false;
  const pmd: PerMessageDeflateClientOptions | null = pmdOption === false ? null : pmdOption === true ? {} : pmdOption;
  if (pmd !== null) validateDeflateClientOptions(pmd);
  const key = options.key ?? generateClientKey(options.randomBytes);
  if (!isValidClientKey(key)) throw new TypeError(`A Sec-WebSocket-Key must be 16 bytes in base64, got ${JSON.stringify(key)}`);
  const headers = [
    "Upgrade", "websocket",
    "Connection", "Upgrade",
    "Sec-WebSocket-Key", key,
    "Sec-WebSocket-Version", WEBSOCKET_VERSION,
  ];
  if (protocols.length > 0) headers.push("Sec-WebSocket-Protocol", protocols.join(", "));
  if (pmd !== null) headers.push("Sec-WebSocket-Extensions", buildDeflateOffer(pmd));
  return { key, headers, protocols, perMessageDeflate: pmd };
}

/** The server's answer, as the client saw it. */
export interface HandshakeResponse {
  status: number;
  headers: HeaderSource;
}

/** The outcome of a successful client handshake. */
export interface ClientHandshakeResult {
  readonly subprotocol: string | null;
  readonly perMessageDeflate: PerMessageDeflateParams | null;
}

function clientFail(message: string): RemoteProtocolError {
  return new RemoteProtocolError(WS_ERR.INVALID_HANDSHAKE, `The WebSocket handshake failed: ${message}`);
}

/**
 * Checks the server's response (RFC 6455 §4.1, "the client MUST validate the
 * server's response as follows") and returns what was negotiated. Throws a
 * {@link RemoteProtocolError} when the client must fail the connection: not
 * 101; Upgrade not "websocket"; Connection without "Upgrade"; a wrong or
 * missing Sec-WebSocket-Accept; an extension or subprotocol that was not
 * offered; an invalid permessage-deflate response.
 *
 * @example
 * ```ts
 * const hs = createClientHandshake({ protocols: ["chat"] });
 * const { subprotocol } = checkServerHandshake(hs, { status: 101, headers: responseHeaders });
 * ```
 */
export function checkServerHandshake(
  handshake: ClientHandshake,
  response: HandshakeResponse,
  hash: (data: Uint8Array) => Uint8Array = sha1,
): ClientHandshakeResult {
  const headers = response.headers;
  if (response.status !== 101) throw clientFail(`the server answered ${response.status}, not 101`);
  // "If the response lacks an |Upgrade| header field or the |Upgrade| header field
  // contains a value that is not an ASCII case-insensitive match for the value
  // "websocket", the client MUST _Fail the WebSocket Connection_."
  const upgrade = headerValues(headers, "upgrade");
  if (upgrade.length !== 1 || upgrade[0]!.trim().toLowerCase() !== "websocket") {
    throw clientFail('the Upgrade header is not "websocket"');
  }
  // "If the response lacks a |Connection| header field or the |Connection| header
  // field doesn't contain a token that is an ASCII case-insensitive match for the
  // value "Upgrade", the client MUST _Fail the WebSocket Connection_."
  if (!hasToken(headerValues(headers, "connection"), "upgrade")) throw clientFail('the Connection header lacks "Upgrade"');
  // "If the response lacks a |Sec-WebSocket-Accept| header field or the
  // |Sec-WebSocket-Accept| contains a value other than the base64-encoded SHA-1 of
  // the concatenation of the |Sec-WebSocket-Key| (as a string, not base64-decoded)
  // with the string "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" ... the client MUST
  // _Fail the WebSocket Connection_."
  const accept = headerValues(headers, "sec-websocket-accept");
  if (accept.length !== 1 || accept[0]!.trim() !== computeAcceptKey(handshake.key, hash)) {
    throw clientFail("the Sec-WebSocket-Accept header does not match the key");
  }
  // "If the response includes a |Sec-WebSocket-Extensions| header field and this
  // header field indicates the use of an extension that was not present in the
  // client's handshake ... the client MUST _Fail the WebSocket Connection_."
  let deflate: PerMessageDeflateParams | null = null;
  const extensionValues = headerValues(headers, "sec-websocket-extensions");
  if (extensionValues.length > 0) {
    const extensions = parseExtensions(extensionValues);
    for (const ext of extensions) {
      if (ext.name !== PERMESSAGE_DEFLATE || handshake.perMessageDeflate === null) {
        throw clientFail(`the server accepted the extension ${ext.name}, which was not offered`);
      }
      if (deflate !== null) throw clientFail("the server accepted permessage-deflate twice");
      deflate = acceptDeflateResponse(ext.params, handshake.perMessageDeflate);
    }
  }
  // "If the response includes a |Sec-WebSocket-Protocol| header field and this
  // header field indicates the use of a subprotocol that was not present in the
  // client's handshake ... the client MUST _Fail the WebSocket Connection_."
  let subprotocol: string | null = null;
  const protocolValues = headerValues(headers, "sec-websocket-protocol");
  if (protocolValues.length > 0) {
    const chosen = listElements(protocolValues);
    if (chosen.length !== 1) throw clientFail("the server must choose exactly one subprotocol");
    if (!handshake.protocols.includes(chosen[0]!)) {
      throw clientFail(`the server chose the subprotocol ${JSON.stringify(chosen[0])}, which was not offered`);
    }
    subprotocol = chosen[0]!;
  }
  return { subprotocol, perMessageDeflate: deflate };
}
