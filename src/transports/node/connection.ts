/**
 * A {@link Connection} over a `node:net` or `node:tls` socket.
 *
 * This is on the hot path of every server, so the socket's events are wired
 * to module-level listener functions shared by all connections (no closure
 * per connection or per chunk), and `data` goes straight from the socket to
 * the handler's method: `socket.on("data")` -> `handler.data(chunk)`.
 *
 * @module
 */
import { isIPv6, type Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Connection, ConnectionHandler, SocketAddress } from "../../core/transport";

/** What kind of socket a connection wraps; it decides addresses and how `destroy` resets. */
export type NodeSocketKind = "tcp" | "tls" | "unix";

const kConnection = Symbol("typhoon.connection");
const kHandler = Symbol("typhoon.handler");
const CONNECTION_TOKEN = Symbol("NodeConnection");

/** A socket carrying back-references to its connection and handler, for the shared listeners. */
interface TyphoonSocket extends Socket {
  [kConnection]: NodeConnection;
  [kHandler]: ConnectionHandler;
}

/** Node-internal parts of a socket that the contract needs (see their uses). */
interface SocketInternals {
  _handle?: object | null;
  _writableState?: { highWaterMark: number };
  resetAndDestroy?: () => Socket;
  alpnProtocol?: string | false | null;
}

// The listeners below are installed once per socket and shared by every
// connection: `this` is the socket (EventEmitter calls listeners that way).

function onData(this: TyphoonSocket, chunk: Uint8Array): void {
  this[kHandler].data(chunk);
}

let onEnd: (this: TyphoonSocket) => void;
let onDrain: (this: TyphoonSocket) => void;
let onError: (this: TyphoonSocket, error: Error) => void;
let onClose: (this: TyphoonSocket) => void;

function familyOf(family: string | number | undefined, address: string): SocketAddress["family"] {
  if (family === "IPv6" || family === 6) return "IPv6";
  if (family === "IPv4" || family === 4) return "IPv4";
  return isIPv6(address) ? "IPv6" : "IPv4";
}

/**
 * One connection over a Node socket (TCP, TLS or Unix). Made by
 * {@link NodeTransport}; use it through the {@link Connection} contract.
 *
 * `pause()` stops `data` at once; Node keeps reading into the socket's
 * buffer until its readable high-water mark, then stops reading from the
 * kernel, so TCP flow control pushes back on the peer. `destroy()` on TCP
 * sends a reset (RST), as the contract says; on TLS and Unix sockets it
 * closes the socket.
 *
 * @example
 * ```ts
 * const connection = await nodeTransport.connect({ host: "127.0.0.1", port: 8080 });
 * connection.setHandler({ data: (chunk) => {}, end() {}, drain() {}, close(error) {} });
 * connection.write(new TextEncoder().encode("GET / HTTP/1.1\r\nhost: x\r\n\r\n"));
 * ```
 */
export class NodeConnection implements Connection {
  readonly #socket: TyphoonSocket;
  readonly #kind: NodeSocketKind;
  /** For Unix sockets: the path of the listening side, and which side we are. */
  readonly #path: string | undefined;
  readonly #accepted: boolean;
  #handler: ConnectionHandler | null = null;
  #writable = true;
  #closed = false;
  #paused = false;
  #error: Error | undefined = undefined;
  /** `end` or `close` came before a handler was set; reported by setHandler. */
  #pendingEnd = false;
  #pendingClose = false;
  #localAddress: SocketAddress | null | undefined = undefined;
  #remoteAddress: SocketAddress | null | undefined = undefined;

