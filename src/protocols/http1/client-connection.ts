/**
 * The sans-I/O HTTP/1.1 client connection: requests in, bytes out; bytes in,
 * response events out. The mirror of {@link ServerConnection}, for the HTTP
 * client, the WebSocket client's handshake and test harnesses.
 *
 * How this works: requests are written in order (pipelining allowed); each
 * gets an id, and responses are matched to requests in order (RFC 9112
 * §9.3.2). llhttp parses the responses; for a request whose response has no
 * body (HEAD, or a 2xx to CONNECT) the parser is told to skip it. A `1xx`
 * other than 101 is reported as `informational` and the same request waits
 * for its final response. A `101` ends HTTP on the connection: the bytes
 * after it are `trailingData`.
 *
 * @module
 */
import { asBuffer, concatBytes, toBytes, type BytesLike, EMPTY_BYTES } from "../../core/bytes";
import { LocalProtocolError, RemoteProtocolError } from "../../core/errors";
import type { FlatHeaders } from "../../core/headers";
import { CB_ERROR, CB_OK, CB_PAUSE, CB_SKIP_BODY, CB_UPGRADE, ExecuteResult, LlhttpParser, type LlhttpHandler } from "./llhttp";
import { assertHeader, CONNECTION_CLOSE, CONNECTION_KEEP_ALIVE, connectionOptions, joinParts, nameIs, parseContentLength, type OutputParts } from "./serialize";

/** Default limit on a response head: 64 KiB, as on the server side. */
export const DEFAULT_CLIENT_MAX_HEADER_BYTES = 64 * 1024;
/** Default limit on a response body: Infinity (the caller streams it; set a number to cap buffering). */
export const DEFAULT_CLIENT_MAX_BODY_BYTES = Infinity;

/** Limits of a {@link ClientConnection}. */
export interface ClientConnectionOptions {
  /** Largest response head. @default 65536 */
  maxHeaderBytes?: number;
  /** Largest response body. @default Infinity */
  maxBodyBytes?: number;
}

/** The head of a request to send. */
export interface RequestHead {
  method: string;
  /** `/path?query` (origin-form), an absolute URL (for proxies), `*`, or `host:port` for CONNECT. */
  target: string;
  /** Header lines as `[name, value, ...]`. HTTP/1.1 requires `Host`. */
  headers?: FlatHeaders;
}

/** A final response head. Its body follows as `data` events and an `end`. */
export interface ResponseEvent {
  readonly type: "response";
  readonly id: number;
  readonly status: number;
  readonly reason: string;
  readonly version: "1.0" | "1.1";
  readonly headers: FlatHeaders;
  /** True if the server allows another request on this connection. */
  readonly keepAlive: boolean;
}

/** A 1xx response other than 101 (the final one is still to come). */
export interface InformationalEvent {
  readonly type: "informational";
  readonly id: number;
  readonly status: number;
  readonly reason: string;
  readonly headers: FlatHeaders;
}

/** A piece of a response body. */
export interface ResponseDataEvent {
  readonly type: "data";
  readonly id: number;
  readonly data: Uint8Array;
}

/** The response is complete. */
export interface ResponseEndEvent {
  readonly type: "end";
  readonly id: number;
  readonly trailers: FlatHeaders;
}

/** A 101 (or 2xx to CONNECT) arrived: the connection now speaks another protocol. */
export interface ClientUpgradeEvent {
  readonly type: "upgrade";
  readonly id: number;
  readonly trailingData: Uint8Array;
}

/** The server broke the protocol; the connection must be closed. */
export interface ClientErrorEvent {
  readonly type: "error";
  readonly id: number | null;
  readonly error: RemoteProtocolError;
}

/** Everything {@link ClientConnection.nextEvent} returns. */
export type ClientEvent =
  | ResponseEvent
  | InformationalEvent
  | ResponseDataEvent
  | ResponseEndEvent
  | ClientUpgradeEvent
  | ClientErrorEvent
  | { readonly type: "need-data" }
  | { readonly type: "paused" };

const NEED_DATA = Object.freeze({ type: "need-data" as const });
const PAUSED = Object.freeze({ type: "paused" as const });
const EMPTY_HEADERS: FlatHeaders = Object.freeze([]) as unknown as FlatHeaders;

