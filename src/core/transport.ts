/**
 * The Transport contract: what every way of moving bytes (Node sockets, Bun
 * sockets, in-memory pipes) provides, and all that the drivers above may use.
 * A transport knows nothing of HTTP.
 *
 * How a connection behaves:
 *
 * - Bytes arrive through the handler set with {@link Connection.setHandler}.
 *   Anything that arrives before a handler is set is held and delivered, in
 *   order, when it is set. A chunk handed to `data` belongs to the handler.
 * - {@link Connection.write} never drops data. It returns `false` once the
 *   bytes accepted but not yet flushed reach the high-water mark; the handler's
 *   `drain` is called once they have fallen below it again (Node sockets: once
 *   all are flushed).
 * - {@link Connection.pause} stops `data` calls (and, on real sockets, stops
 *   reading from the kernel so that TCP pushes back); `resume` restarts them.
 * - {@link Connection.end} half-closes: it flushes what was written, then sends
 *   FIN. The peer's FIN is reported by the handler's `end`.
 * - {@link Connection.destroy} drops unsent data and closes at once. The peer
 *   sees a reset (`close` with an error) where the transport can send one;
 *   over TLS and Unix sockets it may see `end` instead.
 * - The handler's `close` is called exactly once, last, when the connection
 *   is fully closed, with an error if it did not end cleanly.
 *
 * @module
 */

/** Where a connection's end is. */
export interface SocketAddress {
  /** `IPv4`, `IPv6`, `unix` (address is the path) or `memory` (address is the pipe's name). */
  readonly family: "IPv4" | "IPv6" | "unix" | "memory";
  readonly address: string;
  /** The port; 0 for Unix sockets and memory pipes without one. */
  readonly port: number;
}

/** Callbacks through which a connection reports to its owner. */
export interface ConnectionHandler {
  /**
   * Bytes from the peer; the handler may keep them. A chunk may share its
   * ArrayBuffer with other bytes (Node's pooled Buffers, as
   * `Buffer.allocUnsafe`): read it through its `byteOffset` and
   * `byteLength`, never through the whole `chunk.buffer`.
   */
  data(chunk: Uint8Array): void;
  /** The peer half-closed its side (no more `data` will come). */
  end(): void;
  /** Unflushed output fell below the high-water mark after `write` returned false. */
  drain(): void;
  /** The connection is fully closed. Called once, last; `error` if it did not end cleanly. */
  close(error?: Error): void;
}

/** One open, bidirectional byte stream. */
export interface Connection {
  /**
   * The addresses of the two ends; null when unknown. Read them while the
   * connection is open: a closed Node TCP socket no longer has them (Node's
   * transport does not keep a copy on every connection).
   */
  readonly localAddress: SocketAddress | null;
  readonly remoteAddress: SocketAddress | null;
  /** True for TLS connections. */
  readonly encrypted: boolean;
  /** The ALPN protocol agreed on a TLS connection, if any. */
  readonly alpnProtocol: string | null;
  /** Bytes accepted by `write` but not yet flushed to the peer. */
  readonly writableLength: number;
  /** True once `close` has been (or is being) reported. */
  readonly closed: boolean;
  /** True while the peer can still be written to (not ended or destroyed). */
  readonly writable: boolean;
  /** Sets the handler; data held so far is delivered to it. */
  setHandler(handler: ConnectionHandler): void;
  /**
   * Queues bytes for the peer. Returns false when the unflushed bytes are at
   * or above the high-water mark: wait for `drain` before writing more.
   * Writing after `end` or `destroy` is ignored and returns false. The part
   * of a large chunk that the kernel did not take at once may be kept by
   * reference until it is sent (as Node's sockets do): change such a chunk
   * only after `drain`, or write a copy.
   */
  write(chunk: Uint8Array): boolean;
  /**
   * Optional fast path: writes a string as latin1 (one byte per char; every
   * char must be below U+0100), as `write` would write those bytes. Node's
   * sockets write such a string without making a buffer first; HTTP heads
   * travel this way. Same return value and backpressure as `write`.
   */
  writeLatin1?(text: string): boolean;
  /** Flushes what was written, then half-closes (FIN). */
  end(): void;
  /** Closes at once, dropping unsent data. */
  destroy(error?: Error): void;
  /** Stops delivering `data` until `resume`. */
  pause(): void;
  /** Restarts delivery after `pause`. */
  resume(): void;
  /** Turns Nagle's algorithm off (true) or on; a no-op where it means nothing. */
  setNoDelay(noDelay: boolean): void;
  /**
   * Upgrades this plain connection to TLS in place (STARTTLS), as server or
   * client. Resolves with the encrypted connection once the handshake is
   * done; from then on use only that one (this one must not be used again).
   * Transports that cannot do it leave it undefined.
   */
  startTls?(options: StartTlsOptions): Promise<Connection>;
}

