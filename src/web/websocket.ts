/**
 * `WebSocketHandler`, after `tornado.websocket.WebSocketHandler`: a
 * {@link RequestHandler} whose `get` performs the opening handshake and then
 * speaks WebSocket on the connection.
 *
 * How a connection runs: `get` checks the request (400 unless it asks for
 * a WebSocket upgrade, 403 when `checkOrigin` refuses the `Origin`, 400,
 * 405 or 426 as `serverHandshake` decides), negotiates the subprotocol
 * (`selectSubprotocol`) and permessage-deflate (`getCompressionOptions`),
 * answers `101 Switching Protocols` and takes the connection from the HTTP
 * server (`detach`). A {@link WebSocketSession} then runs it: `open` is
 * called with the route's arguments (messages wait until an async `open`
 * settles), then `onMessage` for each message (an async `onMessage` holds
 * back the next one, as Tornado awaits it), `onPing`/`onPong`, and
 * `onClose(code, reason)` once the connection is closed (`closeCode` and
 * `closeReason` are set too, as Tornado's `close_code`/`close_reason`). An
 * error thrown by `open` or `onMessage` is logged and closes the
 * connection with 1011 (but not `onMessage`'s promise rejected with
 * `WebSocketClosedError` because this connection is closing: an echo may
 * return `writeMessage`'s promise as is); the server goes on serving. When
 * the server shuts down gracefully, open WebSockets are closed with 1001.
 *
 * Settings (application settings, as Tornado's, but in milliseconds):
 * `websocketPingInterval`, `websocketPingTimeout`, `websocketMaxMessageSize`;
 * `websocketCloseTimeout` (Tornado's fixed 5 s); `clock` (the timers'
 * clock; tests pass a `VirtualClock`).
 *
 * @module
 */
import { systemClock, type Clock } from "../core";
import { GOING_AWAY, INTERNAL_ERROR, isWebSocketUpgrade, serverHandshake, type PerMessageDeflateServerOptions } from "../protocols/websocket";
import { DEFAULT_WEBSOCKET_MAX_MESSAGE_SIZE, WebSocketClosedError, WebSocketSession, type CompressionTuning, type WebSocketSessionHandler } from "../server";
import { RequestHandler } from "./request-handler";

export { WebSocketClosedError, DEFAULT_WEBSOCKET_MAX_MESSAGE_SIZE };

/**
 * What {@link WebSocketHandler.getCompressionOptions} returns to accept
 * permessage-deflate: what the server accepts and imposes (RFC 7692
 * parameters) and the zlib tuning. `{}` accepts any offer with defaults.
 */
export interface WebSocketCompressionOptions extends PerMessageDeflateServerOptions, CompressionTuning {}

/** What {@link WebSocketHandler.writeMessage} accepts: text, bytes, or an object sent as JSON text. */
export type WebSocketMessage = string | Uint8Array | Record<string, unknown> | unknown[];

/** Options of {@link WebSocketHandler.writeMessage}. */
export interface WriteMessageOptions {
  /** Send as a binary message. @default true for bytes, false otherwise */
  binary?: boolean;
}

/** `openArgs` of a route without groups: one shared empty list. */
const NO_ARGS: ReadonlyArray<string | undefined> = Object.freeze([]);

function isClock(value: unknown): value is Clock {
  return typeof value === "object" && value !== null && typeof (value as Clock).setTimeout === "function" && typeof (value as Clock).now === "function";
}

function numberSetting(name: string, value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || Number.isNaN(value) || value < 0) {
    throw new RangeError(`Cannot use the ${name} setting ${String(value)}: it must be a non-negative number`);
  }
  return value;
}

/**
 * The values of a request header (lower-case `name`), from the flat list:
 * reading the handshake's headers this way builds no name index, which the
 * request would keep for as long as the connection is open.
 */
function headerValues(flat: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const n = flat[i]!;
    if (n.length === name.length && n.toLowerCase() === name) out.push(flat[i + 1]!);
  }
  return out;
}

/** A request header's values joined with `", "` (as `HTTPHeaders.get`), or undefined. */
function headerValue(flat: readonly string[], name: string): string | undefined {
  const values = headerValues(flat, name);
  return values.length === 0 ? undefined : values.join(", ");
}