interface Outgoing {
  readonly id: number;
  readonly method: string;
  chunked: boolean;
  remaining: number;
  finished: boolean;
}

/**
 * One HTTP/1.1 client connection, with no I/O.
 *
 * @example
 * ```ts
 * const conn = new ClientConnection();
 * const id = conn.sendRequest({ method: "GET", target: "/", headers: ["Host", "example.com"] });
 * socket.write(conn.takeOutput()!);
 * // on data: conn.receiveData(chunk); then drain conn.nextEvent()
 * ```
 */
export class ClientConnection {
  readonly #maxHeaderBytes: number;
  readonly #maxBodyBytes: number;
  #parser: LlhttpParser | null;
  #out: OutputParts = [];
  #outLength = 0;
  #nextId = 0;
  #sending: Outgoing | null = null;
  /** Requests sent whose final response has not completed, oldest first. */
  #awaiting: Outgoing[] = [];
  #events: ClientEvent[] = [];
  #eventHead = 0;
  #pending: Uint8Array[] = [];
  #pendingOffset = 0;
  /** Bytes of input parsed in chunks already dropped from `#pending` (for error positions). */
  #consumed = 0;
  #chunk: Uint8Array = EMPTY_BYTES;
  #state: "open" | "switched" | "closed" | "error" = "open";
  #eof = false;
  #trailing: Uint8Array | null = null;
  // The response being parsed.
  #reason = "";
  #headers: FlatHeaders = [];
  #trailers: FlatHeaders | null = null;
  #field = "";
  #value = "";
  #inValue = false;
  #inTrailers = false;
  #headBytes = 0;
  #bodyBytes = 0;
  #final = false;
  #keepAlive = true;
  #mustClose = false;

