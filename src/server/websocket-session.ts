/**
 * The WebSocket driver: runs a sans-I/O {@link WebSocketConnection} over a
 * transport {@link Connection}, for either role. The server's
 * `WebSocketHandler` and the client's `websocketConnect` both sit on it.
 *
 * ## How this works
 *
 * - **Input.** Bytes from the transport go to the engine; the driver then
 *   drains its events and calls the handler (`onMessage`, `onPing`,
 *   `onPong`). When `onMessage` returns a promise, no further event is
 *   taken and the transport is paused until it settles, as Tornado awaits
 *   `on_message` before reading the next frame: a slow consumer pushes back
 *   on the peer through TCP instead of growing memory. A send the transport
 *   took at once returns an already settled promise, which holds nothing
 *   (see `#onEvent`). A promise rejected with {@link WebSocketClosedError}
 *   while this connection is closing is no handler failure (a send raced
 *   the close).
 * - **Output.** Everything the engine queued while handling one read (pongs,
 *   the echo of a close, messages sent from the handler) goes out with one
 *   transport write at the end of the read; sends made outside a read are
 *   written together in a microtask. When the handler awaits each send
 *   (an async `onMessage` that awaits `send`), the write waits until the
 *   handler has stopped taking messages for a few microtask turns, so that
 *   the answers to one read still go out with one write.
 * - **Backpressure.** {@link WebSocketSession.send} resolves once the
 *   message is handed to the transport below its high-water mark, or at
 *   once while the transport keeps up (its last write was taken below the
 *   mark and nothing of it waits; at most 16 KiB per write). While the
 *   transport is above it (its `write` returned false and no `drain` came
 *   yet), further messages wait unencoded in a queue, and their promises
 *   with them, so a writer that awaits its sends is paused by a slow reader.
 *   Reading is not paused on a full output (two peers that both stream would
 *   deadlock); instead pongs owed while the output is full are folded into
 *   one for the latest ping, as RFC 6455 §5.5.3 allows.
 * - **Memory.** An idle connection holds the session, the engine and a
 *   small forwarding handler. The session keeps its yes/no state as bits of
 *   one number; the clock, the logger and the durations are one frozen
 *   object shared by the sessions made with the same options; the close
 *   state (with the `closed` promise), the ping state and the output held
 *   back by a full transport are small objects made on first use. Timer
 *   callbacks are methods (a closure is made when a timer is armed), and
 *   the engine's buffers are made on first use.
 * - **Closing.** Once a close frame is sent or received, a timer of
 *   `closeTimeout` ms runs (Tornado: 5 s). When the engine says the
 *   transport should close (`shouldCloseTransport`: the close handshake is
 *   done on the server, the peer broke the protocol, or its side ended), the
 *   driver flushes and half-closes (FIN), then waits up to `closeTimeout`
 *   for the peer's side before destroying the connection. A client whose
 *   close handshake is done waits for the server to close TCP first (RFC
 *   6455 §7.1.1), and closes itself when the timer fires. A peer that never
 *   answers our close frame is destroyed when the timer fires.
 * - **Keep-alive.** With `pingInterval`, a ping goes out every interval. If
 *   nothing at all arrives within `pingTimeout` ms of a ping that was not
 *   yet followed by any input, the connection is closed as Tornado does it
 *   (a close frame without a code; the close timer then takes care of a
 *   dead peer).
 * - **The end.** When the transport reports its close, queued and waiting
 *   sends reject with {@link WebSocketClosedError}, the codec is released,
 *   and the handler's `onClose(code, reason)` runs once.
 *
 * Time comes from an injected {@link Clock}.
 *
 * @module
 */
import { systemClock, type Clock, type TimerHandle } from "../core/clock";
import { LocalProtocolError, type RemoteProtocolError } from "../core/errors";
import { SharedRecord } from "../core/shared-record";
import { consoleLogger, type Logger } from "../core/log";
import type { Connection, ConnectionHandler } from "../core/transport";
import { ABNORMAL_CLOSURE, INTERNAL_ERROR, NORMAL_CLOSURE } from "../protocols/websocket/constants";
import { WebSocketConnection, type ConnectionState, type WebSocketEvent, type WebSocketRole } from "../protocols/websocket/connection";
import type { DeflateCodec, DeflateCodecFactory, PerMessageDeflateParams } from "../protocols/websocket/deflate";
import { createZlibDeflateCodec } from "../protocols/websocket/deflate-zlib";
import { isValidUtf8 } from "../protocols/websocket/utf8";

/** Time allowed for the close handshake and for the peer to close its side: 5 s, as Tornado. */
export const DEFAULT_CLOSE_TIMEOUT = 5_000;
/** Default largest message for `WebSocketHandler` and `websocketConnect`: 10 MiB, as Tornado's `_default_max_message_size`. */
export const DEFAULT_WEBSOCKET_MAX_MESSAGE_SIZE = 10 * 1024 * 1024;
/** Smallest default ping timeout: 30 s (Tornado's default is `max(3 * pingInterval, 30 s)`). */
export const MIN_DEFAULT_PING_TIMEOUT = 30_000;
/** Queued messages are encoded and written in batches of about this many bytes after a `drain`. */
const DRAIN_BATCH_BYTES = 64 * 1024;

