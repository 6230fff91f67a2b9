/**
 * The WebSocket client, after Tornado's `websocket_connect` and
 * `WebSocketClientConnection`: connect over any transport, run the opening
 * handshake with the sans-I/O HTTP client, then hand the connection to the
 * shared {@link WebSocketSession} driver.
 *
 * How this works: the URL gives the host, port and path (`ws://` on port 80,
 * `wss://` on 443 with TLS through the transport's `tls` option). The
 * handshake request (`createClientHandshake`: key, version, subprotocols,
 * the permessage-deflate offer) goes out through a `ClientConnection`; its
 * events give the response. Anything but 101 rejects with a
 * {@link WebSocketHandshakeError} carrying the status, headers and body; a
 * 101 is checked (`checkServerHandshake`) and the bytes after its head go
 * to the session. `connectTimeout` bounds all of it on the injected clock.
 *
 * Messages are read with `readMessage()` (null once closed, as Tornado) or
 * by async iteration. Reading pushes back: once 64 KiB of messages wait
 * unread, the connection stops reading until the application catches up.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { systemClock, type Clock, type TimerHandle } from "../core/clock";
import { RemoteProtocolError } from "../core/errors";
import { flattenHeaders, HTTPHeaders, type HeadersInit } from "../core/headers";
import { TimeoutError } from "../core/locks";
import type { Logger } from "../core/log";
import type { Connection, TlsClientOptions, Transport } from "../core/transport";
import { ClientConnection, type ResponseEvent } from "../protocols/http1/client-connection";
import type { PerMessageDeflateClientOptions, PerMessageDeflateParams } from "../protocols/websocket/deflate";
import { checkServerHandshake, createClientHandshake } from "../protocols/websocket/handshake";
import { defaultTransport } from "../server/default-transport";
import {
  DEFAULT_WEBSOCKET_MAX_MESSAGE_SIZE,
  WebSocketClosedError,
  WebSocketSession,
  type CompressionTuning,
  type WebSocketSendOptions,
} from "../server/websocket-session";

export { WebSocketClosedError };

/** Default time to connect and complete the handshake: 20 s, as Tornado's `connect_timeout`. */
export const DEFAULT_WEBSOCKET_CONNECT_TIMEOUT = 20_000;
/** Unread message bytes above which the client stops reading: 64 KiB. */
const READ_HIGH_WATER_MARK = 64 * 1024;
/** Unread messages above which the client stops reading, however small. */
const READ_MAX_MESSAGES = 1024;

/** permessage-deflate as the client offers it, with the zlib tuning. */
export interface WebSocketClientCompressionOptions extends PerMessageDeflateClientOptions, CompressionTuning {}

/** Options of {@link websocketConnect}. Every field is optional. */
export interface WebSocketConnectOptions {
  /** Extra request headers (`Origin`, `Cookie`, `Authorization`...). */
  headers?: HeadersInit;
  /** Subprotocols to offer, most preferred first. @default [] */
  subprotocols?: readonly string[];
  /**
   * Offer permessage-deflate: `true` (or `{}`) for the defaults, or the
   * parameters to offer and the zlib tuning. (Tornado's `compression_options`.)
   * @default false
   */
  compression?: boolean | WebSocketClientCompressionOptions;
  /** Milliseconds to connect and complete the handshake. @default 20000 */
  connectTimeout?: number;
  /** Largest message accepted, in bytes (larger ones close with 1009). @default 10 MiB, as Tornado */
  maxMessageSize?: number;
  /** Milliseconds between pings; 0 for none. @default 0 */
  pingInterval?: number;
  /** Milliseconds after an unanswered ping before closing. @default max(3 * pingInterval, 30000) */
  pingTimeout?: number;
  /** Milliseconds allowed for the close handshake and the server's TCP close. @default 5000 */
  closeTimeout?: number;
  /** Source of time for the timeouts. @default systemClock */
  clock?: Clock;
  /** How to connect. @default defaultTransport() */
  transport?: Transport;
  /** TLS settings for `wss://` (CA, SNI name, certificate checks). */
  tls?: TlsClientOptions;
  /** Where errors are reported. @default consoleLogger() */
  logger?: Logger;
}

/**
 * The server did not accept the WebSocket: it answered `status` (not 101).
 *
 * @example
 * ```ts
 * try {
 *   await websocketConnect("ws://localhost:8888/nope");
 * } catch (e) {
 *   if (e instanceof WebSocketHandshakeError) console.log(e.status); // 404
 * }
 * ```
 */
export class WebSocketHandshakeError extends RemoteProtocolError {
  override name = "WebSocketHandshakeError";
  /** The HTTP status the server answered with (not 101). */
  declare readonly status: number;
  /** The response's headers. */
  readonly headers: HTTPHeaders;
  /** The response's body. */
  readonly body: Uint8Array;

