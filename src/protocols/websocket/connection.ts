/**
 * The sans-I/O WebSocket connection (RFC 6455, with RFC 7692
 * permessage-deflate through an injected codec).
 *
 * ## How this works
 *
 * The opening handshake belongs to the HTTP layer (see `handshake.ts`); a
 * connection starts OPEN. The driver feeds what the socket reads to
 * `receiveData(bytes)` (and `receiveEof()` at the end), then calls
 * `nextEvent()` until it returns the `need-data` singleton. Parsing is lazy:
 * each `nextEvent()` parses just far enough to produce one event, so the
 * events come out in wire order and what the application sends in answer
 * to one event is queued before anything the engine queues for the next
 * one (the pong for a later ping, the echo of a later close).
 *
 * Sending methods encode frames straight into one output region;
 * `takeOutput()` hands it over as one buffer for one socket write;
 * `outputLength` lets the driver apply backpressure.
 *
 * Input is a list of chunks consumed without copying (as ws's receiver
 * does). A frame's payload is processed as it arrives: unmasked in place
 * (the engine owns the chunks it was given), UTF-8-checked incrementally,
 * inflated incrementally, copied into the message buffer. So a bad byte
 * fails the connection when it arrives, not when the message ends
 * (Autobahn 6.4.x), and a message too big fails as soon as its size is
 * known: from a frame header, or while inflating. A message that fits in
 * one frame inside one chunk takes a fast path with no copy at all.
 *
 * States (wsproto's names for RFC 6455 §7):
 *
 * ```
 *              sendClose()                 peer's close
 *   OPEN ─────────────────> LOCAL_CLOSING ─────────────────> CLOSED
 *    │                                                          ^
 *    │ peer's close: the echo is queued at once ─────────────────┤
 *    │ peer's close while we are mid-way through a fragmented    │
 *    └─> REMOTE_CLOSING ── last fragment or sendClose() ─────────┘
 * ```
 *
 * A protocol violation by the peer becomes an `error` event carrying a
 * {@link RemoteProtocolError} with its `closeCode`; the engine queues the
 * close frame with that code (unless it already sent one), moves to
 * LOCAL_CLOSING and ignores all later input: the driver writes the output
 * and closes the transport (`shouldCloseTransport`). An illegal call
 * (sending after close...) throws a {@link LocalProtocolError}.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { LocalProtocolError, RemoteProtocolError } from "../../core/errors";
import { SharedRecord } from "../../core/shared-record";
import {
  ABNORMAL_CLOSURE,
  DEFAULT_COMPRESSION_THRESHOLD,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_MAX_MESSAGE_SIZE,
  INVALID_FRAME_PAYLOAD_DATA,
  isValidCloseCode,
  MAX_CLOSE_REASON_BYTES,
  MAX_CONTROL_PAYLOAD,
  MESSAGE_TOO_BIG,
  MIN_SIZE_LIMIT,
  NO_STATUS_RECEIVED,
  OPCODE_BINARY,
  OPCODE_CLOSE,
  OPCODE_CONTINUATION,
  OPCODE_PING,
  OPCODE_PONG,
  OPCODE_TEXT,
  PROTOCOL_ERROR,
  WS_ERR,
} from "./constants";
import type { DeflateCodec } from "./deflate";
import { toBuffer, view } from "./buffers";
import { applyMaskKey } from "./mask";
import { OutputBuffer } from "./output-buffer";
import { UTF8_ACCEPT, utf8Step } from "./utf8";

// ------------------------------------------------------------------ events

/** A complete text message. */
export interface TextEvent {
  readonly type: "text";
  readonly data: string;
}
/** A complete binary message (a view that the application may keep). */
export interface BinaryEvent {
  readonly type: "binary";
  readonly data: Uint8Array;
}
/** A ping; unless `autoPong` is off, the pong is already queued. */
export interface PingEvent {
  readonly type: "ping";
  readonly data: Uint8Array;
}
/** A pong. */
export interface PongEvent {
  readonly type: "pong";
  readonly data: Uint8Array;
}
/**
 * The peer's close frame (`code` 1005 when it had no code), or the end of
 * the transport without one (`code` 1006).
 */
export interface CloseEvent {
  readonly type: "close";
  readonly code: number;
  readonly reason: string;
}
/** The peer broke the protocol; `error.closeCode` says how we closed. */
export interface ErrorEvent {
  readonly type: "error";
  readonly error: RemoteProtocolError;
}
/** Nothing more until more bytes arrive (a shared singleton). */
export interface NeedDataEvent {
  readonly type: "need-data";
}

/** What {@link WebSocketConnection.nextEvent} returns. */
export type WebSocketEvent =
  | TextEvent
  | BinaryEvent
  | PingEvent
  | PongEvent
  | CloseEvent
  | ErrorEvent
  | NeedDataEvent;

/**
 * The event returned when nothing is left to report.
 *
 * @example
 * ```ts
 * for (let e = conn.nextEvent(); e !== NEED_DATA; e = conn.nextEvent()) handle(e);
 * ```
 */
export const NEED_DATA: NeedDataEvent = Object.freeze({ type: "need-data" });

// ------------------------------------------------------------------ options

/** Which end of the connection this engine is. */
export type WebSocketRole = "server" | "client";

/** Connection states, named after RFC 6455 §7 and wsproto. */
export type ConnectionState = "OPEN" | "LOCAL_CLOSING" | "REMOTE_CLOSING" | "CLOSED";

/** permessage-deflate in force on a connection. */
export interface PerMessageDeflateEngineOptions {
  /** The codec for this side of the negotiated parameters. */
  codec: DeflateCodec;
  /**
   * Messages shorter than this many bytes are sent uncompressed.
   * @default 1024 (as ws)
   */
  threshold?: number;
}

/** Options of a {@link WebSocketConnection}. */
export interface WebSocketConnectionOptions {
  /** `"server"`: expects masked frames and sends unmasked ones; `"client"`: the reverse. */
  role: WebSocketRole;
  /**
   * Largest frame payload accepted, in bytes; a larger frame fails the
   * connection with 1009 as soon as its header arrives. At least 125;
   * `Infinity` for no limit.
   * @default 16 MiB (ws: 100 MiB `maxPayload`; Tornado: none)
   */
  maxFrameSize?: number;
  /**
   * Largest message accepted, in bytes (after inflating); a larger one fails
   * the connection with 1009 as soon as its size is known. At least 125;
   * `Infinity` for no limit.
   * @default 16 MiB (Tornado: 10 MiB; ws: 100 MiB)
   */
  maxMessageSize?: number;
  /**
   * Answer each ping with a pong carrying the same payload (RFC 6455 §5.5.2
   * "MUST"); the ping event is emitted either way.
   * @default true
   */
  autoPong?: boolean;
  /** Negotiated permessage-deflate, or null/undefined for none. */
  perMessageDeflate?: PerMessageDeflateEngineOptions | null;
  /**
   * Fills a buffer with random bytes for client masking keys (RFC 6455
   * §10.3: they must be unpredictable). Called for 128 bytes at a time.
   * @default (bytes) => globalThis.crypto.getRandomValues(bytes)
   */
  maskKeySource?: (bytes: Uint8Array) => void;
}

