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
import { isIP, isIPv6, type Socket } from "node:net";
import * as tls from "node:tls";
import { asBuffer } from "../../core/bytes";
import type { Connection, ConnectionHandler, SocketAddress, StartTlsOptions } from "../../core/transport";

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

function ignore(): void {}

type Pem = string | Uint8Array;

/** @internal PEM text or bytes as Node's TLS options take them. */
export function pem(value: Pem): string | Buffer {
  return typeof value === "string" ? value : asBuffer(value);
}

/** @internal One PEM or a list of them, as Node's TLS options take them. */
export function pemList(value: Pem | Pem[] | undefined): string | Buffer | Array<string | Buffer> | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.map(pem) : pem(value);
}

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
  /** startTls was called: the socket belongs to the TLS connection now. */
  #upgraded = false;
  /** `end` or `close` came before a handler was set; reported by setHandler. */
  #pendingEnd = false;
  #pendingClose = false;
  #localAddress: SocketAddress | null | undefined = undefined;
  #remoteAddress: SocketAddress | null | undefined = undefined;

  static {
    onEnd = function (this: TyphoonSocket): void {
      const connection = this[kConnection];
      // Bun's node:net emits `end` after resetAndDestroy(); a destroyed connection reports only `close`.
      if (connection.#closed) return;
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
  get socket(): Socket | tls.TLSSocket {
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

  writeLatin1(text: string): boolean {
    return this.#writable ? this.#socket.write(text, "latin1") : false;
  }

  end(): void {
    if (!this.#writable) return;
    this.#writable = false;
    this.#socket.end();
  }

  destroy(error?: Error): void {
    // After startTls the socket belongs to the TLS connection.
    if (this.#upgraded) return;
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
    if (this.#upgraded) return;
    this.#paused = true;
    this.#socket.pause();
  }

  resume(): void {
    if (this.#upgraded) return;
    this.#paused = false;
    // Without a handler, resuming would let Node emit 'data' to nobody.
    if (this.#handler !== null) this.#socket.resume();
  }

  setNoDelay(noDelay: boolean): void {
    // Node ignores it on Unix sockets.
    if (!this.#upgraded) this.#socket.setNoDelay(noDelay);
  }

  /**
   * Upgrades this plain TCP or Unix connection to TLS (STARTTLS). From the
   * call on, this connection reports nothing more to its handler and
   * ignores writes; bytes that arrived and were not delivered yet go to the
   * TLS layer. What was written before is flushed first, in the clear. As
   * server: `new tls.TLSSocket(socket, { isServer: true })`, ready on
   * `secure`; as client: `tls.connect({ socket })`, ready on
   * `secureConnect` (the certificate is checked against `servername`, else
   * `host`, else the address connected to). Resolves with the encrypted
   * connection; rejects with the TLS error (a certificate not trusted, a
   * failed handshake, the peer gone), and the socket is then destroyed.
   *
   * @example
   * ```ts
   * connection.write(new TextEncoder().encode("220 Ready to start TLS\r\n"));
   * const secure = await connection.startTls({ server: { key, cert } });
   * secure.setHandler(handler);
   * ```
   */
  startTls(options: StartTlsOptions): Promise<Connection> {
    if (this.#kind === "tls") return Promise.reject(new Error("Cannot start TLS: the connection is encrypted already"));
    if (this.#upgraded) return Promise.reject(new Error("Cannot start TLS: the connection was upgraded already"));
    if (this.#closed || !this.#writable) return Promise.reject(new Error("Cannot start TLS: the connection is closed"));
    if ((options.server === undefined) === (options.client === undefined)) {
      return Promise.reject(new TypeError("Cannot start TLS: give either server or client options"));
    }
    this.#upgraded = true;
    this.#writable = false;
    this.#closed = true;
    const socket = this.#socket;
    // The old connection stops here. Reading stops too: what arrives from
    // now on stays in the socket's buffer, where the TLSSocket picks it up.
    socket.pause();
    socket.removeListener("data", onData);
    socket.removeListener("end", onEnd);
    socket.removeListener("drain", onDrain);
    socket.removeListener("error", onError);
    socket.removeListener("close", onClose);
    socket.on("error", ignore);
    const path = this.#path;
    const accepted = this.#accepted;
    return flushed(socket).then(() => upgradeSocket(socket, options, path, accepted));
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

/** Resolves once everything written to `socket` has been handed to the kernel. */
function flushed(socket: Socket): Promise<void> {
  if (socket.writableLength === 0) return Promise.resolve();
  // Writes complete in order, so the callback of an empty write comes after all of them.
  return new Promise((resolve) => socket.write(new Uint8Array(0), () => resolve()));
}

/** Runs the TLS handshake over a connected socket and wraps the result. */
function upgradeSocket(socket: Socket, options: StartTlsOptions, path: string | undefined, accepted: boolean): Promise<NodeConnection> {
  if (socket.destroyed) return Promise.reject(new Error("Cannot start TLS: the connection closed before the handshake"));
  const highWaterMark = socket.writableHighWaterMark;
  let secure: tls.TLSSocket;
  let readyEvent: string;
  try {
    if (options.server !== undefined) {
      const settings = options.server;
      const contextOptions: tls.SecureContextOptions = { key: pem(settings.key), cert: pem(settings.cert) };
      const ca = pemList(settings.ca);
      if (ca !== undefined) contextOptions.ca = ca;
      if (settings.passphrase !== undefined) contextOptions.passphrase = settings.passphrase;
      const socketOptions: tls.TLSSocketOptions = { isServer: true, secureContext: tls.createSecureContext(contextOptions) };
      if (settings.alpnProtocols !== undefined) socketOptions.ALPNProtocols = settings.alpnProtocols;
      secure = new tls.TLSSocket(socket, socketOptions);
      readyEvent = "secure";
    } else {
      const settings = options.client!;
      // Node passes highWaterMark on to the TLSSocket; its types do not list it.
      const connectOptions: tls.ConnectionOptions & { highWaterMark?: number } = {
        socket,
        highWaterMark,
        rejectUnauthorized: settings.rejectUnauthorized ?? true,
      };
      const host = settings.host;
      if (host !== undefined) connectOptions.host = host;
      const servername = settings.servername ?? (host !== undefined && isIP(host) === 0 ? host : undefined);
      if (servername !== undefined) connectOptions.servername = servername;
      const ca = pemList(settings.ca);
      if (ca !== undefined) connectOptions.ca = ca;
      if (settings.alpnProtocols !== undefined) connectOptions.ALPNProtocols = settings.alpnProtocols;
      secure = tls.connect(connectOptions);
      readyEvent = "secureConnect";
    }
  } catch (error) {
    socket.destroy();
    return Promise.reject(error);
  }
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      secure.removeListener("error", onFailure);
      secure.removeListener("end", onGone);
      secure.removeListener("close", onGone);
      secure.removeListener(readyEvent, onReady);
    };
    const onFailure = (error: Error): void => {
      cleanup();
      secure.on("error", ignore);
      secure.destroy();
      socket.destroy();
      reject(error);
    };
    const onGone = (): void => {
      const error = new Error("Cannot start TLS: the peer closed the connection during the handshake") as Error & { code: string };
      error.code = "ECONNRESET";
      onFailure(error);
    };
    const onReady = (): void => {
      cleanup();
      setWritableHighWaterMark(secure, highWaterMark);
      resolve(wrapSocket(secure, "tls", path, accepted));
    };
    secure.once("error", onFailure);
    secure.once("end", onGone);
    secure.once("close", onGone);
    secure.once(readyEvent, onReady);
  });
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