  constructor(options: ClientConnectionOptions = {}) {
    this.#maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_CLIENT_MAX_HEADER_BYTES;
    this.#maxBodyBytes = options.maxBodyBytes ?? DEFAULT_CLIENT_MAX_BODY_BYTES;
    if (!(this.#maxHeaderBytes >= 64)) throw new RangeError(`Cannot use maxHeaderBytes ${this.#maxHeaderBytes}: it must be at least 64`);
    if (!(this.#maxBodyBytes >= 0)) throw new RangeError(`Cannot use maxBodyBytes ${this.#maxBodyBytes}: it must be at least 0`);
    this.#parser = new LlhttpParser("response", this.#makeHandler());
  }

  // ------------------------------------------------------------------ sending

  /**
   * Writes a request head, and the whole body if `body` is given (then
   * `Content-Length` is added when missing). Without `body`, stream it with
   * `write` and `finish` (chunked unless the headers declare a length).
   * Returns the request's id.
   */
  sendRequest(head: RequestHead, body?: BytesLike): number {
    if (this.#state !== "open" || this.#mustClose) {
      throw new LocalProtocolError("ERR_CONNECTION_CLOSING", `Cannot send a request: the connection is ${this.#mustClose ? "closing" : this.#state}`);
    }
    if (this.#sending !== null) {
      throw new LocalProtocolError("ERR_REQUEST_IN_PROGRESS", `Cannot send a request: request ${this.#sending.id} is still being written`);
    }
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(head.method)) {
      throw new LocalProtocolError("ERR_INVALID_METHOD", `Cannot send method ${JSON.stringify(head.method)}: it is not a token`);
    }
    if (head.target === "" || /[\s\x00-\x1f\x7f]/.test(head.target)) {
      throw new LocalProtocolError("ERR_INVALID_TARGET", `Cannot send target ${JSON.stringify(head.target)}: it is empty or has spaces or control characters`);
    }
    const headers = head.headers ?? EMPTY_HEADERS;
    let text = `${head.method} ${head.target} HTTP/1.1\r\n`;
    let length = -1;
    let chunked = false;
    let hasHost = false;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      const value = headers[i + 1]!;
      assertHeader(name, value);
      if (nameIs(name, "host")) hasHost = true;
      else if (nameIs(name, "content-length")) length = parseContentLength(value);
      else if (nameIs(name, "transfer-encoding")) chunked = value.trim().toLowerCase() === "chunked";
      text += `${name}: ${value}\r\n`;
    }
    if (!hasHost) {
      throw new LocalProtocolError("ERR_NO_HOST", "Cannot send an HTTP/1.1 request without a Host header (RFC 9112 §3.2)");
    }
    const bytes = body === undefined ? null : toBytes(body);
    if (bytes !== null && length < 0 && !chunked) {
      if (bytes.byteLength > 0 || !/^(GET|HEAD|DELETE|OPTIONS|TRACE)$/.test(head.method)) {
        text += `Content-Length: ${bytes.byteLength}\r\n`;
      }
      length = bytes.byteLength;
    } else if (bytes === null && length < 0 && !chunked) {
      text += "Transfer-Encoding: chunked\r\n";
      chunked = true;
    }
    const outgoing: Outgoing = { id: this.#nextId++, method: head.method.toUpperCase(), chunked, remaining: chunked ? 0 : Math.max(length, 0), finished: false };
    this.#push(text + "\r\n");
    this.#awaiting.push(outgoing);
    this.#sending = outgoing;
    if (bytes !== null) {
      this.write(bytes);
      this.finish();
    }
    return outgoing.id;
  }

  /** Sends a piece of the body of the request being written. */
  write(chunk: BytesLike): void {
    const req = this.#current("write a request body");
    const data = toBytes(chunk);
    if (data.byteLength === 0) return;
    if (req.chunked) {
      this.#push(`${data.byteLength.toString(16)}\r\n`);
      this.#push(data);
      this.#push("\r\n");
    } else {
      if (data.byteLength > req.remaining) {
        throw new LocalProtocolError("ERR_CONTENT_LENGTH_EXCEEDED", `Cannot write ${data.byteLength} bytes: only ${req.remaining} remain of the declared Content-Length`);
      }
      req.remaining -= data.byteLength;
      this.#push(data);
    }
  }

  /** Ends the request being written (with trailers if chunked). */
  finish(trailers?: FlatHeaders): void {
    const req = this.#current("finish a request");
    if (req.chunked) {
      let text = "0\r\n";
      for (let i = 0; trailers !== undefined && i < trailers.length; i += 2) {
        assertHeader(trailers[i]!, trailers[i + 1]!);
        text += `${trailers[i]}: ${trailers[i + 1]}\r\n`;
      }
      this.#push(text + "\r\n");
    } else if (req.remaining > 0) {
      throw new LocalProtocolError("ERR_CONTENT_LENGTH_SHORT", `Cannot finish the request: ${req.remaining} bytes of the declared Content-Length were not written`);
    }
    req.finished = true;
    this.#sending = null;
  }

  #current(action: string): Outgoing {
    const req = this.#sending;
    if (req === null) throw new LocalProtocolError("ERR_NO_REQUEST", `Cannot ${action}: no request is being written`);
    return req;
  }

  #push(part: string | Uint8Array): void {
    this.#out.push(part);
    this.#outLength += typeof part === "string" ? part.length : part.byteLength;
  }

  /** Bytes waiting to be sent. */
  get outputLength(): number {
    return this.#outLength;
  }

  /** The output so far as one buffer, or null if there is none. */
  takeOutput(): Uint8Array | null {
    if (this.#out.length === 0) return null;
    const data = joinParts(this.#out, this.#outLength);
    this.#out = [];
    this.#outLength = 0;
    return data;
  }

  // ---------------------------------------------------------------- receiving

  /** Feeds bytes from the server. Do not change `data` afterwards. */
  receiveData(data: Uint8Array): void {
    if (this.#state === "switched") {
      throw new LocalProtocolError("ERR_SWITCHED_PROTOCOL", "Cannot receive data: the connection switched protocols; read trailingData instead");
    }
    if (data.byteLength === 0 || this.#state !== "open") return;
    this.#pending.push(data);
    this.#parse();
  }

  /** The server closed its side: ends a close-delimited body, or fails a cut-short response. */
  receiveEof(): void {
    if (this.#eof || this.#state !== "open") return;
    this.#eof = true;
    this.#parse();
    if (this.#state !== "open" || this.#parser === null) return;
    const parser = this.#parser;
    if (parser.finish() === ExecuteResult.ERROR) {
      if (this.#state === "open") this.#fail(new RemoteProtocolError("ERR_INCOMPLETE_RESPONSE", "Cannot read the response: the server closed the connection in the middle of it"));
      return;
    }
    if (this.#state === "open") this.#state = "closed";
    if (this.#awaiting.length > 0) {
      this.#fail(new RemoteProtocolError("ERR_NO_RESPONSE", "Cannot read the response: the server closed the connection before answering"));
    }
  }

  /** The next event, or `need-data` / `paused`. */
  nextEvent(): ClientEvent {
    if (this.#eventHead < this.#events.length) {
      const ev = this.#events[this.#eventHead++]!;
      if (this.#eventHead === this.#events.length) {
        this.#events.length = 0;
        this.#eventHead = 0;
      }
      return ev;
    }
    return this.#state === "open" && !this.#eof ? NEED_DATA : PAUSED;
  }

  /** True when the connection cannot carry another request (the server said close, or it is over). */
  get mustClose(): boolean {
    return this.#mustClose || this.#state !== "open";
  }

  /** True when no request is waiting for its response. */
  get isIdle(): boolean {
    return this.#awaiting.length === 0 && this.#sending === null;
  }

  /** After an upgrade: the bytes that followed the response head. */
  get trailingData(): Uint8Array | null {
    return this.#trailing;
  }

  /** Frees the parser. */
  destroy(): void {
    this.#parser?.destroy();
    this.#parser = null;
    if (this.#state === "open") this.#state = "closed";
  }

  #parse(): void {
    const parser = this.#parser;
    if (parser === null) return;
    while (this.#pending.length > 0 && this.#state === "open") {
      const chunk = this.#pending[0]!;
      this.#chunk = chunk;
      const result = parser.execute(chunk, this.#pendingOffset);
      this.#chunk = EMPTY_BYTES;
      if (result === ExecuteResult.OK) {
        this.#pending.shift();
        this.#pendingOffset = 0;
        this.#consumed += chunk.byteLength;
        continue;
      }
      if (result === ExecuteResult.ERROR) {
        if (this.#state === "open") {
          const position = this.#consumed + parser.stoppedAt;
          this.#fail(new RemoteProtocolError(`ERR_${parser.errorName}`, `Cannot parse the response: ${parser.errorReason || parser.errorName}`, { position }));
        }
        return;
      }
      if (result === ExecuteResult.PAUSED) {
        parser.resume();
        this.#pendingOffset = parser.stoppedAt;
        if (this.#pendingOffset >= chunk.byteLength) {
          this.#pending.shift();
          this.#pendingOffset = 0;
          this.#consumed += chunk.byteLength;
        }
        continue;
      }
      // Upgrade: everything after the head belongs to the new protocol.
      const rest: Uint8Array[] = [chunk.subarray(parser.stoppedAt), ...this.#pending.slice(1)];
      this.#pending = [];
      this.#pendingOffset = 0;
      this.#trailing = concatBytes(rest);
      this.#state = "switched";
      const req = this.#awaiting.shift();
      this.#events.push({ type: "upgrade", id: req?.id ?? -1, trailingData: this.#trailing });
    }
  }

  #fail(error: RemoteProtocolError): void {
    this.#state = "error";
    this.#pending = [];
    this.#events.push({ type: "error", id: this.#awaiting[0]?.id ?? null, error });
  }

  #makeHandler(): LlhttpHandler {
    const count = (n: number): number => {
      this.#headBytes += n;
      if (this.#headBytes > this.#maxHeaderBytes) {
        this.#fail(new RemoteProtocolError("ERR_HEADERS_TOO_LARGE", `Cannot read the response: its head is larger than ${this.#maxHeaderBytes} bytes`));
        return CB_ERROR;
      }
      return CB_OK;
    };
    return {
      onMessageBegin: () => {
        if (this.#awaiting.length === 0) {
          this.#fail(new RemoteProtocolError("ERR_UNEXPECTED_RESPONSE", "Cannot read the response: the server answered a request that was not sent"));
          return CB_ERROR;
        }
        this.#reason = "";
        this.#headers = [];
        this.#trailers = null;
        this.#field = "";
        this.#value = "";
        this.#inValue = false;
        this.#inTrailers = false;
        this.#headBytes = 0;
        this.#bodyBytes = 0;
        return CB_OK;
      },
      onUrl: () => CB_OK,
      onStatus: (start, length) => {
        this.#reason += asBuffer(this.#chunk).toString("latin1", start, start + length);
        return count(length);
      },
      onHeaderField: (start, length) => {
        if (this.#inValue) this.#commit();
        this.#field += asBuffer(this.#chunk).toString("latin1", start, start + length);
        return count(length + 4);
      },
      onHeaderValue: (start, length) => {
        this.#inValue = true;
        this.#value += asBuffer(this.#chunk).toString("latin1", start, start + length);
        return count(length);
      },
      onHeadersComplete: (status, upgrade, keepAlive) => {
        if (this.#inValue || this.#field !== "") this.#commit();
        this.#inTrailers = true;
        this.#headBytes = 0;
        const parser = this.#parser!;
        const req = this.#awaiting[0]!;
        const version = parser.httpMinor === 0 ? "1.0" : "1.1";
        if (parser.httpMajor !== 1) {
          this.#fail(new RemoteProtocolError("ERR_HTTP_VERSION", `Cannot read the response: HTTP/${parser.httpMajor}.${parser.httpMinor} is not HTTP/1.x`));
          return CB_ERROR;
        }
        if (status >= 100 && status < 200 && status !== 101) {
          this.#final = false;
          this.#events.push({ type: "informational", id: req.id, status, reason: this.#reason, headers: this.#headers });
          return CB_OK;
        }
        this.#final = true;
        // llhttp's flag counts a response without a length as read until the
        // close; a response to HEAD has no body whatever it declares, so its
        // persistence is the Connection header's and the version's alone
        // (RFC 9112 §9.3).
        if (req.method === "HEAD") keepAlive = persistent(this.#headers, parser.httpMinor);
        this.#keepAlive = keepAlive;
        if (!keepAlive) this.#mustClose = true;
        this.#events.push({ type: "response", id: req.id, status, reason: this.#reason, version, headers: this.#headers, keepAlive });
        if (status === 101 || (req.method === "CONNECT" && status >= 200 && status < 300)) {
          return upgrade ? CB_OK : CB_UPGRADE;
        }
        // RFC 9110 §9.3.2: a response to HEAD has no body, whatever it declares.
        if (req.method === "HEAD") return CB_SKIP_BODY;
        return CB_OK;
      },
      onBody: (start, length) => {
        this.#bodyBytes += length;
        if (this.#bodyBytes > this.#maxBodyBytes) {
          this.#fail(new RemoteProtocolError("ERR_BODY_TOO_LARGE", `Cannot read the response: its body is larger than ${this.#maxBodyBytes} bytes`));
          return CB_ERROR;
        }
        this.#events.push({ type: "data", id: this.#awaiting[0]!.id, data: this.#chunk.subarray(start, start + length) });
        return CB_OK;
      },
      onMessageComplete: () => {
        if (this.#inTrailers && (this.#inValue || this.#field !== "")) this.#commit();
        if (!this.#final) return CB_OK; // a 1xx: the final response is still to come
        const req = this.#awaiting[0]!;
        const status = this.#parser!.statusCode;
        if (status === 101 || (req.method === "CONNECT" && status >= 200 && status < 300)) {
          // llhttp stops with PAUSED_UPGRADE next; the upgrade event is queued there.
          return CB_OK;
        }
        this.#awaiting.shift();
        this.#events.push({ type: "end", id: req.id, trailers: this.#trailers ?? EMPTY_HEADERS });
        if (this.#keepAlive) return CB_OK;
        // The server closes after this response: nothing after it is HTTP.
        this.#state = "closed";
        return CB_PAUSE;
      },
    };
  }

  #commit(): void {
    let value = this.#value;
    const last = value.charCodeAt(value.length - 1);
    if (last === 0x20 || last === 0x09) value = value.trimEnd();
    (this.#inTrailers ? (this.#trailers ??= []) : this.#headers).push(this.#field, value);
    this.#field = "";
    this.#value = "";
    this.#inValue = false;
  }
}

/**
 * RFC 9112 §9.3: whether a connection persists after a message, from its
 * Connection header and version: HTTP/1.1 unless `close` is listed, HTTP/1.0
 * only if `keep-alive` is.
 */
function persistent(headers: FlatHeaders, minor: number): boolean {
  let options = 0;
  for (let i = 0; i < headers.length; i += 2) {
    if (nameIs(headers[i]!, "connection")) options |= connectionOptions(headers[i + 1]!);
  }
  return (options & CONNECTION_CLOSE) === 0 && (minor === 1 || (options & CONNECTION_KEEP_ALIVE) !== 0);
}
