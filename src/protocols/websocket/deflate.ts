/**
 * permessage-deflate (RFC 7692): the parameters, their negotiation for both
 * sides, and the {@link DeflateCodec} interface that the engine compresses
 * through. No zlib here: the default codec lives in `deflate-zlib.ts`, so
 * that the engine stays free of runtime modules.
 *
 * Negotiation in one paragraph. The client offers `permessage-deflate` with
 * optional parameters; the server picks the first offer it can accept and
 * answers with the parameters in force; the client checks the answer.
 * `server_no_context_takeover` / `client_no_context_takeover` make that side
 * reset its compressor after every message; `server_max_window_bits` /
 * `client_max_window_bits` (8..15) bound that side's LZ77 window. An invalid
 * offer is declined (the server goes on without it); an invalid response
 * fails the connection (RFC 7692 §5).
 *
 * @module
 */
import { RemoteProtocolError } from "../../core/errors";
import { WS_ERR } from "./constants";
import { formatExtension, type Extension, type ExtensionParam } from "./extensions";

/** The registered extension name. */
export const PERMESSAGE_DEFLATE = "permessage-deflate";

/** The largest window: 2^15 = 32 KiB, zlib's default. */
export const MAX_WINDOW_BITS = 15;
/** The smallest window the RFC allows: 2^8 = 256 bytes. */
export const MIN_WINDOW_BITS = 8;

/** The negotiated configuration, once both sides agreed. */
export interface PerMessageDeflateParams {
  /** The server resets its compressor after each message. */
  readonly serverNoContextTakeover: boolean;
  /** The client resets its compressor after each message. */
  readonly clientNoContextTakeover: boolean;
  /** The server compresses with a window of at most 2^n bytes (8..15). */
  readonly serverMaxWindowBits: number;
  /** The client compresses with a window of at most 2^n bytes (8..15). */
  readonly clientMaxWindowBits: number;
}

/**
 * What a server accepts and imposes. Every field is optional.
 *
 * @example
 * ```ts
 * const options: PerMessageDeflateServerOptions = { serverMaxWindowBits: 10, clientNoContextTakeover: true };
 * ```
 */
export interface PerMessageDeflateServerOptions {
  /**
   * Always reset our compressor after each message (less memory held
   * between messages, worse ratio). A client's request for it is honoured
   * either way.
   * @default false
   */
  serverNoContextTakeover?: boolean;
  /**
   * Ask clients to reset their compressor after each message.
   * @default false
   */
  clientNoContextTakeover?: boolean;
  /**
   * Largest window we compress with (8..15); a client may ask for less.
   * @default 15
   */
  serverMaxWindowBits?: number;
  /**
   * Largest window clients may compress with (8..15). Below 15, offers that
   * cannot take `client_max_window_bits` are declined.
   * @default 15
   */
  clientMaxWindowBits?: number;
}

/**
 * What a client offers.
 *
 * @example
 * ```ts
 * buildDeflateOffer({ serverNoContextTakeover: true, serverMaxWindowBits: 10 })
 * // "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits"
 * ```
 */
export interface PerMessageDeflateClientOptions {
  /**
   * Ask the server to reset its compressor after each message.
   * @default false
   */
  serverNoContextTakeover?: boolean;
  /**
   * Tell the server that we reset our compressor after each message (a hint
   * in the offer, and what we then do).
   * @default false
   */
  clientNoContextTakeover?: boolean;
  /**
   * Ask the server to use a window of at most 2^n bytes (8..15).
   * @default undefined (not asked)
   */
  serverMaxWindowBits?: number;
  /**
   * `true`: offer `client_max_window_bits` without a value (the server may
   * then bound our window); a number 8..15: offer it with that value (and
   * use it); `false`: leave it out (the server may not bound our window).
   * @default true
   */
  clientMaxWindowBits?: number | boolean;
}

/**
 * Compression behind the engine. Synchronous, one instance per connection,
 * configured for one side of one negotiated {@link PerMessageDeflateParams}.
 *
 * @example
 * ```ts
 * // A codec that refuses everything (for a test):
 * const codec: DeflateCodec = {
 *   compress: () => { throw new Error("no") },
 *   decompress: () => { throw new Error("no") },
 *   close: () => {},
 * };
 * ```
 */
