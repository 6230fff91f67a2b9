/**
 * The sans-I/O HTTP/1.1 server connection.
 *
 * How this works:
 *
 * - Bytes in: {@link ServerConnection.receiveData} hands bytes to llhttp; what
 *   it finds becomes plain events (`request`, `data`, `end`, `upgrade`,
 *   `error`) in a queue that the caller drains with
 *   {@link ServerConnection.nextEvent}. When nothing is queued, `nextEvent`
 *   returns `need-data` (send more bytes) or `paused` (no more events until a
 *   response progresses: the limit of requests in flight is reached, an
 *   Upgrade waits for its answer, or the connection is closing).
 * - Bytes out: `writeHeaders`/`write`/`finish` (or `writeResponse` for a whole
 *   response at once) append to an output buffer that the caller takes with
 *   {@link ServerConnection.takeOutput}, one joined buffer per batch.
 * - Pipelining: each request gets an id; responses may be produced in any
 *   order but leave in request order (later ones are held until the earlier
 *   ones finish). At most `maxRequestsInFlight` requests are open at once;
 *   past that, parsing pauses.
 * - Their side (what the client sent) and our side (what we answer) are
 *   tracked apart: `theirState` says where the request stream is, each
 *   request's response slot says where its answer is.
 * - Errors: a framing error, a limit or a bad Host stops parsing for good,
 *   queues the right 4xx/5xx (after the responses that precede it) with
 *   `Connection: close`, and emits one `error` event. `mustClose` turns true
 *   once nothing more is to be written.
 *
 * The engine owns no socket and no timer; the `Date` header reads an injected
 * clock.
 *
 * @module
 */
import { asBuffer, concatBytes, toBytes, type BytesLike, EMPTY_BYTES } from "../../core/bytes";
import { LocalProtocolError, RemoteProtocolError } from "../../core/errors";
import type { FlatHeaders } from "../../core/headers";
import { httpDate } from "./date";
import { CB_ERROR, CB_OK, CB_PAUSE, ExecuteResult, LlhttpParser, type LlhttpHandler } from "./llhttp";
import { assertHeader, CONNECTION_CLOSE, CONNECTION_KEEP_ALIVE, connectionOptions, joinParts, nameIs, parseContentLength, type OutputParts } from "./serialize";
import { reasonPhrase } from "./status";

/** Default limit on the bytes of a request head: 64 KiB, as Tornado (Node and h11 use 16 KiB). */
export const DEFAULT_MAX_HEADER_BYTES = 64 * 1024;
/** Default limit on the request target: 8 KiB (RFC 9112 §3 asks for at least 8000 octets; nginx uses 8 KiB). */
export const DEFAULT_MAX_URL_LENGTH = 8 * 1024;
/** Default limit on a request body: 100 MiB, as Tornado's `max_body_size`. */
export const DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024;
/** Default bound on requests received but not yet answered (pipelining). */
export const DEFAULT_MAX_REQUESTS_IN_FLIGHT = 32;
/** The smallest head limit accepted: a request line and a Host header must fit. */
const MIN_HEADER_BYTES = 256;

/** Limits and behaviour of a {@link ServerConnection}. Every field is optional. */
export interface ServerConnectionOptions {
  /**
   * Largest request head (request line and header lines, and separately the
   * trailers). Larger heads are answered with 431.
   * @default 65536
   */
  maxHeaderBytes?: number;
  /**
   * Longest request target. Longer ones are answered with 414.
   * @default 8192
   */
  maxUrlLength?: number;
  /**
   * Largest request body. Larger bodies are answered with 413 (unless the
   * application raises the limit for that request when it sees its head).
   * @default 104857600
   */
  maxBodyBytes?: number;
  /**
   * Requests received but not yet answered, at most. Parsing pauses at the
   * limit and resumes as responses finish.
   * @default 32
   */
  maxRequestsInFlight?: number;
  /**
   * Add a `Date` header to responses that have none.
   * @default true
   */
  sendDate?: boolean;
  /**
   * Source of the current time for the `Date` header.
   * @default Date.now
   */
  now?: () => number;
}

/** A request head arrived. Its body follows as `data` events and an `end` event. */
export interface RequestEvent {
  readonly type: "request";
  /** Sequence number on this connection; responses are addressed by it. */
  readonly id: number;
  readonly method: string;
  /** The request target as sent (origin-form `/path?query`, absolute-form, `*`, or authority). */
  readonly target: string;
  readonly version: "1.0" | "1.1";
  /** Header lines as `[name, value, ...]`, names as sent, values trimmed. */
  readonly headers: FlatHeaders;
  /** True if the client allows the connection to stay open after this exchange. */
  readonly keepAlive: boolean;
  /** True for an Upgrade (with `Connection: upgrade`) or CONNECT request. */
  readonly upgrade: boolean;
  /** True if the client waits for `100 Continue` before sending the body. */
  readonly expectContinue: boolean;
  /** The `Expect` header as sent (repeated lines joined), or null. */
  readonly expect: string | null;
  /** The declared body length, or null when the body is chunked or absent. */
  readonly contentLength: number | null;
  /** True if the body is sent with chunked transfer coding. */
  readonly chunked: boolean;
}

/** A piece of a request body. */
export interface DataEvent {
  readonly type: "data";
  readonly id: number;
  readonly data: Uint8Array;
}

/** The request message is complete (with its trailers, if it had any). */
export interface EndEvent {
  readonly type: "end";
  readonly id: number;
  readonly trailers: FlatHeaders;
}

/** A `101` was sent: the connection now speaks another protocol. */
export interface UpgradeEvent {
  readonly type: "upgrade";
  readonly id: number;
  /** Bytes received after the request head, which belong to the new protocol. */
  readonly trailingData: Uint8Array;
}

/** The client broke the protocol. The answer (4xx/5xx) is already queued. */
export interface ErrorEvent {
  readonly type: "error";
  /** The request the error belongs to, if its head had been emitted; otherwise null. */
  readonly id: number | null;
  readonly error: RemoteProtocolError;
}

/** Nothing to report: give the engine more bytes. */
export interface NeedDataEvent {
  readonly type: "need-data";
}

/** Nothing to report until a response progresses or the connection closes. */
export interface PausedEvent {
  readonly type: "paused";
}

/** Everything {@link ServerConnection.nextEvent} returns. */
export type ServerEvent = RequestEvent | DataEvent | EndEvent | UpgradeEvent | ErrorEvent | NeedDataEvent | PausedEvent;

/** The shared `need-data` event. */
export const NEED_DATA: NeedDataEvent = Object.freeze({ type: "need-data" });
/** The shared `paused` event. */
export const PAUSED: PausedEvent = Object.freeze({ type: "paused" });

/** The head of a response. */
export interface ResponseHead {
  status: number;
  /** Defaults to the standard phrase for the status. */
  reason?: string;
  /** Header lines as `[name, value, ...]`. */
  headers?: FlatHeaders;
}

/** Where the request stream stands. */
export type TheirState =
  /** Between requests. */
  | "idle"
  /** Reading a request head. */
  | "head"
  /** Reading a request body. */
  | "body"
  /** Parsing is paused (requests in flight at the limit, an Upgrade or a body limit awaiting the application). */
  | "paused"
  /** No more requests will be read (the client or our side closes). */
  | "done"
  /** The client broke the protocol; nothing more is read. */
  | "error"
  /** A 101 was sent; the bytes belong to another protocol. */
  | "switched";