  constructor(status: number, reason: string, headers: HTTPHeaders, body: Uint8Array) {
    super("ERR_WS_HANDSHAKE_STATUS", `Cannot open the WebSocket: the server answered ${status} ${reason}`.trimEnd(), { status });
    this.headers = headers;
    this.body = body;
  }
}

interface ParsedUrl {
  readonly secure: boolean;
  readonly host: string;
  readonly port: number;
  /** `Host` header value. */
  readonly authority: string;
  readonly target: string;
}

function parseUrl(input: string | URL): ParsedUrl {
  let url: URL;
  try {
    url = typeof input === "string" ? new URL(input) : input;
  } catch {
    throw new TypeError(`Cannot open a WebSocket to ${JSON.stringify(String(input))}: it is not a URL`);
  }
  const scheme = url.protocol;
  let secure: boolean;
  if (scheme === "ws:" || scheme === "http:") secure = false;
  else if (scheme === "wss:" || scheme === "https:") secure = true;
  else throw new TypeError(`Cannot open a WebSocket to ${url.href}: the scheme must be ws: or wss:`);
  if (url.hash !== "") throw new TypeError(`Cannot open a WebSocket to ${url.href}: a WebSocket URL has no fragment`);
  const hostname = url.hostname;
  const host = hostname.startsWith("[") && hostname.endsWith("]") ? hostname.slice(1, -1) : hostname;
  const port = url.port === "" ? (secure ? 443 : 80) : Number(url.port);
  return { secure, host, port, authority: url.host, target: `${url.pathname || "/"}${url.search}` };
}

function hasHeader(flat: readonly string[], lower: string): boolean {
  for (let i = 0; i < flat.length; i += 2) if (flat[i]!.toLowerCase() === lower) return true;
  return false;
}

/**
 * Opens a WebSocket (Tornado's `websocket_connect`). Resolves once the
 * handshake succeeded; rejects with a {@link WebSocketHandshakeError} if
 * the server answered something other than 101, a `RemoteProtocolError` if
 * its 101 was invalid, a `TimeoutError` after `connectTimeout`, or the
 * transport's error.
 *
 * @example
 * ```ts
 * const ws = await websocketConnect("ws://localhost:8888/ws/echo", { compression: true });
 * await ws.writeMessage("hello");
 * console.log(await ws.readMessage()); // "hello"
 * await ws.close();
 * ```
 */
export function websocketConnect(url: string | URL, options: WebSocketConnectOptions = {}): Promise<WebSocketClientConnection> {
  const where = parseUrl(url);
  const clock = options.clock ?? systemClock;
  const transport = options.transport ?? defaultTransport();
  const timeout = options.connectTimeout ?? DEFAULT_WEBSOCKET_CONNECT_TIMEOUT;
  if (typeof timeout !== "number" || Number.isNaN(timeout) || timeout <= 0) {
    throw new RangeError(`Cannot use connectTimeout ${String(timeout)}: it must be a positive number of milliseconds (Infinity for none)`);
  }
  const compressionOption = options.compression ?? false;
  const compression: WebSocketClientCompressionOptions | null =
    compressionOption === false ? null : compressionOption === true ? {} : compressionOption;
  const handshake = createClientHandshake({
    protocols: options.subprotocols ?? [],
    perMessageDeflate: compression === null ? false : compression,
  });
  const extra = flattenHeaders(options.headers);
  const headers = hasHeader(extra, "host") ? [...extra] : ["Host", where.authority, ...extra];
  headers.push(...handshake.headers);
  const http = new ClientConnection();
  http.sendRequest({ method: "GET", target: where.target, headers }, "");
  const request = http.takeOutput()!;
  const label = `${where.secure ? "wss" : "ws"}://${where.authority}${where.target}`;

  return new Promise<WebSocketClientConnection>((resolve, reject) => {
    let settled = false;
    let connection: Connection | null = null;
    let timer: TimerHandle | null = null;
    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      if (timer !== null) clock.clearTimeout(timer);
      http.destroy();
      connection?.destroy();
      reject(error);
    };
    if (Number.isFinite(timeout)) {
      timer = clock.setTimeout(() => {
        timer = null;
        fail(new TimeoutError(`Cannot open the WebSocket ${label}: no answer within ${timeout} ms`));
      }, timeout);
    }
    let response: ResponseEvent | null = null;
    const body: Uint8Array[] = [];
    const onEvents = (conn: Connection): void => {
      for (;;) {
        const event = http.nextEvent();
        switch (event.type) {
          case "need-data":
          case "paused":
            return;
          case "informational":
            break;
          case "response":
            response = event;
            break;
          case "data":
            body.push(event.data);
            break;
          case "end": {
            const r = response!;
            fail(new WebSocketHandshakeError(r.status, r.reason, HTTPHeaders.fromFlat(r.headers), Buffer.concat(body)));
            return;
          }
          case "error":
            if (response !== null && response.status !== 101) {
              const r: ResponseEvent = response;
              fail(new WebSocketHandshakeError(r.status, r.reason, HTTPHeaders.fromFlat(r.headers), Buffer.concat(body)));
            } else {
              fail(event.error);
            }
            return;
          case "upgrade": {
            const r = response!;
            let result;
            try {
              result = checkServerHandshake(handshake, { status: r.status, headers: r.headers });
            } catch (error) {
              fail(error);
              return;
            }
            settled = true;
            if (timer !== null) clock.clearTimeout(timer);
            http.destroy();
            try {
              resolve(new WebSocketClientConnection(TOKEN, conn, {
                options,
                clock,
                subprotocol: result.subprotocol,
                perMessageDeflate: result.perMessageDeflate,
                compression,
                headers: HTTPHeaders.fromFlat(r.headers),
                trailingData: event.trailingData,
              }));
            } catch (error) {
              conn.destroy();
              reject(error);
            }
            return;
          }
        }
      }
    };
    transport
      .connect({
        host: where.host,
        port: where.port,
        tls: where.secure ? { ...options.tls } : undefined,
      })
      .then(
        (conn) => {
          if (settled) {
            conn.destroy();
            return;
          }
          connection = conn;
          conn.setHandler({
            data: (chunk) => {
              if (settled) return;
              http.receiveData(chunk);
              onEvents(conn);
            },
            end: () => {
              if (settled) return;
              http.receiveEof();
              onEvents(conn);
              fail(new RemoteProtocolError("ERR_WS_HANDSHAKE_EOF", `Cannot open the WebSocket ${label}: the server closed the connection during the handshake`));
            },
            drain: () => {},
            close: (error) => {
              fail(error ?? new RemoteProtocolError("ERR_WS_HANDSHAKE_EOF", `Cannot open the WebSocket ${label}: the connection closed during the handshake`));
            },
          });
          conn.write(request);
        },
        (error: unknown) => fail(error),
      );
  });
}

