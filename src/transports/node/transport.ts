/**
 * The Node transport: TCP (IPv4 and IPv6), Unix domain sockets and TLS on
 * `node:net` and `node:tls`.
 *
 * @module
 */
import { lstat, unlink } from "node:fs/promises";
import * as net from "node:net";
import * as tls from "node:tls";
import {
  type ConnectOptions,
  type Connection,
  DEFAULT_HIGH_WATER_MARK,
  type Listener,
  type ListenOptions,
  type SocketAddress,
  type TlsServerOptions,
  type Transport,
} from "../../core/transport";
import { type NodeConnection, type NodeSocketKind, pem, pemList, setWritableHighWaterMark, wrapSocket } from "./connection";

/** Options of a {@link NodeTransport}. */
export interface NodeTransportOptions {
  /**
   * Turn Nagle's algorithm off on every TCP connection, accepted or made, as
   * `node:http` and Bun do: the drivers batch their writes themselves.
   * `Connection.setNoDelay` still changes it per connection.
   * @default true
   */
  noDelay?: boolean;
  /**
   * On Node, read and write plain TCP and Unix connections through the
   * socket's libuv handle directly instead of through the socket's stream
   * (`'data'` events and `socket.write`): the same system calls with less
   * JavaScript on each. `false` keeps every connection on the stream, for
   * code that reads or writes the underlying socket itself. TLS connections,
   * and runtimes without Node's handle API (Bun), always use the stream.
   * @default true
   */
  directIo?: boolean;
}

function errorCode(error: unknown): string | undefined {
  return (error as { code?: unknown } | null)?.code as string | undefined;
}

/**
 * What {@link NodeTransport.connect} takes: the contract's options, plus the
 * local port to bind before connecting (Tornado's `source_port`).
 */
export interface NodeConnectOptions extends ConnectOptions {
  /** Local port to bind before connecting; 0 or absent lets the system pick. */
  localPort?: number;
}

/** Listens once; rejects with the server's 'error' (EADDRINUSE, EACCES, ...). */
function listenOnce(server: net.Server, options: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => {
      server.removeListener("listening", onListening);
      reject(error);
    };
    const onListening = (): void => {
      server.removeListener("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(options);
  });
}

/**
 * True if `path` is a Unix socket that nothing listens on any more: it is a
 * socket file, and connecting to it is refused. Anything else (a regular
 * file, a live server, a permission error) is left alone.
 */
async function isStaleSocket(path: string): Promise<boolean> {
  try {
    if (!(await lstat(path)).isSocket()) return false;
  } catch {
    return false;
  }
  return new Promise((resolve) => {
    const probe = net.connect({ path });
    probe.once("connect", () => {
      probe.destroy();
      resolve(false);
    });
    probe.once("error", (error) => {
      probe.destroy();
      resolve(errorCode(error) === "ECONNREFUSED");
    });
  });
}

function addressOf(server: net.Server, path: string | undefined): SocketAddress {
  const address = server.address();
  if (address === null || typeof address === "string" || path !== undefined) {
    return { family: "unix", address: typeof address === "string" ? address : (path ?? ""), port: 0 };
  }
  const family: SocketAddress["family"] =
    (address.family as string | number) === "IPv6" || (address.family as string | number) === 6 ? "IPv6" : "IPv4";
  return { family, address: address.address, port: address.port };
}

class NodeListener implements Listener {
  readonly address: SocketAddress;
  readonly #server: net.Server;
  #closed = false;

  constructor(server: net.Server, address: SocketAddress) {
    this.#server = server;
    this.address = address;
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      // Closes the listening socket at once (and removes a Unix socket's
      // file); Node's callback would wait for every open connection to end,
      // which is not what Listener.close promises, so none is passed.
      this.#server.close();
    }
    return Promise.resolve();
  }
}

/**
 * A {@link Transport} on `node:net` and `node:tls`.
 *
 * - `listen({ port, host })` or `listen({ path })` (a stale Unix socket file,
 *   one that refuses connections, is removed first), with `tls` for HTTPS.
 * - `connect({ host, port })` or `connect({ path })`, with `tls: true` or
 *   `{ servername, ca, rejectUnauthorized, alpnProtocols }`.
 * - `reusePort` is passed to `server.listen`; Node added it in 22.12 and
 *   23.1, older versions ignore it.
 * - Every socket is half-open capable: the peer's FIN is reported as `end`
 *   and the driver decides when to end its side.
 *
 * @example
 * ```ts
 * const transport = new NodeTransport();
 * const listener = await transport.listen({ host: "127.0.0.1", port: 0 }, (connection) => {
 *   connection.setHandler({ data: (chunk) => connection.write(chunk), end: () => connection.end(), drain() {}, close() {} });
 * });
 * const client = await transport.connect({ host: "127.0.0.1", port: listener.address.port });
 * ```
 */
export class NodeTransport implements Transport {
  readonly name = "node";
  readonly #noDelay: boolean;
  readonly #directIo: boolean;

  constructor(options: NodeTransportOptions = {}) {
    this.#noDelay = options.noDelay ?? true;
    this.#directIo = options.directIo ?? true;
  }

