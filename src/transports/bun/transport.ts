/**
 * The Bun transport: TCP (IPv4 and IPv6), Unix domain sockets and TLS on
 * `Bun.listen` and `Bun.connect`.
 *
 * @module
 */
import cluster from "node:cluster";
import { lstat, unlink } from "node:fs/promises";
import {
  type ConnectOptions,
  type Connection,
  DEFAULT_HIGH_WATER_MARK,
  type Listener,
  type ListenOptions,
  type SocketAddress,
  type Transport,
} from "../../core/transport";
import { type BunRuntime, type BunSocketHandler, type BunSocketListener, type BunSocketOptions, bunRuntime } from "./bun-api";
import {
  acceptSocket,
  type BunConnection,
  type BunSocketKind,
  CLIENT_EVENTS,
  outgoingConnection,
  serverHandshake,
  SOCKET_EVENTS,
} from "./connection";
import { clientTlsOptions, serverTlsOptions } from "./tls-options";

/** {@link ConnectOptions} and what Bun adds. */
export interface BunConnectOptions extends ConnectOptions {
  /** Local port to bind before connecting (as Node's `localPort`). */
  localPort?: number;
}

/** Options of a {@link BunTransport}. */
export interface BunTransportOptions {
  /**
   * Turn Nagle's algorithm off on every TCP connection, accepted or made.
   * Bun does so itself; `false` turns it back on for each connection.
   * `Connection.setNoDelay` still changes it per connection.
   * @default true
   */
  noDelay?: boolean;
}

function errorCode(error: unknown): string | undefined {
  return (error as { code?: unknown } | null)?.code as string | undefined;
}

function checkHighWaterMark(value: number | undefined): number {
  if (value === undefined) return DEFAULT_HIGH_WATER_MARK;
  if (!(value > 0)) throw new RangeError(`Cannot use a high-water mark of ${value}: it must be a positive number of bytes`);
  return value;
}

/**
 * True if `path` is a Unix socket that nothing listens on any more: a
 * socket file to which a connect is refused. Anything else is left alone.
 */
async function isStaleSocket(bun: BunRuntime, path: string): Promise<boolean> {
  try {
    if (!(await lstat(path)).isSocket()) return false;
  } catch {
    return false;
  }
  try {
    const probe = await bun.connect<undefined>({ unix: path, socket: { data() {} } });
    probe.terminate();
    return false;
  } catch (error) {
    return errorCode(error) === "ECONNREFUSED";
  }
}

function addressOf(server: BunSocketListener, path: string | undefined): SocketAddress {
  if (path !== undefined) return { family: "unix", address: path, port: 0 };
  const name: { family?: string; address?: string; port?: number } = {};
  server.getsockname?.(name);
  const address = name.address ?? server.hostname ?? "";
  const port = name.port ?? server.port ?? 0;
  const family: SocketAddress["family"] = name.family === "IPv6" || (name.family === undefined && address.includes(":")) ? "IPv6" : "IPv4";
  return { family, address, port };
}

class BunListener implements Listener {
  readonly address: SocketAddress;
  readonly #server: BunSocketListener;
  #closed = false;

  constructor(server: BunSocketListener, address: SocketAddress) {
    this.#server = server;
    this.address = address;
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      // Closes the listening socket (and removes a Unix socket's file);
      // open connections are left alone, as Listener.close promises.
      this.#server.stop(false);
    }
    return Promise.resolve();
  }
}

/**
 * A {@link Transport} on `Bun.listen` and `Bun.connect`, for Bun only: using
 * it elsewhere throws `Cannot listen: the Bun transport needs the Bun
 * runtime...`. Importing it anywhere is safe.
 *
 * - `listen({ port, host })` (host defaults to `::`, all interfaces, or
 *   `0.0.0.0` where IPv6 is missing) or `listen({ path })` (a stale Unix
 *   socket file, one that refuses connections, is removed first), with
 *   `tls` for HTTPS; `reusePort` sets SO_REUSEPORT (Linux), and defaults to
 *   true in a `node:cluster` worker so that workers share the port as they
 *   do on Node. Bun has no `backlog` option; it is ignored.
 * - `connect({ host, port })` or `connect({ path })`, with `tls: true` or
 *   `{ servername, ca, rejectUnauthorized, alpnProtocols }`; resolves after
 *   the TLS handshake. `localAddress` and `localPort` bind the source.
 * - Every socket is half-open capable: the peer's FIN is reported as `end`
 *   and the driver decides when to end its side.
 *
 * @example
 * ```ts
 * const transport = new BunTransport();
 * const listener = await transport.listen({ host: "127.0.0.1", port: 0 }, (connection) => {
 *   connection.setHandler({ data: (chunk) => connection.write(chunk), end: () => connection.end(), drain() {}, close() {} });
 * });
 * const client = await transport.connect({ host: "127.0.0.1", port: listener.address.port });
 * ```
 */
export class BunTransport implements Transport {
  readonly name = "bun";
  readonly #noDelay: boolean;

  constructor(options: BunTransportOptions = {}) {
    this.#noDelay = options.noDelay ?? true;
  }