const TOKEN = Symbol("WebSocketClientConnection");

interface ClientParts {
  readonly options: WebSocketConnectOptions;
  readonly clock: Clock;
  readonly subprotocol: string | null;
  readonly perMessageDeflate: PerMessageDeflateParams | null;
  readonly compression: WebSocketClientCompressionOptions | null;
  readonly headers: HTTPHeaders;
  readonly trailingData: Uint8Array;
}

/**
 * An open client WebSocket (Tornado's `WebSocketClientConnection`), made by
 * {@link websocketConnect}.
 *
 * @example
 * ```ts
 * const ws = await websocketConnect("ws://localhost:8888/chatsocket");
 * for await (const message of ws) console.log(message);
 * console.log("closed", ws.closeCode, ws.closeReason);
 * ```
 */
export class WebSocketClientConnection implements AsyncIterable<string | Uint8Array> {
  /** The subprotocol the server chose, or null. */
  readonly selectedSubprotocol: string | null;
  /** The headers of the server's 101 response. */
  readonly headers: HTTPHeaders;
  readonly #session: WebSocketSession;
  readonly #messages: Array<string | Uint8Array> = [];
  #messageHead = 0;
  #queuedBytes = 0;
  readonly #readers: Array<(message: string | Uint8Array | null) => void> = [];
  #spaceWaiter: (() => void) | null = null;
  #closed = false;