const EMPTY_HEADERS: FlatHeaders = Object.freeze([]) as unknown as FlatHeaders;
const ASCII = /^[\x00-\x7f]*$/;
/** The bytes between the request target and the version: " HTTP/". */
const PROTOCOL_PREFIX = Uint8Array.from([0x20, 0x48, 0x54, 0x54, 0x50, 0x2f]);
/** Status lines with the standard reasons, by status. */
const STANDARD_STATUS_LINES: string[] = [];
for (const code of [200, 201, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 413, 500, 503]) {
  STANDARD_STATUS_LINES[code] = `HTTP/1.1 ${code} ${reasonPhrase(code)}\r\n`;
}
/** Status lines by status code and reason, built once. */
const STATUS_LINES = new Map<string, string>();

function statusLine(status: number, reason: string): string {
  const key = `${status} ${reason}`;
  let line = STATUS_LINES.get(key);
  if (line === undefined) {
    line = `HTTP/1.1 ${key}\r\n`;
    if (STATUS_LINES.size < 256) STATUS_LINES.set(key, line);
  }
  return line;
}
/** Bytes of a chunk decoded to text at once for the spans that fall in it. */
const TEXT_WINDOW = 16 * 1024;

/**
 * The request fields that frame a message, found by their name's bytes as
 * llhttp reports it, so that names nobody reads are never decoded and
 * compared as strings.
 */
const enum Field {
  OTHER = 0,
  HOST = 1,
  CONNECTION = 2,
  EXPECT = 3,
  CONTENT_LENGTH = 4,
  TRANSFER_ENCODING = 5,
  /** The name came in more than one piece: classify the whole string. */
  SPLIT = 6,
}

interface FieldName {
  field: Field;
  lower: string;
  bytes: Uint8Array;
}

/** The framing names by length (each has its own length). */
const FIELD_BY_LENGTH: Array<FieldName | undefined> = [];
for (const [field, lower] of [
  [Field.HOST, "host"],
  [Field.CONNECTION, "connection"],
  [Field.EXPECT, "expect"],
  [Field.CONTENT_LENGTH, "content-length"],
  [Field.TRANSFER_ENCODING, "transfer-encoding"],
] as const) {
  FIELD_BY_LENGTH[lower.length] = { field, lower, bytes: Uint8Array.from(lower, (c) => c.charCodeAt(0)) };
}

/** Which framing field `chunk[start, start + length)` names, compared without ASCII case. */
function fieldOfBytes(chunk: Uint8Array, start: number, length: number): Field {
  const entry = FIELD_BY_LENGTH[length];
  if (entry === undefined) return Field.OTHER;
  const lower = entry.bytes;
  for (let i = 0; i < length; i++) {
    const c = chunk[start + i]!;
    const l = lower[i]!;
    // Equal, or an uppercase ASCII letter whose lowercase is `l`.
    if (c !== l && (c + 0x20 !== l || c < 0x41 || c > 0x5a)) return Field.OTHER;
  }
  return entry.field;
}

/** Where the check of a Host value's bytes stands. */
const enum HostScan {
  /** Visible ASCII so far. */
  VISIBLE = 0,
  /** Whitespace at the end so far (stripped, unless more follows). */
  SPACE = 1,
  /** A byte that no Host value may have. */
  BAD = 2,
}

/** {@link fieldOfBytes} for a name that came in pieces. */
function fieldOfName(name: string): Field {
  const entry = FIELD_BY_LENGTH[name.length];
  return entry !== undefined && nameIs(name, entry.lower) ? entry.field : Field.OTHER;
}

/** Which Connection line the engine adds to a head. */
const enum ConnectionLine {
  NONE,
  CLOSE,
  KEEP_ALIVE,
}

/** `HeadLines.added` when the engine added `Transfer-Encoding: chunked`. */
const ADDED_CHUNKED = -2;
/** Longer ASCII bodies are not kept with the last head (see `HeadLines.withBody`). */
const MAX_REMEMBERED_BODY = 512;

/**
 * A response head's status line and caller's header lines, checked, with
 * what those headers say about framing; and the last whole head built from
 * them. A connection keeps the last one: most responses on a connection
 * repeat the status and headers of the one before.
 */
interface HeadLines {
  readonly status: number;
  /** The caller gave a reason phrase (never reused: the line is built each time). */
  readonly reason: boolean;
  /** A copy of the caller's headers. */
  readonly headers: readonly string[];
  /** The status line and one line per header. */
  readonly text: string;
  readonly userLength: number;
  readonly userChunked: boolean;
  readonly userClose: boolean;
  readonly userConnection: boolean;
  readonly userDate: boolean;
  /** The last whole head (with the blank line), and what the engine added to `text` for it. */
  full: string | null;
  added: number;
  connection: ConnectionLine;
  date: string | null;
  /** The last short ASCII body sent in one piece with `full`, and the two joined. */
  body: string | null;
  withBody: string;
}

/** True if `b` holds the same names and values as `a`, in order. */
function sameHeaders(a: readonly string[], b: FlatHeaders): boolean {
  const n = a.length;
  if (b.length !== n) return false;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Checks the caller's headers and builds {@link HeadLines} for them. */
function headLines(status: number, reason: string | undefined, headers: FlatHeaders): HeadLines {
  let text = reason !== undefined ? statusLine(status, reason) : (STANDARD_STATUS_LINES[status] ?? statusLine(status, reasonPhrase(status)));
  let userLength = -1;
  let userChunked = false;
  let userClose = false;
  let userConnection = false;
  let userDate = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    assertHeader(name, value);
    switch (name.length) {
      case 4:
        if (nameIs(name, "date")) userDate = true;
        break;
      case 10:
        if (nameIs(name, "connection")) {
          userConnection = true;
          if ((connectionOptions(value) & CONNECTION_CLOSE) !== 0) userClose = true;
        }
        break;
      case 14:
        if (nameIs(name, "content-length")) {
          const n = parseContentLength(value);
          if (n < 0 || (userLength >= 0 && n !== userLength)) {
            throw new LocalProtocolError("ERR_INVALID_CONTENT_LENGTH", `Cannot send Content-Length ${JSON.stringify(value)}: it must be one non-negative integer`);
          }
          userLength = n;
        }
        break;
      case 17:
        if (nameIs(name, "transfer-encoding")) {
          if (value.trim().toLowerCase() !== "chunked") {
            throw new LocalProtocolError("ERR_INVALID_TRANSFER_ENCODING", `Cannot send Transfer-Encoding ${JSON.stringify(value)}: only chunked is supported`);
          }
          userChunked = true;
        }
        break;
    }
    text += `${name}: ${value}\r\n`;
  }
  return {
    status,
    reason: reason !== undefined,
    headers: headers.slice(),
    text,
    userLength,
    userChunked,
    userClose,
    userConnection,
    userDate,
    full: null,
    added: -1,
    connection: ConnectionLine.NONE,
    date: null,
    body: null,
    withBody: "",
  };
}

const enum Framing {
  NONE,
  LENGTH,
  CHUNKED,
  CLOSE,
}

const enum Block {
  NONE,
  IN_FLIGHT,
  UPGRADE,
  BODY_LIMIT,
}

/** Our side of one request: its response, and what we know of the request. */
interface Slot {
  readonly id: number;
  readonly isHead: boolean;
  readonly keepAlive: boolean;
  readonly upgrade: boolean;
  readonly http10: boolean;
  readonly expectContinue: boolean;
  continueSent: boolean;
  requestDone: boolean;
  headSent: boolean;
  finished: boolean;
  framing: Framing;
  remaining: number;
  closeAfter: boolean;
  /** The engine answered this request (an error); the application's writes are ignored. */
  engineOwned: boolean;
  /** Output held back until the responses before it finish. */
  parts: OutputParts | null;
  partsLength: number;
}

/** Maps an llhttp error name to our code and status. */
function llhttpError(name: string, reason: string, position: number): RemoteProtocolError {
  return new RemoteProtocolError(`ERR_${name}`, `Cannot parse the request: ${reason || name}`, { status: 400, position });
}