/** How {@link Connection.startTls} upgrades a connection: give `server` or `client`. */
export type StartTlsOptions = { server: TlsServerOptions; client?: undefined } | { client: TlsClientOptions & { host?: string }; server?: undefined };

/** TLS material for a listening transport. PEM strings or bytes. */
export interface TlsServerOptions {
  key: string | Uint8Array;
  cert: string | Uint8Array;
  ca?: string | Uint8Array | Array<string | Uint8Array>;
  passphrase?: string;
  /** Protocols offered in ALPN, most preferred first (e.g. `["http/1.1"]`). */
  alpnProtocols?: string[];
}

/** TLS settings for an outgoing connection. */
export interface TlsClientOptions {
  /** SNI name; defaults to the host connected to when it is not an IP. */
  servername?: string;
  ca?: string | Uint8Array | Array<string | Uint8Array>;
  /** Defaults to true. */
  rejectUnauthorized?: boolean;
  alpnProtocols?: string[];
}

/** Where and how to listen. Give `port` (and `host`), or `path`. */
export interface ListenOptions {
  /** TCP port; 0 picks a free one (read it from `Listener.address`). */
  port?: number;
  /** Address to bind; defaults depend on the transport (Node: all interfaces). */
  host?: string;
  /** A Unix socket path (or a memory pipe's name). */
  path?: string;
  backlog?: number;
  /** SO_REUSEPORT where the platform has it, so that several processes share a port. */
  reusePort?: boolean;
  tls?: TlsServerOptions;
  /** High-water mark for each accepted connection's unflushed output, in bytes. */
  highWaterMark?: number;
}

/** Where to connect. Give `port` (and `host`), or `path`. */
export interface ConnectOptions {
  host?: string;
  port?: number;
  path?: string;
  /** TLS; `true` for defaults. */
  tls?: boolean | TlsClientOptions;
  /** Local address to bind before connecting. */
  localAddress?: string;
  /** Local port to bind before connecting (0 or absent: any). */
  localPort?: number;
  /** High-water mark for the connection's unflushed output, in bytes. */
  highWaterMark?: number;
}

/** An open listening endpoint. */
export interface Listener {
  readonly address: SocketAddress;
  /** Stops accepting new connections; open connections are left alone. */
  close(): Promise<void>;
}

/** A way of making connections: listen for them, or connect out. */
export interface Transport {
  /** A short name for logs and test titles (`node`, `bun`, `memory`). */
  readonly name: string;
  /** Starts listening; `onConnection` is called for each accepted connection. */
  listen(options: ListenOptions, onConnection: (connection: Connection) => void): Promise<Listener>;
  /** Opens a connection; rejects with the transport's error if it cannot. */
  connect(options: ConnectOptions): Promise<Connection>;
}

/** Default high-water mark for unflushed output: 64 KiB, as Node's streams (16 KiB) raised for servers. */
export const DEFAULT_HIGH_WATER_MARK = 64 * 1024;