/** Options of a message send. */
export interface SendOptions {
  /** Send as binary. Default: true for bytes, false for a string. */
  binary?: boolean;
  /**
   * Compress (when permessage-deflate is in force). Default: when the
   * message reaches the codec's threshold. Fragments are never compressed.
   */
  compress?: boolean;
  /**
   * False to send a fragment and keep the message open; later sends continue
   * it until one has `fin: true` (RFC 6455 §5.4).
   * @default true
   */
  fin?: boolean;
}

// ------------------------------------------------------------------ internals

const PHASE_HEADER = 0;
const PHASE_PAYLOAD = 1;
const PHASE_CONTROL = 2;
const PHASE_DONE = 3;

const EMPTY = Buffer.alloc(0);
const MASK_POOL_SIZE = 128;

// Shared by every connection of the process, so that an idle connection
// holds no buffer: each is used only within one synchronous call.

/** The chunk list of a connection with no input buffered (never written to). */
const NO_CHUNKS: Buffer[] = [];
/** A frame header that straddles chunks is gathered here (at most 14 bytes). */
const SCRATCH = Buffer.alloc(14);
/** The mask key of the frame being written by a client, for `#maskOut` right after `#header`. */
let outKey = 0;
/** Output regions not in use, for the next connection that writes (an idle one holds none). */
const OUTPUT_POOL: OutputBuffer[] = [];
const OUTPUT_POOL_SIZE = 64;

interface BufferInternals {
  utf8Slice(start: number, end: number): string;
  utf8Write(text: string, offset: number, length?: number): number;
}
const proto = Buffer.prototype as unknown as Partial<BufferInternals>;
const HAS_FAST_UTF8 = typeof proto.utf8Slice === "function" && typeof proto.utf8Write === "function";

/** `buf.toString("utf8", start, end)` without the argument checks (Node's and Bun's internal fast path). */
function decodeUtf8(buf: Buffer, start: number, end: number): string {
  return HAS_FAST_UTF8 ? (buf as unknown as BufferInternals).utf8Slice(start, end) : buf.toString("utf8", start, end);
}

/** `buf.write(text, offset, length, "utf8")`, the same way. */
function encodeUtf8(buf: Buffer, text: string, offset: number, length: number): number {
  return HAS_FAST_UTF8
    ? (buf as unknown as BufferInternals).utf8Write(text, offset, length)
    : buf.write(text, offset, length, "utf8");
}

function defaultMaskKeySource(bytes: Uint8Array): void {
  globalThis.crypto.getRandomValues(bytes as Uint8Array<ArrayBuffer>);
}

function checkLimit(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value)) throw new TypeError(`${name} must be a number, got ${String(value)}`);
  if (value !== Infinity && !Number.isSafeInteger(value)) throw new RangeError(`${name} must be an integer or Infinity, got ${value}`);
  if (value < MIN_SIZE_LIMIT) throw new RangeError(`${name} must be at least ${MIN_SIZE_LIMIT}, got ${value}`);
  return value;
}

// Bits of WebSocketConnection's #flags: the role, autoPong, whether our close
// was sent and theirs received, the end of input (and whether it was
// reported), and the frame and message being parsed (FIN, masked, RSV1,
// inflated to the end).
const IS_SERVER = 1;
const AUTO_PONG = 2;
const CLOSE_SENT = 4;
const CLOSE_RECEIVED = 8;
const EOF = 16;
const EOF_REPORTED = 32;
const FIN = 64;
const MASKED = 128;
const MSG_COMPRESSED = 256;
const MSG_INFLATED = 512;

const OPCODE_NAMES = ["continuation", "text", "binary"];

/** What connections made with the same options share (four fields fewer on each). */
interface EngineSettings {
  readonly maxFrameSize: number;
  readonly maxMessageSize: number;
  readonly threshold: number;
  readonly maskKeySource: (bytes: Uint8Array) => void;
}

/** The settings of connections made with the same values (a server's all are). */
const ENGINE_SETTINGS = new SharedRecord<EngineSettings>();

/**
 * One WebSocket connection, either side, without I/O.
 *
 * @example
 * ```ts
 * const conn = new WebSocketConnection({ role: "server" });
 * socket.on("data", (chunk) => {
 *   conn.receiveData(chunk);
 *   for (let e = conn.nextEvent(); e.type !== "need-data"; e = conn.nextEvent()) {
 *     if (e.type === "text") conn.sendText(e.data); // echo
 *   }
 *   const out = conn.takeOutput();
 *   if (out) socket.write(out);
 *   if (conn.shouldCloseTransport) socket.end();
 * });
 * ```
 */
export class WebSocketConnection {
  /** The limits and the mask source, shared by connections made with the same ones. */
  readonly #settings: EngineSettings;
  #codec: DeflateCodec | null;

  /** Yes/no state, one bit each (IS_SERVER, FIN, ...): one number instead of ten fields. */
  #flags = 0;

  #state: ConnectionState = "OPEN";
  #error: RemoteProtocolError | null = null;
  /** The code to echo once a fragmented send ends (REMOTE_CLOSING). */
  #pendingEcho = NO_STATUS_RECEIVED;

  // Input: a chunk list consumed from (#head, #offset); NO_CHUNKS when empty.
  #chunks: Buffer[] = NO_CHUNKS;
  #head = 0;
  #offset = 0;
  #buffered = 0;
  /** Bytes consumed since the start (error positions). */
  #inputPosition = 0;

  // The frame being parsed.
  #phase = PHASE_HEADER;
  #opcode = 0;
  /** The frame's masking key, first byte high (see `applyMaskKey`). */
  #maskKey = 0;
  /** Payload bytes of the frame still to come. */
  #remaining = 0;
  /** Payload bytes of the frame already processed (mask offset). */
  #payloadPosition = 0;

  // The message being assembled.
  #msgOpcode = 0;
  #msgBuffer: Buffer | null = null;
  /** Message bytes so far (inflated for a compressed message). */
  #msgLength = 0;
  /** Wire bytes so far of a compressed message. */
  #msgWire = 0;
  #utf8State = UTF8_ACCEPT;

  // Output: a region taken from OUTPUT_POOL while bytes are pending.
  #out: OutputBuffer | null = null;
  /** Opcode of the message we are sending in fragments, 0 if none. */
  #sendOpcode = 0;
  #maskPool: Uint8Array | null = null;
  #maskPoolPosition = MASK_POOL_SIZE;