const EMPTY = new Uint8Array(0);
const noop = (): void => {};
/** Codec options with zlib's defaults, shared by the connections that use them. */
const DEFAULT_ZLIB_OPTIONS = Object.freeze({});
// Bits of WebSocketSession's #flags.
const STARTED = 1;
/** Events are being taken from the engine. */
const PUMPING = 2;
/** A handler promise (open or onMessage) is pending: no events are taken. */
const WAITING = 4;
/** The handler threw: it gets no more events, only onClose. */
const FAILED = 8;
const READ_PAUSED = 16;
/** The transport reported the peer's end. */
const EOF = 32;
/** We half-closed the transport. */
const ENDED = 64;
const TRANSPORT_CLOSED = 128;
/** A close was asked for by the application (or the driver): no more sends. */
const CLOSE_REQUESTED = 256;
/** The transport is above its high-water mark: sends wait in the queue. */
const BLOCKED = 512;
const FLUSH_SCHEDULED = 1024;
/** The last write was taken below the high-water mark: sends may resolve at once (see `send`). */
const FLOWING = 2048;
/** A deferred flush is waiting for the handler to take the next message (see `#deferFlush`). */
const FLUSH_DEFERRED = 4096;
/** The pump took an event since the deferred flush last looked. */
const PROGRESS = 8192;
/** Microtask turns the deferred flush saw without progress (two bits). */
const IDLE_TURN = 16384;
const IDLE_TURNS = 3 * IDLE_TURN;
/** Turns without progress after which a deferred flush writes. */
const MAX_IDLE_TURNS = 3;
/** Sends resolve at once only while the output they join stays within this (bytes). */
const OPTIMISTIC_MAX_BYTES = 16 * 1024;

/** What `closed` returns when it is first asked for after the transport closed. */
const RESOLVED: Promise<void> = Promise.resolve();

/**
 * A message was sent (or a ping, or a close) on a WebSocket that is closed
 * or closing (Tornado's `WebSocketClosedError`).
 *
 * @example
 * ```ts
 * try {
 *   await handler.writeMessage("hello");
 * } catch (e) {
 *   if (e instanceof WebSocketClosedError) return; // the peer left
 *   throw e;
 * }
 * ```
 */
export class WebSocketClosedError extends Error {
  override name = "WebSocketClosedError";

  constructor(message = "Cannot send: the WebSocket is closed") {
    super(message);
  }
}

/**
 * What a {@link WebSocketSession} reports to its owner.
 *
 * @example
 * ```ts
 * const handler: WebSocketSessionHandler = {
 *   onMessage: async (message) => { await store(message); }, // the next message waits
 *   onClose: (code, reason) => console.log("closed", code, reason),
 * };
 * ```
 */
export interface WebSocketSessionHandler {
  /**
   * A whole message: text as a string, binary as bytes. Return a promise to
   * hold back the next events (and pause the transport) until it settles.
   * Throwing or rejecting closes the connection with 1011, except with a
   * {@link WebSocketClosedError} while this connection is closing (a send
   * or ping that raced the close), which is ignored.
   */
  onMessage(message: string | Uint8Array): void | Promise<void>;
  /** A ping arrived (the pong is sent by the driver). */
  onPing?(data: Uint8Array): void;
  /** A pong arrived. */
  onPong?(data: Uint8Array): void;
  /**
   * The transport is closed: called once, last. `code` is the peer's close
   * code (1005 if its close frame had none), the code we failed the
   * connection with when the peer broke the protocol (1002, 1007, 1009...),
   * or 1006 when no close frame was received.
   */
  onClose(code: number, reason: string): void;
}

/** zlib tuning for permessage-deflate, on either side. */
export interface CompressionTuning {
  /**
   * zlib level 0..9, or -1 for zlib's default (6) (Tornado's `compression_level`).
   * @default -1
   */
  compressionLevel?: number;
  /**
   * zlib memLevel 1..9 (Tornado's `mem_level`).
   * @default 8
   */
  memLevel?: number;
  /**
   * Messages shorter than this many bytes are sent uncompressed (ws does the
   * same; Tornado compresses everything, which is `threshold: 0`).
   * @default 1024
   */
  threshold?: number;
}

/** Options of a {@link WebSocketSession}. `role` and `handler` are required. */
export interface WebSocketSessionOptions {
  /** `"server"` (expects masked frames, closes TCP first) or `"client"`. */
  role: WebSocketRole;
  /** Receives messages, pings, pongs and the close. */
  handler: WebSocketSessionHandler;
  /** Bytes that came after the handshake, before the session took the connection. */
  trailingData?: Uint8Array;
  /** The negotiated permessage-deflate, or null for none. @default null */
  perMessageDeflate?: PerMessageDeflateParams | null;
  /** zlib tuning when permessage-deflate is in force. */
  compression?: CompressionTuning;
  /** Builds the codec for `perMessageDeflate`. @default createZlibDeflateCodec */
  codecFactory?: DeflateCodecFactory;
  /**
   * Largest message accepted, in bytes; a larger one closes with 1009.
   * `Infinity` for none.
   * @default 16 MiB (the engine's default; Tornado: 10 MiB)
   */
  maxMessageSize?: number;
  /** Largest frame accepted, in bytes. @default 16 MiB, or `maxMessageSize` if larger */
  maxFrameSize?: number;
  /**
   * Milliseconds between pings; 0 or `Infinity` for none (Tornado's
   * `websocket_ping_interval`, in seconds there).
   * @default 0
   */
  pingInterval?: number;
  /**
   * Milliseconds after an unanswered ping (no byte at all received since)
   * after which the connection is closed (Tornado's `websocket_ping_timeout`).
   * @default max(3 * pingInterval, 30000), as Tornado
   */
  pingTimeout?: number;
  /** Milliseconds allowed for the close handshake and the peer's TCP close. @default 5000 */
  closeTimeout?: number;
  /** Source of time for the timers. @default systemClock */
  clock?: Clock;
  /** Where errors thrown by the handler are reported. @default consoleLogger() */
  logger?: Logger;
  /** Random bytes for client masking keys (tests pass a fixed source). */
  maskKeySource?: (bytes: Uint8Array) => void;
}

/** Options of {@link WebSocketSession.send}. */
export interface WebSocketSendOptions {
  /** Send as a binary message. @default true for bytes, false for a string */
  binary?: boolean;
}

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