export interface DeflateCodec {
  /**
   * Compresses one whole message and returns the payload to send: the
   * DEFLATE blocks flushed with Z_SYNC_FLUSH, minus the trailing
   * `00 00 ff ff` (RFC 7692 §7.2.1). Resets the compressor afterwards if
   * our side negotiated no context takeover. The result belongs to the
   * caller.
   */
  compress(data: Uint8Array): Uint8Array;
  /**
   * Inflates the next piece of a compressed message (pieces may split
   * frames anywhere); `fin` marks the last piece, after which the codec
   * appends `00 00 ff ff` (RFC 7692 §7.2.2) and, if the peer negotiated no
   * context takeover, may reset. Returns the bytes inflated by this call
   * (possibly none: a codec may buffer until `fin`), owned by the caller,
   * or `null` as soon as the message's inflated size would exceed
   * `maxOutput` bytes (the bytes still to be allowed for this message): the
   * codec must stop inflating there, never buffering a decompression bomb
   * whole. Throws on data that does not inflate.
   */
  decompress(data: Uint8Array, fin: boolean, maxOutput: number): Uint8Array | null;
  /** Frees the compressor and decompressor; the codec is unusable afterwards. */
  close(): void;
}

/** Builds a codec for one side of a negotiated configuration. */
export type DeflateCodecFactory = (params: PerMessageDeflateParams, role: "server" | "client") => DeflateCodec;

// -------------------------------------------------------------- parameters

/** The parameters of one offer or response, validated (RFC 7692 §7.1). */
export interface DeflateParamSet {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  serverMaxWindowBits: number | null;
  /** `true` when present without a value (offers only). */
  clientMaxWindowBits: number | true | null;
}

function invalid(what: string): RemoteProtocolError {
  return new RemoteProtocolError(WS_ERR.INVALID_EXTENSION, `Cannot negotiate permessage-deflate: ${what}`, {
    status: 400,
  });
}

/** RFC 7692 §7.1.2: "a decimal integer value without leading zeroes between 8 to 15, inclusive". */
const WINDOW_BITS = /^(?:8|9|1[0-5])$/;

/**
 * Validates the parameters of one offer (`"offer"`) or one response
 * (`"response"`) and returns them. Throws a {@link RemoteProtocolError}
 * (`WS_ERR_INVALID_EXTENSION`) for an unknown parameter, a repeated one
 * (RFC 7692 §5: "multiple extension parameters with the same name"), a
 * value where none belongs, or a window size outside 8..15; a
 * `client_max_window_bits` without a value is allowed in offers only.
 *
 * @example
 * ```ts
 * parseDeflateParams([{ name: "server_max_window_bits", value: "10" }], "offer")
 * // { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 10, clientMaxWindowBits: null }
 * ```
 */
export function parseDeflateParams(params: readonly ExtensionParam[], kind: "offer" | "response"): DeflateParamSet {
  const set: DeflateParamSet = {
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    serverMaxWindowBits: null,
    clientMaxWindowBits: null,
  };
  const seen = new Set<string>();
  for (const { name, value } of params) {
    if (seen.has(name)) throw invalid(`the parameter ${name} is repeated`);
    seen.add(name);
    switch (name) {
      case "server_no_context_takeover":
      case "client_no_context_takeover":
        if (value !== null) throw invalid(`the parameter ${name} takes no value`);
        if (name === "server_no_context_takeover") set.serverNoContextTakeover = true;
        else set.clientNoContextTakeover = true;
        break;
      case "server_max_window_bits":
        if (value === null || !WINDOW_BITS.test(value)) throw invalid(`server_max_window_bits must be 8..15, got ${value}`);
        set.serverMaxWindowBits = Number(value);
        break;
      case "client_max_window_bits":
        if (value === null) {
          if (kind === "response") throw invalid("client_max_window_bits needs a value in a response");
          set.clientMaxWindowBits = true;
        } else {
          if (!WINDOW_BITS.test(value)) throw invalid(`client_max_window_bits must be 8..15, got ${value}`);
          set.clientMaxWindowBits = Number(value);
        }
        break;
      default:
        throw invalid(`unknown parameter ${name}`);
    }
  }
  return set;
}

function checkBits(name: string, value: unknown): void {
  if (value === undefined) return;
  if (typeof value !== "number" || !Number.isInteger(value)) throw new TypeError(`${name} must be an integer, got ${String(value)}`);
  if (value < MIN_WINDOW_BITS || value > MAX_WINDOW_BITS) throw new RangeError(`${name} must be in 8..15, got ${value}`);
}

function checkBool(name: string, value: unknown): void {
  if (value !== undefined && typeof value !== "boolean") throw new TypeError(`${name} must be a boolean, got ${String(value)}`);
}

/**
 * Checks server options; throws TypeError/RangeError.
 *
 * @example
 * ```ts
 * validateDeflateServerOptions({ serverMaxWindowBits: 7 }) // RangeError
 * ```
 */