/** Tornado's `json_encode`: JSON with `</` escaped, so that it can sit in a `<script>`. */
function jsonEncode(value: unknown): string {
  return JSON.stringify(value).replace(/<\//g, "<\\/");
}

/**
 * The host part (`netloc`) of an origin, lower-cased: `https://Example.com:8080/x` gives `example.com:8080`.
 */
function originNetloc(origin: string): string {
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/.exec(origin);
  return m === null ? "" : m[1]!.toLowerCase();
}

/**
 * Base class of WebSocket handlers (Tornado's `WebSocketHandler`). Override
 * `open`, `onMessage` and `onClose`; send with `writeMessage`.
 *
 * @example
 * ```ts
 * class EchoWebSocket extends WebSocketHandler {
 *   override open() { console.log("WebSocket opened"); }
 *   override async onMessage(message: string | Uint8Array) {
 *     await this.writeMessage(typeof message === "string" ? `You said: ${message}` : message);
 *   }
 *   override onClose(code: number, reason: string) { console.log("WebSocket closed", code, reason); }
 * }
 * new Application([["/websocket", EchoWebSocket]]);
 * ```
 */
export class WebSocketHandler extends RequestHandler {
  /**
   * Why the connection closed, once it has (Tornado's `close_code`): the
   * peer's close code (1005 when its close frame had none), the code we
   * failed the connection with when the peer broke the protocol, or 1006
   * when no close frame came. Null while open.
   */
  closeCode: number | null = null;
  /** The reason that came with `closeCode` ("" when none); null while open. */
  closeReason: string | null = null;
  /** The subprotocol chosen in the handshake, if any. */
  selectedSubprotocol: string | null = null;
  /** The route's arguments, as given to `open` (Tornado's `open_args`). */
  openArgs: ReadonlyArray<string | undefined> = NO_ARGS;
  #session: WebSocketSession | null = null;

  /**
   * What the session and the server call: the session's handler and the
   * detach hooks in one small object whose prototype methods forward to
   * the WebSocketHandler (no closure per callback and connection).
   */
  static readonly #Events = class implements WebSocketSessionHandler {
    readonly #handler: WebSocketHandler;

    constructor(handler: WebSocketHandler) {
      this.#handler = handler;
    }

    onMessage(message: string | Uint8Array): void | Promise<void> {
      return this.#handler.onMessage(message);
    }

    onPing(data: Uint8Array): void {
      this.#handler.onPing(data);
    }

    onPong(data: Uint8Array): void {
      this.#handler.onPong(data);
    }

    onClose(code: number, reason: string): void {
      const handler = this.#handler;
      handler.closeCode = code;
      handler.closeReason = reason;
      // Detached by now: the request's connection is the server's record of it.
      handler.request.connection.release?.();
      handler.onClose(code, reason);
    }

    /** The server shuts down gracefully: close with 1001. */
    onShutdown(): Promise<void> | undefined {
      return this.#handler.#session?.close(GOING_AWAY, "Going Away");
    }
  };

  /**
   * Performs the opening handshake and starts the connection. Not meant to
   * be overridden; use `open` (and `prepare` for checks before the
   * handshake: raising an `HTTPError` there answers with that status).
   *
   * @example
   * ```ts
   * // GET /ws/(.*) with "Upgrade: websocket": 101, then open(group)
   * ```
   */
  get(...args: Array<string | undefined>): void {
    this.openArgs = args.length === 0 ? NO_ARGS : args;
    const request = this.request;
    const headers = request.headers.toFlat();
    if (!isWebSocketUpgrade(headers)) {
      this.#refuse(400, 'Can "Upgrade" only to "WebSocket".');
      return;
    }
    const connectionTokens = headerValues(headers, "connection").flatMap((v) => v.split(",")).map((t) => t.trim().toLowerCase());
    if (!connectionTokens.includes("upgrade")) {
      this.#refuse(400, '"Connection" must be "Upgrade".');
      return;
    }
    // When there is no Origin, the client is not a browser: no cross-site risk.
    const origin = headerValue(headers, "origin") ?? headerValue(headers, "sec-websocket-origin");
    if (origin !== undefined && !this.checkOrigin(origin)) {
      this.#refuse(403, "Cross origin websockets not allowed");
      return;
    }
    const compression = this.getCompressionOptions();
    const result = serverHandshake(
      { method: request.method, httpVersion: request.version, headers },
      {
        selectSubprotocol: (offered) => this.selectSubprotocol(offered),
        perMessageDeflate: compression === null ? false : compression,
      },
    );
    if (!result.ok) {
      for (let i = 0; i + 1 < result.headers.length; i += 2) this.setHeader(result.headers[i]!, result.headers[i + 1]!);
      this.#refuse(result.status, result.error.message);
      return;
    }
    this.selectedSubprotocol = result.subprotocol;

    // The 101 goes out through finish(), as Tornado does it: headers set by
    // setDefaultHeaders and prepare go with it, and the request is logged.
    this.setStatus(101);
    for (let i = 0; i + 1 < result.headers.length; i += 2) this.setHeader(result.headers[i]!, result.headers[i + 1]!);
    void this.finish();
    // The 101 is out: let its headers go (the handler lives as long as the
    // connection). The status stays 101; the headers are the defaults again.
    this.clear();
    this.setStatus(101);
    const events = new WebSocketHandler.#Events(this);
    const { connection, trailingData } = request.connection.detach(events);
    const settings = this.settings;
    const clock = isClock(settings.clock) ? settings.clock : systemClock;
    let session: WebSocketSession;
    try {
      session = new WebSocketSession(connection, {
        role: "server",
        trailingData,
        perMessageDeflate: result.perMessageDeflate,
        compression: compression ?? undefined,
        maxMessageSize: this.maxMessageSize,
        pingInterval: this.pingInterval,
        pingTimeout: this.pingTimeout,
        closeTimeout: numberSetting("websocketCloseTimeout", settings.websocketCloseTimeout),
        clock,
        logger: this.application.logger,
        handler: events,
      });
    } catch (err) {
      request.connection.release?.();
      connection.destroy();
      throw err;
    }
    this.#session = session;
    let opened: unknown;
    try {
      opened = this.open(...args);
    } catch (err) {
      this.logException(err);
      session.start();
      void session.close(INTERNAL_ERROR);
      return;
    }
    session.start(opened);
  }

  #refuse(status: number, message: string): void {
    this.setStatus(status);
    this.application.logger.debug(message);
    void this.finish(message);
  }

  // ------------------------------------------------------------------ hooks

  /**
   * Called when the connection is open, with the route's groups (async
   * allowed: messages wait for it). Throwing closes with 1011.
   *
   * @example
   * ```ts
   * override async open(room: string) { this.room = await rooms.join(room, this); }
   * ```
   */
  open(...args: Array<string | undefined>): void | Promise<void> {}

  /**
   * Called for each message: a string for text, bytes for binary. May be
   * async: the next message waits until it settles. Throwing closes with
   * 1011 (a rejection with `WebSocketClosedError` while this connection is
   * closing does not). Must be overridden (as in Tornado).
   *
   * @example
   * ```ts
   * override onMessage(message: string | Uint8Array) { void this.writeMessage(message); }
   * ```
   */
  onMessage(message: string | Uint8Array): void | Promise<void> {
    throw new Error(`Cannot handle a WebSocket message: ${this.constructor.name} does not override onMessage`);
  }

  /**
   * Called for each ping (the pong is sent already).
   *
   * @example
   * ```ts
   * override onPing(data: Uint8Array) { this.lastSeen = Date.now(); }
   * ```
   */
  onPing(data: Uint8Array): void {}

  /**
   * Called for each pong.
   *
   * @example
   * ```ts
   * override onPong(data: Uint8Array) { this.latency = Date.now() - Number(new TextDecoder().decode(data)); }
   * ```
   */
  onPong(data: Uint8Array): void {}

  /**
   * Called once the connection is closed, with the close code and reason
   * (the same values as `closeCode` and `closeReason`, which are set
   * before the call): the peer's code (1005 when its close frame had
   * none), the code we failed the connection with, or 1006 when no close
   * frame came.
   *
   * @example
   * ```ts
   * override onClose(code: number, reason: string) { room.leave(this); console.log("closed", code, reason); }
   * ```
   */
  onClose(code: number, reason: string): void {}

  /**
   * Picks a subprotocol from those the client offered (in its order), or
   * null for none (then no `Sec-WebSocket-Protocol` is sent).
   *
   * @example
   * ```ts
   * override selectSubprotocol(offered: readonly string[]) { return offered.includes("chat") ? "chat" : null; }
   * ```
   */
  selectSubprotocol(subprotocols: readonly string[]): string | null {
    return null;
  }

  /**
   * Accepts the request's `Origin` or not (403). By default the origin's
   * host (with port) must equal the `Host` header, as Tornado: browsers may
   * open WebSockets to any site, and cookies go along. Override to allow
   * other origins; requests without `Origin` (non-browser clients) are not
   * checked.
   *
   * @example
   * ```ts
   * override checkOrigin(origin: string) { return new URL(origin).hostname.endsWith(".example.com"); }
   * ```
   */
  checkOrigin(origin: string): boolean {
    return originNetloc(origin) === (headerValue(this.request.headers.toFlat(), "host") ?? "");
  }

  /**
   * Return options to accept permessage-deflate (`{}` for the defaults), or
   * null (the default, as Tornado) to decline it.
   *
   * @example
   * ```ts
   * override getCompressionOptions() { return { compressionLevel: 6, serverMaxWindowBits: 12 }; }
   * ```
   */
  getCompressionOptions(): WebSocketCompressionOptions | null {
    return null;
  }

  // -------------------------------------------------------------- settings

  /**
   * Milliseconds between pings, from the `websocketPingInterval` setting
   * (0 or absent: no pings).
   *
   * @example
   * ```ts
   * new Application(routes, { websocketPingInterval: 10_000 });
   * ```
   */
  get pingInterval(): number | undefined {
    return numberSetting("websocketPingInterval", this.settings.websocketPingInterval);
  }

  /**
   * Milliseconds after an unanswered ping before closing, from the
   * `websocketPingTimeout` setting (default `max(3 * interval, 30000)`).
   *
   * @example
   * ```ts
   * new Application(routes, { websocketPingInterval: 10_000, websocketPingTimeout: 5_000 });
   * ```
   */
  get pingTimeout(): number | undefined {
    const value = numberSetting("websocketPingTimeout", this.settings.websocketPingTimeout);
    return value === 0 ? undefined : value;
  }

  /**
   * Largest message accepted, in bytes, from the `websocketMaxMessageSize`
   * setting (default 10 MiB, as Tornado); larger ones close with 1009.
   *
   * @example
   * ```ts
   * new Application(routes, { websocketMaxMessageSize: 64 * 1024 * 1024 });
   * ```
   */
  get maxMessageSize(): number {
    return numberSetting("websocketMaxMessageSize", this.settings.websocketMaxMessageSize) ?? DEFAULT_WEBSOCKET_MAX_MESSAGE_SIZE;
  }

  // ----------------------------------------------------------------- output

  /**
   * Sends a message: a string as text, bytes as binary, an object or array
   * as JSON text. Resolves once it is handed to the transport below its
   * high-water mark, or at once while the transport keeps up (see
   * `WebSocketSession.send`; await it to be paced by a slow reader); rejects with
   * {@link WebSocketClosedError} when the connection is closed or closing.
   * Ignoring the promise is fine.
   *
   * @example
   * ```ts
   * await this.writeMessage({ type: "hello" });
   * await this.writeMessage(new Uint8Array([1, 2, 3]));
   * ```
   */
  writeMessage(message: WebSocketMessage, options: WriteMessageOptions = {}): Promise<void> {
    const session = this.#session;
    let data: string | Uint8Array;
    if (typeof message === "string" || message instanceof Uint8Array) data = message;
    else if (typeof message === "object" && message !== null) data = jsonEncode(message);
    else throw new TypeError(`Cannot write a WebSocket message of type ${typeof message}: use a string, a Uint8Array or an object`);
    if (session === null) {
      const error = new WebSocketClosedError("Cannot send a message: the WebSocket is not open");
      const rejected = Promise.reject(error);
      rejected.catch(() => {});
      return rejected;
    }
    return session.send(data, options);
  }

  /**
   * Sends a ping (at most 125 bytes). Throws {@link WebSocketClosedError}
   * when the connection is closed or closing.
   *
   * @example
   * ```ts
   * this.ping(String(Date.now()));
   * ```
   */
  ping(data: string | Uint8Array = new Uint8Array(0)): void {
    const session = this.#session;
    if (session === null) throw new WebSocketClosedError("Cannot send a ping: the WebSocket is not open");
    session.ping(data);
  }

  /**
   * Starts the closing handshake, with `code` and `reason` if given (a
   * reason alone sends 1000). Resolves once the connection is closed.
   *
   * @example
   * ```ts
   * this.close(4000, "idle for too long");
   * ```
   */
  close(code?: number, reason?: string): Promise<void> {
    const session = this.#session;
    if (session === null) return Promise.resolve();
    return session.close(code, reason);
  }

  /**
   * True once the connection is closing or closed: no more messages can be
   * sent.
   *
   * @example
   * ```ts
   * if (!this.isClosing) void this.writeMessage("tick");
   * ```
   */
  get isClosing(): boolean {
    return this.#session === null || this.#session.isClosing;
  }

  /**
   * Turns Nagle's algorithm off (true) or on for this connection (Tornado's
   * `set_nodelay`; the server already turns it off by default).
   *
   * @example
   * ```ts
   * override open() { this.setNodelay(true); }
   * ```
   */
  setNodelay(value: boolean): void {
    this.#session?.setNoDelay(value);
  }
}