  constructor(options: WebSocketConnectionOptions) {
    if (typeof options !== "object" || options === null) throw new TypeError("WebSocketConnection options must be an object");
    if (options.role !== "server" && options.role !== "client") {
      throw new TypeError(`role must be "server" or "client", got ${String(options.role)}`);
    }
    if (options.role === "server") this.#flags |= IS_SERVER;
    const maxFrameSize = checkLimit("maxFrameSize", options.maxFrameSize, DEFAULT_MAX_FRAME_SIZE);
    const maxMessageSize = checkLimit("maxMessageSize", options.maxMessageSize, DEFAULT_MAX_MESSAGE_SIZE);
    if (options.autoPong !== undefined && typeof options.autoPong !== "boolean") {
      throw new TypeError(`autoPong must be a boolean, got ${String(options.autoPong)}`);
    }
    if (options.autoPong ?? true) this.#flags |= AUTO_PONG;
    const pmd = options.perMessageDeflate ?? null;
    let threshold = Infinity;
    if (pmd !== null) {
      if (typeof pmd !== "object") throw new TypeError("perMessageDeflate must be an object with a codec");
      const c = pmd.codec as Partial<DeflateCodec> | undefined;
      if (
        typeof c !== "object" || c === null ||
        typeof c.compress !== "function" || typeof c.decompress !== "function" || typeof c.close !== "function"
      ) {
        throw new TypeError("perMessageDeflate.codec must implement compress, decompress and close");
      }
      const t = pmd.threshold;
      if (t !== undefined && (typeof t !== "number" || Number.isNaN(t) || t < 0 || (t !== Infinity && !Number.isSafeInteger(t)))) {
        throw new RangeError(`perMessageDeflate.threshold must be a non-negative integer or Infinity, got ${String(t)}`);
      }
      threshold = t ?? DEFAULT_COMPRESSION_THRESHOLD;
    }
    this.#codec = pmd?.codec ?? null;
    const source = options.maskKeySource;
    if (source !== undefined && typeof source !== "function") throw new TypeError("maskKeySource must be a function");
    this.#settings = ENGINE_SETTINGS.get({ maxFrameSize, maxMessageSize, threshold, maskKeySource: source ?? defaultMaskKeySource });
  }

  // ---------------------------------------------------------------- status