  /**
   * Starts listening. Resolves once the socket is bound; `address.port` is
   * the port picked when `port` was 0. Rejects with Bun's error
   * (`EADDRINUSE`, ...).
   *
   * @example
   * ```ts
   * const listener = await bunTransport.listen({ path: "/tmp/app.sock" }, serve);
   * await listener.close();
   * ```
   */
  async listen(options: ListenOptions, onConnection: (connection: Connection) => void): Promise<Listener> {
    const bun = bunRuntime("listen");
    const { path, port } = options;
    if ((path === undefined) === (port === undefined)) {
      throw new TypeError("Cannot listen: give either a port or a path");
    }
    const highWaterMark = checkHighWaterMark(options.highWaterMark);
    const tls = options.tls !== undefined;
    const kind: BunSocketKind = path !== undefined ? (tls ? "tls-unix" : "unix") : tls ? "tls" : "tcp";
    const noDelay = this.#noDelay;
    // One handler object per listener, shared by all its connections.
    const events: BunSocketHandler<BunConnection> = {
      ...SOCKET_EVENTS,
      open: tls
        ? (socket) => {
            acceptSocket(socket, kind, path, highWaterMark, noDelay);
          }
        : (socket) => {
            onConnection(acceptSocket(socket, kind, path, highWaterMark, noDelay));
          },
    };
    if (tls) events.handshake = (socket, success) => serverHandshake(socket, success, onConnection);

    const config: BunSocketOptions<BunConnection> = { socket: events, allowHalfOpen: true };
    if (options.tls !== undefined) config.tls = serverTlsOptions(options.tls);
    if (path !== undefined) {
      config.unix = path;
    } else {
      config.port = port!;
      config.hostname = options.host ?? "::";
      // Node's cluster shares one listening socket among its workers; Bun's
      // sockets cannot, so a worker shares the port with SO_REUSEPORT.
      if (options.reusePort ?? cluster.isWorker) config.reusePort = true;
    }

    let server: BunSocketListener;
    try {
      server = bun.listen(config);
    } catch (error) {
      const code = errorCode(error);
      if (path === undefined && options.host === undefined && (code === "EAFNOSUPPORT" || code === "EADDRNOTAVAIL")) {
        // No IPv6 on this machine: all IPv4 interfaces, then.
        config.hostname = "0.0.0.0";
        server = bun.listen(config);
      } else if (path !== undefined && code === "EADDRINUSE" && (await isStaleSocket(bun, path))) {
        // A Unix socket file left by a process that died: replace it, as
        // nginx and others do, but only after checking nobody answers on it.
        await unlink(path).catch((unlinkError: unknown) => {
          if (errorCode(unlinkError) !== "ENOENT") throw unlinkError;
        });
        server = bun.listen(config);
      } else {
        throw error;
      }
    }
    return new BunListener(server, addressOf(server, path));
  }

  /**
   * Opens a connection; resolves once connected (after the TLS handshake for
   * TLS) and rejects with Bun's error (`ECONNREFUSED`, `ENOENT`,
   * `ENOTFOUND`, a certificate error such as
   * `DEPTH_ZERO_SELF_SIGNED_CERT`, ...).
   *
   * @example
   * ```ts
   * const connection = await bunTransport.connect({ host: "localhost", port: 8443, tls: { ca } });
   * ```
   */
  connect(options: BunConnectOptions): Promise<BunConnection> {
    return new Promise<BunConnection>((resolve, reject) => {
      const bun = bunRuntime("connect");
      const { path, port, localAddress } = options;
      if ((path === undefined) === (port === undefined)) {
        throw new TypeError("Cannot connect: give either a port or a path");
      }
      const highWaterMark = checkHighWaterMark(options.highWaterMark);
      const host = options.host ?? "localhost";
      const tls = options.tls !== undefined && options.tls !== false;
      const kind: BunSocketKind = path !== undefined ? (tls ? "tls-unix" : "unix") : tls ? "tls" : "tcp";
      const connection = outgoingConnection(kind, path, highWaterMark, this.#noDelay, { resolve, reject });
      const config: BunSocketOptions<BunConnection> = { socket: CLIENT_EVENTS, data: connection, allowHalfOpen: true };
      if (path !== undefined) {
        config.unix = path;
      } else {
        config.hostname = host;
        config.port = port!;
        if (localAddress !== undefined) config.localAddress = localAddress;
        if (options.localPort !== undefined) config.localPort = options.localPort;
      }
      if (tls) config.tls = clientTlsOptions(options.tls as true | Exclude<ConnectOptions["tls"], boolean | undefined>, host, path !== undefined);
      // Bun resolves this when TCP connects; the connection itself settles
      // the promise (after the handshake for TLS). Failures to connect
      // reject it here.
      bun.connect(config).then(undefined, reject);
    });
  }
}

/**
 * A ready {@link BunTransport} with the default options. Touches `Bun` only
 * when used, so importing it under Node is harmless.
 *
 * @example
 * ```ts
 * const listener = await bunTransport.listen({ port: 8080 }, serve);
 * ```
 */
export const bunTransport: BunTransport = new BunTransport();
