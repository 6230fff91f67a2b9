/**
 * The HTTP server: runs the sans-I/O HTTP/1.1 engine over any transport.
 *
 * How this works: each accepted connection gets a driver, the transport's
 * handler. Bytes go into the engine; the driver drains the engine's events
 * and calls the application (a callback that gets whole requests, or a
 * streaming delegate as Tornado's `HTTPMessageDelegate`). Output the
 * application produces is collected by the engine and written with one
 * transport write per batch: at the end of a read, or in a microtask for
 * responses finished asynchronously. The driver owns the timeouts (one lazy
 * timer per connection: the deadline moves, the timer is re-armed only when
 * it fires), the backpressure (reading pauses while the transport's output
 * is over its high-water mark, or while the application awaits a body
 * chunk), and the graceful shutdown.
 *
 * @module
 */
import { toBytes, concatBytes, EMPTY_BYTES, type BytesLike } from "../core/bytes";
import { systemClock, type Clock, type TimerHandle } from "../core/clock";
import { LocalProtocolError } from "../core/errors";
import { flattenHeaders, HTTPHeaders, type HeadersInit } from "../core/headers";
import { consoleLogger, type Logger } from "../core/log";
import type { Connection, ConnectionHandler, Listener, ListenOptions, SocketAddress, Transport } from "../core/transport";
import { ServerConnection, type ServerConnectionOptions, type RequestEvent } from "../protocols/http1/server-connection";
import { httpDate } from "../protocols/http1/date";
import { defaultTransport } from "./default-transport";
import { COMPACT_REQUEST, HTTPServerRequest, type ConnectionInfo, type RequestConnection } from "./request";

/** Default time a keep-alive connection may sit idle: 60 s (nginx 75 s, Node 5 s, Tornado 1 h). */
export const DEFAULT_IDLE_TIMEOUT = 60_000;
/** Default time to receive a whole request head once it has begun: 60 s, as Node's `headersTimeout`. */
export const DEFAULT_HEADER_TIMEOUT = 60_000;
/** Default time to receive a whole request body once its head is in: 300 s, as Node's `requestTimeout`. */
export const DEFAULT_BODY_TIMEOUT = 300_000;
/** Default unflushed output above which reading pauses: 64 KiB. */
export const DEFAULT_OUTPUT_HIGH_WATER_MARK = 64 * 1024;

/**
 * Tornado's `HTTPMessageDelegate`: receives one request as it streams in.
 * Any method may return a promise; the server reads no more of this
 * connection until it settles (that is the backpressure).
 */
export interface HTTPMessageDelegate {
  /** The head arrived. Answering here, before the body is read, skips `100 Continue`. */
  headersReceived(request: HTTPServerRequest): void | Promise<void>;
  /** A piece of the body. */
  dataReceived(chunk: Uint8Array): void | Promise<void>;
  /** The request is complete. */
  finish(): void | Promise<void>;
  /** The connection closed before the response finished. */
  onConnectionClose?(): void;
}

/** Makes a delegate for each request (Tornado's `HTTPServerConnectionDelegate`). */
export interface HTTPServerConnectionDelegate {
  startRequest(request: HTTPServerRequest): HTTPMessageDelegate;
}

/** A function that gets each request with its whole body. */
export type RequestCallback = (request: HTTPServerRequest) => void | Promise<void>;

/** Options of {@link HTTPServer}. Every field is optional. */
export interface HTTPServerOptions extends ServerConnectionOptions {
  /** How connections are made. @default Node sockets under Node, Bun sockets under Bun */
  transport?: Transport;
  /** Source of time for timeouts and `Date`. @default systemClock */
  clock?: Clock;
  /** Idle keep-alive timeout in ms. @default 60000 */
  idleTimeout?: number;
  /** Time allowed to receive a request head, in ms. @default 60000 */
  headerTimeout?: number;
  /** Time allowed to receive a request body, in ms. @default 300000 */
  bodyTimeout?: number;
  /** Open connections at most; more are answered 503 and closed. @default Infinity */
  maxConnections?: number;
  /** Unflushed output (bytes) above which reading pauses. @default 65536 */
  highWaterMark?: number;
  /** Trust `X-Real-Ip`/`X-Forwarded-For` and `X-Forwarded-Proto`/`X-Scheme` (behind a proxy). @default false */
  xheaders?: boolean;
  /** Proxies whose addresses are skipped in `X-Forwarded-For` (as Tornado's `trusted_downstream`). */
  trustedDownstream?: string[];
  /** Turn Nagle's algorithm off on accepted connections. @default true */
  noDelay?: boolean;
  /** Where errors of handlers and protocol errors are reported. @default consoleLogger() */
  logger?: Logger;
  /** Show stack traces in 500 responses. @default false */
  debug?: boolean;
}

/** What `listen` accepts: a port, or the transport's listen options. */
export type ListenTarget = number | ListenOptions;

/** Options of a graceful {@link HTTPServer.close}. */
export interface CloseOptions {
  /** After this many ms, connections still open are destroyed. @default Infinity */
  timeout?: number;
}