/**
 * One HTTP/1.1 server connection, with no I/O.
 *
 * @example
 * ```ts
 * const conn = new ServerConnection();
 * conn.receiveData(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
 * for (let ev = conn.nextEvent(); ev.type !== "need-data" && ev.type !== "paused"; ev = conn.nextEvent()) {
 *   if (ev.type === "request") conn.writeResponse(ev.id, { status: 200, headers: ["Content-Type", "text/plain"] }, "Hello, world");
 * }
 * socket.write(conn.takeOutput()!);
 * ```
 */
export class ServerConnection {
  readonly #maxHeaderBytes: number;
  readonly #maxUrlLength: number;
  readonly #defaultMaxBody: number;
  readonly #maxInFlight: number;
  readonly #sendDate: boolean;
  readonly #now: () => number;

  #parser: LlhttpParser | null;

  // Their side.
  #state: TheirState = "idle";
  #block: Block = Block.NONE;
  #pending: Uint8Array[] = [];
  #pendingOffset = 0;
  /** Bytes of input parsed in chunks already dropped from `#pending` (for error positions). */
  #consumed = 0;
  #eof = false;
  #chunk: Uint8Array = EMPTY_BYTES;
  #textChunk: Uint8Array = EMPTY_BYTES;
  #textWindow = "";
  #textBase = 0;
  #events: ServerEvent[] = [];
  #eventHead = 0;
  #nextId = 0;
  #error: RemoteProtocolError | null = null;
  #drainRequested = false;

  // The message being parsed.
  #url = "";
  /** The method of the request being parsed, read from llhttp once (at its target). */
  #method = "";
  #headers: FlatHeaders = [];
  #trailers: FlatHeaders | null = null;
  #field = "";
  #value = "";
  #inValue = false;
  /** Which framing field the name being read is ({@link Field}). */
  #fieldKind = Field.OTHER;
  // The framing fields of the head being parsed, noted as each is committed.
  #hosts = 0;
  /** Whether the last Host value is visible ASCII only. */
  #hostValid = true;
  /** {@link HostScan} of the Host value being read. */
  #hostScan = HostScan.VISIBLE;
  /** The last byte of the field value being read (0 if it is empty). */
  #valueLast = 0;
  #contentLength: string | null = null;
  #transferEncoding: string | null = null;
  #expect: string | null = null;
  #connectionOptions = 0;
  #headBytes = 0;
  #inHead = false;
  #inTrailers = false;
  #msgId = -1;
  #msgEmitted = false;
  #msgKeepAlive = false;
  #msgUpgrade = false;
  #declinedUpgrade = false;
  /** How many bytes of " HTTP/" after the target matched so far; -1 on a mismatch. */
  #protoMatched = PROTOCOL_PREFIX.length;
  #protoNeed = 0;
  #maxBody: number;
  #bodyBytes = 0;
  #declaredLength = -1;
  #held: Uint8Array | null = null;

  // Our side.
  #slots: Slot[] = [];
  #out: OutputParts = [];
  #outLength = 0;
  #trailing: Uint8Array | null = null;
  /** Requests from this id on were dropped by the engine (closing); writes to them are ignored. */
  #dropFrom = Infinity;
  /** The last response head's lines (see {@link HeadLines}); null before the first. */
  #lines: HeadLines | null = null;

  constructor(options: ServerConnectionOptions = {}) {
    this.#maxHeaderBytes = limit("maxHeaderBytes", options.maxHeaderBytes, DEFAULT_MAX_HEADER_BYTES, MIN_HEADER_BYTES);
    this.#maxUrlLength = limit("maxUrlLength", options.maxUrlLength, DEFAULT_MAX_URL_LENGTH, 1);
    this.#defaultMaxBody = limit("maxBodyBytes", options.maxBodyBytes, DEFAULT_MAX_BODY_BYTES, 0);
    this.#maxInFlight = limit("maxRequestsInFlight", options.maxRequestsInFlight, DEFAULT_MAX_REQUESTS_IN_FLIGHT, 1);
    this.#sendDate = options.sendDate ?? true;
    this.#now = options.now ?? Date.now;
    this.#maxBody = this.#defaultMaxBody;
    this.#parser = new LlhttpParser("request", this.#makeHandler());
  }

  // ---------------------------------------------------------------- their side

  /** Where the request stream stands. */
  get theirState(): TheirState {
    return this.#state;
  }