export function validateDeflateServerOptions(options: PerMessageDeflateServerOptions): void {
  if (typeof options !== "object" || options === null) throw new TypeError("permessage-deflate options must be an object");
  checkBool("serverNoContextTakeover", options.serverNoContextTakeover);
  checkBool("clientNoContextTakeover", options.clientNoContextTakeover);
  checkBits("serverMaxWindowBits", options.serverMaxWindowBits);
  checkBits("clientMaxWindowBits", options.clientMaxWindowBits);
}

/**
 * Checks client options; throws TypeError/RangeError.
 *
 * @example
 * ```ts
 * validateDeflateClientOptions({ clientMaxWindowBits: 16 }) // RangeError
 * ```
 */
export function validateDeflateClientOptions(options: PerMessageDeflateClientOptions): void {
  if (typeof options !== "object" || options === null) throw new TypeError("permessage-deflate options must be an object");
  checkBool("serverNoContextTakeover", options.serverNoContextTakeover);
  checkBool("clientNoContextTakeover", options.clientNoContextTakeover);
  checkBits("serverMaxWindowBits", options.serverMaxWindowBits);
  if (typeof options.clientMaxWindowBits !== "boolean") checkBits("clientMaxWindowBits", options.clientMaxWindowBits);
}

// ------------------------------------------------------------------- client

/**
 * Builds the client's offer (one `Sec-WebSocket-Extensions` element).
 *
 * @example
 * ```ts
 * buildDeflateOffer() // "permessage-deflate; client_max_window_bits"
 * buildDeflateOffer({ clientMaxWindowBits: false }) // "permessage-deflate"
 * ```
 */
export function buildDeflateOffer(options: PerMessageDeflateClientOptions = {}): string {
  validateDeflateClientOptions(options);
  const params: ExtensionParam[] = [];
  if (options.serverNoContextTakeover === true) params.push({ name: "server_no_context_takeover", value: null });
  if (options.clientNoContextTakeover === true) params.push({ name: "client_no_context_takeover", value: null });
  if (options.serverMaxWindowBits !== undefined) {
    params.push({ name: "server_max_window_bits", value: String(options.serverMaxWindowBits) });
  }
  const cmwb = options.clientMaxWindowBits ?? true;
  if (cmwb === true) params.push({ name: "client_max_window_bits", value: null });
  else if (cmwb !== false) params.push({ name: "client_max_window_bits", value: String(cmwb) });
  return formatExtension({ name: PERMESSAGE_DEFLATE, params });
}

/**
 * Checks the server's response to our offer and returns the configuration
 * in force. Throws a {@link RemoteProtocolError} (`WS_ERR_INVALID_EXTENSION`)
 * when the client must fail the connection (RFC 7692 §5, §7.1):
 * invalid or repeated parameters; `client_max_window_bits` we did not offer
 * or larger than our value; a missing or larger `server_max_window_bits`
 * or a missing `server_no_context_takeover` when we asked for them.
 *
 * @example
 * ```ts
 * const [ext] = parseExtensions("permessage-deflate; server_max_window_bits=10");
 * acceptDeflateResponse(ext.params)
 * // { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 10, clientMaxWindowBits: 15 }
 * ```
 */
export function acceptDeflateResponse(
  params: readonly ExtensionParam[],
  options: PerMessageDeflateClientOptions = {},
): PerMessageDeflateParams {
  validateDeflateClientOptions(options);
  const r = parseDeflateParams(params, "response");
  // RFC 7692 §7.1.1.1: a server accepts an offer with server_no_context_takeover
  // by including it in the response (it may also include it unasked).
  if (options.serverNoContextTakeover === true && !r.serverNoContextTakeover) {
    throw invalid("the response lacks the server_no_context_takeover we asked for");
  }
  // RFC 7692 §7.1.2.1: the server accepts server_max_window_bits "with the same or
  // smaller value as the offer".
  if (options.serverMaxWindowBits !== undefined) {
    if (r.serverMaxWindowBits === null) throw invalid("the response lacks the server_max_window_bits we asked for");
    if (r.serverMaxWindowBits > options.serverMaxWindowBits) {
      throw invalid(`server_max_window_bits=${r.serverMaxWindowBits} exceeds the ${options.serverMaxWindowBits} we asked for`);
    }
  }
  // RFC 7692 §7.1.2.2: a server MUST NOT include client_max_window_bits unless
  // the offer had it.
  const offered = options.clientMaxWindowBits ?? true;
  let clientBits: number = typeof offered === "number" ? offered : MAX_WINDOW_BITS;
  if (r.clientMaxWindowBits !== null) {
    if (offered === false) throw invalid("the response has client_max_window_bits, which we did not offer");
    const value = r.clientMaxWindowBits as number;
    if (typeof offered === "number" && value > offered) {
      throw invalid(`client_max_window_bits=${value} exceeds the ${offered} we offered`);
    }
    clientBits = value;
  }
  return {
    serverNoContextTakeover: r.serverNoContextTakeover,
    clientNoContextTakeover: r.clientNoContextTakeover || options.clientNoContextTakeover === true,
    serverMaxWindowBits: r.serverMaxWindowBits ?? MAX_WINDOW_BITS,
    clientMaxWindowBits: clientBits,
  };
}