const RESOLVED: Promise<void> = Promise.resolve();

const enum Wait {
  NONE = 0,
  IDLE = 1,
  HEAD = 2,
  BODY = 3,
  /** We sent FIN; the peer has this long to close before the connection is destroyed. */
  LINGER = 4,
}

/** How long a connection we ended may wait for the peer's close: 5 s, or the idle timeout if shorter. */
const LINGER_MS = 5_000;

/**
 * An HTTP/1.1 server over any transport (Tornado's `HTTPServer`).
 *
 * @example
 * ```ts
 * const server = new HTTPServer(async (req) => {
 *   await req.connection.respond(200, { "Content-Type": "text/plain" }, "Hello, world");
 * });
 * await server.listen(8888);
 * // ...
 * await server.close();
 * ```
 */
export class HTTPServer {
  readonly #delegate: HTTPServerConnectionDelegate;
  /** @internal The whole-request callback, when the server was made with one (the fast path). */
  readonly callback: RequestCallback | null;
  /**
   * @internal The clock's time at the start of the current read (or async
   * flush): one clock call per read for start times, deadlines and `Date`.
   */
  tick: number;
  readonly #engineOptions: ServerConnectionOptions;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly #transport: Transport;
  readonly #listeners: Listener[] = [];
  readonly #connections = new Set<Driver>();
  readonly #upgraded = new Set<UpgradedEntry>();
  #closing = false;
  readonly idleTimeout: number;
  readonly headerTimeout: number;
  readonly bodyTimeout: number;
  readonly maxConnections: number;
  readonly highWaterMark: number;
  readonly xheaders: boolean;
  readonly trustedDownstream: ReadonlySet<string>;
  readonly noDelay: boolean;
  readonly debug: boolean;

  constructor(handler: RequestCallback | HTTPServerConnectionDelegate, options: HTTPServerOptions = {}) {
    this.#delegate = typeof handler === "function" ? new CallbackAdapter(handler) : handler;
    this.callback = typeof handler === "function" ? handler : null;
    this.clock = options.clock ?? systemClock;
    this.tick = this.clock.now();
    this.logger = options.logger ?? consoleLogger();
    this.#transport = options.transport ?? defaultTransport();
    this.idleTimeout = timeoutOption("idleTimeout", options.idleTimeout, DEFAULT_IDLE_TIMEOUT);
    this.headerTimeout = timeoutOption("headerTimeout", options.headerTimeout, DEFAULT_HEADER_TIMEOUT);
    this.bodyTimeout = timeoutOption("bodyTimeout", options.bodyTimeout, DEFAULT_BODY_TIMEOUT);
    this.maxConnections = timeoutOption("maxConnections", options.maxConnections, Infinity);
    this.highWaterMark = timeoutOption("highWaterMark", options.highWaterMark, DEFAULT_OUTPUT_HIGH_WATER_MARK);
    this.xheaders = options.xheaders ?? false;
    this.trustedDownstream = new Set(options.trustedDownstream ?? []);
    this.noDelay = options.noDelay ?? true;
    this.debug = options.debug ?? false;
    this.#engineOptions = {
      maxHeaderBytes: options.maxHeaderBytes,
      maxUrlLength: options.maxUrlLength,
      maxBodyBytes: options.maxBodyBytes,
      maxRequestsInFlight: options.maxRequestsInFlight,
      sendDate: options.sendDate,
      now: options.now ?? (() => this.tick),
    };
    // Validate the engine options now rather than on the first connection.
    new ServerConnection(this.#engineOptions).destroy();
  }

  /** The delegate that makes a message delegate per request. */
  get delegate(): HTTPServerConnectionDelegate {
    return this.#delegate;
  }

  /** Addresses this server listens on. */
  get addresses(): SocketAddress[] {
    return this.#listeners.map((l) => l.address);
  }

  /** The first address this server listens on (handy with port 0). */
  get address(): SocketAddress | null {
    return this.#listeners[0]?.address ?? null;
  }