  /**
   * Feeds bytes from the client. The engine keeps a reference to `data`
   * until it is parsed; do not change it afterwards.
   */
  receiveData(data: Uint8Array): void {
    if (this.#state === "switched") {
      throw new LocalProtocolError("ERR_SWITCHED_PROTOCOL", "Cannot receive data: the connection switched protocols; read trailingData instead");
    }
    if (this.#eof) {
      throw new LocalProtocolError("ERR_AFTER_EOF", "Cannot receive data: receiveEof was already called");
    }
    if (data.byteLength === 0 || this.#state === "done" || this.#state === "error") return;
    this.#pending.push(data);
    if (this.#block === Block.NONE) this.#parsePending();
  }

  /** Tells the engine that the client closed its sending side. */
  receiveEof(): void {
    if (this.#eof || this.#state === "switched") return;
    this.#eof = true;
    if (this.#block === Block.NONE) this.#parsePending();
  }

  /**
   * The next event, or `need-data` / `paused` when none is queued. Parsing
   * of held-back input resumes here, so call it again after a response
   * finishes when the last answer was `paused`. `data` events are views of
   * the bytes given to `receiveData` (no copy).
   *
   * @example
   * ```ts
   * for (;;) {
   *   const ev = conn.nextEvent();
   *   if (ev.type === "need-data" || ev.type === "paused") break;
   *   handle(ev);
   * }
   * ```
   */
  nextEvent(): ServerEvent {
    if (this.#eventHead < this.#events.length) return this.#shiftEvent();
    while (this.#block === Block.NONE || this.#unblock()) {
      if (this.#pending.length > 0 || this.#eof) this.#parsePending();
      if (this.#eventHead < this.#events.length || this.#block === Block.NONE) break;
    }
    if (this.#eventHead < this.#events.length) return this.#shiftEvent();
    switch (this.#state) {
      case "idle":
      case "head":
      case "body":
        return this.#eof ? PAUSED : NEED_DATA;
      default:
        return PAUSED;
    }
  }

  /**
   * Raises or lowers the body limit of the request being read. Call it when
   * its `request` event arrives (as Tornado's `set_max_body_size` in
   * `prepare`); later calls only affect bytes not yet parsed.
   */
  setMaxBodyBytes(id: number, maxBodyBytes: number): void {
    if (!(maxBodyBytes >= 0)) throw new RangeError(`Cannot set maxBodyBytes to ${maxBodyBytes}: it must be a non-negative number or Infinity`);
    if (id === this.#msgId) this.#maxBody = maxBodyBytes;
  }

  /**
   * Stop reading requests once the one being read (if any) is complete, and
   * close after the last response. For graceful shutdown.
   */
  closeWhenDone(): void {
    if (this.#state === "idle" || (this.#state === "paused" && this.#block !== Block.UPGRADE && !this.#inHead && this.#msgId === -1)) {
      this.#state = "done";
      this.#pending = [];
      this.#block = Block.NONE;
    } else {
      this.#drainRequested = true;
    }
  }

  /** True when no request is open and no partial request has been received. */
  get isIdle(): boolean {
    return this.#slots.length === 0 && !this.#inHead && this.#msgId === -1 && this.#pending.length === 0 && this.#held === null;
  }

  /** Requests received whose responses have not been fully produced. */
  get requestsInFlight(): number {
    return this.#slots.length;
  }

  /**
   * True once the connection should be closed after writing what
   * `takeOutput` returns: a response with `Connection: close` went out, the
   * client is done or broke the protocol, and nothing more is owed.
   */
  get mustClose(): boolean {
    return this.#slots.length === 0 && (this.#state === "done" || this.#state === "error");
  }

  /** After a 101: the bytes that followed the request head. Null before. */
  get trailingData(): Uint8Array | null {
    return this.#trailing;
  }

  // ------------------------------------------------------------------ our side

  /** Bytes waiting in the output buffer. */
  get outputLength(): number {
    return this.#outLength;
  }

  /**
   * The output produced so far, joined into one buffer; null if there is
   * none. When it is a single body chunk, that is the caller's own array.
   */
  /**
   * The output so far as one latin1 string, when it is all text (heads and
   * ASCII bodies); null, taking nothing, when it holds bytes. For transports
   * with `writeLatin1`.
   */
  takeOutputText(): string | null {
    const out = this.#out;
    if (out.length === 0) return null;
    for (let i = 0; i < out.length; i++) if (typeof out[i] !== "string") return null;
    const text = out.length === 1 ? (out[0] as string) : out.join("");
    this.#out = [];
    this.#outLength = 0;
    return text;
  }

  takeOutput(): Uint8Array | null {
    if (this.#outLength === 0 && this.#out.length === 0) return null;
    const data = joinParts(this.#out, this.#outLength);
    this.#out = [];
    this.#outLength = 0;
    return data;
  }

  /**
   * Sends `100 Continue` for a request that expects it, once. Call it when
   * the application starts reading the body. Does nothing otherwise.
   */
  sendContinue(id: number): void {
    const slot = this.#slot(id, "send 100 Continue");
    if (slot === null || !slot.expectContinue || slot.continueSent || slot.headSent || slot.requestDone) return;
    slot.continueSent = true;
    this.#emit(slot, "HTTP/1.1 100 Continue\r\n\r\n");
  }

  /** Sends an informational (1xx, not 101) response such as `103 Early Hints`. */
  sendInformational(id: number, head: ResponseHead): void {
    if (head.status < 100 || head.status > 199 || head.status === 101) {
      throw new LocalProtocolError("ERR_INVALID_STATUS", `Cannot send status ${head.status} as informational: use 100, 102, 103 or another 1xx but 101`);
    }
    const slot = this.#slot(id, "send an informational response");
    if (slot === null) return;
    if (slot.headSent) {
      throw new LocalProtocolError("ERR_HEADERS_SENT", `Cannot send an informational response for request ${id}: the final response has started`);
    }
    if (slot.http10) return; // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client.
    let text = `HTTP/1.1 ${head.status} ${head.reason ?? reasonPhrase(head.status)}\r\n`;
    const h = head.headers ?? EMPTY_HEADERS;
    for (let i = 0; i < h.length; i += 2) {
      assertHeader(h[i]!, h[i + 1]!);
      text += `${h[i]}: ${h[i + 1]}\r\n`;
    }
    if (head.status === 100) slot.continueSent = true;
    this.#emit(slot, text + "\r\n");
  }

  /**
   * Starts the response to request `id`, with an optional first piece of body.
   * Without a `Content-Length` header the body is chunked (HTTP/1.1) or ends
   * with the connection (HTTP/1.0). Returns false if the connection dropped
   * this response (it is closing because of an error).
   */
  writeHeaders(id: number, head: ResponseHead, body?: BytesLike): boolean {
    const slot = this.#slot(id, "write the response head");
    if (slot === null) return false;
    if (slot.headSent) {
      throw new LocalProtocolError("ERR_HEADERS_SENT", `Cannot write headers for request ${id}: they were already sent`);
    }
    this.#writeHead(slot, head, -1);
    if (body !== undefined) this.#writeBody(slot, toBytes(body));
    return true;
  }

  /** Sends a piece of the response body. Returns false if the response was dropped. */
  write(id: number, chunk: BytesLike): boolean {
    const slot = this.#slot(id, "write the response body");
    if (slot === null) return false;
    if (!slot.headSent) {
      throw new LocalProtocolError("ERR_HEADERS_NOT_SENT", `Cannot write the body of request ${id}: writeHeaders has not been called`);
    }
    if (slot.finished) {
      throw new LocalProtocolError("ERR_RESPONSE_FINISHED", `Cannot write the body of request ${id}: the response is finished`);
    }
    this.#writeBody(slot, toBytes(chunk));
    return true;
  }

  /**
   * Ends the response to request `id`, with trailers if it is chunked.
   * Throws if a declared `Content-Length` was not reached (and the connection
   * will close, since the response is broken).
   */
  finish(id: number, trailers?: FlatHeaders): boolean {
    const slot = this.#slot(id, "finish the response");
    if (slot === null) return false;
    if (!slot.headSent) {
      throw new LocalProtocolError("ERR_HEADERS_NOT_SENT", `Cannot finish the response to request ${id}: writeHeaders has not been called`);
    }
    if (slot.finished) {
      throw new LocalProtocolError("ERR_RESPONSE_FINISHED", `Cannot finish the response to request ${id}: it is already finished`);
    }
    this.#finishSlot(slot, trailers);
    return true;
  }

  /**
   * Sends a whole response: head, body and end. Adds `Content-Length` when
   * the headers have neither it nor `Transfer-Encoding`.
   *
   * @example
   * ```ts
   * conn.writeResponse(ev.id, { status: 404, headers: ["Content-Type", "text/plain"] }, "Not found");
   * ```
   */
  writeResponse(id: number, head: ResponseHead, body?: BytesLike): boolean {
    const slot = this.#slot(id, "write the response");
    if (slot === null) return false;
    if (slot.headSent) {
      throw new LocalProtocolError("ERR_HEADERS_SENT", `Cannot write a response for request ${id}: its headers were already sent`);
    }
    if (typeof body === "string" && body.length <= 4096 && ASCII.test(body)) {
      // Short ASCII text: it stays a string, one part with the head.
      this.#writeHead(slot, head, body.length, body);
      this.#finishSlot(slot, undefined);
      return true;
    }
    const bytes = body === undefined ? EMPTY_BYTES : toBytes(body);
    this.#writeHead(slot, head, bytes.byteLength);
    if (bytes.byteLength > 0) this.#writeBody(slot, bytes);
    this.#finishSlot(slot, undefined);
    return true;
  }

  /**
   * Gives up on the connection: output already produced for earlier
   * responses stays, everything after is dropped, and `mustClose` is true.
   * For a handler that failed after its response started.
   */
  abort(): void {
    this.#dropFrom = Math.min(this.#dropFrom, this.#slots[0]?.id ?? this.#nextId);
    this.#slots = [];
    if (this.#state !== "error" && this.#state !== "switched") this.#state = "done";
    this.#pending = [];
    this.#block = Block.NONE;
  }

  /** Frees the parser. The connection cannot be used afterwards. */
  destroy(): void {
    this.#parser?.destroy();
    this.#parser = null;
    this.#lines = null;
    this.#pending = [];
    // Responses still open are dropped: later writes to them are ignored.
    this.#dropFrom = Math.min(this.#dropFrom, this.#slots[0]?.id ?? this.#nextId);
    this.#slots = [];
    if (this.#state !== "switched") this.#state = "done";
  }

  // ------------------------------------------------------------------ parsing

  #shiftEvent(): ServerEvent {
    const ev = this.#events[this.#eventHead++]!;
    if (this.#eventHead === this.#events.length) {
      this.#events.length = 0;
      this.#eventHead = 0;
    }
    return ev;
  }

  #push(ev: ServerEvent): void {
    this.#events.push(ev);
  }

  /** Whether parsing may continue; clears the block if so. */
  #unblock(): boolean {
    switch (this.#block) {
      case Block.IN_FLIGHT:
        if (this.#slots.length >= this.#maxInFlight) return false;
        break;
      case Block.BODY_LIMIT: {
        const held = this.#held;
        const total = this.#declaredLength >= 0 ? this.#declaredLength : this.#bodyBytes + (held?.byteLength ?? 0);
        this.#block = Block.NONE;
        if (total > this.#maxBody) {
          this.#fail(this.#bodyTooLarge());
          return false;
        }
        this.#held = null;
        this.#state = "body";
        if (held !== null) {
          this.#bodyBytes += held.byteLength;
          this.#push({ type: "data", id: this.#msgId, data: held });
        }
        return true;
      }
      case Block.UPGRADE:
        return false;
      default:
        break;
    }
    this.#block = Block.NONE;
    if (this.#state === "paused") this.#state = "idle";
    return true;
  }

  #parsePending(): void {
    const parser = this.#parser;
    if (parser === null) return;
    while (this.#pending.length > 0 && this.#block === Block.NONE && (this.#state === "idle" || this.#state === "head" || this.#state === "body")) {
      const chunk = this.#pending[0]!;
      const from = this.#pendingOffset;
      this.#chunk = chunk;
      if (this.#protoNeed > 0) this.#captureProto(from);
      const result = parser.execute(chunk, from);
      this.#chunk = EMPTY_BYTES;
      this.#textChunk = EMPTY_BYTES;
      this.#textWindow = "";
      if (result === ExecuteResult.OK) {
        this.#pending.shift();
        this.#pendingOffset = 0;
        this.#consumed += chunk.byteLength;
        continue;
      }
      if (result === ExecuteResult.PAUSED) parser.resume();
      if (result === ExecuteResult.ERROR) {
        if (this.#error === null) {
          this.#fail(llhttpError(parser.errorName, parser.errorReason, this.#consumed + parser.stoppedAt));
        }
        return;
      }
      if (result === ExecuteResult.UPGRADE && parser.errorName === "PAUSED_H2_UPGRADE") {
        this.#fail(new RemoteProtocolError("ERR_HTTP_VERSION", "Cannot serve HTTP/2: only HTTP/1.0 and HTTP/1.1 are supported", { status: 505 }));
        return;
      }
      // PAUSED or UPGRADE: keep what was not parsed (unless a callback dropped the input).
      if (this.#pending[0] !== chunk) {
        this.#pendingOffset = 0;
      } else if (parser.stoppedAt >= chunk.byteLength) {
        this.#pending.shift();
        this.#pendingOffset = 0;
        this.#consumed += chunk.byteLength;
      } else {
        this.#pendingOffset = parser.stoppedAt;
      }
      if (result === ExecuteResult.UPGRADE && this.#declinedUpgrade) {
        this.#declinedUpgrade = false;
        parser.resumeAfterUpgrade();
        continue;
      }
      if (result === ExecuteResult.UPGRADE) {
        this.#block = Block.UPGRADE;
        this.#state = "paused";
      }
    }
    if (this.#eof && this.#pending.length === 0 && this.#block === Block.NONE) this.#endOfInput();
  }

  #endOfInput(): void {
    if (this.#state !== "idle" && this.#state !== "head" && this.#state !== "body") return;
    if (this.#inHead || this.#msgId !== -1) {
      this.#fail(new RemoteProtocolError("ERR_INCOMPLETE_REQUEST", "Cannot parse the request: the client closed the connection in the middle of it", { status: 400 }));
    } else {
      this.#state = "done";
    }
  }

  #makeHandler(): LlhttpHandler {
    return {
      onMessageBegin: () => {
        this.#inHead = true;
        this.#state = "head";
        this.#url = "";
        this.#method = "";
        this.#headers = [];
        this.#trailers = null;
        this.#field = "";
        this.#value = "";
        this.#inValue = false;
        this.#fieldKind = Field.OTHER;
        this.#hosts = 0;
        this.#hostValid = true;
        this.#hostScan = HostScan.VISIBLE;
        this.#valueLast = 0;
        this.#contentLength = null;
        this.#transferEncoding = null;
        this.#expect = null;
        this.#connectionOptions = 0;
        this.#headBytes = 0;
        this.#inTrailers = false;
        this.#msgEmitted = false;
        this.#bodyBytes = 0;
        this.#declaredLength = -1;
        this.#maxBody = this.#defaultMaxBody;
        return CB_OK;
      },
      onUrl: (start, length) => {
        if (this.#url === "") {
          this.#method = this.#parser!.method;
          this.#headBytes += this.#method.length + 12;
        }
        this.#url += this.#text(start, length);
        this.#protoMatched = 0;
        this.#protoNeed = PROTOCOL_PREFIX.length;
        this.#captureProto(start + length);
        if (this.#url.length > this.#maxUrlLength) {
          return this.#failFromParser(
            new RemoteProtocolError("ERR_URL_TOO_LONG", `Cannot parse the request: its target is longer than ${this.#maxUrlLength} bytes`, { status: 414 }),
          );
        }
        return this.#countHead(length);
      },
      onStatus: () => CB_OK,
      onHeaderField: (start, length) => {
        if (this.#inValue) this.#commitHeader();
        const fresh = this.#field === "";
        this.#fieldKind = fresh ? fieldOfBytes(this.#chunk, start, length) : Field.SPLIT;
        this.#field += this.#text(start, length);
        return this.#countHead(length + (fresh ? 4 : 0));
      },
      onHeaderValue: (start, length) => {
        this.#inValue = true;
        if (length > 0) {
          this.#value += this.#text(start, length);
          const chunk = this.#chunk;
          this.#valueLast = chunk[start + length - 1]!;
          if (this.#fieldKind === Field.HOST) this.#scanHost(chunk, start, length);
        }
        return this.#countHead(length);
      },
      onHeadersComplete: (_status, upgrade, keepAlive) => this.#onHeadersComplete(upgrade, keepAlive),
      onBody: (start, length) => {
        const data = this.#chunk.subarray(start, start + length);
        if (this.#bodyBytes + length > this.#maxBody) {
          // Give the application one chance (its `request` event) to raise the limit.
          this.#held = data;
          this.#block = Block.BODY_LIMIT;
          this.#state = "paused";
          return CB_PAUSE;
        }
        this.#bodyBytes += length;
        this.#push({ type: "data", id: this.#msgId, data });
        return CB_OK;
      },
      onMessageComplete: () => this.#onMessageComplete(),
    };
  }

  /**
   * Checks that the bytes after the target are " HTTP/": llhttp also accepts
   * RTSP and ICE request lines, and undici's build does not report which.
   */
  #captureProto(from: number): void {
    const chunk = this.#chunk;
    const n = Math.min(this.#protoNeed, chunk.byteLength - from);
    if (n <= 0) return;
    let matched = this.#protoMatched;
    for (let k = 0; k < n && matched >= 0; k++) {
      matched = chunk[from + k] === PROTOCOL_PREFIX[matched] ? matched + 1 : -1;
    }
    this.#protoMatched = matched;
    this.#protoNeed -= n;
  }

  /**
   * The latin1 text of a span. A window of the chunk is decoded once and
   * spans are cut from it: one decode per read instead of one per header.
   */
  #text(start: number, length: number): string {
    const chunk = this.#chunk;
    let base = this.#textBase;
    if (this.#textChunk !== chunk || start < base || start + length > base + this.#textWindow.length) {
      base = start;
      this.#textWindow = asBuffer(chunk).toString("latin1", start, Math.min(chunk.byteLength, start + Math.max(length, TEXT_WINDOW)));
      this.#textChunk = chunk;
      this.#textBase = base;
    }
    return this.#textWindow.slice(start - base, start - base + length);
  }

  /**
   * Checks a piece of a Host value from its bytes (so that the value is
   * never decoded for the check): after the trailing whitespace that the
   * commit strips, every byte must be visible ASCII (0x21-0x7E).
   */
  #scanHost(chunk: Uint8Array, start: number, length: number): void {
    let state = this.#hostScan;
    for (let i = start; i < start + length && state !== HostScan.BAD; i++) {
      const b = chunk[i]!;
      if (b === 0x20 || b === 0x09) state = HostScan.SPACE;
      else if (b < 0x21 || b > 0x7e || state === HostScan.SPACE) state = HostScan.BAD;
    }
    this.#hostScan = state;
  }

  #countHead(n: number): number {
    this.#headBytes += n;
    if (this.#headBytes > this.#maxHeaderBytes) {
      const what = this.#inTrailers ? "trailers" : "head";
      return this.#failFromParser(
        new RemoteProtocolError("ERR_HEADERS_TOO_LARGE", `Cannot parse the request: its ${what} is larger than ${this.#maxHeaderBytes} bytes`, { status: 431 }),
      );
    }
    return CB_OK;
  }

  #commitHeader(): void {
    let value = this.#value;
    // RFC 9110 §5.5: a field value excludes leading and trailing whitespace
    // (llhttp skips the leading). The last byte is checked, not the string,
    // which stays undecoded until someone reads it.
    const last = this.#valueLast;
    if (last === 0x20 || last === 0x09) value = value.replace(/[ \t]+$/, "");
    this.#valueLast = 0;
    if (this.#inTrailers) {
      (this.#trailers ??= []).push(this.#field, value);
    } else {
      this.#headers.push(this.#field, value);
      const kind = this.#fieldKind;
      if (kind !== Field.OTHER) {
        if (kind === Field.SPLIT) this.#noteField(fieldOfName(this.#field), value, false);
        else this.#noteField(kind, value, true);
      }
    }
    this.#field = "";
    this.#value = "";
    this.#inValue = false;
    this.#fieldKind = Field.OTHER;
  }

  /** Keeps what a framing field of the head says, for {@link #onHeadersComplete}. */
  #noteField(kind: Field, value: string, fromBytes: boolean): void {
    switch (kind) {
      case Field.HOST:
        this.#hosts++;
        // A name in pieces was not known to be Host while its value came.
        this.#hostValid = fromBytes ? this.#hostScan !== HostScan.BAD : /^[\x21-\x7e]*$/.test(value);
        this.#hostScan = HostScan.VISIBLE;
        break;
      case Field.CONNECTION:
        this.#connectionOptions |= connectionOptions(value);
        break;
      case Field.EXPECT:
        this.#expect = this.#expect === null ? value : `${this.#expect}, ${value}`;
        break;
      case Field.CONTENT_LENGTH:
        this.#contentLength = value;
        break;
      case Field.TRANSFER_ENCODING:
        this.#transferEncoding = this.#transferEncoding === null ? value : `${this.#transferEncoding}, ${value}`;
        break;
    }
  }

  #failFromParser(error: RemoteProtocolError): number {
    this.#fail(error);
    return CB_ERROR;
  }

  #onHeadersComplete(upgrade: boolean, keepAlive: boolean): number {
    this.#protoNeed = 0;
    const parser = this.#parser!;
    if (this.#inValue || this.#field !== "") this.#commitHeader();
    const headers = this.#headers;
    const major = parser.httpMajor;
    const minor = parser.httpMinor;
    if (major !== 1 || (minor !== 0 && minor !== 1)) {
      return this.#failFromParser(
        new RemoteProtocolError("ERR_HTTP_VERSION", `Cannot serve HTTP/${major}.${minor}: only HTTP/1.0 and HTTP/1.1 are supported`, { status: 505 }),
      );
    }
    // The fields that frame the message, noted as they were committed.
    const hosts = this.#hosts;
    const contentLength = this.#contentLength;
    const transferEncoding = this.#transferEncoding;
    const expect = this.#expect;
    const connection = this.#connectionOptions;
    // RFC 9112 §3.2: a server MUST respond with 400 to an HTTP/1.1 request that
    // lacks a Host header, or to any request with more than one Host line or
    // an invalid Host value.
    if ((minor === 1 && hosts === 0) || hosts > 1) {
      const why = hosts === 0 ? "it has no Host header" : "it has more than one Host header";
      return this.#failFromParser(new RemoteProtocolError("ERR_BAD_HOST", `Cannot serve the request: ${why}`, { status: 400 }));
    }
    if (hosts === 1 && !this.#hostValid) {
      return this.#failFromParser(new RemoteProtocolError("ERR_BAD_HOST", "Cannot serve the request: its Host header is not a valid host", { status: 400 }));
    }
    let chunked = false;
    if (transferEncoding !== null) {
      // llhttp already rejected a request whose codings do not end in chunked
      // (RFC 9112 §6.3). RFC 9112 §6.1: a server that receives a transfer
      // coding it does not understand SHOULD respond with 501.
      const codings = transferEncoding.split(",").map((c) => c.trim().toLowerCase()).filter((c) => c !== "");
      if (codings[codings.length - 1] !== "chunked") {
        return this.#failFromParser(new RemoteProtocolError("ERR_INVALID_TRANSFER_ENCODING", "Cannot read the request body: chunked is not the final transfer coding", { status: 400 }));
      }
      if (codings.some((c) => c !== "chunked")) {
        return this.#failFromParser(
          new RemoteProtocolError("ERR_UNSUPPORTED_TRANSFER_CODING", `Cannot read the request body: transfer coding ${JSON.stringify(transferEncoding)} is not supported`, { status: 501 }),
        );
      }
      if (codings.length !== 1) {
        // RFC 9112 §7: a sender MUST NOT apply chunked more than once.
        return this.#failFromParser(
          new RemoteProtocolError("ERR_INVALID_TRANSFER_ENCODING", "Cannot read the request body: chunked is applied more than once", { status: 400 }),
        );
      }
      chunked = true;
    }
    // RFC 9112 §9.3: HTTP/1.0 persists only with keep-alive listed (llhttp
    // misses the token when a tab follows it).
    if (minor === 0 && (connection & CONNECTION_KEEP_ALIVE) !== 0) keepAlive = true;
    if ((connection & CONNECTION_CLOSE) !== 0) keepAlive = false;
    if (minor === 0 && transferEncoding !== null) keepAlive = false;
    if (this.#protoMatched !== PROTOCOL_PREFIX.length) {
      return this.#failFromParser(new RemoteProtocolError("ERR_INVALID_PROTOCOL", "Cannot serve the request: it is not HTTP", { status: 400 }));
    }
    const declared = contentLength === null ? -1 : parseContentLength(contentLength);
    const id = this.#nextId++;
    this.#msgId = id;
    this.#msgEmitted = true;
    this.#inHead = false;
    this.#headBytes = 0;
    this.#inTrailers = true;
    this.#declaredLength = declared;
    this.#msgKeepAlive = keepAlive;
    this.#msgUpgrade = upgrade;
    const expectContinue = minor === 1 && expect !== null && expect.toLowerCase() === "100-continue";
    const method = this.#method !== "" ? this.#method : parser.method;
    this.#slots.push({
      id,
      isHead: method === "HEAD",
      keepAlive,
      upgrade,
      http10: minor === 0,
      expectContinue,
      continueSent: false,
      requestDone: false,
      headSent: false,
      finished: false,
      framing: Framing.NONE,
      remaining: 0,
      closeAfter: false,
      engineOwned: false,
      parts: null,
      partsLength: 0,
    });
    this.#push({
      type: "request",
      id,
      method,
      target: this.#url,
      version: minor === 0 ? "1.0" : "1.1",
      headers,
      keepAlive,
      upgrade,
      expectContinue,
      expect,
      contentLength: declared >= 0 ? declared : null,
      chunked,
    });
    this.#state = "body";
    if (declared > 0 || chunked) {
      // Let the application see the head (and maybe change the limit) first.
      this.#block = Block.BODY_LIMIT;
      this.#state = "paused";
      return CB_PAUSE;
    }
    return CB_OK;
  }