interface QueuedSend extends Waiter {
  readonly data: string | Uint8Array;
  readonly binary: boolean;
}

/** The messages sent since the last flush: one promise, shared by their sends. */
interface Batch extends Waiter {
  readonly promise: Promise<void>;
}

/** Output held back while the transport is full. */
interface Backlog {
  /** Messages waiting unencoded for a drain. */
  queue: QueuedSend[] | null;
  /** Queued messages moved into the engine after a drain, settled by the next flush. */
  moved: Waiter[] | null;
  drainWaiters: Waiter[] | null;
  /** The latest ping's data, owed a pong once the transport drains. */
  pendingPong: Uint8Array | null;
}

/** Keep-alive state. */
interface PingState {
  timer: TimerHandle | null;
  checkTimer: TimerHandle | null;
  /** When input last arrived. */
  lastReceived: number;
  /** When the oldest ping not yet followed by input was sent; -1 if none. */
  sentAt: number;
}

/** The close: how it ended, its timers, and the `closed` promise. */
interface EndState {
  code: number | null;
  reason: string | null;
  error: RemoteProtocolError | null;
  closeTimer: TimerHandle | null;
  lingerTimer: TimerHandle | null;
  /** Made when someone asks for `closed` (most never do). */
  closed: Promise<void> | null;
  markClosed: (() => void) | null;
}

/** What sessions made with the same options share (five fields fewer on each). */
interface SessionSettings {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly pingInterval: number;
  readonly pingTimeout: number;
  readonly closeTimeout: number;
}

/** The logger of the sessions made without one. */
let defaultLogger: Logger | null = null;
/** The settings of sessions made with the same options (a server's all are). */
const SESSION_SETTINGS = new SharedRecord<SessionSettings>();

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === "object" || typeof value === "function") && typeof (value as PromiseLike<unknown>).then === "function";
}

/** A promise whose rejection never counts as unhandled (callers may ignore it, as in Tornado). */
function quiet<T>(promise: Promise<T>): Promise<T> {
  promise.catch(noop);
  return promise;
}

function checkDuration(name: string, value: number | undefined, fallback: number, allowZero: boolean): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value) || value < 0 || (value === 0 && !allowZero)) {
    throw new RangeError(`Cannot use ${name} ${String(value)}: it must be a ${allowZero ? "non-negative" : "positive"} number of milliseconds (Infinity for none)`);
  }
  return value;
}

/**
 * One WebSocket connection at work: the engine, the transport, the timers
 * and the backpressure. Made by `WebSocketHandler` (server) and
 * `websocketConnect` (client); use it directly to speak WebSocket over a
 * connection you upgraded yourself.
 *
 * @example
 * ```ts
 * // In an HTTPServer request callback, after a successful serverHandshake():
 * request.connection.writeHeaders(101, hs.headers);
 * const { connection, trailingData, release } = request.connection.detach({
 *   onShutdown: () => session.close(1001, "Going Away"),
 * });
 * const session = new WebSocketSession(connection, {
 *   role: "server",
 *   trailingData,
 *   perMessageDeflate: hs.perMessageDeflate,
 *   handler: {
 *     onMessage: (message) => session.send(message), // echo, awaiting backpressure
 *     onClose: () => release(),
 *   },
 * });
 * session.start();
 * ```
 */
export class WebSocketSession {
  readonly #connection: Connection;
  readonly #engine: WebSocketConnection;
  readonly #handler: WebSocketSessionHandler;
  /** Clock, logger and durations, shared with the sessions made with the same options. */
  readonly #settings: SessionSettings;

  /** The session's yes/no state, one bit each (STARTED, PUMPING, ...): an idle connection holds one number. */
  #flags = 0;
  /**
   * The messages sent since the last flush (they settle together when the
   * flush writes them). On the session, not in the backlog: an echo that
   * waits for its write touches it per message.
   */
  #batch: Batch | null = null;

  // Made on first use; an idle connection holds none of them.
  /** Made the first time the transport is full (most connections never are), then kept. */
  #backlog: Backlog | null = null;
  /** Made with a ping interval. */
  #ping: PingState | null = null;
  /** Made when closing begins or `closed` is asked for. */
  #end: EndState | null = null;