  /** `"server"` or `"client"`. */
  get role(): WebSocketRole {
    return (this.#flags & IS_SERVER) !== 0 ? "server" : "client";
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** True once both close frames were exchanged or the transport ended. */
  get closed(): boolean {
    return this.#state === "CLOSED";
  }

  /**
   * True when the driver should close the transport once the output is
   * written: after a protocol error (we failed the connection), after the
   * transport ended, and for a server once the close handshake is done
   * (RFC 6455 §7.1.1: "the underlying TCP connection, in most normal cases,
   * SHOULD be closed first by the server"; a client waits for the server,
   * with a timeout of its own).
   */
  get shouldCloseTransport(): boolean {
    return this.#error !== null || (this.#flags & EOF) !== 0 || (this.#state === "CLOSED" && (this.#flags & IS_SERVER) !== 0);
  }

  /** The protocol error that failed the connection, if any. */
  get error(): RemoteProtocolError | null {
    return this.#error;
  }

  /** Bytes waiting in the output (for backpressure). */
  get outputLength(): number {
    const out = this.#out;
    return out === null ? 0 : out.length;
  }

  /** Bytes received and not yet parsed. */
  get bufferedAmount(): number {
    return this.#buffered;
  }

  // ----------------------------------------------------------------- input

  /**
   * Hands bytes read from the transport to the engine. The engine takes
   * ownership: it unmasks payloads in place and events may hold views into
   * `data`, so the caller must not reuse or change it afterwards. Bytes
   * after the peer's close frame or a protocol error are ignored.
   *
   * @example
   * ```ts
   * conn.receiveData(new Uint8Array([0x81, 0x82, 0, 0, 0, 0, 0x68, 0x69])); // masked "hi"
   * conn.nextEvent(); // { type: "text", data: "hi" }
   * ```
   */
  receiveData(data: Uint8Array): void {
    if ((this.#flags & EOF) !== 0) {
      throw new LocalProtocolError(WS_ERR.INVALID_STATE, "Cannot receive data: the transport already ended");
    }
    if (this.#phase === PHASE_DONE || data.byteLength === 0) return;
    if (this.#buffered === 0) {
      this.#chunks = [toBuffer(data)];
      this.#head = 0;
      this.#offset = 0;
    } else {
      this.#chunks.push(toBuffer(data));
    }
    this.#buffered += data.byteLength;
  }

  /**
   * Tells the engine that the transport ended (the peer closed its side).
   * Without a prior close frame, this yields a `close` event with code 1006
   * (RFC 6455 §7.1.5: "If _The WebSocket Connection is Closed_ and no Close
   * control frame was received by the endpoint ... _The WebSocket Connection
   * Close Code_ is considered to be 1006").
   *
   * @example
   * ```ts
   * conn.receiveEof();
   * conn.nextEvent(); // { type: "close", code: 1006, reason: "" }
   * ```
   */
  receiveEof(): void {
    this.#flags |= EOF;
  }

  /**
   * Returns the next event, or {@link NEED_DATA} when the input holds no
   * complete event. Never throws for anything the peer sends.
   *
   * @example
   * ```ts
   * const e = conn.nextEvent();
   * switch (e.type) {
   *   case "text": console.log(e.data); break;
   *   case "close": console.log(e.code, e.reason); break;
   *   case "error": console.log(e.error.code, e.error.closeCode); break;
   * }
   * ```
   */
  nextEvent(): WebSocketEvent {
    while (this.#phase !== PHASE_DONE) {
      let event: WebSocketEvent | null | undefined;
      if (this.#phase === PHASE_HEADER) event = this.#parseHeader();
      else if (this.#phase === PHASE_PAYLOAD) event = this.#parsePayload();
      else event = this.#parseControl();
      if (event === null) break;
      if (event !== undefined) return event;
    }
    if ((this.#flags & EOF) !== 0 && (this.#flags & EOF_REPORTED) === 0) {
      this.#flags |= EOF_REPORTED;
      const abnormal = (this.#flags & CLOSE_RECEIVED) === 0 && this.#error === null;
      this.#finishInput();
      this.#state = "CLOSED";
      this.#release();
      if (abnormal) return { type: "close", code: ABNORMAL_CLOSURE, reason: "" };
    }
    return NEED_DATA;
  }

  // ------------------------------------------------------------ chunk list

  #peek(index: number): number {
    let i = this.#head;
    let at = this.#offset + index;
    for (;;) {
      const chunk = this.#chunks[i]!;
      if (at < chunk.length) return chunk[at]!;
      at -= chunk.length;
      i++;
    }
  }

  /** Copies the next `n` buffered bytes into `target` without consuming them. */
  #gather(n: number, target: Buffer): void {
    let i = this.#head;
    let at = this.#offset;
    let o = 0;
    while (o < n) {
      const chunk = this.#chunks[i]!;
      const take = Math.min(n - o, chunk.length - at);
      chunk.copy(target, o, at, at + take);
      o += take;
      i++;
      at = 0;
    }
  }

  #advance(n: number): void {
    this.#buffered -= n;
    this.#inputPosition += n;
    let offset = this.#offset + n;
    let head = this.#head;
    const chunks = this.#chunks;
    while (head < chunks.length && offset >= chunks[head]!.length) {
      offset -= chunks[head]!.length;
      head++;
    }
    if (head === chunks.length) {
      this.#chunks = NO_CHUNKS;
      this.#head = 0;
      this.#offset = 0;
    } else {
      if (head > 64) {
        chunks.splice(0, head);
        head = 0;
      }
      this.#head = head;
      this.#offset = offset;
    }
  }

  #finishInput(): void {
    this.#phase = PHASE_DONE;
    this.#chunks = NO_CHUNKS;
    this.#head = 0;
    this.#offset = 0;
    this.#buffered = 0;
    this.#msgBuffer = null;
  }

  // --------------------------------------------------------------- parsing

  /** Parses a frame header: undefined when done, null for more data, or an error event. */
  #parseHeader(): WebSocketEvent | null | undefined {
    const buffered = this.#buffered;
    if (buffered < 2) return null;
    const chunk = this.#chunks[this.#head]!;
    const off = this.#offset;
    const direct = chunk.length - off >= 14;
    const two = direct || chunk.length - off >= 2;
    const b0 = two ? chunk[off]! : this.#peek(0);
    const b1 = two ? chunk[off + 1]! : this.#peek(1);
    const opcode = b0 & 0x0f;
    const fin = (b0 & 0x80) !== 0;
    const rsv1 = (b0 & 0x40) !== 0;
    // RFC 6455 §5.2: "MUST be 0 unless an extension is negotiated that defines
    // meanings for non-zero values. If a nonzero value is received and none of
    // the negotiated extensions defines the meaning of such a nonzero value, the
    // receiving endpoint MUST _Fail the WebSocket Connection_."
    if ((b0 & 0x30) !== 0) {
      return this.#fail(WS_ERR.UNEXPECTED_RSV_2_3, "Invalid frame: RSV2 and RSV3 must be clear", PROTOCOL_ERROR);
    }
    let compressed = false;
    if (opcode >= 0x8) {
      // RFC 6455 §5.2: "If an unknown opcode is received, the receiving endpoint
      // MUST _Fail the WebSocket Connection_."
      if (opcode > OPCODE_PONG) {
        return this.#fail(WS_ERR.INVALID_OPCODE, `Invalid frame: opcode ${opcode} is reserved`, PROTOCOL_ERROR);
      }
      // RFC 6455 §5.5: "Control frames themselves MUST NOT be fragmented."
      if (!fin) return this.#fail(WS_ERR.EXPECTED_FIN, "Invalid frame: a control frame must not be fragmented", PROTOCOL_ERROR);
      // RFC 7692 §6.1: RSV1 marks compressed data messages only.
      if (rsv1) return this.#fail(WS_ERR.UNEXPECTED_RSV_1, "Invalid frame: RSV1 must be clear on a control frame", PROTOCOL_ERROR);
      // RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less".
      if ((b1 & 0x7f) > MAX_CONTROL_PAYLOAD) {
        return this.#fail(WS_ERR.INVALID_CONTROL_PAYLOAD_LENGTH, "Invalid frame: a control frame payload must not exceed 125 bytes", PROTOCOL_ERROR);
      }
    } else if (opcode === OPCODE_CONTINUATION) {
      // RFC 6455 §5.4: fragments after the first have the continuation opcode;
      // one with no message to continue breaks the rules.
      if (this.#msgOpcode === 0) {
        return this.#fail(WS_ERR.UNEXPECTED_CONTINUATION, "Invalid frame: a continuation frame without a message to continue", PROTOCOL_ERROR);
      }
      // RFC 7692 §6.1: "An endpoint MUST NOT set the "Per-Message Compressed"
      // bit of control frames and non-first fragments of a data message."
      if (rsv1) return this.#fail(WS_ERR.UNEXPECTED_RSV_1, "Invalid frame: RSV1 must be clear on a continuation frame", PROTOCOL_ERROR);
      compressed = (this.#flags & MSG_COMPRESSED) !== 0;
    } else if (opcode === OPCODE_TEXT || opcode === OPCODE_BINARY) {
      // RFC 6455 §5.4: "the fragments of one message MUST NOT be interleaved
      // between the fragments of another message".
      if (this.#msgOpcode !== 0) {
        return this.#fail(WS_ERR.EXPECTED_CONTINUATION, "Invalid frame: a new message started before the fragmented one ended", PROTOCOL_ERROR);
      }
      if (rsv1 && this.#codec === null) {
        return this.#fail(WS_ERR.UNEXPECTED_RSV_1, "Invalid frame: RSV1 is set but no extension was negotiated", PROTOCOL_ERROR);
      }
      compressed = rsv1;
    } else {
      return this.#fail(WS_ERR.INVALID_OPCODE, `Invalid frame: opcode ${opcode} is reserved`, PROTOCOL_ERROR);
    }
    const masked = (b1 & 0x80) !== 0;
    if (masked !== ((this.#flags & IS_SERVER) !== 0)) {
      // RFC 6455 §5.1: "a client MUST mask all frames that it sends to the server
      // ... The server MUST close the connection upon receiving a frame that is
      // not masked" and "A server MUST NOT mask any frames that it sends to the
      // client. A client MUST close a connection if it detects a masked frame."
      return masked
        ? this.#fail(WS_ERR.UNEXPECTED_MASK, "Invalid frame: a server must not mask its frames", PROTOCOL_ERROR)
        : this.#fail(WS_ERR.EXPECTED_MASK, "Invalid frame: a client must mask its frames", PROTOCOL_ERROR);
    }
    const len7 = b1 & 0x7f;
    const headerSize = (len7 < 126 ? 2 : len7 === 126 ? 4 : 10) + (masked ? 4 : 0);
    if (buffered < headerSize) {
      // Fail fast on a bad 64-bit length before the rest of the header.
      if (len7 === 127 && buffered >= 3 && (this.#peek(2) & 0x80) !== 0) return this.#badLength();
      return null;
    }
    let src = chunk;
    let p = off + 2;
    if (!direct && chunk.length - off < headerSize) {
      this.#gather(headerSize, SCRATCH);
      src = SCRATCH;
      p = 2;
    }
    let length = len7;
    if (len7 === 126) {
      length = (src[p]! << 8) | src[p + 1]!;
      p += 2;
    } else if (len7 === 127) {
      // RFC 6455 §5.2: 64-bit length: "the most significant bit MUST be 0".
      // Non-minimal encodings are accepted, as Autobahn expects.
      const hi = src.readUInt32BE(p);
      if (hi >= 0x80000000) return this.#badLength();
      length = hi * 0x100000000 + src.readUInt32BE(p + 4);
      p += 8;
    }
    if (opcode < 0x8) {
      if (length > this.#settings.maxFrameSize) {
        return this.#fail(WS_ERR.FRAME_TOO_BIG, `Frame too big: ${length} bytes, the limit is ${this.#settings.maxFrameSize}`, MESSAGE_TOO_BIG);
      }
      // The message limit, as soon as a header tells: the payload size of an
      // uncompressed message, the wire size of a compressed one.
      const size = opcode !== OPCODE_CONTINUATION ? 0 : compressed ? this.#msgWire : this.#msgLength;
      if (size + length > this.#settings.maxMessageSize) {
        return this.#fail(WS_ERR.MESSAGE_TOO_BIG, `Message too big: more than ${this.#settings.maxMessageSize} bytes`, MESSAGE_TOO_BIG);
      }
    }
    if (masked) this.#maskKey = (src[p]! << 24) | (src[p + 1]! << 16) | (src[p + 2]! << 8) | src[p + 3]!;
    this.#advance(headerSize);
    this.#flags = fin ? this.#flags | FIN : this.#flags & ~FIN;
    this.#opcode = opcode;
    this.#flags = masked ? this.#flags | MASKED : this.#flags & ~MASKED;
    this.#remaining = length;
    this.#payloadPosition = 0;
    if (opcode >= 0x8) {
      this.#phase = PHASE_CONTROL;
    } else {
      if (opcode !== OPCODE_CONTINUATION) {
        this.#msgOpcode = opcode;
        this.#flags = compressed ? this.#flags | MSG_COMPRESSED : this.#flags & ~MSG_COMPRESSED;
        this.#msgLength = 0;
        this.#msgWire = 0;
        this.#flags &= ~MSG_INFLATED;
        this.#utf8State = UTF8_ACCEPT;
        this.#msgBuffer = null;
      }
      this.#phase = PHASE_PAYLOAD;
    }
    return undefined;
  }

  #badLength(): ErrorEvent {
    return this.#fail(
      WS_ERR.INVALID_PAYLOAD_LENGTH,
      "Invalid frame: the 64-bit payload length has its most significant bit set",
      PROTOCOL_ERROR,
    );
  }

  /** Data frame payload: undefined to go on, null for more data, or an event. */
  #parsePayload(): WebSocketEvent | null | undefined {
    let remaining = this.#remaining;
    // Fast path: a whole one-frame message inside the first chunk.
    if (this.#payloadPosition === 0 && (this.#flags & FIN) !== 0 && this.#opcode !== OPCODE_CONTINUATION && this.#buffered >= remaining) {
      const chunk = this.#chunks[this.#head];
      const start = this.#offset;
      if (chunk === undefined) {
        // Empty payload, nothing buffered.
        this.#phase = PHASE_HEADER;
        return this.#finishMessage();
      }
      if (chunk.length - start >= remaining) {
        const end = start + remaining;
        if ((this.#flags & MASKED) !== 0 && remaining > 0) applyMaskKey(chunk, start, end, this.#maskKey, 0);
        this.#advance(remaining);
        this.#payloadPosition = remaining;
        this.#remaining = 0;
        this.#phase = PHASE_HEADER;
        if ((this.#flags & MSG_COMPRESSED) !== 0) {
          this.#msgWire = remaining;
          if (remaining > 0) {
            const error = this.#inflate(view(chunk, start, end), true);
            if (error !== undefined) return error;
          }
          return this.#finishMessage();
        }
        this.#msgOpcode = 0;
        if (this.#opcode === OPCODE_TEXT) {
          const s = utf8Step(UTF8_ACCEPT, chunk, start, end);
          if (s !== UTF8_ACCEPT) return this.#invalidUtf8(s < 0 ? -1 - s - start : remaining);
          return { type: "text", data: decodeUtf8(chunk, start, end) };
        }
        return { type: "binary", data: view(chunk, start, end) };
      }
    }
    // General path: whatever part of the payload is here.
    const key = this.#maskKey;
    while (remaining > 0 && this.#buffered > 0) {
      const chunk = this.#chunks[this.#head]!;
      const start = this.#offset;
      const n = Math.min(remaining, chunk.length - start);
      const end = start + n;
      if ((this.#flags & MASKED) !== 0) applyMaskKey(chunk, start, end, key, this.#payloadPosition & 3);
      this.#advance(n);
      this.#payloadPosition += n;
      remaining -= n;
      this.#remaining = remaining;
      let error: ErrorEvent | undefined;
      if ((this.#flags & MSG_COMPRESSED) !== 0) {
        this.#msgWire += n;
        error = this.#inflate(view(chunk, start, end), (this.#flags & FIN) !== 0 && remaining === 0);
      } else {
        error = this.#append(chunk, start, end);
      }
      if (error !== undefined) return error;
    }
    if (remaining > 0) return null;
    this.#phase = PHASE_HEADER;
    if ((this.#flags & FIN) === 0) return undefined;
    return this.#finishMessage();
  }

  /** Inflates a piece of a compressed message; `last` for the end of its last frame. */
  #inflate(piece: Uint8Array, last: boolean): ErrorEvent | undefined {
    if (last) this.#flags |= MSG_INFLATED;
    let out: Uint8Array | null;
    try {
      out = this.#codec!.decompress(piece, last, this.#settings.maxMessageSize - this.#msgLength);
    } catch (cause) {
      return this.#fail(
        WS_ERR.INVALID_COMPRESSED_DATA,
        `Invalid compressed data: ${(cause as Error)?.message ?? String(cause)}`,
        INVALID_FRAME_PAYLOAD_DATA,
        undefined,
        cause,
      );
    }
    if (out === null) {
      return this.#fail(WS_ERR.MESSAGE_TOO_BIG, `Message too big: more than ${this.#settings.maxMessageSize} bytes once inflated`, MESSAGE_TOO_BIG);
    }
    if (out.length === 0) return undefined;
    const bytes = toBuffer(out);
    if (last && this.#msgBuffer === null && this.#msgLength === 0) {
      // The whole message came out of one call: keep the codec's buffer.
      if (this.#msgOpcode === OPCODE_TEXT) {
        const s = utf8Step(this.#utf8State, bytes, 0, bytes.length);
        if (s < 0) return this.#invalidUtf8(-1 - s);
        this.#utf8State = s;
      }
      this.#msgBuffer = bytes;
      this.#msgLength = bytes.length;
      return undefined;
    }
    return this.#append(bytes, 0, bytes.length);
  }

  /** Validates (text) and stores message bytes. */
  #append(bytes: Buffer, start: number, end: number): ErrorEvent | undefined {
    const n = end - start;
    if (n === 0) return undefined;
    if (this.#msgOpcode === OPCODE_TEXT) {
      const s = utf8Step(this.#utf8State, bytes, start, end);
      if (s < 0) return this.#invalidUtf8(this.#msgLength + (-1 - s - start));
      this.#utf8State = s;
    }
    let buf = this.#msgBuffer;
    const length = this.#msgLength;
    if (buf === null || length + n > buf.length) {
      // A one-frame uncompressed message has its exact size in the header.
      let capacity =
        (this.#flags & MSG_COMPRESSED) === 0 && (this.#flags & FIN) !== 0 && this.#opcode !== OPCODE_CONTINUATION
          ? length + n + this.#remaining
          : Math.max(length + n, (buf?.length ?? 512) * 2);
      if (capacity > this.#settings.maxMessageSize) capacity = Math.max(length + n, this.#settings.maxMessageSize);
      const grown = Buffer.allocUnsafe(capacity);
      if (buf !== null && length > 0) buf.copy(grown, 0, 0, length);
      this.#msgBuffer = buf = grown;
    }
    bytes.copy(buf, length, start, end);
    this.#msgLength = length + n;
    return undefined;
  }

  #finishMessage(): WebSocketEvent {
    if ((this.#flags & MSG_COMPRESSED) !== 0 && (this.#flags & MSG_INFLATED) === 0 && this.#msgWire > 0) {
      // The last frame had no payload: the codec still needs the end. (A
      // compressed message with no payload at all is an empty message: the
      // tail alone is no DEFLATE block, and feeding it would leave the
      // inflater inside a stored block.)
      const error = this.#inflate(EMPTY, true);
      if (error !== undefined) return error;
    }
    const opcode = this.#msgOpcode;
    const length = this.#msgLength;
    const buf = this.#msgBuffer;
    this.#msgOpcode = 0;
    this.#msgBuffer = null;
    if (opcode === OPCODE_TEXT) {
      if (this.#utf8State !== UTF8_ACCEPT) return this.#invalidUtf8(length);
      return { type: "text", data: buf === null ? "" : decodeUtf8(buf, 0, length) };
    }
    return { type: "binary", data: buf === null ? Buffer.alloc(0) : view(buf, 0, length) };
  }

  #invalidUtf8(position: number): ErrorEvent {
    // RFC 6455 §8.1: "When an endpoint is to interpret a byte stream as UTF-8 but
    // finds that the byte stream is not, in fact, a valid UTF-8 stream, that
    // endpoint MUST _Fail the WebSocket Connection_." §7.4.1: 1007.
    return this.#fail(
      WS_ERR.INVALID_UTF8,
      `Invalid UTF-8 in a text message at byte ${position}`,
      INVALID_FRAME_PAYLOAD_DATA,
      position,
    );
  }

  /** Control frame: waits for the whole payload. */
  #parseControl(): WebSocketEvent | null {
    const length = this.#remaining;
    if (this.#buffered < length) return null;
    let payload: Buffer;
    if (length === 0) {
      payload = EMPTY;
    } else {
      const chunk = this.#chunks[this.#head]!;
      const start = this.#offset;
      if (chunk.length - start >= length) {
        payload = view(chunk, start, start + length);
      } else {
        payload = Buffer.allocUnsafe(length);
        this.#gather(length, payload);
      }
      if ((this.#flags & MASKED) !== 0) applyMaskKey(payload, 0, length, this.#maskKey, 0);
      this.#advance(length);
    }
    this.#remaining = 0;
    this.#phase = PHASE_HEADER;
    switch (this.#opcode) {
      case OPCODE_PING:
        // RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a
        // Pong frame in response, unless it already received a Close frame."
        // We also stay silent after sending our close: it must be our last frame.
        if ((this.#flags & AUTO_PONG) !== 0 && (this.#flags & CLOSE_SENT) === 0) this.#writeControl(OPCODE_PONG, payload);
        return { type: "ping", data: payload };
      case OPCODE_PONG:
        return { type: "pong", data: payload };
      default:
        return this.#receiveClose(payload);
    }
  }

  #receiveClose(payload: Buffer): WebSocketEvent {
    let code = NO_STATUS_RECEIVED;
    let reason = "";
    if (payload.length === 1) {
      // RFC 6455 §5.5.1: "If there is a body, the first two bytes of the body MUST
      // be a 2-byte unsigned integer".
      return this.#fail(WS_ERR.INVALID_CLOSE_PAYLOAD, "Invalid close frame: a 1-byte payload", PROTOCOL_ERROR);
    }
    if (payload.length >= 2) {
      code = payload.readUInt16BE(0);
      if (!isValidCloseCode(code)) {
        return this.#fail(WS_ERR.INVALID_CLOSE_CODE, `Invalid close frame: code ${code} may not be sent`, PROTOCOL_ERROR);
      }
      // RFC 6455 §5.5.1: the reason's data is "not guaranteed to be human readable"
      // but it is UTF-8 ("the data MUST be UTF-8-encoded" per §7.1.6).
      const s = utf8Step(UTF8_ACCEPT, payload, 2, payload.length);
      if (s !== UTF8_ACCEPT) {
        const position = s < 0 ? -1 - s - 2 : payload.length - 2;
        return this.#fail(WS_ERR.INVALID_UTF8, `Invalid UTF-8 in a close reason at byte ${position}`, INVALID_FRAME_PAYLOAD_DATA, position);
      }
      reason = decodeUtf8(payload, 2, payload.length);
    }
    // RFC 6455 §1.4: after the close, "the endpoint ... discards any further data".
    this.#flags |= CLOSE_RECEIVED;
    this.#finishInput();
    if (this.#state === "OPEN") {
      if (this.#sendOpcode !== 0) {
        // RFC 6455 §5.5.1: "An endpoint MAY delay sending a Close frame until its
        // current message is sent".
        this.#state = "REMOTE_CLOSING";
        this.#pendingEcho = code;
      } else {
        // RFC 6455 §5.5.1: "If an endpoint receives a Close frame and did not
        // previously send a Close frame, the endpoint MUST send a Close frame in
        // response. (When sending a Close frame in response, the endpoint
        // typically echos the status code it received.)"
        this.#writeClose(code === NO_STATUS_RECEIVED ? -1 : code, "");
        this.#state = "CLOSED";
        this.#release();
      }
    } else {
      this.#state = "CLOSED";
      this.#release();
    }
    return { type: "close", code, reason };
  }

  /** Fails the connection: error event, close frame queued, input ignored. */
  #fail(code: string, message: string, closeCode: number, position?: number, cause?: unknown): ErrorEvent {
    const error = new RemoteProtocolError(code, message, {
      closeCode,
      position: position ?? this.#inputPosition,
      cause,
    });
    this.#error = error;
    this.#finishInput();
    // RFC 6455 §7.1.7: "If _The WebSocket Connection is Established_ prior to the
    // point where the endpoint is required to _Fail the WebSocket Connection_,
    // the endpoint SHOULD send a Close frame with an appropriate status code".
    if ((this.#flags & CLOSE_SENT) === 0) {
      this.#writeClose(closeCode, "");
      this.#state = "LOCAL_CLOSING";
    }
    this.#release();
    return { type: "error", error };
  }

  #release(): void {
    const codec = this.#codec;
    if (codec !== null) {
      this.#codec = null;
      codec.close();
    }
  }

  // ---------------------------------------------------------------- output

  /**
   * Takes the bytes to write (all frames queued since the last call, joined)
   * or null when there are none. The buffer is the caller's.
   *
   * @example
   * ```ts
   * conn.sendText("hi");
   * conn.takeOutput(); // 81 02 68 69
   * conn.takeOutput(); // null
   * ```
   */
  takeOutput(): Uint8Array | null {
    const out = this.#out;
    if (out === null) return null;
    this.#out = null;
    const bytes = out.take();
    if (OUTPUT_POOL.length < OUTPUT_POOL_SIZE) OUTPUT_POOL.push(out);
    return bytes;
  }

  /** The output region, taken from the pool on the first frame since the last `takeOutput`. */
  #output(): OutputBuffer {
    return (this.#out ??= OUTPUT_POOL.pop() ?? new OutputBuffer());
  }

  #illegal(what: string): LocalProtocolError {
    return new LocalProtocolError(WS_ERR.INVALID_STATE, `Cannot ${what}: the connection is ${this.#state}`);
  }

  /**
   * Sends a text message.
   *
   * @example
   * ```ts
   * conn.sendText("Hello"); // a server writes 81 05 48 65 6c 6c 6f
   * ```
   */
  sendText(text: string, options?: { compress?: boolean }): void {
    if (typeof text !== "string") throw new TypeError("sendText needs a string");
    this.#checkNoFragment("text");
    this.#sendMessage(OPCODE_TEXT, text, options?.compress, true);
  }

  /**
   * Sends a binary message.
   *
   * @example
   * ```ts
   * conn.sendBinary(new Uint8Array([1, 2, 3]));
   * ```
   */
  sendBinary(data: Uint8Array, options?: { compress?: boolean }): void {
    if (!(data instanceof Uint8Array)) throw new TypeError("sendBinary needs a Uint8Array");
    this.#checkNoFragment("binary");
    this.#sendMessage(OPCODE_BINARY, data, options?.compress, true);
  }

  #checkNoFragment(kind: string): void {
    if (this.#sendOpcode !== 0) {
      throw new LocalProtocolError(
        WS_ERR.INVALID_STATE,
        `Cannot send a ${kind} message: a fragmented ${OPCODE_NAMES[this.#sendOpcode]} message is in progress (continue it with send())`,
      );
    }
  }

  /**
   * Sends a message, or a fragment of one with `fin: false`; while a
   * fragmented message is open, `send` continues it (the type must match).
   * A string is sent as text unless `binary` says otherwise.
   *
   * @example
   * ```ts
   * conn.send("Hel", { fin: false });
   * conn.send("lo");            // continues and ends the text message
   * conn.send(bytes);           // binary
   * ```
   */
  send(data: string | Uint8Array, options: SendOptions = {}): void {
    const isString = typeof data === "string";
    if (!isString && !(data instanceof Uint8Array)) throw new TypeError("send needs a string or a Uint8Array");
    const binary = options.binary ?? !isString;
    this.#sendMessage(binary ? OPCODE_BINARY : OPCODE_TEXT, data, options.compress, options.fin ?? true);
  }

  #sendMessage(opcode: number, data: string | Uint8Array, compress: boolean | undefined, fin: boolean): void {
    const continuing = this.#sendOpcode !== 0;
    const kind = OPCODE_NAMES[opcode]!;
    if (continuing) {
      if (this.#state !== "OPEN" && this.#state !== "REMOTE_CLOSING") throw this.#illegal(`send a ${kind} fragment`);
      if (opcode !== this.#sendOpcode) {
        throw new LocalProtocolError(
          WS_ERR.FRAGMENT_TYPE_MISMATCH,
          `Cannot send a ${kind} fragment: the message in progress is ${OPCODE_NAMES[this.#sendOpcode]}`,
        );
      }
    } else if (this.#state !== "OPEN") {
      throw this.#illegal(`send a ${kind} message`);
    }
    const wireOpcode = continuing ? OPCODE_CONTINUATION : opcode;
    const finBit = fin ? 0x80 : 0;
    // Fragments go uncompressed: RSV1 would have to cover the whole message.
    // A string shorter than a third of the threshold cannot reach it in UTF-8.
    const codec = this.#codec;
    if (
      codec !== null && fin && !continuing && compress !== false &&
      (compress === true || (typeof data === "string" ? data.length * 3 >= this.#settings.threshold : data.length >= this.#settings.threshold))
    ) {
      const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
      if (compress === true || bytes.length >= this.#settings.threshold) {
        // RFC 7692 §6: RSV1 on the first frame marks a compressed message.
        this.#writeBytesFrame(finBit | 0x40 | wireOpcode, codec.compress(bytes));
      } else {
        this.#writeBytesFrame(finBit | wireOpcode, bytes);
      }
    } else if (typeof data === "string") {
      this.#writeTextFrame(finBit | wireOpcode, data);
    } else {
      this.#writeBytesFrame(finBit | wireOpcode, data);
    }
    if (fin) {
      this.#sendOpcode = 0;
      if (this.#state === "REMOTE_CLOSING") {
        this.#writeClose(this.#pendingEcho === NO_STATUS_RECEIVED ? -1 : this.#pendingEcho, "");
        this.#state = "CLOSED";
        this.#release();
      }
    } else {
      this.#sendOpcode = opcode;
    }
  }

  /**
   * Sends a ping (payload at most 125 bytes).
   *
   * @example
   * ```ts
   * conn.sendPing("are you there?");
   * ```
   */
  sendPing(data: string | Uint8Array = EMPTY): void {
    this.#sendControl(OPCODE_PING, data, "ping");
  }

  /**
   * Sends a pong (unsolicited, or to answer a ping when `autoPong` is off).
   *
   * @example
   * ```ts
   * conn.sendPong(event.data);
   * ```
   */
  sendPong(data: string | Uint8Array = EMPTY): void {
    this.#sendControl(OPCODE_PONG, data, "pong");
  }

  #sendControl(opcode: number, data: string | Uint8Array, name: string): void {
    if (this.#state !== "OPEN" && this.#state !== "REMOTE_CLOSING") throw this.#illegal(`send a ${name}`);
    if ((this.#flags & CLOSE_SENT) !== 0) throw this.#illegal(`send a ${name}`);
    const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`A ${name} payload must be a string or a Uint8Array`);
    // RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less".
    if (bytes.length > MAX_CONTROL_PAYLOAD) {
      throw new LocalProtocolError(
        WS_ERR.CONTROL_PAYLOAD_TOO_LARGE,
        `Cannot send a ${name}: its payload has ${bytes.length} bytes, the limit is 125`,
      );
    }
    this.#writeControl(opcode, bytes);
  }

  /**
   * Starts the closing handshake (OPEN → LOCAL_CLOSING), or answers the
   * peer's close when we delayed it (REMOTE_CLOSING → CLOSED; without a
   * code, the peer's code is echoed). Without `code` the frame has no body
   * (the peer sees 1005). `code` must be one that may be sent (1000-1003,
   * 1007-1014, 3000-4999) and `reason` at most 123 bytes of UTF-8.
   *
   * @example
   * ```ts
   * conn.sendClose(1000, "bye");
   * conn.state; // "LOCAL_CLOSING"
   * ```
   */
  sendClose(code?: number, reason = ""): void {
    if (this.#state !== "OPEN" && this.#state !== "REMOTE_CLOSING") throw this.#illegal("send a close frame");
    if (typeof reason !== "string") throw new TypeError("A close reason must be a string");
    let wireCode = -1;
    if (code === undefined) {
      if (reason !== "") {
        throw new LocalProtocolError(WS_ERR.INVALID_CLOSE_CODE, "Cannot send a close frame: a reason needs a code");
      }
      if (this.#state === "REMOTE_CLOSING" && this.#pendingEcho !== NO_STATUS_RECEIVED) wireCode = this.#pendingEcho;
    } else {
      // RFC 6455 §7.4.1: 1005, 1006 and 1015 "MUST NOT be set as a status code in
      // a Close control frame by an endpoint".
      if (!Number.isInteger(code) || !isValidCloseCode(code)) {
        throw new LocalProtocolError(WS_ERR.INVALID_CLOSE_CODE, `Cannot send a close frame: code ${String(code)} may not be sent`);
      }
      wireCode = code;
    }
    if (Buffer.byteLength(reason, "utf8") > MAX_CLOSE_REASON_BYTES) {
      throw new LocalProtocolError(
        WS_ERR.CONTROL_PAYLOAD_TOO_LARGE,
        "Cannot send a close frame: the reason is longer than 123 bytes",
      );
    }
    this.#writeClose(wireCode, reason);
    if (this.#state === "OPEN") {
      this.#state = "LOCAL_CLOSING";
    } else {
      this.#state = "CLOSED";
      this.#release();
    }
  }

  // ------------------------------------------------------------ framing out

  /** Writes a header at `pos` and returns the payload offset; a client's key goes to `outKey`. */
  #header(buf: Buffer, pos: number, first: number, length: number): number {
    buf[pos] = first;
    const maskBit = (this.#flags & IS_SERVER) !== 0 ? 0 : 0x80;
    let p = pos + 2;
    if (length < 126) {
      buf[pos + 1] = maskBit | length;
    } else if (length < 65536) {
      buf[pos + 1] = maskBit | 126;
      buf[pos + 2] = length >>> 8;
      buf[pos + 3] = length & 0xff;
      p = pos + 4;
    } else {
      buf[pos + 1] = maskBit | 127;
      buf.writeUInt32BE(Math.floor(length / 0x100000000), pos + 2);
      buf.writeUInt32BE(length >>> 0, pos + 6);
      p = pos + 10;
    }
    if ((this.#flags & IS_SERVER) === 0) {
      let pool = this.#maskPool;
      let at = this.#maskPoolPosition;
      if (pool === null || at + 4 > MASK_POOL_SIZE) {
        pool ??= this.#maskPool = new Uint8Array(MASK_POOL_SIZE);
        this.#settings.maskKeySource(pool);
        at = 0;
      }
      const b0 = (buf[p] = pool[at]!);
      const b1 = (buf[p + 1] = pool[at + 1]!);
      const b2 = (buf[p + 2] = pool[at + 2]!);
      const b3 = (buf[p + 3] = pool[at + 3]!);
      outKey = (b0 << 24) | (b1 << 16) | (b2 << 8) | b3;
      this.#maskPoolPosition = at + 4;
      p += 4;
    }
    return p;
  }

  /** Masks `buf[start..end)` with the key just written before `start`. */
  #maskOut(buf: Buffer, start: number, end: number): void {
    if ((this.#flags & IS_SERVER) !== 0 || end === start) return;
    applyMaskKey(buf, start, end, outKey, 0);
  }

  #writeBytesFrame(first: number, payload: Uint8Array): void {
    const out = this.#output();
    const n = payload.length;
    const buf = out.reserve(n + 14);
    const start = this.#header(buf, out.end, first, n);
    if (n > 0) buf.set(payload, start);
    this.#maskOut(buf, start, start + n);
    out.commit(start + n);
  }

  #writeTextFrame(first: number, text: string): void {
    const out = this.#output();
    const units = text.length;
    if (units <= 41) {
      // At most 123 bytes of UTF-8: a 7-bit length, known header size.
      const buf = out.reserve(units * 3 + 6);
      const pos = out.end;
      const start = pos + ((this.#flags & IS_SERVER) !== 0 ? 2 : 6);
      const n = units === 0 ? 0 : encodeUtf8(buf, text, start, units * 3);
      this.#header(buf, pos, first, n);
      this.#maskOut(buf, start, start + n);
      out.commit(start + n);
      return;
    }
    const n = Buffer.byteLength(text, "utf8");
    const buf = out.reserve(n + 14);
    const start = this.#header(buf, out.end, first, n);
    encodeUtf8(buf, text, start, n);
    this.#maskOut(buf, start, start + n);
    out.commit(start + n);
  }

  #writeControl(opcode: number, payload: Uint8Array): void {
    this.#writeBytesFrame(0x80 | opcode, payload);
  }

  /** Queues a close frame; `code` -1 for an empty body. */
  #writeClose(code: number, reason: string): void {
    this.#flags |= CLOSE_SENT;
    if (code < 0) {
      this.#writeBytesFrame(0x80 | OPCODE_CLOSE, EMPTY);
      return;
    }
    const reasonBytes = reason === "" ? EMPTY : Buffer.from(reason, "utf8");
    const body = Buffer.allocUnsafe(2 + reasonBytes.length);
    body.writeUInt16BE(code, 0);
    body.set(reasonBytes, 2);
    this.#writeBytesFrame(0x80 | OPCODE_CLOSE, body);
  }
}
