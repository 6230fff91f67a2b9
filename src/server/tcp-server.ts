/**
 * Tornado's `tcpserver`: a server that hands each accepted connection, as an
 * {@link IOStream}, to `handleStream`. Over any transport.
 *
 * How this works: `listen` asks the transport for a listener whose accepted
 * connections go to {@link TCPServer.handleConnection}, which wraps each in an
 * {@link IOStream} and calls `handleStream(stream, address)`. A handler that
 * throws, or whose promise rejects, is logged and its stream closed; the
 * server goes on serving. Tornado's two-step `bind_sockets` then
 * `add_sockets` (bind in the parent, serve in the children, or bind before
 * dropping privileges) is {@link bindSockets}, which listens and holds the
 * accepted connections, as a kernel's backlog does, until
 * {@link TCPServer.addSockets} serves them.
 *
 * @module
 */
import { checkIOStreamOptions, IOStream, StreamClosedError, type IOStreamOptions } from "../core/iostream";
import { consoleLogger, type Logger } from "../core/log";
import type { Connection, Listener, ListenOptions, SocketAddress, TlsServerOptions, Transport } from "../core/transport";
import { defaultTransport } from "./default-transport";

/** What `handleStream` gets for each connection: the stream and the peer's address. */
export type HandleStream = (stream: IOStream, address: SocketAddress | null) => void | Promise<void>;

/** Options of a {@link TCPServer}. */
export interface TCPServerOptions extends IOStreamOptions {
  /** The handler for each connection, instead of overriding {@link TCPServer.handleStream}. */
  handleStream?: HandleStream;
  /**
   * How connections are accepted.
   * @default defaultTransport() (Node sockets under Node)
   */
  transport?: Transport;
  /** TLS for every listener of this server (Tornado's `ssl_options`). */
  tls?: TlsServerOptions;
  /**
   * Where errors of handlers are reported: errors at `error`, a peer that
   * went away ({@link StreamClosedError}) at `debug`.
   * @default consoleLogger()
   */
  logger?: Logger;
  /**
   * High-water mark of each accepted connection's unflushed output, in bytes.
   * @default the transport's (64 KiB)
   */
  highWaterMark?: number;
}

/** Options of {@link bindSockets}. */
export interface BindSocketsOptions {
  /** @default defaultTransport() */
  transport?: Transport;
  /** TLS for the sockets bound. */
  tls?: TlsServerOptions;
  backlog?: number;
  /** Share the port between processes (SO_REUSEPORT) where the platform has it. */
  reusePort?: boolean;
  /** High-water mark of accepted connections' unflushed output. */
  highWaterMark?: number;
}

const BOUND_TOKEN = Symbol("BoundSocket");

/**
 * A listening socket from {@link bindSockets}: it accepts connections and
 * holds them until a server takes it with {@link TCPServer.addSockets}.
 * Closing it stops the listening and destroys what it still holds.
 *
 * @example
 * ```ts
 * const [socket] = await bindSockets(8888);
 * console.log(socket.address.port);
 * new EchoServer().addSockets([socket]);
 * ```
 */
export class BoundSocket implements Listener {
  readonly #listener: Listener;
  #held: Connection[] = [];
  #onConnection: ((connection: Connection) => void) | null = null;
  #closed = false;

  /** @internal Made by {@link bindSockets}. */
  constructor(token: symbol, listener: Listener) {
    if (token !== BOUND_TOKEN) throw new TypeError("Cannot construct a BoundSocket: use bindSockets()");
    this.#listener = listener;
  }

  get address(): SocketAddress {
    return this.#listener.address;
  }

  /** True once a server serves this socket. */
  get attached(): boolean {
    return this.#onConnection !== null;
  }