  static {
    onEnd = function (this: TyphoonSocket): void {
      const connection = this[kConnection];
      const handler = connection.#handler;
      if (handler === null) connection.#pendingEnd = true;
      else handler.end();
    };
    onDrain = function (this: TyphoonSocket): void {
      const connection = this[kConnection];
      if (!connection.#closed) connection.#handler?.drain();
    };
    onError = function (this: TyphoonSocket, error: Error): void {
      const connection = this[kConnection];
      connection.#writable = false;
      connection.#closed = true;
      connection.#error ??= error;
    };
    onClose = function (this: TyphoonSocket): void {
      const connection = this[kConnection];
      connection.#writable = false;
      connection.#closed = true;
      const handler = connection.#handler;
      if (handler === null) connection.#pendingClose = true;
      else handler.close(connection.#error);
    };
  }

  /** @internal Made by {@link NodeTransport}. */
  constructor(token: symbol, socket: Socket, kind: NodeSocketKind, path: string | undefined, accepted: boolean) {
    if (token !== CONNECTION_TOKEN) throw new TypeError("Cannot construct a NodeConnection: use NodeTransport");
    const typed = socket as TyphoonSocket;
    typed[kConnection] = this;
    this.#socket = typed;
    this.#kind = kind;
    this.#path = path;
    this.#accepted = accepted;
    socket.on("end", onEnd);
    socket.on("drain", onDrain);
    socket.on("error", onError);
    socket.on("close", onClose);
    if (socket.destroyed) {
      this.#writable = false;
      this.#closed = true;
    }
  }

  get localAddress(): SocketAddress | null {
    if (this.#localAddress === undefined || this.#localAddress === null) this.#localAddress = this.#address(true);
    return this.#localAddress;
  }

  get remoteAddress(): SocketAddress | null {
    if (this.#remoteAddress === undefined || this.#remoteAddress === null) this.#remoteAddress = this.#address(false);
    return this.#remoteAddress;
  }

  get encrypted(): boolean {
    return this.#kind === "tls";
  }

  get alpnProtocol(): string | null {
    return (this.#socket as unknown as SocketInternals).alpnProtocol || null;
  }

  get writableLength(): number {
    return this.#socket.writableLength;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get writable(): boolean {
    return this.#writable;
  }

  /** The underlying `net.Socket` or `tls.TLSSocket`, for what the contract does not cover. */
  get socket(): Socket | TLSSocket {
    return this.#socket;
  }

  setHandler(handler: ConnectionHandler): void {
    const first = this.#handler === null;
    this.#handler = handler;
    this.#socket[kHandler] = handler;
    if (first) {
      // Node holds what it reads until a 'data' listener exists, so bytes
      // that came before the handler are delivered now, in order.
      this.#socket.on("data", onData);
      if (!this.#paused) this.#socket.resume();
      if (this.#pendingEnd || this.#pendingClose) queueMicrotask(() => this.#reportPending());
    }
  }

  write(chunk: Uint8Array): boolean {
    return this.#writable ? this.#socket.write(chunk) : false;
  }

  end(): void {
    if (!this.#writable) return;
    this.#writable = false;
    this.#socket.end();
  }

  destroy(error?: Error): void {
    if (error !== undefined) this.#error ??= error;
    this.#writable = false;
    this.#closed = true;
    const socket = this.#socket;
    if (socket.destroyed) return;
    const internals = socket as unknown as SocketInternals;
    // A reset, as the contract says: RST on TCP drops unsent data at both
    // ends. resetAndDestroy() needs a live TCP handle (not TLS, not a pipe).
    if (this.#kind === "tcp" && internals._handle && typeof internals.resetAndDestroy === "function") {
      internals.resetAndDestroy();
    } else {
      socket.destroy();
    }
  }

  pause(): void {
    this.#paused = true;
    this.#socket.pause();
  }

  resume(): void {
    this.#paused = false;
    // Without a handler, resuming would let Node emit 'data' to nobody.
    if (this.#handler !== null) this.#socket.resume();
  }

  setNoDelay(noDelay: boolean): void {
    // Node ignores it on Unix sockets.
    this.#socket.setNoDelay(noDelay);
  }

  #reportPending(): void {
    const handler = this.#handler!;
    if (this.#pendingEnd) {
      this.#pendingEnd = false;
      handler.end();
    }
    if (this.#pendingClose) {
      this.#pendingClose = false;
      handler.close(this.#error);
    }
  }

  #address(local: boolean): SocketAddress | null {
    const socket = this.#socket;
    if (this.#path !== undefined) {
      // The listening side of a Unix socket has the path; the connecting side is unnamed.
      const named = local === this.#accepted;
      return { family: "unix", address: named ? (this.#path ?? "") : "", port: 0 };
    }
    const address = local ? socket.localAddress : socket.remoteAddress;
    const port = local ? socket.localPort : socket.remotePort;
    if (address === undefined || port === undefined) return null;
    const family = local ? (socket as Socket & { localFamily?: string }).localFamily : socket.remoteFamily;
    return { family: familyOf(family, address), address, port };
  }
}

/** @internal Wraps a connected socket (used by NodeTransport). */
export function wrapSocket(socket: Socket, kind: NodeSocketKind, path: string | undefined, accepted: boolean): NodeConnection {
  return new NodeConnection(CONNECTION_TOKEN, socket, kind, path, accepted);
}

/**
 * @internal Sets the writable high-water mark of a socket made by a TLS
 * server: Node's `tls.Server` does not pass its `highWaterMark` option on to
 * the `TLSSocket`s it creates (Node 20), so set the stream state directly.
 */
export function setWritableHighWaterMark(socket: Socket, highWaterMark: number): void {
  const state = (socket as unknown as SocketInternals)._writableState;
  if (state !== undefined && state.highWaterMark !== highWaterMark) state.highWaterMark = highWaterMark;
}