  /**
   * Starts listening. Resolves once the socket is bound; `address.port` is
   * the port picked when `port` was 0. Rejects with Node's error.
   *
   * @example
   * ```ts
   * const listener = await nodeTransport.listen({ path: "/tmp/app.sock" }, serve);
   * await listener.close();
   * ```
   */
  async listen(options: ListenOptions, onConnection: (connection: Connection) => void): Promise<Listener> {
    const { path, port, host, backlog } = options;
    if ((path === undefined) === (port === undefined)) {
      throw new TypeError("Cannot listen: give either a port or a path");
    }
    const highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
    const serverOptions: net.ServerOpts = {
      allowHalfOpen: true,
      highWaterMark,
      noDelay: this.#noDelay && path === undefined,
    };
    const server = options.tls
      ? this.#tlsServer(serverOptions, options.tls, highWaterMark, path, onConnection)
      : net.createServer(serverOptions, (socket) => onConnection(wrapSocket(socket, path === undefined ? "tcp" : "unix", path, true, this.#directIo)));

    const listenOptions: net.ListenOptions & { reusePort?: boolean } = path !== undefined ? { path } : { port };
    if (host !== undefined && path === undefined) listenOptions.host = host;
    if (backlog !== undefined) listenOptions.backlog = backlog;
    if (options.reusePort && path === undefined) listenOptions.reusePort = true;

    try {
      await listenOnce(server, listenOptions);
    } catch (error) {
      // A Unix socket file left by a process that died: replace it, as
      // nginx and others do, but only after checking nobody answers on it.
      if (path === undefined || errorCode(error) !== "EADDRINUSE" || !(await isStaleSocket(path))) throw error;
      await unlink(path).catch((unlinkError: unknown) => {
        if (errorCode(unlinkError) !== "ENOENT") throw unlinkError;
      });
      await listenOnce(server, listenOptions);
    }
    // Accept errors (EMFILE, ...) are emitted on the server; without a
    // listener they would crash the process. The server keeps listening.
    server.on("error", ignore);
    return new NodeListener(server, addressOf(server, path));
  }

  /**
   * Opens a connection; resolves once connected (after the TLS handshake for
   * TLS) and rejects with Node's error (`ECONNREFUSED`, `ENOENT`, a
   * certificate error, ...).
   *
   * @example
   * ```ts
   * const connection = await nodeTransport.connect({ host: "localhost", port: 8443, tls: { ca } });
   * ```
   */
  connect(options: NodeConnectOptions): Promise<NodeConnection> {
    const { path, port, localAddress, localPort } = options;
    if ((path === undefined) === (port === undefined)) {
      return Promise.reject(new TypeError("Cannot connect: give either a port or a path"));
    }
    const host = options.host ?? "localhost";
    const highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
    const noDelay = this.#noDelay && path === undefined;
    let socket: net.Socket;
    let kind: NodeSocketKind;
    let readyEvent: string;
    if (options.tls !== undefined && options.tls !== false) {
      const settings = options.tls === true ? {} : options.tls;
      // Node passes allowHalfOpen and highWaterMark on to the TLSSocket; its types do not list them.
      const tlsOptions: tls.ConnectionOptions & { allowHalfOpen?: boolean; highWaterMark?: number } = {
        allowHalfOpen: true,
        highWaterMark,
        rejectUnauthorized: settings.rejectUnauthorized ?? true,
      };
      if (path !== undefined) tlsOptions.path = path;
      else Object.assign(tlsOptions, { host, port, localAddress, localPort });
      const servername = settings.servername ?? (path === undefined && net.isIP(host) === 0 ? host : undefined);
      if (servername !== undefined) tlsOptions.servername = servername;
      const ca = pemList(settings.ca);
      if (ca !== undefined) tlsOptions.ca = ca;
      if (settings.alpnProtocols !== undefined) tlsOptions.ALPNProtocols = settings.alpnProtocols;
      socket = tls.connect(tlsOptions);
      kind = "tls";
      readyEvent = "secureConnect";
    } else {
      socket =
        path !== undefined
          ? net.connect({ path, allowHalfOpen: true, highWaterMark } as net.IpcNetConnectOpts)
          : net.connect({ host, port: port!, localAddress, localPort, allowHalfOpen: true, highWaterMark } as net.TcpNetConnectOpts);
      kind = path !== undefined ? "unix" : "tcp";
      readyEvent = "connect";
    }
    return new Promise((resolve, reject) => {
      const onFailure = (error: Error): void => {
        socket.removeListener(readyEvent, onReady);
        socket.destroy();
        reject(error);
      };
      const onReady = (): void => {
        socket.removeListener("error", onFailure);
        if (noDelay) socket.setNoDelay(true);
        resolve(wrapSocket(socket, kind, path, false, this.#directIo));
      };
      socket.once("error", onFailure);
      socket.once(readyEvent, onReady);
    });
  }

  #tlsServer(
    serverOptions: net.ServerOpts,
    settings: TlsServerOptions,
    highWaterMark: number,
    path: string | undefined,
    onConnection: (connection: Connection) => void,
  ): tls.Server {
    const tlsOptions: tls.TlsOptions = { ...serverOptions, key: pem(settings.key), cert: pem(settings.cert) };
    const ca = pemList(settings.ca);
    if (ca !== undefined) tlsOptions.ca = ca;
    if (settings.passphrase !== undefined) tlsOptions.passphrase = settings.passphrase;
    if (settings.alpnProtocols !== undefined) tlsOptions.ALPNProtocols = settings.alpnProtocols;
    const server = tls.createServer(tlsOptions);
    server.on("secureConnection", (socket: tls.TLSSocket) => {
      setWritableHighWaterMark(socket, highWaterMark);
      onConnection(wrapSocket(socket, "tls", path, true));
    });
    return server;
  }
}

function ignore(): void {}

/**
 * A ready {@link NodeTransport} with the default options.
 *
 * @example
 * ```ts
 * const listener = await nodeTransport.listen({ port: 8080 }, serve);
 * ```
 */
export const nodeTransport: NodeTransport = new NodeTransport();