// ------------------------------------------------------------------- server

/** The server's decision: the response element and the configuration in force. */
export interface DeflateNegotiation {
  /** The `Sec-WebSocket-Extensions` element to answer with. */
  readonly response: string;
  readonly params: PerMessageDeflateParams;
}

/**
 * Server side: goes through the client's extensions in order and accepts
 * the first `permessage-deflate` offer that is valid and compatible with
 * `options`; returns null when none is (the connection goes on without
 * compression). RFC 7692 §5: "A server MUST decline an extension negotiation
 * offer for this extension if any of the following conditions are met: the
 * negotiation offer contains an extension parameter not defined for use in
 * an offer; ... an extension parameter with an invalid value; ... multiple
 * extension parameters with the same name; the server doesn't support the
 * offered configuration."
 *
 * @example
 * ```ts
 * negotiateDeflate(parseExtensions("permessage-deflate; client_max_window_bits"), { clientMaxWindowBits: 10 })
 * // { response: "permessage-deflate; client_max_window_bits=10", params: { ..., clientMaxWindowBits: 10 } }
 * ```
 */
export function negotiateDeflate(
  extensions: readonly Extension[],
  options: PerMessageDeflateServerOptions = {},
): DeflateNegotiation | null {
  validateDeflateServerOptions(options);
  for (const ext of extensions) {
    if (ext.name !== PERMESSAGE_DEFLATE) continue;
    let offer: DeflateParamSet;
    try {
      offer = parseDeflateParams(ext.params, "offer");
    } catch {
      continue; // declined
    }
    const result = acceptOffer(offer, options);
    if (result !== null) return result;
  }
  return null;
}

function acceptOffer(offer: DeflateParamSet, options: PerMessageDeflateServerOptions): DeflateNegotiation | null {
  const params: ExtensionParam[] = [];
  // §7.1.1.1: honour the client's request; we may also impose it ourselves.
  const serverNoContextTakeover = offer.serverNoContextTakeover || options.serverNoContextTakeover === true;
  if (serverNoContextTakeover) params.push({ name: "server_no_context_takeover", value: null });
  // §7.1.1.2: the client's own promise (a hint in the offer) or our request.
  const clientNoContextTakeover = offer.clientNoContextTakeover || options.clientNoContextTakeover === true;
  if (clientNoContextTakeover) params.push({ name: "client_no_context_takeover", value: null });
  // §7.1.2.1: answer an offered server_max_window_bits with the same or a smaller
  // value; we may also announce a smaller window unasked.
  const ownBits = options.serverMaxWindowBits ?? MAX_WINDOW_BITS;
  let serverBits = ownBits;
  if (offer.serverMaxWindowBits !== null) {
    serverBits = Math.min(offer.serverMaxWindowBits, ownBits);
    params.push({ name: "server_max_window_bits", value: String(serverBits) });
  } else if (ownBits < MAX_WINDOW_BITS) {
    params.push({ name: "server_max_window_bits", value: String(ownBits) });
  }
  // §7.1.2.2: we may bound the client's window only if the offer has
  // client_max_window_bits, and not above the value it gives.
  const limit = options.clientMaxWindowBits;
  let clientBits = MAX_WINDOW_BITS;
  if (offer.clientMaxWindowBits === null) {
    if (limit !== undefined && limit < MAX_WINDOW_BITS) return null; // cannot impose it: decline
  } else {
    const offered = offer.clientMaxWindowBits === true ? MAX_WINDOW_BITS : offer.clientMaxWindowBits;
    clientBits = Math.min(offered, limit ?? MAX_WINDOW_BITS);
    if (offer.clientMaxWindowBits !== true || clientBits < MAX_WINDOW_BITS) {
      params.push({ name: "client_max_window_bits", value: String(clientBits) });
    }
  }
  return {
    response: formatExtension({ name: PERMESSAGE_DEFLATE, params }),
    params: {
      serverNoContextTakeover,
      clientNoContextTakeover,
      serverMaxWindowBits: serverBits,
      clientMaxWindowBits: clientBits,
    },
  };
}