  /** Open HTTP connections (not counting upgraded ones). */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /**
   * Listens on a port (and host), or on the transport's listen options
   * (`{ path }` for a Unix socket, `{ port, host, tls }`, ...). May be called
   * more than once to listen in several places.
   *
   * @example
   * ```ts
   * await server.listen(8888, "127.0.0.1");
   * await server.listen({ path: "/tmp/app.sock" });
   * ```
   */
  async listen(target: ListenTarget, host?: string): Promise<SocketAddress> {
    if (this.#closing) throw new Error("Cannot listen: the server is closing");
    const options: ListenOptions = typeof target === "number" ? { port: target, host } : { ...target };
    options.highWaterMark ??= this.highWaterMark;
    const listener = await this.#transport.listen(options, (connection) => this.handleConnection(connection));
    this.#listeners.push(listener);
    return listener.address;
  }

  /**
   * Serves HTTP on a connection made elsewhere (a memory pipe in a test, a
   * socket accepted by other code).
   */
  handleConnection(connection: Connection): void {
    if (this.#closing) {
      connection.destroy();
      return;
    }
    if (this.#connections.size >= this.maxConnections) {
      connection.setHandler(IGNORE_HANDLER);
      connection.write(toBytes(
        `HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\nDate: ${httpDate(this.clock.now())}\r\n\r\n`,
      ));
      connection.end();
      return;
    }
    if (this.noDelay) connection.setNoDelay(true);
    const driver = new Driver(this, connection, new ServerConnection(this.#engineOptions));
    this.#connections.add(driver);
    connection.setHandler(driver);
  }

  /** @internal */
  forget(driver: Driver): void {
    this.#connections.delete(driver);
  }

  /** @internal */
  trackUpgraded(entry: UpgradedEntry): void {
    this.#upgraded.add(entry);
  }

  /** @internal */
  forgetUpgraded(entry: UpgradedEntry): void {
    this.#upgraded.delete(entry);
  }

  /** True once `close` has been called. */
  get closing(): boolean {
    return this.#closing;
  }

  /**
   * Stops listening and closes gracefully: idle connections close now,
   * requests in flight finish (their responses carry `Connection: close`),
   * upgraded connections get their shutdown hook (WebSockets close with
   * 1001), then the promise resolves. With `timeout`, whatever is still open
   * after it is destroyed.
   */
  async close(options: CloseOptions = {}): Promise<void> {
    this.#closing = true;
    const listeners = this.#listeners.splice(0);
    const stopped = Promise.all(listeners.map((l) => l.close()));
    // Connections learn of the shutdown at once, not after the listeners
    // have closed: a response that finishes meanwhile carries
    // `Connection: close`.
    const waits: Promise<void>[] = [];
    for (const driver of this.#connections) waits.push(driver.closeGracefully());
    for (const entry of this.#upgraded) waits.push(Promise.resolve(entry.onShutdown()).then(() => entry.released));
    await stopped;
    if (waits.length === 0) return;
    const all = Promise.all(waits).then(() => undefined);
    const timeout = options.timeout ?? Infinity;
    if (!Number.isFinite(timeout)) return all;
    let timer: TimerHandle | undefined;
    const expired = new Promise<void>((resolve) => {
      timer = this.clock.setTimeout(() => {
        this.closeAllConnections();
        resolve();
      }, timeout);
    });
    await Promise.race([all, expired]);
    if (timer !== undefined) this.clock.clearTimeout(timer);
  }

  /** Destroys every open connection at once (Tornado's `close_all_connections` without the wait). */
  closeAllConnections(): void {
    for (const driver of [...this.#connections]) driver.connection.destroy();
    for (const entry of [...this.#upgraded]) entry.connection.destroy();
  }
}

/**
 * A detached connection: the request's `connection` once it is handed over,
 * and the entry the server keeps to answer for it at shutdown. It is all
 * that is left of the HTTP side while the connection is open (a WebSocket
 * may stay for hours): the driver, the engine and the exchange are let go,
 * there are no closures, and the `closed` promise is made only when a
 * shutdown waits for it.
 *
 * As a request connection it answers as the exchange would have: a
 * response still open at the hand-over (a 101 sent with `writeHeaders`)
 * was dropped by the engine, so writes to it are ignored; a finished one
 * refuses them.
 */
class UpgradedEntry implements RequestConnection {
  readonly connection: Connection;
  readonly #server: HTTPServer;
  readonly #hooks: DetachOptions;
  readonly #id: number;
  readonly #dropped: boolean;
  #released = false;
  #closed: Promise<void> | null = null;
  #markClosed: (() => void) | null = null;

  constructor(server: HTTPServer, connection: Connection, hooks: DetachOptions, id: number, dropped: boolean) {
    this.#server = server;
    this.connection = connection;
    this.#hooks = hooks;
    this.#id = id;
    this.#dropped = dropped;
  }

  /** Calls the `onShutdown` hook given to `detach`, as a method of the hooks object. */
  onShutdown(): void | Promise<void> {
    return this.#hooks.onShutdown?.();
  }

  /** Resolves once the owner released the connection (what a shutdown waits for). */
  get released(): Promise<void> {
    return (this.#closed ??= this.#released ? RESOLVED : new Promise((resolve) => (this.#markClosed = resolve)));
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#server.forgetUpgraded(this);
    this.#markClosed?.();
    this.#markClosed = null;
  }

  // RequestConnection, for the request that was upgraded.

  get headersWritten(): boolean {
    return true;
  }

  get finished(): boolean {
    return true;
  }

  /** True once the transport connection is closed. */
  get closed(): boolean {
    return this.connection.closed;
  }

  writeHeaders(status: number, headers?: HeadersInit, chunk?: BytesLike, reason?: string): void {
    this.#refuse("write the response head");
  }

  write(chunk: BytesLike): Promise<void> {
    this.#refuse("write the response body");
    return RESOLVED;
  }

  finish(trailers?: HeadersInit): Promise<void> {
    this.#refuse("finish the response");
    return RESOLVED;
  }

  respond(status: number, headers?: HeadersInit, body?: BytesLike, reason?: string): Promise<void> {
    this.#refuse("write the response");
    return RESOLVED;
  }

  sendInformational(status: number, headers?: HeadersInit): void {
    this.#refuse("send an informational response");
  }

  setMaxBodyBytes(maxBodyBytes: number): void {
    if (!(maxBodyBytes >= 0)) throw new RangeError(`Cannot set maxBodyBytes to ${maxBodyBytes}: it must be a non-negative number or Infinity`);
  }

  detach(): never {
    throw new LocalProtocolError("ERR_DETACHED", `Cannot detach request ${this.#id}: it was detached already`);
  }

  #refuse(action: string): void {
    if (this.#dropped) return;
    throw new LocalProtocolError("ERR_RESPONSE_FINISHED", `Cannot ${action}: the response to request ${this.#id} is already finished`);
  }
}

/** `release` for `detach`'s caller: the one closure a detached connection costs. */
/**
 * What `detach` returns. `release` is made when it is read: a caller that
 * releases through the request's connection (`request.connection.release()`)
 * keeps no closure per connection.
 */
class Detached {
  readonly connection: Connection;
  readonly trailingData: Uint8Array;
  readonly #entry: UpgradedEntry;

  constructor(connection: Connection, trailingData: Uint8Array, entry: UpgradedEntry) {
    this.connection = connection;
    this.trailingData = trailingData;
    this.#entry = entry;
  }

  get release(): () => void {
    const entry = this.#entry;
    return () => entry.release();
  }
}

/** Hooks given to `detach`. */
export interface DetachOptions {
  /** Called when the server shuts down gracefully; resolve when the connection is closed. */
  onShutdown?: () => void | Promise<void>;
}

const IGNORE_HANDLER: ConnectionHandler = { data() {}, end() {}, drain() {}, close() {} };

/** Turns a whole-request callback into message delegates (Tornado's `_CallableAdapter`). */
class CallbackAdapter implements HTTPServerConnectionDelegate {
  readonly #callback: RequestCallback;
  constructor(callback: RequestCallback) {
    this.#callback = callback;
  }
  startRequest(request: HTTPServerRequest): HTTPMessageDelegate {
    return new BufferingDelegate(request, this.#callback);
  }
}

class BufferingDelegate implements HTTPMessageDelegate {
  readonly #request: HTTPServerRequest;
  readonly #callback: RequestCallback;
  #chunks: Uint8Array[] | null = null;
  #length = 0;
  constructor(request: HTTPServerRequest, callback: RequestCallback) {
    this.#request = request;
    this.#callback = callback;
  }
  headersReceived(): void {}
  dataReceived(chunk: Uint8Array): void {
    (this.#chunks ??= []).push(chunk);
    this.#length += chunk.byteLength;
  }
  finish(): void | Promise<void> {
    if (this.#chunks !== null) this.#request.body = concatBytes(this.#chunks, this.#length);
    return this.#callback(this.#request);
  }
}

/**
 * Per-request state: what the driver knows, and the request's `connection`.
 * With a whole-request callback it is also the message delegate that
 * buffers the body (one object per request instead of three).
 */
class Exchange implements RequestConnection, HTTPMessageDelegate {
  readonly driver: Driver;
  readonly id: number;
  readonly expectContinue: boolean;
  request!: HTTPServerRequest;
  delegate!: HTTPMessageDelegate;
  headersWritten = false;
  finished = false;
  failed = false;
  #chunks: Uint8Array[] | null = null;
  #length = 0;

  constructor(driver: Driver, id: number, expectContinue: boolean) {
    this.driver = driver;
    this.id = id;
    this.expectContinue = expectContinue;
  }

  get closed(): boolean {
    return this.driver.closed;
  }

  writeHeaders(status: number, headers?: HeadersInit, chunk?: BytesLike, reason?: string): void {
    this.driver.refreshTick();
    this.driver.engine.writeHeaders(this.id, { status, reason, headers: flattenHeaders(headers) }, chunk);
    this.headersWritten = true;
    this.driver.scheduleFlush();
  }

  write(chunk: BytesLike): Promise<void> {
    this.driver.engine.write(this.id, chunk);
    return this.driver.flushAndWait();
  }

  finish(trailers?: HeadersInit): Promise<void> {
    this.driver.engine.finish(this.id, trailers === undefined ? undefined : flattenHeaders(trailers));
    this.#finished();
    return this.driver.flushAndWait();
  }

  respond(status: number, headers?: HeadersInit, body?: BytesLike, reason?: string): Promise<void> {
    this.driver.refreshTick();
    this.driver.engine.writeResponse(this.id, { status, reason, headers: flattenHeaders(headers) }, body);
    this.headersWritten = true;
    this.#finished();
    return this.driver.flushAndWait();
  }

  sendInformational(status: number, headers?: HeadersInit): void {
    this.driver.engine.sendInformational(this.id, { status, headers: flattenHeaders(headers) });
    this.driver.scheduleFlush();
  }

  setMaxBodyBytes(maxBodyBytes: number): void {
    this.driver.engine.setMaxBodyBytes(this.id, maxBodyBytes);
  }

  detach(options: DetachOptions = {}): { connection: Connection; trailingData: Uint8Array; release: () => void } {
    return this.driver.detach(this, options);
  }

  #finished(): void {
    this.finished = true;
    this.request.markFinished(this.driver.now());
    this.driver.exchangeFinished(this);
  }

  // HTTPMessageDelegate, for a whole-request callback.
  headersReceived(): void {}

  dataReceived(chunk: Uint8Array): void {
    (this.#chunks ??= []).push(chunk);
    this.#length += chunk.byteLength;
  }

  finishRequest(): void | Promise<void> {
    if (this.#chunks !== null) this.request.body = concatBytes(this.#chunks, this.#length);
    return this.driver.server.callback!(this.request);
  }
}

/** Runs one connection: the transport's handler and the engine's driver. */
class Driver implements ConnectionHandler {
  readonly server: HTTPServer;
  readonly connection: Connection;
  readonly engine: ServerConnection;
  readonly #info: ConnectionInfo;
  /** Requests whose responses are not finished, oldest first (usually one). */
  #open: Exchange[] = [];
  /** The request whose body is being read: `data` and `end` events are its. */
  #reading: Exchange | null = null;
  #pumping = false;
  #waiting = false;
  #readPaused = false;
  /** The engine said `paused` last time: it reads no more until a response progresses. */
  #enginePaused = false;
  #writeBlocked = false;
  #flushScheduled = false;
  #drainWaiters: Array<() => void> = [];
  #closedWaiters: Array<() => void> = [];
  closed = false;
  #ended = false;
  #detached = false;
  #switched = false;
  #afterSwitch: Uint8Array[] = [];
  // Timeouts: the deadline moves freely; the timer is re-armed when it fires.
  #wait: Wait = Wait.IDLE;
  #deadline: number;
  #timer: TimerHandle | null = null;
  #timerAt = Infinity;

  constructor(server: HTTPServer, connection: Connection, engine: ServerConnection) {
    this.server = server;
    this.connection = connection;
    this.engine = engine;
    const remote = connection.remoteAddress;
    this.#info = {
      // As Tornado: a connection with no IP address (a Unix socket) reports 0.0.0.0.
      remoteIp: remote === null || remote.family === "unix" || remote.address === "" ? "0.0.0.0" : remote.address,
      remotePort: remote?.port ?? 0,
      protocol: connection.encrypted ? "https" : "http",
    };
    this.#deadline = server.clock.now() + server.idleTimeout;
    this.#armTimer();
  }

  // ------------------------------------------------------------ transport side

  data(chunk: Uint8Array): void {
    if (this.#switched) {
      this.#afterSwitch.push(chunk);
      return;
    }
    if (this.closed || this.#ended) return; // after our FIN, input is only read to see the peer's close
    this.server.tick = this.server.clock.now();
    this.engine.receiveData(chunk);
    this.#pump();
  }

  end(): void {
    if (this.#switched || this.closed) return;
    if (this.#ended) return; // both sides have sent FIN: the transport closes
    this.engine.receiveEof();
    this.#pump();
  }

  drain(): void {
    if (this.#detached) return;
    this.#writeBlocked = false;
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
    this.#updateReading();
  }

  close(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.#clearTimer();
    this.server.forget(this);
    if (!this.#detached) this.engine.destroy();
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
    for (const exchange of this.#open) {
      if (!exchange.finished) {
        try {
          exchange.delegate?.onConnectionClose?.();
        } catch (err) {
          this.server.logger.error("Error in onConnectionClose", err);
        }
      }
    }
    this.#open = [];
    this.#reading = null;
    if (error !== undefined && !isQuietError(error)) this.server.logger.debug(`Connection closed with an error: ${error.message}`);
    const closed = this.#closedWaiters;
    this.#closedWaiters = [];
    for (const w of closed) w();
  }

  // ---------------------------------------------------------------- the pump

  #pump(): void {
    if (this.#pumping || this.#waiting || this.closed || this.#switched) return;
    this.#pumping = true;
    let sawRequest = false;
    try {
      for (;;) {
        const ev = this.engine.nextEvent();
        if (ev.type === "need-data" || ev.type === "paused") {
          this.#enginePaused = ev.type === "paused";
          break;
        }
        switch (ev.type) {
          case "request":
            sawRequest = true;
            this.#onRequest(ev);
            break;
          case "data": {
            const exchange = this.#reading;
            if (exchange !== null && exchange.id === ev.id && !exchange.failed) {
              this.#call(exchange, exchange.delegate.dataReceived(ev.data));
            }
            break;
          }
          case "end": {
            const exchange = this.#reading;
            this.#reading = null;
            if (exchange !== null && exchange.id === ev.id && !exchange.failed) {
              if (exchange.request.trailers === null && ev.trailers.length > 0) {
                exchange.request.trailers = HTTPHeaders.fromFlat(ev.trailers);
              }
              this.#callFinish(exchange);
            }
            break;
          }
          case "upgrade":
            this.#switched = true;
            break;
          case "error": {
            this.server.logger.warn(`Bad request from ${this.#info.remoteIp}: ${ev.error.message}`);
            if (ev.id !== null) {
              const exchange = this.#reading !== null && this.#reading.id === ev.id ? this.#reading : undefined;
              this.#reading = null;
              if (exchange !== undefined) {
                exchange.failed = true;
                this.#forget(exchange);
                try {
                  exchange.delegate.onConnectionClose?.();
                } catch (err) {
                  this.server.logger.error("Error in onConnectionClose", err);
                }
              }
            }
            break;
          }
        }
        if (this.#waiting || this.#switched || this.closed) break;
      }
    } finally {
      this.#pumping = false;
    }
    if (this.closed) return;
    this.#flush();
    this.#updateTimeout(sawRequest, this.server.tick);
    this.#updateReading();
  }

  #onRequest(ev: RequestEvent): void {
    const server = this.server;
    const exchange = new Exchange(this, ev.id, ev.expectContinue);
    const request = new HTTPServerRequest(
      ev.method,
      ev.target,
      ev.version === "1.1" ? "HTTP/1.1" : "HTTP/1.0",
      ev.headers,
      this.#info,
      exchange,
      server.tick,
    );
    if (server.xheaders) applyXHeaders(request, server.trustedDownstream);
    exchange.request = request;
    this.#open.push(exchange);
    this.#reading = exchange;
    // RFC 9110 §10.1.1: an expectation other than 100-continue gets 417.
    if (ev.expect !== null && !ev.expectContinue && ev.version === "1.1") {
      exchange.failed = true;
      exchange.delegate = { headersReceived() {}, dataReceived() {}, finish() {} };
      exchange.respond(417, { "Content-Type": "text/plain; charset=utf-8", Connection: "close" }, "Expectation Failed\n");
      return;
    }
    if (server.callback !== null) {
      // The whole-request callback: the exchange buffers the body itself.
      exchange.delegate = exchange;
      this.#headDone(exchange);
      return;
    }
    let delegate: HTTPMessageDelegate;
    try {
      delegate = server.delegate.startRequest(request);
    } catch (err) {
      exchange.delegate = { headersReceived() {}, dataReceived() {}, finish() {} };
      this.#handlerFailed(exchange, err);
      return;
    }
    exchange.delegate = delegate;
    this.#call(exchange, delegate.headersReceived(request), true);
  }

  /** Runs a delegate result; a promise pauses the pump until it settles. */
  #call(exchange: Exchange, result: void | Promise<void>, afterHead = false): void {
    if (result !== undefined && typeof (result as Promise<void>).then === "function") {
      this.#waiting = true;
      (result as Promise<void>).then(
        () => {
          this.#waiting = false;
          if (afterHead) this.#headDone(exchange);
          this.#pump();
        },
        (err: unknown) => {
          this.#waiting = false;
          this.#handlerFailed(exchange, err);
          this.#pump();
        },
      );
    } else if (afterHead) {
      this.#headDone(exchange);
    }
  }

  /** The application has seen the head and did not answer: the body is wanted. */
  #headDone(exchange: Exchange): void {
    if (exchange.expectContinue && !exchange.headersWritten && !exchange.failed && !this.closed) {
      this.engine.sendContinue(exchange.id);
    }
  }

  #callFinish(exchange: Exchange): void {
    let result: void | Promise<void>;
    try {
      result = exchange.delegate === exchange ? exchange.finishRequest() : exchange.delegate.finish();
    } catch (err) {
      this.#handlerFailed(exchange, err);
      return;
    }
    // The response may come later; the pump does not wait for it (the engine
    // keeps pipelined responses in order and bounds the requests in flight).
    if (result !== undefined && typeof (result as Promise<void>).then === "function") {
      (result as Promise<void>).then(undefined, (err: unknown) => this.#handlerFailed(exchange, err));
    }
  }

  /** A handler threw: 500 if nothing was sent yet, else the connection is dropped. */
  #handlerFailed(exchange: Exchange, err: unknown): void {
    exchange.failed = true;
    if (this.closed || exchange.finished) {
      this.server.logger.error(`Uncaught error handling ${exchange.request?.method} ${exchange.request?.uri}`, err);
      return;
    }
    this.server.logger.error(`Uncaught error handling ${exchange.request?.method} ${exchange.request?.uri}`, err);
    if (!exchange.headersWritten) {
      const body = this.server.debug && err instanceof Error && err.stack ? `500 Internal Server Error\n\n${err.stack}\n` : "500 Internal Server Error\n";
      try {
        exchange.respond(500, { "Content-Type": "text/plain; charset=utf-8" }, body);
        return;
      } catch (e) {
        if (!(e instanceof LocalProtocolError)) throw e;
      }
    }
    this.engine.abort();
    this.#flush();
  }

  /** @internal */
  exchangeFinished(exchange: Exchange): void {
    this.#forget(exchange);
    if (this.#pumping) return; // the pump updates the timeout at the end of this read
    // The engine may have paused at its limit of requests in flight.
    if (this.#enginePaused) queueMicrotask(() => this.#pump());
    // An answer that came after the read: the connection may be idle now,
    // and its keep-alive timeout starts here.
    else if (!this.closed) this.#updateTimeout(false, this.server.clock.now());
  }

  #forget(exchange: Exchange): void {
    const open = this.#open;
    if (open[0] === exchange) open.shift();
    else {
      const i = open.indexOf(exchange);
      if (i >= 0) open.splice(i, 1);
    }
  }

  // ------------------------------------------------------------------ output

  /** The time now: the read's tick while handling a read, else the clock. */
  now(): number {
    return this.#pumping ? this.server.tick : this.server.clock.now();
  }

  /** Outside a read (an async response), the tick is stale: read the clock. */
  refreshTick(): void {
    if (!this.#pumping) this.server.tick = this.server.clock.now();
  }

  scheduleFlush(): void {
    if (this.#flushScheduled || this.#pumping) return;
    this.#flushScheduled = true;
    queueMicrotask(() => {
      this.#flushScheduled = false;
      this.#flush();
      this.#updateReading();
    });
  }

  flushAndWait(): Promise<void> {
    if (this.#pumping) {
      // The pump flushes once at the end of this read.
      return this.#writeBlocked ? this.#waitDrain() : RESOLVED;
    }
    this.#flush();
    this.#updateReading();
    return this.#writeBlocked ? this.#waitDrain() : RESOLVED;
  }

  #waitDrain(): Promise<void> {
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  #flush(): void {
    if (this.closed || this.#detached) return;
    if (!this.#ended && this.engine.outputLength > 0) {
      const connection = this.connection;
      const text = connection.writeLatin1 !== undefined ? this.engine.takeOutputText() : null;
      const accepted = text !== null ? connection.writeLatin1!(text) : connection.write(this.engine.takeOutput()!);
      if (!accepted) this.#writeBlocked = true;
    }
    if (this.engine.mustClose && !this.#ended) this.#endConnection(null);
  }

  /**
   * Sends our FIN (after `last`, if given) and keeps reading, so that the
   * peer's close is seen; a peer that never closes is destroyed after a
   * linger.
   */
  #endConnection(last: Uint8Array | null): void {
    this.#ended = true;
    if (last !== null) this.connection.write(last);
    this.connection.end();
    this.#wait = Wait.LINGER;
    this.#deadline = this.server.clock.now() + Math.min(LINGER_MS, this.server.idleTimeout);
    this.#armTimer();
    if (this.#readPaused) {
      this.#readPaused = false;
      this.connection.resume();
    }
  }

  #updateReading(): void {
    if (this.closed || this.#detached || this.#ended) return;
    const pause = this.#writeBlocked || this.#waiting || this.#enginePaused;
    if (pause !== this.#readPaused) {
      this.#readPaused = pause;
      if (pause) this.connection.pause();
      else this.connection.resume();
    }
  }

  // ---------------------------------------------------------------- timeouts

  /**
   * Moves the deadline to what the connection waits for now. A new request
   * in this read restarts the head or body deadline even when the previous
   * request waited for the same thing (pipelined bodies each get the whole
   * `bodyTimeout`); the idle deadline restarts whenever it is updated.
   */
  #updateTimeout(sawRequest: boolean, now: number): void {
    if (this.#ended || this.#detached) return;
    const state = this.engine.theirState;
    let wait: Wait;
    if (state === "head") wait = Wait.HEAD;
    else if (state === "body") wait = Wait.BODY;
    else if (state === "idle" && this.engine.requestsInFlight === 0) wait = Wait.IDLE;
    else wait = Wait.NONE;
    if (wait !== this.#wait || (sawRequest && (wait === Wait.HEAD || wait === Wait.BODY)) || wait === Wait.IDLE) {
      this.#wait = wait;
      switch (wait) {
        case Wait.IDLE:
          this.#deadline = now + this.server.idleTimeout;
          break;
        case Wait.HEAD:
          this.#deadline = now + this.server.headerTimeout;
          break;
        case Wait.BODY:
          this.#deadline = now + this.server.bodyTimeout;
          break;
        default:
          this.#deadline = Infinity;
      }
      if (this.#deadline < this.#timerAt) this.#armTimer();
    }
  }

  #armTimer(): void {
    this.#clearTimer();
    if (!Number.isFinite(this.#deadline)) return;
    const clock = this.server.clock;
    this.#timerAt = this.#deadline;
    this.#timer = clock.setTimeout(() => this.#onTimer(), Math.max(0, this.#deadline - clock.now()));
  }

  #clearTimer(): void {
    if (this.#timer !== null) {
      this.server.clock.clearTimeout(this.#timer);
      this.#timer = null;
    }
    this.#timerAt = Infinity;
  }

  #onTimer(): void {
    this.#timer = null;
    this.#timerAt = Infinity;
    if (this.closed || this.#detached) return;
    if (this.server.clock.now() < this.#deadline) {
      this.#armTimer();
      return;
    }
    const wait = this.#wait;
    if (wait === Wait.LINGER) {
      this.connection.destroy();
      return;
    }
    if (wait === Wait.NONE || this.#ended) return;
    if (wait === Wait.IDLE) {
      this.#endConnection(null);
      return;
    }
    this.server.logger.warn(`Timeout reading a request ${wait === Wait.HEAD ? "head" : "body"} from ${this.#info.remoteIp}`);
    if (this.engine.requestsInFlight === 0 || (wait === Wait.BODY && this.#onlyUnansweredIsCurrent())) {
      // Nothing else is owed: answer 408 and close.
      this.engine.abort();
      const earlier = this.engine.takeOutput();
      if (earlier !== null) this.connection.write(earlier);
      this.#endConnection(
        toBytes(`HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\nDate: ${httpDate(this.server.clock.now())}\r\n\r\n`),
      );
    } else {
      this.connection.destroy();
    }
  }

  #onlyUnansweredIsCurrent(): boolean {
    if (this.engine.requestsInFlight !== 1) return false;
    for (const exchange of this.#open) if (exchange.headersWritten) return false;
    return true;
  }

  // ---------------------------------------------------------- upgrade, close

  detach(exchange: Exchange, options: DetachOptions): { connection: Connection; trailingData: Uint8Array; release: () => void } {
    const trailing = this.engine.trailingData;
    if (trailing === null) {
      throw new LocalProtocolError("ERR_NOT_SWITCHED", `Cannot detach request ${exchange.id}: no 101 response was sent`);
    }
    this.#switched = true;
    this.#flush();
    this.#detached = true;
    this.#clearTimer();
    this.server.forget(this);
    this.engine.destroy();
    const dropped = !exchange.finished;
    exchange.finished = true;
    this.#open = [];
    this.#reading = null;
    // Let the HTTP side go: the request (which a WebSocket handler keeps)
    // no longer reaches this driver, its engine or the exchange.
    const entry = new UpgradedEntry(this.server, this.connection, options, exchange.id, dropped);
    (exchange.request as { connection: RequestConnection }).connection = entry;
    exchange.request[COMPACT_REQUEST]();
    const rest = this.#afterSwitch.length === 0 ? trailing : concatBytes([trailing, ...this.#afterSwitch]);
    this.#afterSwitch = [];
    if (this.#readPaused) {
      this.#readPaused = false;
      this.connection.resume();
    }
    this.server.trackUpgraded(entry);
    return new Detached(this.connection, rest.byteLength === 0 ? EMPTY_BYTES : rest, entry);
  }

  closeGracefully(): Promise<void> {
    if (this.closed) return RESOLVED;
    const done = new Promise<void>((resolve) => this.#closedWaiters.push(resolve));
    this.engine.closeWhenDone();
    if (!this.#pumping) {
      this.#flush();
      if (this.engine.isIdle && !this.#ended) this.#endConnection(null);
    }
    return done;
  }
}

function isQuietError(error: Error): boolean {
  const code = (error as { code?: string }).code;
  return code === "ECONNRESET" || code === "EPIPE";
}

function timeoutOption(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value) || value <= 0) {
    throw new RangeError(`Cannot use ${name} ${String(value)}: it must be a positive number (Infinity for none)`);
  }
  return value;
}

/** Tornado's `_apply_xheaders`: trust the proxy's view of the client. */
function applyXHeaders(request: HTTPServerRequest, trusted: ReadonlySet<string>): void {
  const headers = request.headers;
  let ip = headers.get("X-Forwarded-For") ?? request.remoteIp;
  // Skip trusted proxies from the right; the first untrusted hop is the client.
  const hops = ip.split(",").map((h) => h.trim()).filter((h) => h !== "");
  let chosen = hops.length > 0 ? hops[hops.length - 1]! : request.remoteIp;
  for (let i = hops.length - 1; i >= 0; i--) {
    chosen = hops[i]!;
    if (!trusted.has(chosen)) break;
  }
  ip = headers.get("X-Real-Ip") ?? chosen;
  if (isIpAddress(ip)) request.remoteIp = ip;
  const proto = (headers.get("X-Scheme") ?? headers.get("X-Forwarded-Proto"))?.split(",").pop()?.trim().toLowerCase();
  if (proto === "http" || proto === "https") request.protocol = proto;
}

function isIpAddress(text: string): boolean {
  return /^(\d{1,3}\.){3}\d{1,3}$/.test(text) || (/^[0-9a-fA-F:.]+$/.test(text) && text.includes(":"));
}