  /** @internal Called by the transport for each accepted connection. */
  accept(connection: Connection): void {
    if (this.#closed) connection.destroy();
    else if (this.#onConnection === null) this.#held.push(connection);
    else this.#onConnection(connection);
  }

  /** @internal Hands held and future connections to `onConnection`. */
  attach(onConnection: (connection: Connection) => void): void {
    if (this.#closed) throw new Error("Cannot add a socket: it is closed");
    if (this.#onConnection !== null) throw new Error(`Cannot add a socket: a server serves ${describe(this.address)} already`);
    this.#onConnection = onConnection;
    const held = this.#held;
    this.#held = [];
    for (const connection of held) onConnection(connection);
  }

  /**
   * Stops listening; connections held for a server are destroyed.
   *
   * @example
   * ```ts
   * const [socket] = await bindSockets(0);
   * await socket.close();
   * ```
   */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      for (const connection of this.#held) connection.destroy();
      this.#held = [];
    }
    return this.#listener.close();
  }
}

/**
 * Tornado's `bind_sockets`: listens on a port (and host), or on the
 * transport's listen options (`{ path }` for a Unix socket), without serving
 * yet. Give the result to {@link TCPServer.addSockets}. Resolves with a list,
 * as Tornado's, of one socket: the transport binds a host's addresses itself
 * (Node listens on both IPv4 and IPv6 when no host is given).
 *
 * @example
 * ```ts
 * const sockets = await bindSockets(8888, "127.0.0.1");
 * const server = new TCPServer({ handleStream: echo });
 * server.addSockets(sockets);
 * ```
 */
export async function bindSockets(
  target: number | ListenOptions,
  host?: string,
  options: BindSocketsOptions = {},
): Promise<BoundSocket[]> {
  const transport = options.transport ?? defaultTransport();
  const listen: ListenOptions = typeof target === "number" ? { port: target } : { ...target };
  if (host !== undefined) listen.host = host;
  if (options.tls !== undefined) listen.tls ??= options.tls;
  if (options.backlog !== undefined) listen.backlog ??= options.backlog;
  if (options.reusePort !== undefined) listen.reusePort ??= options.reusePort;
  if (options.highWaterMark !== undefined) listen.highWaterMark ??= options.highWaterMark;
  let bound: BoundSocket | null = null;
  const early: Connection[] = [];
  const listener = await transport.listen(listen, (connection) => {
    if (bound === null) early.push(connection);
    else bound.accept(connection);
  });
  bound = new BoundSocket(BOUND_TOKEN, listener);
  for (const connection of early) bound.accept(connection);
  return [bound];
}

function describe(address: SocketAddress): string {
  if (address.family === "unix" || address.port === 0) return address.address;
  return address.family === "IPv6" ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`;
}

/**
 * Tornado's `TCPServer`: accepts connections and calls `handleStream(stream,
 * address)` for each, with an {@link IOStream}. Override `handleStream` in a
 * subclass, or give it as an option.
 *
 * @example
 * ```ts
 * class EchoServer extends TCPServer {
 *   override async handleStream(stream: IOStream) {
 *     for (;;) await stream.write(await stream.readUntil("\n"));
 *   }
 * }
 * const server = new EchoServer();
 * await server.listen(8888);
 * // ...
 * await server.close();
 * ```
 */
export class TCPServer {
  readonly #transport: Transport;
  readonly #handler: HandleStream | undefined;
  readonly #streamOptions: IOStreamOptions;
  readonly #tls: TlsServerOptions | undefined;
  readonly #highWaterMark: number | undefined;
  readonly #listeners: Listener[] = [];
  readonly #streams = new Set<IOStream>();
  #stopped = false;
  /** Where handler errors are reported. */
  readonly logger: Logger;

  constructor(options: TCPServerOptions = {}) {
    this.#transport = options.transport ?? defaultTransport();
    this.#handler = options.handleStream;
    this.#tls = options.tls;
    this.#highWaterMark = options.highWaterMark;
    this.logger = options.logger ?? consoleLogger();
    this.#streamOptions = {
      maxBufferSize: options.maxBufferSize,
      maxWriteBufferSize: options.maxWriteBufferSize,
      readHighWaterMark: options.readHighWaterMark,
    };
    // Check the stream options now rather than at the first connection.
    checkIOStreamOptions(this.#streamOptions);
  }

  /** The addresses listened on (read the port here after listening on port 0). */
  get addresses(): SocketAddress[] {
    return this.#listeners.map((listener) => listener.address);
  }

  /** The first address listened on, or null. */
  get address(): SocketAddress | null {
    return this.#listeners[0]?.address ?? null;
  }

  /** Streams handed to `handleStream` and not closed yet. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /**
   * Called for each connection with its stream and the peer's address.
   * Override it, or give `handleStream` in the options. May return a
   * promise: a rejection is logged and the stream closed.
   *
   * @example
   * ```ts
   * class Hello extends TCPServer {
   *   override async handleStream(stream: IOStream, address: SocketAddress | null) {
   *     await stream.write(`hello ${address?.address}\n`);
   *     stream.close();
   *   }
   * }
   * ```
   */
  handleStream(stream: IOStream, address: SocketAddress | null): void | Promise<void> {
    if (this.#handler === undefined) {
      throw new Error("Cannot handle a stream: override TCPServer.handleStream or give the handleStream option");
    }
    return this.#handler(stream, address);
  }

  /**
   * Listens on a port (and host), or on the transport's listen options
   * (`{ path }` for a Unix socket, `{ port, host, reusePort }`, ...), and
   * serves what is accepted. May be called more than once. Resolves with the
   * address bound.
   *
   * @example
   * ```ts
   * await server.listen(8888, "127.0.0.1");
   * await server.listen({ path: "/tmp/echo.sock" });
   * ```
   */
  async listen(target: number | ListenOptions, host?: string): Promise<SocketAddress> {
    if (this.#stopped) throw new Error("Cannot listen: the server is stopped");
    const options: ListenOptions = typeof target === "number" ? { port: target } : { ...target };
    if (host !== undefined) options.host = host;
    if (this.#tls !== undefined) options.tls ??= this.#tls;
    if (this.#highWaterMark !== undefined) options.highWaterMark ??= this.#highWaterMark;
    const listener = await this.#transport.listen(options, (connection) => this.handleConnection(connection));
    if (this.#stopped) {
      await listener.close();
      throw new Error("Cannot listen: the server was stopped meanwhile");
    }
    this.#listeners.push(listener);
    return listener.address;
  }

  /**
   * Tornado's `add_sockets`: serves sockets bound earlier by
   * {@link bindSockets}, with the connections they accepted meanwhile.
   *
   * @example
   * ```ts
   * server.addSockets(await bindSockets(0, "127.0.0.1"));
   * ```
   */
  addSockets(sockets: readonly BoundSocket[]): void {
    if (this.#stopped) throw new Error("Cannot add sockets: the server is stopped");
    for (const socket of sockets) {
      socket.attach((connection) => this.handleConnection(connection));
      this.#listeners.push(socket);
    }
  }

  /**
   * Tornado's `add_socket`: serves one socket from {@link bindSockets}.
   *
   * @example
   * ```ts
   * const [socket] = await bindSockets({ path: "/tmp/app.sock" });
   * server.addSocket(socket);
   * ```
   */
  addSocket(socket: BoundSocket): void {
    this.addSockets([socket]);
  }

  /**
   * Serves a connection made elsewhere (a memory pipe in a test, a socket
   * accepted by other code): wraps it in a stream and calls `handleStream`.
   *
   * @example
   * ```ts
   * const [client, server] = createPipe();
   * echoServer.handleConnection(server);
   * ```
   */
  handleConnection(connection: Connection): void {
    if (this.#stopped) {
      connection.destroy();
      return;
    }
    const stream = new IOStream(connection, this.#streamOptions);
    this.#streams.add(stream);
    void stream.waitClosed().then(() => this.#streams.delete(stream));
    // Read once, while open: a closed connection may no longer know its peer.
    const address = connection.remoteAddress;
    let result: void | Promise<void>;
    try {
      result = this.handleStream(stream, address);
    } catch (error) {
      this.#failed(stream, address, error);
      return;
    }
    if (result !== undefined && typeof (result as Promise<void>).then === "function") {
      (result as Promise<void>).then(undefined, (error: unknown) => this.#failed(stream, address, error));
    }
  }

  /**
   * Tornado's `stop`: stops listening. Streams being served go on; see
   * {@link TCPServer.close} to end them too.
   *
   * @example
   * ```ts
   * await server.stop();
   * ```
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    const listeners = this.#listeners.splice(0);
    await Promise.all(listeners.map((listener) => listener.close()));
  }

  /**
   * Stops listening and closes every stream being served (their pending
   * reads reject with a {@link StreamClosedError}); resolves once they are
   * closed. A stream that a handler upgraded with `startTls` is the
   * handler's to close: the server tracks the streams it made.
   *
   * @example
   * ```ts
   * await server.close();
   * ```
   */
  async close(): Promise<void> {
    await this.stop();
    const streams = [...this.#streams];
    for (const stream of streams) stream.close();
    await Promise.all(streams.map((stream) => stream.waitClosed()));
  }

  #failed(stream: IOStream, address: SocketAddress | null, error: unknown): void {
    if (error instanceof StreamClosedError) {
      this.logger.debug(`Stream from ${addressText(address)} closed while being handled`, error);
    } else {
      this.logger.error(`Error in handleStream for ${addressText(address)}`, error);
    }
    stream.close(error);
  }
}

function addressText(address: SocketAddress | null): string {
  return address === null ? "an unknown peer" : describe(address);
}