  #onMessageComplete(): number {
    if (this.#inTrailers && (this.#inValue || this.#field !== "")) this.#commitHeader();
    const id = this.#msgId;
    const slot = this.#findSlot(id);
    if (slot !== null) slot.requestDone = true;
    this.#push({ type: "end", id, trailers: this.#trailers ?? EMPTY_HEADERS });
    this.#msgId = -1;
    this.#inHead = false;
    const keepAlive = this.#msgKeepAlive;
    if (this.#msgUpgrade) {
      if (slot === null) {
        this.#declinedUpgrade = true;
      } else {
        this.#state = "paused";
        return CB_OK;
      }
    }
    if (!keepAlive || this.#drainRequested) {
      this.#state = "done";
      this.#pending = [];
      return CB_PAUSE;
    }
    this.#state = "idle";
    if (this.#slots.length >= this.#maxInFlight) {
      this.#block = Block.IN_FLIGHT;
      this.#state = "paused";
      return CB_PAUSE;
    }
    return CB_OK;
  }

  #bodyTooLarge(): RemoteProtocolError {
    return new RemoteProtocolError("ERR_BODY_TOO_LARGE", `Cannot read the request body: it is larger than ${this.#maxBody} bytes`, { status: 413 });
  }

  /** Stops parsing for good and queues the answer to a broken request. */
  #fail(error: RemoteProtocolError): void {
    if (this.#error !== null) return;
    this.#error = error;
    this.#state = "error";
    this.#block = Block.NONE;
    this.#pending = [];
    this.#held = null;
    const emittedId = this.#msgEmitted && this.#msgId !== -1 ? this.#msgId : null;
    this.#dropFrom = Math.min(this.#dropFrom, emittedId ?? this.#nextId);
    this.#push({ type: "error", id: emittedId, error });
    let slot = emittedId === null ? null : this.#findSlot(emittedId);
    if (slot !== null && slot.headSent) {
      // The response already started: it cannot be completed, so the
      // connection closes once what precedes it is written.
      slot.closeAfter = true;
      slot.finished = true;
      slot.engineOwned = true;
      this.#advance();
      return;
    }
    if (slot === null) {
      slot = {
        id: this.#nextId++,
        isHead: false,
        keepAlive: false,
        upgrade: false,
        http10: false,
        expectContinue: false,
        continueSent: false,
        requestDone: true,
        headSent: false,
        finished: false,
        framing: Framing.NONE,
        remaining: 0,
        closeAfter: true,
        engineOwned: true,
        parts: null,
        partsLength: 0,
      };
      this.#slots.push(slot);
    }
    slot.engineOwned = true;
    const status = error.status ?? 400;
    const body = toBytes(`${reasonPhrase(status)}: ${error.message.replace(/^Cannot [^:]*: /, "")}\n`);
    const date = this.#sendDate ? `Date: ${httpDate(this.#now())}\r\n` : "";
    this.#emit(
      slot,
      `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.byteLength}\r\nConnection: close\r\n${date}\r\n`,
    );
    if (!slot.isHead) this.#emit(slot, body);
    slot.headSent = true;
    slot.finished = true;
    slot.closeAfter = true;
    this.#advance();
  }

  // ----------------------------------------------------------------- writing

  #findSlot(id: number): Slot | null {
    const slots = this.#slots;
    if (slots.length === 0) return null;
    const slot = slots[id - slots[0]!.id];
    return slot !== undefined && slot.id === id ? slot : null;
  }

  /** The slot to write to, null if the engine dropped it, or a throw if the id is wrong. */
  #slot(id: number, action: string): Slot | null {
    const slot = this.#findSlot(id);
    if (slot === null) {
      if (!Number.isInteger(id) || id < 0 || id >= this.#nextId) {
        throw new LocalProtocolError("ERR_UNKNOWN_REQUEST", `Cannot ${action}: there is no request ${id} on this connection`);
      }
      if (id >= this.#dropFrom) return null; // dropped while the connection closes
      throw new LocalProtocolError("ERR_RESPONSE_FINISHED", `Cannot ${action}: the response to request ${id} is already finished`);
    }
    if (slot.engineOwned) return null;
    return slot;
  }

  #emit(slot: Slot, part: string | Uint8Array): void {
    const n = typeof part === "string" ? part.length : part.byteLength;
    if (slot === this.#slots[0]) {
      this.#out.push(part);
      this.#outLength += n;
    } else {
      (slot.parts ??= []).push(part);
      slot.partsLength += n;
    }
  }

  /**
   * Builds and emits the response head; `knownLength` >= 0 for a whole body.
   * `asciiBody`, if given, is that whole body as ASCII text, emitted with the
   * head when the response has a body.
   */
  #writeHead(slot: Slot, head: ResponseHead, knownLength: number, asciiBody?: string): void {
    const status = head.status;
    if (!Number.isInteger(status) || status < 100 || status > 999) {
      throw new LocalProtocolError("ERR_INVALID_STATUS", `Cannot send status ${status}: it must be an integer from 100 to 999`);
    }
    if (status < 200 && status !== 101) {
      throw new LocalProtocolError("ERR_INVALID_STATUS", `Cannot send status ${status} as the final response: use sendInformational`);
    }
    if (status === 101 && slot.upgrade && !slot.requestDone) {
      throw new LocalProtocolError("ERR_REQUEST_NOT_DONE", `Cannot send 101 for request ${slot.id}: its body has not been received`);
    }
    if (status === 101 && !slot.upgrade) {
      throw new LocalProtocolError("ERR_NOT_UPGRADE", `Cannot send 101 for request ${slot.id}: it did not ask for an upgrade`);
    }
    if (head.reason !== undefined && /[\r\n]/.test(head.reason)) {
      throw new LocalProtocolError("ERR_INVALID_REASON", "Cannot send the response: its reason phrase contains CR or LF");
    }
    const headers = head.headers ?? EMPTY_HEADERS;
    // The status line and the caller's header lines, checked: the same as the
    // last head's when the status and headers are the same (most responses of
    // a connection), else built and remembered.
    let lines = this.#lines;
    if (lines === null || lines.status !== status || head.reason !== undefined || lines.reason || !sameHeaders(lines.headers, headers)) {
      lines = headLines(status, head.reason, headers);
      this.#lines = lines;
    }
    let userLength = lines.userLength;
    const userChunked = lines.userChunked;
    const userClose = lines.userClose;
    const userConnection = lines.userConnection;
    const userDate = lines.userDate;
    if (userLength >= 0 && userChunked) {
      throw new LocalProtocolError("ERR_INVALID_FRAMING", "Cannot send both Content-Length and Transfer-Encoding (RFC 9112 §6.2)");
    }

    // Framing (RFC 9112 §6.3). `added`: the Content-Length line added (its
    // value), ADDED_CHUNKED for Transfer-Encoding: chunked, or -1.
    let framing: Framing;
    let added = -1;
    const noBodyStatus = status === 204 || status === 304 || status === 101;
    if (status === 204 || status === 101) {
      // RFC 9110 §8.6: a server MUST NOT send Content-Length in a 1xx or 204.
      if (userLength >= 0 || userChunked) {
        throw new LocalProtocolError("ERR_INVALID_FRAMING", `Cannot send a ${status} response with Content-Length or Transfer-Encoding`);
      }
    }
    if (noBodyStatus || slot.isHead) {
      framing = Framing.NONE;
      if (knownLength > 0 && noBodyStatus) {
        throw new LocalProtocolError("ERR_BODY_NOT_ALLOWED", `Cannot send a body with a ${status} response`);
      }
      if (slot.isHead && userLength < 0 && !userChunked && knownLength >= 0 && !noBodyStatus) {
        // RFC 9110 §9.3.2: a HEAD response may carry the length a GET would have.
        added = knownLength;
      }
    } else if (userLength >= 0) {
      framing = Framing.LENGTH;
      if (knownLength >= 0 && knownLength !== userLength) {
        throw new LocalProtocolError(
          "ERR_CONTENT_LENGTH_MISMATCH",
          `Cannot send a body of ${knownLength} bytes: the response declared Content-Length ${userLength}`,
        );
      }
    } else if (knownLength >= 0 && !userChunked) {
      framing = Framing.LENGTH;
      userLength = knownLength;
      added = knownLength;
    } else if (!slot.http10) {
      framing = Framing.CHUNKED;
      if (!userChunked) added = ADDED_CHUNKED;
    } else {
      // An HTTP/1.0 client knows no chunked coding: the body ends with the connection.
      if (userChunked) {
        throw new LocalProtocolError("ERR_INVALID_FRAMING", "Cannot send a chunked response to an HTTP/1.0 client");
      }
      framing = Framing.CLOSE;
    }

    const last = this.#slots[this.#slots.length - 1] === slot;
    const closing = this.#state === "done" || this.#state === "error" || this.#drainRequested;
    const closeAfter =
      status !== 101 && (!slot.keepAlive || userClose || framing === Framing.CLOSE || (closing && last) || (slot.expectContinue && !slot.continueSent && !slot.requestDone));
    let connection = ConnectionLine.NONE;
    if (status !== 101) {
      if (closeAfter && !userClose) connection = ConnectionLine.CLOSE;
      else if (!closeAfter && slot.http10 && !userConnection) connection = ConnectionLine.KEEP_ALIVE;
    }
    const date = this.#sendDate && !userDate ? httpDate(this.#now()) : null;
    // The whole head: the last one again when the lines added are the same
    // (httpDate returns one string per second, so === compares it).
    if (lines.full === null || lines.added !== added || lines.connection !== connection || lines.date !== date) {
      let text = lines.text;
      if (added >= 0) text += `Content-Length: ${added}\r\n`;
      else if (added === ADDED_CHUNKED) text += "Transfer-Encoding: chunked\r\n";
      if (connection === ConnectionLine.CLOSE) text += "Connection: close\r\n";
      else if (connection === ConnectionLine.KEEP_ALIVE) text += "Connection: keep-alive\r\n";
      if (date !== null) text += `Date: ${date}\r\n`;
      lines.full = text + "\r\n";
      lines.added = added;
      lines.connection = connection;
      lines.date = date;
      lines.body = null;
      lines.withBody = "";
    }
    slot.framing = framing;
    slot.remaining = framing === Framing.LENGTH ? userLength : 0;
    slot.closeAfter = closeAfter;
    slot.headSent = true;
    if (asciiBody !== undefined && framing === Framing.LENGTH) {
      slot.remaining -= asciiBody.length;
      if (asciiBody.length > MAX_REMEMBERED_BODY) {
        this.#emit(slot, lines.full + asciiBody);
      } else {
        if (lines.body !== asciiBody) {
          lines.withBody = lines.full + asciiBody;
          lines.body = asciiBody;
        }
        this.#emit(slot, lines.withBody);
      }
    } else {
      this.#emit(slot, lines.full);
    }
    if (status === 101) this.#switchProtocols(slot);
  }

  #switchProtocols(slot: Slot): void {
    slot.finished = true;
    const rest: Uint8Array[] = [];
    for (let i = 0; i < this.#pending.length; i++) {
      rest.push(i === 0 && this.#pendingOffset > 0 ? this.#pending[0]!.subarray(this.#pendingOffset) : this.#pending[i]!);
    }
    this.#pending = [];
    this.#pendingOffset = 0;
    this.#block = Block.NONE;
    this.#state = "switched";
    this.#trailing = concatBytes(rest);
    this.#push({ type: "upgrade", id: slot.id, trailingData: this.#trailing });
    this.#advance();
  }

  #writeBody(slot: Slot, data: Uint8Array): void {
    const n = data.byteLength;
    if (n === 0) return;
    switch (slot.framing) {
      case Framing.NONE:
        if (slot.isHead) return; // RFC 9110 §9.3.2: the body of a HEAD response is never sent.
        throw new LocalProtocolError("ERR_BODY_NOT_ALLOWED", `Cannot write a body for request ${slot.id}: its response has no body`);
      case Framing.LENGTH:
        if (n > slot.remaining) {
          throw new LocalProtocolError(
            "ERR_CONTENT_LENGTH_EXCEEDED",
            `Cannot write ${n} bytes for request ${slot.id}: only ${slot.remaining} remain of the declared Content-Length`,
          );
        }
        slot.remaining -= n;
        this.#emit(slot, data);
        return;
      case Framing.CHUNKED:
        this.#emit(slot, `${n.toString(16)}\r\n`);
        this.#emit(slot, data);
        this.#emit(slot, "\r\n");
        return;
      case Framing.CLOSE:
        this.#emit(slot, data);
        return;
    }
  }

  #finishSlot(slot: Slot, trailers: FlatHeaders | undefined): void {
    if (slot.framing === Framing.CHUNKED) {
      let text = "0\r\n";
      if (trailers !== undefined) {
        for (let i = 0; i < trailers.length; i += 2) {
          assertHeader(trailers[i]!, trailers[i + 1]!);
          text += `${trailers[i]}: ${trailers[i + 1]}\r\n`;
        }
      }
      this.#emit(slot, text + "\r\n");
    }
    slot.finished = true;
    if (slot.framing === Framing.LENGTH && slot.remaining > 0) {
      const remaining = slot.remaining;
      slot.closeAfter = true;
      this.#advance();
      throw new LocalProtocolError(
        "ERR_CONTENT_LENGTH_SHORT",
        `Cannot finish the response to request ${slot.id}: ${remaining} bytes of the declared Content-Length were not written; the connection will close`,
      );
    }
    this.#advance();
  }

  /** Moves finished responses out and releases the output held behind them. */
  #advance(): void {
    const slots = this.#slots;
    while (slots.length > 0 && slots[0]!.finished) {
      const done = slots.shift()!;
      if (done.upgrade && this.#block === Block.UPGRADE && this.#state === "paused") {
        // A declined upgrade: carry on with HTTP (RFC 9110 §7.8).
        this.#parser?.resumeAfterUpgrade();
        this.#block = Block.NONE;
        this.#state = "idle";
      }
      if (done.closeAfter) {
        if (slots.length > 0) this.#dropFrom = Math.min(this.#dropFrom, slots[0]!.id);
        slots.length = 0;
        if (this.#state !== "error" && this.#state !== "switched") this.#state = "done";
        this.#pending = [];
        this.#block = Block.NONE;
        return;
      }
      const next = slots[0];
      if (next !== undefined && next.parts !== null) {
        for (const p of next.parts) this.#out.push(p);
        this.#outLength += next.partsLength;
        next.parts = null;
        next.partsLength = 0;
      }
    }
  }
}

function limit(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value)) throw new TypeError(`Cannot use ${name}: ${String(value)} is not a number`);
  if (value < min) throw new RangeError(`Cannot use ${name} ${value}: it must be at least ${min} (use Infinity for no limit)`);
  return value;
}