  /**
   * What the transport calls, kept apart from the public `close`: one small
   * object per session whose prototype methods forward to it (no closures).
   */
  static readonly #TransportHandler = class implements ConnectionHandler {
    readonly #session: WebSocketSession;
    constructor(session: WebSocketSession) {
      this.#session = session;
    }
    data(chunk: Uint8Array): void {
      this.#session.#onData(chunk);
    }
    end(): void {
      this.#session.#onEnd();
    }
    drain(): void {
      this.#session.#onDrain();
    }
    close(error?: Error): void {
      this.#session.#onTransportClose(error);
    }
  };

  /**
   * Takes over `connection` (sets itself as its handler). Events are held
   * until {@link start} is called, so that `open` can run first.
   *
   * @example
   * ```ts
   * const session = new WebSocketSession(connection, { role: "client", handler });
   * session.start();
   * ```
   */
  constructor(connection: Connection, options: WebSocketSessionOptions) {
    if (typeof options !== "object" || options === null) throw new TypeError("WebSocketSession options must be an object");
    const handler = options.handler;
    if (typeof handler !== "object" || handler === null || typeof handler.onMessage !== "function" || typeof handler.onClose !== "function") {
      throw new TypeError("Cannot create a WebSocketSession: the handler needs onMessage and onClose");
    }
    this.#connection = connection;
    this.#handler = handler;
    const clock = options.clock ?? systemClock;
    const pingInterval = checkDuration("pingInterval", options.pingInterval, 0, true);
    const defaultTimeout = Number.isFinite(pingInterval) ? Math.max(3 * pingInterval, MIN_DEFAULT_PING_TIMEOUT) : Infinity;
    this.#settings = SESSION_SETTINGS.get({
      clock,
      logger: options.logger ?? (defaultLogger ??= consoleLogger()),
      pingInterval,
      pingTimeout: checkDuration("pingTimeout", options.pingTimeout, defaultTimeout, false),
      closeTimeout: checkDuration("closeTimeout", options.closeTimeout, DEFAULT_CLOSE_TIMEOUT, false),
    });

    const maxMessageSize = options.maxMessageSize;
    const maxFrameSize = options.maxFrameSize ?? (maxMessageSize !== undefined && maxMessageSize > 16 * 1024 * 1024 ? maxMessageSize : undefined);
    const params = options.perMessageDeflate ?? null;
    let codec: DeflateCodec | null = null;
    const tuning = options.compression ?? {};
    if (params !== null) {
      const factory = options.codecFactory;
      codec = factory !== undefined
        ? factory(params, options.role)
        : createZlibDeflateCodec(
            params,
            options.role,
            // The codec keeps its options: connections with zlib's defaults share one object.
            tuning.compressionLevel === undefined && tuning.memLevel === undefined
              ? DEFAULT_ZLIB_OPTIONS
              : {
                  ...(tuning.compressionLevel === undefined ? {} : { level: tuning.compressionLevel }),
                  ...(tuning.memLevel === undefined ? {} : { memLevel: tuning.memLevel }),
                },
          );
    }
    try {
      this.#engine = new WebSocketConnection({
        role: options.role,
        maxMessageSize,
        maxFrameSize,
        // Pongs are sent here, so that those owed while the output is full fold into one.
        autoPong: false,
        perMessageDeflate: codec === null ? null : { codec, threshold: tuning.threshold },
        maskKeySource: options.maskKeySource,
      });
    } catch (error) {
      codec?.close();
      throw error;
    }
    const ping: PingState | null = Number.isFinite(pingInterval) && pingInterval > 0 ? { timer: null, checkTimer: null, lastReceived: clock.now(), sentAt: -1 } : null;
    this.#ping = ping;
    const trailing = options.trailingData;
    if (trailing !== undefined && trailing.byteLength > 0) this.#engine.receiveData(trailing);
    this.#flags |= READ_PAUSED;
    connection.pause();
    connection.setHandler(new WebSocketSession.#TransportHandler(this));
    if (ping !== null) this.#armPingTimer(ping);
  }

  // ------------------------------------------------------------------ status

  /** `"server"` or `"client"`. @example `session.role // "server"` */
  get role(): WebSocketRole {
    return this.#engine.role;
  }

  /** The engine's state (`OPEN`, `LOCAL_CLOSING`, `REMOTE_CLOSING`, `CLOSED`). @example `if (session.state === "OPEN") ...` */
  get state(): ConnectionState {
    return this.#engine.state;
  }

  /** True once the transport is closed. @example `if (session.isClosed) return;` */
  get isClosed(): boolean {
    return (this.#flags & TRANSPORT_CLOSED) !== 0;
  }

  /**
   * True once no more messages may be sent: a close frame was sent or
   * received, or the transport is going away (Tornado's `is_closing`).
   *
   * @example
   * ```ts
   * if (!session.isClosing) void session.send("tick");
   * ```
   */
  get isClosing(): boolean {
    return !this.#canSend();
  }

  /** Resolves once the transport is closed (never rejects). @example `await session.closed;` */
  get closed(): Promise<void> {
    const end = this.#endState();
    return (end.closed ??= (this.#flags & TRANSPORT_CLOSED) !== 0 ? RESOLVED : new Promise((resolve) => (end.markClosed = resolve)));
  }

  /**
   * The close code once known: the peer's (1005 when its close frame had
   * none), the one we failed the connection with, or 1006; null before.
   *
   * @example
   * ```ts
   * await session.closed;
   * console.log(session.closeCode, session.closeReason);
   * ```
   */
  get closeCode(): number | null {
    return this.#end === null ? null : this.#end.code;
  }

  /** The reason that came with {@link closeCode}; null before. @example `session.closeReason // "bye"` */
  get closeReason(): string | null {
    return this.#end === null ? null : this.#end.reason;
  }

  /** The protocol error the peer made, if that is why the connection closed. @example `session.error?.code // "WS_ERR_INVALID_UTF8"` */
  get error(): RemoteProtocolError | null {
    return this.#end === null ? null : this.#end.error;
  }

  /**
   * Bytes not yet delivered to the peer: messages waiting in the queue plus
   * what the transport holds.
   *
   * @example
   * ```ts
   * if (session.bufferedAmount > 1 << 20) console.warn("slow reader");
   * ```
   */
  get bufferedAmount(): number {
    let queued = 0;
    for (const q of this.#backlog?.queue ?? []) queued += typeof q.data === "string" ? q.data.length : q.data.byteLength;
    return queued + this.#engine.outputLength + ((this.#flags & TRANSPORT_CLOSED) !== 0 ? 0 : this.#connection.writableLength);
  }

  // ----------------------------------------------------------------- control

  /**
   * Starts taking events. With a promise (an async `open`), events wait
   * until it settles; a rejection closes the connection with 1011.
   *
   * @example
   * ```ts
   * session.start(handler.open()); // open may be async
   * ```
   */
  start(ready?: unknown): void {
    if ((this.#flags & STARTED) !== 0) throw new LocalProtocolError("ERR_WS_STARTED", "Cannot start the WebSocket session: it was started already");
    this.#flags |= STARTED;
    if (isThenable(ready)) {
      this.#wait(ready);
      this.#updateReading();
      return;
    }
    this.#updateReading();
    this.#pump();
  }

  /**
   * Sends a message: a string as text, bytes as binary (or as `binary`
   * says). Resolves once the message is handed to the transport below its
   * high-water mark, or at once when the transport is keeping up (its last
   * write was taken below the mark, nothing of it is still waiting, and at
   * most 16 KiB are to be written with this message): those messages are written
   * together after the handler's turn, so that an echo answering each
   * message of a read costs one write, not one per message. Rejects with
   * {@link WebSocketClosedError} if the connection is closing or closes
   * before the message is handed over. The promise may be ignored.
   *
   * @example
   * ```ts
   * for (const row of rows) await session.send(JSON.stringify(row)); // paced by the reader
   * ```
   */
  send(data: string | Uint8Array, options: WebSocketSendOptions = {}): Promise<void> {
    const isString = typeof data === "string";
    if (!isString && !(data instanceof Uint8Array)) throw new TypeError("Cannot send a message: it must be a string or a Uint8Array");
    const binary = options.binary ?? !isString;
    if (!binary && !isString && !isValidUtf8(data)) {
      throw new TypeError("Cannot send bytes as a text message: they are not valid UTF-8");
    }
    if (!this.#canSend()) return quiet(Promise.reject(new WebSocketClosedError()));
    const backlog = this.#backlog;
    if ((this.#flags & BLOCKED) !== 0 || (backlog !== null && backlog.queue !== null)) {
      const queue = (this.#backlogState().queue ??= []);
      return quiet(new Promise<void>((resolve, reject) => queue.push({ data, binary, resolve, reject })));
    }
    this.#engine.send(data, { binary });
    this.#scheduleFlush();
    const batch = this.#batch;
    if (batch !== null) return batch.promise;
    if ((this.#flags & FLOWING) !== 0 && this.#engine.outputLength <= OPTIMISTIC_MAX_BYTES && this.#connection.writableLength === 0) {
      return RESOLVED;
    }
    return this.#newBatch();
  }

  #newBatch(): Promise<void> {
    let resolve!: () => void;
    let reject!: (error: Error) => void;
    const promise = quiet(
      new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      }),
    );
    this.#batch = { promise, resolve, reject };
    return promise;
  }

  /**
   * Sends a ping (at most 125 bytes). Throws {@link WebSocketClosedError}
   * when the connection is closing, as Tornado.
   *
   * @example
   * ```ts
   * session.ping("hello");
   * ```
   */
  ping(data: string | Uint8Array = EMPTY): void {
    if (!this.#canSend()) throw new WebSocketClosedError("Cannot send a ping: the WebSocket is closed");
    this.#engine.sendPing(data);
    this.#scheduleFlush();
  }

  /**
   * Starts the closing handshake (a close frame with `code` and `reason`;
   * a reason without a code sends 1000, as Tornado) and resolves once the
   * transport is closed. Messages still waiting in the queue are dropped
   * (their promises reject); messages already handed to the transport go
   * first. Calling it again, or after the peer closed, just waits.
   *
   * @example
   * ```ts
   * await session.close(1000, "bye");
   * ```
   */
  close(code?: number, reason?: string): Promise<void> {
    if (code === undefined && reason !== undefined) code = NORMAL_CLOSURE;
    if ((this.#flags & TRANSPORT_CLOSED) === 0 && (this.#flags & ENDED) === 0 && this.#engine.state === "OPEN") {
      this.#engine.sendClose(code, reason ?? "");
      this.#afterCloseSent();
      this.#scheduleFlush();
    }
    return this.closed;
  }

  /**
   * Closes the transport at once, without a close handshake.
   *
   * @example
   * ```ts
   * session.destroy();
   * ```
   */
  destroy(): void {
    if ((this.#flags & TRANSPORT_CLOSED) === 0) this.#connection.destroy();
  }

  /**
   * Turns Nagle's algorithm off (true) or on (Tornado's `set_nodelay`).
   *
   * @example
   * ```ts
   * session.setNoDelay(true);
   * ```
   */
  setNoDelay(noDelay: boolean): void {
    if ((this.#flags & TRANSPORT_CLOSED) === 0) this.#connection.setNoDelay(noDelay);
  }

  // ------------------------------------------------------- transport handler

  #onData(chunk: Uint8Array): void {
    if ((this.#flags & TRANSPORT_CLOSED) !== 0 || (this.#flags & EOF) !== 0) return;
    const ping = this.#ping;
    if (ping !== null && (ping.timer !== null || ping.checkTimer !== null)) ping.lastReceived = this.#settings.clock.now();
    if ((this.#flags & WAITING) !== 0) {
      // Input while a handler promise holds the events: keep it in the
      // engine and stop reading until the promise settles (see #updateReading).
      this.#engine.receiveData(chunk);
      if ((this.#flags & (WAITING | READ_PAUSED | ENDED | TRANSPORT_CLOSED)) === WAITING) {
        this.#flags |= READ_PAUSED;
        this.#connection.pause();
      }
      return;
    }
    this.#engine.receiveData(chunk);
    this.#pump();
  }

  #onEnd(): void {
    if ((this.#flags & TRANSPORT_CLOSED) !== 0 || (this.#flags & EOF) !== 0) return;
    this.#flags |= EOF;
    this.#engine.receiveEof();
    if ((this.#flags & ENDED) !== 0) return; // both sides have sent FIN: the transport closes now
    this.#pump();
    // The pump may be held by a handler promise: the peer is gone all the same.
    if ((this.#flags & WAITING) !== 0 && (this.#flags & ENDED) === 0) this.#endTransport();
  }

  #onDrain(): void {
    if ((this.#flags & TRANSPORT_CLOSED) !== 0) return;
    this.#flags &= ~BLOCKED;
    const backlog = this.#backlog;
    if (backlog !== null) {
      const waiters = backlog.drainWaiters;
      if (waiters !== null) {
        backlog.drainWaiters = null;
        for (const w of waiters) w.resolve();
      }
      const pong = backlog.pendingPong;
      if (pong !== null) {
        backlog.pendingPong = null;
        if (this.#engine.state === "OPEN") this.#engine.sendPong(pong);
      }
      for (let queue = backlog.queue; queue !== null && (this.#flags & BLOCKED) === 0 && (this.#flags & TRANSPORT_CLOSED) === 0; queue = backlog.queue) {
        if (!this.#canSend()) {
          this.#rejectQueue();
          break;
        }
        const moved = (backlog.moved ??= []);
        while (queue.length > 0 && this.#engine.outputLength < DRAIN_BATCH_BYTES) {
          const next = queue.shift()!;
          this.#engine.send(next.data, { binary: next.binary });
          moved.push(next);
        }
        if (queue.length === 0) backlog.queue = null;
        this.#flush();
      }
    }
    if ((this.#flags & PUMPING) === 0) this.#flush();
  }

  #onTransportClose(error: Error | undefined): void {
    if ((this.#flags & TRANSPORT_CLOSED) !== 0) return;
    this.#flags |= TRANSPORT_CLOSED;
    this.#clearTimers();
    // Release the codec and learn how it ended, if the engine does not know yet.
    if (!this.#engine.closed) {
      if ((this.#flags & EOF) === 0) this.#engine.receiveEof();
      for (let e = this.#engine.nextEvent(); e.type !== "need-data"; e = this.#engine.nextEvent()) {
        if (e.type === "close") this.#setClose(e.code, e.reason);
      }
    }
    this.#setClose(ABNORMAL_CLOSURE, "");
    const end = this.#endState();
    if (error !== undefined) this.#settings.logger.debug(`WebSocket transport closed with an error: ${error.message}`);
    const closedError = new WebSocketClosedError();
    const backlog = this.#backlog;
    const waiters: Waiter[] = backlog === null ? [] : [...(backlog.moved ?? []), ...(backlog.drainWaiters ?? []), ...(backlog.queue ?? [])];
    if (this.#batch !== null) waiters.push(this.#batch);
    this.#batch = null;
    if (backlog !== null) {
      backlog.moved = null;
      backlog.drainWaiters = null;
      backlog.queue = null;
    }
    for (const w of waiters) w.reject(closedError);
    try {
      this.#handler.onClose(end.code!, end.reason!);
    } catch (err) {
      this.#settings.logger.error("Uncaught error in a WebSocket onClose", err);
    }
    end.markClosed?.();
    end.markClosed = null;
  }

  // ------------------------------------------------------------------- input

  #pump(): void {
    if ((this.#flags & PUMPING) !== 0 || (this.#flags & WAITING) !== 0 || (this.#flags & STARTED) === 0 || (this.#flags & TRANSPORT_CLOSED) !== 0) return;
    this.#flags |= PUMPING;
    try {
      for (;;) {
        const event = this.#engine.nextEvent();
        if (event.type === "need-data") break;
        this.#flags |= PROGRESS;
        this.#onEvent(event);
        if ((this.#flags & WAITING) !== 0 || (this.#flags & TRANSPORT_CLOSED) !== 0) break;
      }
    } finally {
      this.#flags &= ~PUMPING;
    }
    if ((this.#flags & TRANSPORT_CLOSED) !== 0) return;
    if ((this.#flags & WAITING) !== 0 && this.#batch === null && (this.#backlog === null || this.#backlog.moved === null) && !this.#engine.shouldCloseTransport) {
      // The handler awaits something, typically the send it just made,
      // which resolved at once: wait a few turns for it to take the next
      // message, and write the answers together.
      this.#deferFlush();
      this.#updateReading();
      return;
    }
    this.#flush();
    this.#updateReading();
  }

  /**
   * Writes once the handler has stopped taking messages for
   * {@link MAX_IDLE_TURNS} microtask turns: a handler that awaits each
   * send takes the next message of the read within a turn or two, and a
   * handler waiting on something slow gets its output written a few turns
   * late.
   */
  #deferFlush(): void {
    if ((this.#flags & FLUSH_DEFERRED) !== 0) return;
    this.#flags = (this.#flags | FLUSH_DEFERRED) & ~(PROGRESS | IDLE_TURNS);
    queueMicrotask(() => this.#deferredFlush());
  }

  #deferredFlush(): void {
    const flags = this.#flags;
    if ((flags & TRANSPORT_CLOSED) !== 0 || (flags & WAITING) === 0) {
      // Closed, or the pump ran on to the end of the input and wrote itself.
      this.#flags &= ~FLUSH_DEFERRED;
      return;
    }
    if ((flags & PROGRESS) !== 0 || (flags & IDLE_TURNS) < MAX_IDLE_TURNS * IDLE_TURN) {
      this.#flags = (flags & PROGRESS) !== 0 ? flags & ~(PROGRESS | IDLE_TURNS) : flags + IDLE_TURN;
      queueMicrotask(() => this.#deferredFlush());
      return;
    }
    this.#flags &= ~(FLUSH_DEFERRED | IDLE_TURNS);
    this.#flush();
  }

  #onEvent(event: Exclude<WebSocketEvent, { type: "need-data" }>): void {
    switch (event.type) {
      case "text":
      case "binary": {
        if ((this.#flags & FAILED) !== 0) return;
        let result: unknown;
        try {
          result = this.#handler.onMessage(event.data);
        } catch (err) {
          this.#handlerFailed(err, "onMessage");
          return;
        }
        // A send that the transport took at once returns the settled
        // RESOLVED: nothing to wait for (as Python's await of a done future
        // goes on without yielding), so the next message is taken now and
        // the answers to the read go out with one write at its end.
        if (result !== RESOLVED && isThenable(result)) this.#wait(result, "onMessage");
        return;
      }
      case "ping":
        // RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a
        // Pong frame in response, unless it already received a Close frame."
        if (this.#engine.state === "OPEN") {
          if ((this.#flags & BLOCKED) !== 0) this.#backlogState().pendingPong = event.data;
          else this.#engine.sendPong(event.data);
        }
        this.#callback("onPing", event.data);
        return;
      case "pong":
        this.#callback("onPong", event.data);
        return;
      case "close":
        this.#setClose(event.code, event.reason);
        this.#flags |= CLOSE_REQUESTED;
        this.#stopPinging();
        this.#rejectQueue();
        this.#armCloseTimer();
        return;
      case "error":
        this.#endState().error = event.error;
        this.#setClose(event.error.closeCode ?? ABNORMAL_CLOSURE, "");
        this.#settings.logger.debug(`WebSocket peer broke the protocol: ${event.error.message}`);
        this.#afterCloseSent();
        return;
    }
  }

  #callback(name: "onPing" | "onPong", data: Uint8Array): void {
    if ((this.#flags & FAILED) !== 0) return;
    const fn = this.#handler[name];
    if (fn === undefined) return;
    try {
      const result: unknown = fn.call(this.#handler, data);
      if (isThenable(result)) result.then(undefined, (err: unknown) => this.#handlerFailed(err, name));
    } catch (err) {
      this.#handlerFailed(err, name);
    }
  }

  /** Holds the events until `pending` settles. */
  #wait(pending: PromiseLike<unknown>, what = "open"): void {
    this.#flags |= WAITING;
    pending.then(
      () => {
        this.#flags &= ~WAITING;
        if ((this.#flags & TRANSPORT_CLOSED) !== 0) return;
        this.#updateReading();
        this.#pump();
      },
      (err: unknown) => {
        this.#flags &= ~WAITING;
        if ((this.#flags & TRANSPORT_CLOSED) !== 0) return;
        this.#handlerFailed(err, what);
        this.#updateReading();
        this.#pump();
      },
    );
  }

  /**
   * The handler threw: log, and close with 1011 (RFC 6455 §7.4.1 "Internal
   * Error"). A {@link WebSocketClosedError} while this connection is
   * closing is no failure: a send or ping raced the close (an echo that
   * returns writeMessage's promise), and the close goes on.
   */
  #handlerFailed(err: unknown, where: string): void {
    if (err instanceof WebSocketClosedError && !this.#canSend()) return;
    this.#flags |= FAILED;
    this.#settings.logger.error(`Uncaught error in WebSocket ${where}`, err);
    if ((this.#flags & TRANSPORT_CLOSED) !== 0) return;
    if (this.#engine.state === "OPEN" && (this.#flags & ENDED) === 0) {
      this.#engine.sendClose(INTERNAL_ERROR, "");
      this.#afterCloseSent();
    }
    this.#scheduleFlush();
  }

  /**
   * Pauses reading before `start`, and resumes it once started and no
   * handler promise holds the events. A handler promise does not pause the
   * transport by itself: most settle within the read (a send that the
   * transport took at once), and a pause and resume per message cost two
   * system calls each (libuv re-registers the socket with epoll). Input
   * that arrives while a promise holds the events goes to the engine, and
   * only then is reading paused (`onData`), so at most one read is held.
   */
  #updateReading(): void {
    if ((this.#flags & TRANSPORT_CLOSED) !== 0) return;
    const flags = this.#flags;
    const paused = (flags & READ_PAUSED) !== 0;
    const pause = (flags & ENDED) === 0 && ((flags & STARTED) === 0 || ((flags & WAITING) !== 0 && paused));
    if (pause !== paused) {
      this.#flags = pause ? flags | READ_PAUSED : flags & ~READ_PAUSED;
      if (pause) this.#connection.pause();
      else this.#connection.resume();
    }
  }

  /** Records how the connection ended, unless that is known already. */
  #setClose(code: number, reason: string): void {
    const end = this.#endState();
    if (end.code !== null) return;
    end.code = code;
    end.reason = reason;
  }

  #endState(): EndState {
    return (this.#end ??= { code: null, reason: null, error: null, closeTimer: null, lingerTimer: null, closed: null, markClosed: null });
  }

  #backlogState(): Backlog {
    return (this.#backlog ??= { queue: null, moved: null, drainWaiters: null, pendingPong: null });
  }

  // ------------------------------------------------------------------ output

  #canSend(): boolean {
    return (this.#flags & TRANSPORT_CLOSED) === 0 && (this.#flags & ENDED) === 0 && (this.#flags & CLOSE_REQUESTED) === 0 && this.#engine.state === "OPEN";
  }

  #scheduleFlush(): void {
    if ((this.#flags & PUMPING) !== 0 || (this.#flags & FLUSH_SCHEDULED) !== 0 || (this.#flags & TRANSPORT_CLOSED) !== 0) return;
    this.#flags |= FLUSH_SCHEDULED;
    queueMicrotask(() => {
      this.#flags &= ~FLUSH_SCHEDULED;
      this.#flush();
    });
  }

  /** One transport write for what the engine queued; settles the batch; closes when due. */
  #flush(): void {
    if ((this.#flags & TRANSPORT_CLOSED) !== 0) return;
    const out = this.#engine.takeOutput();
    if (out !== null && (this.#flags & ENDED) === 0) {
      if (this.#connection.write(out)) this.#flags |= FLOWING;
      else this.#flags = (this.#flags | BLOCKED) & ~FLOWING;
    }
    const shared = this.#batch;
    if (shared !== null) {
      this.#batch = null;
      if ((this.#flags & BLOCKED) !== 0) (this.#backlogState().drainWaiters ??= []).push(shared);
      else shared.resolve();
    }
    const backlog = this.#backlog;
    if (backlog !== null && backlog.moved !== null) {
      const moved = backlog.moved;
      backlog.moved = null;
      if ((this.#flags & BLOCKED) !== 0) {
        const waiters = (backlog.drainWaiters ??= []);
        for (const w of moved) waiters.push(w);
      } else {
        for (const w of moved) w.resolve();
      }
    }
    if ((this.#flags & ENDED) === 0 && this.#engine.shouldCloseTransport) this.#endTransport();
  }

  /** Our close frame is queued: no more sends, and the peer has `closeTimeout` to answer. */
  #afterCloseSent(): void {
    this.#flags |= CLOSE_REQUESTED;
    this.#stopPinging();
    this.#rejectQueue();
    this.#armCloseTimer();
  }

  #rejectQueue(): void {
    const backlog = this.#backlog;
    if (backlog === null || backlog.queue === null) return;
    const queue = backlog.queue;
    backlog.queue = null;
    const error = new WebSocketClosedError();
    for (const q of queue) q.reject(error);
  }

  /** Half-closes (after what was written) and gives the peer `closeTimeout` to close its side. */
  #endTransport(): void {
    this.#flags |= ENDED;
    this.#stopPinging();
    this.#rejectQueue();
    this.#connection.end();
    const end = this.#endState();
    end.closeTimer = this.#cancel(end.closeTimer);
    if ((this.#flags & EOF) !== 0) return; // the peer's side ended already: the transport closes now
    end.lingerTimer = this.#settings.clock.setTimeout(() => this.#onLingerTimer(), this.#settings.closeTimeout);
    // Read on, to see the peer's FIN.
    this.#updateReading();
  }

  // ------------------------------------------------------------------ timers

  #armCloseTimer(): void {
    if ((this.#flags & ENDED) !== 0 || (this.#flags & TRANSPORT_CLOSED) !== 0) return;
    const end = this.#endState();
    if (end.closeTimer !== null) return;
    end.closeTimer = this.#settings.clock.setTimeout(() => this.#onCloseTimer(), this.#settings.closeTimeout);
  }

  #armPingTimer(ping: PingState): void {
    ping.timer = this.#settings.clock.setTimeout(() => this.#onPingTimer(), this.#settings.pingInterval);
  }

  #armPingCheck(ping: PingState, delay: number): void {
    ping.checkTimer = this.#settings.clock.setTimeout(() => this.#onPingCheck(), delay);
  }

  // The timer callbacks are methods: a closure is made when a timer is armed, not per session.

  #onCloseTimer(): void {
    this.#end!.closeTimer = null;
    if ((this.#flags & TRANSPORT_CLOSED) !== 0 || (this.#flags & ENDED) !== 0) return;
    if (this.#engine.role === "client" && this.#engine.closed) {
      // RFC 6455 §7.1.1: the server should close TCP first; it did not, so we do.
      this.#flush();
      if ((this.#flags & ENDED) === 0) this.#endTransport();
      return;
    }
    this.#settings.logger.debug(`WebSocket close handshake timed out after ${this.#settings.closeTimeout} ms`);
    this.#connection.destroy();
  }

  #onLingerTimer(): void {
    this.#end!.lingerTimer = null;
    if ((this.#flags & TRANSPORT_CLOSED) === 0) this.#connection.destroy();
  }

  #onPingTimer(): void {
    const ping = this.#ping!;
    ping.timer = null;
    if (!this.#canSend()) return;
    const { clock, pingTimeout } = this.#settings;
    const now = clock.now();
    if (ping.sentAt < 0 || ping.lastReceived >= ping.sentAt) {
      ping.sentAt = now;
      if (ping.checkTimer === null && Number.isFinite(pingTimeout)) this.#armPingCheck(ping, pingTimeout);
    }
    this.#engine.sendPing(EMPTY);
    this.#scheduleFlush();
    this.#armPingTimer(ping);
  }

  #onPingCheck(): void {
    const ping = this.#ping!;
    ping.checkTimer = null;
    if (!this.#canSend()) return;
    const sentAt = ping.sentAt;
    if (sentAt < 0) return;
    const { clock, pingTimeout } = this.#settings;
    const now = clock.now();
    if (ping.lastReceived >= sentAt) {
      // Answered. A ping sent since then is checked from its own time.
      ping.sentAt = -1;
      return;
    }
    if ((this.#flags & WAITING) !== 0) {
      // Our own handler holds the input back; that is not the peer's fault.
      this.#armPingCheck(ping, pingTimeout);
      return;
    }
    const elapsed = now - sentAt;
    if (elapsed < pingTimeout) {
      this.#armPingCheck(ping, pingTimeout - elapsed);
      return;
    }
    this.#settings.logger.debug(`WebSocket ping timed out: nothing received for ${elapsed} ms`);
    // Tornado's periodic_ping: self.close(), a close frame without a code.
    this.#engine.sendClose();
    this.#afterCloseSent();
    this.#scheduleFlush();
  }

  #stopPinging(): void {
    const ping = this.#ping;
    if (ping === null) return;
    ping.timer = this.#cancel(ping.timer);
    ping.checkTimer = this.#cancel(ping.checkTimer);
  }

  #clearTimers(): void {
    this.#stopPinging();
    const end = this.#end;
    if (end === null) return;
    end.closeTimer = this.#cancel(end.closeTimer);
    end.lingerTimer = this.#cancel(end.lingerTimer);
  }

  /** Clears `timer` if armed; null, for the field that held it. */
  #cancel(timer: TimerHandle | null): null {
    if (timer !== null) this.#settings.clock.clearTimeout(timer);
    return null;
  }
}