  /** @internal Made by {@link websocketConnect}. */
  constructor(token: symbol, connection: Connection, parts: ClientParts) {
    if (token !== TOKEN) throw new TypeError("Cannot construct a WebSocketClientConnection: use websocketConnect()");
    this.selectedSubprotocol = parts.subprotocol;
    this.headers = parts.headers;
    const options = parts.options;
    this.#session = new WebSocketSession(connection, {
      role: "client",
      trailingData: parts.trailingData,
      perMessageDeflate: parts.perMessageDeflate,
      compression: parts.compression ?? undefined,
      maxMessageSize: options.maxMessageSize ?? DEFAULT_WEBSOCKET_MAX_MESSAGE_SIZE,
      pingInterval: options.pingInterval,
      pingTimeout: options.pingTimeout,
      closeTimeout: options.closeTimeout,
      clock: parts.clock,
      logger: options.logger,
      handler: {
        onMessage: (message) => this.#onMessage(message),
        onClose: () => this.#onClose(),
      },
    });
    this.#session.start();
  }

  #onMessage(message: string | Uint8Array): void | Promise<void> {
    const reader = this.#readers.shift();
    if (reader !== undefined) {
      reader(message);
      return;
    }
    this.#messages.push(message);
    this.#queuedBytes += typeof message === "string" ? message.length : message.byteLength;
    if (this.#queuedBytes >= READ_HIGH_WATER_MARK || this.#messages.length - this.#messageHead >= READ_MAX_MESSAGES) {
      return new Promise<void>((resolve) => (this.#spaceWaiter = resolve));
    }
  }

  #onClose(): void {
    this.#closed = true;
    const readers = this.#readers.splice(0);
    for (const r of readers) r(null);
    this.#wake();
  }

  #wake(): void {
    const waiter = this.#spaceWaiter;
    if (waiter !== null) {
      this.#spaceWaiter = null;
      waiter();
    }
  }

  /**
   * The next message: a string for text, bytes for binary; null once the
   * connection is closed and every message was read (as Tornado).
   *
   * @example
   * ```ts
   * for (let m = await ws.readMessage(); m !== null; m = await ws.readMessage()) console.log(m);
   * ```
   */
  readMessage(): Promise<string | Uint8Array | null> {
    if (this.#messageHead < this.#messages.length) {
      const message = this.#messages[this.#messageHead]!;
      this.#messages[this.#messageHead++] = "";
      if (this.#messageHead === this.#messages.length) {
        this.#messages.length = 0;
        this.#messageHead = 0;
      }
      this.#queuedBytes -= typeof message === "string" ? message.length : message.byteLength;
      if (this.#queuedBytes < READ_HIGH_WATER_MARK && this.#messages.length - this.#messageHead < READ_MAX_MESSAGES) this.#wake();
      return Promise.resolve(message);
    }
    if (this.#closed) return Promise.resolve(null);
    return new Promise((resolve) => this.#readers.push(resolve));
  }

  /**
   * Iterates over the messages until the connection closes. Leaving the
   * loop early does not close the connection.
   *
   * @example
   * ```ts
   * for await (const message of ws) if (message === "bye") break;
   * ```
   */
  async *[Symbol.asyncIterator](): AsyncIterator<string | Uint8Array> {
    for (;;) {
      const message = await this.readMessage();
      if (message === null) return;
      yield message;
    }
  }

  /**
   * Sends a message: a string as text, bytes as binary (or as `binary`
   * says). Resolves once it is handed to the transport below its
   * high-water mark, or at once while the transport keeps up (see
   * `WebSocketSession.send`); rejects with {@link WebSocketClosedError} when the
   * connection is closing or closed.
   *
   * @example
   * ```ts
   * await ws.writeMessage(JSON.stringify({ body: "hi" }));
   * await ws.writeMessage(new Uint8Array([1, 2, 3]));
   * ```
   */
  writeMessage(message: string | Uint8Array, options: WebSocketSendOptions = {}): Promise<void> {
    return this.#session.send(message, options);
  }

  /**
   * Sends a ping (at most 125 bytes). Throws {@link WebSocketClosedError}
   * once the connection is closing.
   *
   * @example
   * ```ts
   * ws.ping("are you there?");
   * ```
   */
  ping(data?: string | Uint8Array): void {
    this.#session.ping(data);
  }

  /**
   * Starts the closing handshake (with `code` and `reason` if given) and
   * resolves once the connection is closed: the server closes TCP first,
   * or the client does after `closeTimeout`.
   *
   * @example
   * ```ts
   * await ws.close(1000, "done");
   * ```
   */
  close(code?: number, reason?: string): Promise<void> {
    return this.#session.close(code, reason);
  }

  /** Resolves once the connection is closed (never rejects). @example `await ws.closed;` */
  get closed(): Promise<void> {
    return this.#session.closed;
  }

  /**
   * The close code once closed (the server's, 1005 when its close frame
   * had none, the code we failed the connection with, or 1006); null while
   * open (Tornado's `close_code`).
   *
   * @example
   * ```ts
   * await ws.closed;
   * if (ws.closeCode !== 1000) console.warn("closed", ws.closeCode, ws.closeReason);
   * ```
   */
  get closeCode(): number | null {
    return this.#closed ? this.#session.closeCode : null;
  }

  /** The reason that came with the close code; null while open. @example `ws.closeReason // "bye"` */
  get closeReason(): string | null {
    return this.#closed ? this.#session.closeReason : null;
  }

  /** True once the connection is closing or closed (no more sends). @example `if (!ws.isClosing) ws.ping();` */
  get isClosing(): boolean {
    return this.#session.isClosing;
  }

  /** Bytes written and not yet delivered to the server. @example `ws.bufferedAmount // 0` */
  get bufferedAmount(): number {
    return this.#session.bufferedAmount;
  }
}
