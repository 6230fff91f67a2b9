/**
 * The few parts of Bun's socket API (`Bun.listen`, `Bun.connect`) that the
 * Bun transport uses, declared here so that the project needs no
 * `@types/bun`, and the one place that reads the `Bun` global.
 *
 * What Bun 1.4.4 does, as measured (the transport is built on these facts):
 *
 * - `socket.write(bytes, offset, length)` writes what the kernel takes at once
 *   and returns that count (0 or a partial count when the socket buffer is
 *   full, -1 once the socket is shut down or closed). The rest is not kept:
 *   the caller must keep it and retry in `drain`.
 * - `socket.end()` closes the whole connection once flushed, even with
 *   `allowHalfOpen`; `socket.shutdown()` sends FIN and keeps reading.
 * - With `allowHalfOpen: true` the peer's FIN is reported by `end`, except
 *   on a plain TCP or Unix socket that has already sent its own FIN: there
 *   the socket is closed at once and only `close` is called.
 * - `socket.terminate()` resets (RST) and calls `close` synchronously.
 * - `pause()`/`resume()` stop and restart reading from the kernel (TCP then
 *   pushes back), except on a socket made by `upgradeTLS`, where they do
 *   nothing.
 * - Each `data` call gets a fresh buffer that Bun does not touch again.
 * - Over TLS, `Bun.connect` resolves when TCP connects, before the
 *   handshake; `handshake(socket, success, error)` reports its outcome, and a
 *   client that rejects the certificate is closed by Bun.
 *
 * @module
 */

/** A PEM string or bytes, as Bun's TLS options take them. */
export type BunPem = string | Uint8Array;

/** Bun's TLS options (the subset used here). */
export interface BunTlsOptions {
  key?: BunPem | BunPem[];
  cert?: BunPem | BunPem[];
  ca?: BunPem | BunPem[];
  passphrase?: string;
  serverName?: string;
  rejectUnauthorized?: boolean;
  /** The ALPN wire format: each protocol prefixed by its length. */
  ALPNProtocols?: Uint8Array;
}

/** A `Bun.listen` or `Bun.connect` socket (TCPSocket or TLSSocket). */
export interface BunSocket<Data> {
  /** Per-socket state, set through the `data` option or by assignment. */
  data: Data;
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  readonly remoteFamily?: string;
  readonly localAddress?: string;
  readonly localPort?: number;
  readonly localFamily?: string;
  /** The ALPN protocol agreed; `false` or `null` when there is none. */
  readonly alpnProtocol?: string | false | null;
  write(data: Uint8Array | string, byteOffset?: number, byteLength?: number): number;
  shutdown(halfClose?: boolean): void;
  terminate(): void;
  pause(): void;
  resume(): void;
  setNoDelay(noDelay?: boolean): boolean;
  upgradeTLS?<D>(options: { data?: D; tls: BunTlsOptions; socket: BunSocketHandler<D> }): [BunSocket<D>, BunSocket<D>];
}

/** The callbacks of a socket; one object serves every socket of a listener. */
export interface BunSocketHandler<Data> {
  binaryType?: "buffer" | "uint8array" | "arraybuffer";
  open?(socket: BunSocket<Data>): void;
  handshake?(socket: BunSocket<Data>, success: boolean, error: Error | null): void;
  data?(socket: BunSocket<Data>, chunk: Uint8Array): void;
  drain?(socket: BunSocket<Data>): void;
  end?(socket: BunSocket<Data>): void;
  close?(socket: BunSocket<Data>, error?: Error): void;
  error?(socket: BunSocket<Data>, error: Error): void;
}

/** What `Bun.listen` and `Bun.connect` take. */
export interface BunSocketOptions<Data> {
  socket: BunSocketHandler<Data>;
  data?: Data;
  hostname?: string;
  port?: number;
  unix?: string;
  tls?: boolean | BunTlsOptions;
  allowHalfOpen?: boolean;
  reusePort?: boolean;
  localAddress?: string;
  localPort?: number;
}

/** A `Bun.listen` server. */
export interface BunSocketListener {
  readonly hostname?: string;
  readonly port?: number;
  readonly unix?: string;
  /** Stops listening; with `true`, closes every open connection too. */
  stop(closeActiveConnections?: boolean): void;
  getsockname?(out: { family?: string; address?: string; port?: number }): void;
}

/** The `Bun` global, as far as this transport uses it. */
export interface BunRuntime {
  listen<Data>(options: BunSocketOptions<Data>): BunSocketListener;
  connect<Data>(options: BunSocketOptions<Data>): Promise<BunSocket<Data>>;
}

/**
 * True when running under Bun (its `Bun` global exists).
 *
 * @example
 * ```ts
 * const transport = isBun() ? bunTransport : nodeTransport;
 * ```
 */
export function isBun(): boolean {
  return typeof (globalThis as { Bun?: unknown }).Bun === "object";
}

/**
 * The `Bun` global; throws outside Bun, naming what could not be done.
 * @internal
 */
export function bunRuntime(action: string): BunRuntime {
  const bun = (globalThis as { Bun?: BunRuntime }).Bun;
  if (bun === undefined || typeof bun.listen !== "function" || typeof bun.connect !== "function") {
    throw new Error(`Cannot ${action}: the Bun transport needs the Bun runtime (Bun.listen and Bun.connect), use nodeTransport elsewhere`);
  }
  return bun;
}
