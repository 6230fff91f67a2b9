/**
 * A little virtual network of memory pipes: listen on a port or a path,
 * connect to it, get a {@link MemoryConnection} on each side.
 *
 * @module
 */
import type {
  ConnectOptions,
  Connection,
  Listener,
  ListenOptions,
  SocketAddress,
  TlsServerOptions,
  Transport,
} from "../../core/transport";
import { buildPipe, formatAddress, type MemoryConnection, MemoryNetworkError, type MemoryPipeOptions } from "./pipe";

/** Options of a {@link MemoryTransport}: applied to every pipe it makes. */
export type MemoryTransportOptions = Omit<MemoryPipeOptions, "name" | "encrypted" | "alpnProtocol">;

/** First port handed out for `listen({ port: 0 })`, as the IANA dynamic range. */
const FIRST_DYNAMIC_PORT = 49152;
const LAST_PORT = 65535;

interface Endpoint {
  readonly key: string;
  readonly address: SocketAddress;
  readonly onConnection: (connection: Connection) => void;
  readonly tls: TlsServerOptions | undefined;
  readonly highWaterMark: number | undefined;
}

function endpointKey(options: { port?: number | undefined; path?: string | undefined }): string {
  return options.path !== undefined ? `path:${options.path}` : `port:${options.port}`;
}

/** The ALPN choice of a TLS server: its first protocol that the client offers. */
function chooseAlpn(server: readonly string[] | undefined, client: readonly string[] | undefined): string | null {
  if (server === undefined || client === undefined) return null;
  return server.find((protocol) => client.includes(protocol)) ?? null;
}

/**
 * An in-memory {@link Transport}: a virtual network in which `listen` and
 * `connect` meet by port or by path. Host names are not resolved: one port
 * number is one endpoint, whatever `host` says. Each connection is a pipe
 * made with the transport's options (clock, latency, split, high-water mark).
 *
 * TLS is simulated: a listener with `tls` options accepts only `connect`s
 * with `tls` (others are rejected with `EPROTO`, as a failed handshake), both
 * ends report `encrypted`, and ALPN picks the server's first protocol that the
 * client offers. Nothing is encrypted.
 *
 * @example
 * ```ts
 * const transport = new MemoryTransport({ clock: new VirtualClock() });
 * const listener = await transport.listen({ port: 0 }, (server) => server.setHandler(serverHandler));
 * const client = await transport.connect({ port: listener.address.port });
 * client.setHandler(clientHandler);
 * ```
 */
export class MemoryTransport implements Transport {
  readonly name = "memory";
  readonly #options: MemoryTransportOptions;
  readonly #endpoints = new Map<string, Endpoint>();
  #nextPort = FIRST_DYNAMIC_PORT;
  #nextClientPort = FIRST_DYNAMIC_PORT;

  constructor(options: MemoryTransportOptions = {}) {
    // Fail at construction on bad options, not at the first connection.
    buildPipe(options, { address: { family: "memory", address: "check", port: 0 } }, { address: { family: "memory", address: "check", port: 0 } });
    this.#options = { ...options };
  }

  /** Endpoints listening now, for tests that check a server let go of its port. */
  get listening(): readonly SocketAddress[] {
    return [...this.#endpoints.values()].map((endpoint) => endpoint.address);
  }

  /**
   * Listens on a virtual port (`{ port }`, 0 picks a free one) or path (`{ path }`).
   * Rejects with `EADDRINUSE` if something listens there already.
   *
   * @example
   * ```ts
   * const listener = await transport.listen({ path: "app" }, (connection) => serve(connection));
   * ```
   */
  async listen(options: ListenOptions, onConnection: (connection: Connection) => void): Promise<Listener> {
    const { path, host } = options;
    let port = options.port;
    if ((path === undefined) === (port === undefined)) {
      throw new TypeError("Cannot listen: give either a port or a path");
    }
    if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= LAST_PORT)) {
      throw new RangeError(`Cannot listen: port must be an integer from 0 to ${LAST_PORT}, got ${port}`);
    }
    if (port === 0) port = this.#freePort();
    const key = endpointKey({ port, path });
    const address: SocketAddress =
      path !== undefined ? { family: "memory", address: path, port: 0 } : { family: "memory", address: host ?? "localhost", port: port! };
    if (this.#endpoints.has(key)) {
      throw new MemoryNetworkError("EADDRINUSE", `Cannot listen on memory address ${formatAddress(address)}: the address is in use`);
    }
    const endpoint: Endpoint = { key, address, onConnection, tls: options.tls, highWaterMark: options.highWaterMark };
    this.#endpoints.set(key, endpoint);
    const endpoints = this.#endpoints;
    return {
      address,
      close(): Promise<void> {
        if (endpoints.get(key) === endpoint) endpoints.delete(key);
        return Promise.resolve();
      },
    };
  }

  /**
   * Connects to a listening endpoint. The listener's `onConnection` gets the
   * server end before the promise resolves with the client end. Rejects with
   * `ECONNREFUSED` when nothing listens there.
   *
   * @example
   * ```ts
   * const connection = await transport.connect({ host: "localhost", port: 8080 });
   * ```
   */
  async connect(options: ConnectOptions): Promise<MemoryConnection> {
    const { path, port } = options;
    if ((path === undefined) === (port === undefined)) {
      throw new TypeError("Cannot connect: give either a port or a path");
    }
    await null; // a connection is never made synchronously
    const target = path !== undefined ? path : `port ${port}`;
    const endpoint = this.#endpoints.get(endpointKey({ port, path }));
    if (endpoint === undefined) {
      throw new MemoryNetworkError("ECONNREFUSED", `Cannot connect to memory ${target}: nothing listens there`);
    }
    const clientTls = options.tls === undefined || options.tls === false ? undefined : options.tls === true ? {} : options.tls;
    if ((clientTls === undefined) !== (endpoint.tls === undefined)) {
      const which = clientTls === undefined ? "the server" : "the client";
      throw new MemoryNetworkError("EPROTO", `Cannot connect to memory ${target}: only ${which} uses TLS`);
    }
    const local: SocketAddress =
      path !== undefined
        ? { family: "memory", address: "", port: 0 }
        : { family: "memory", address: options.localAddress ?? "localhost", port: this.#clientPort() };
    const [client, server] = buildPipe(
      {
        ...this.#options,
        encrypted: clientTls !== undefined,
        alpnProtocol: chooseAlpn(endpoint.tls?.alpnProtocols, clientTls?.alpnProtocols),
      },
      { address: local, highWaterMark: options.highWaterMark },
      { address: endpoint.address, highWaterMark: endpoint.highWaterMark },
    );
    try {
      endpoint.onConnection(server);
    } catch (error) {
      // As with a throwing 'connection' listener in Node: the server's bug
      // surfaces as an uncaught error, and the client sees a reset.
      server.destroy(error instanceof Error ? error : new Error(String(error)));
      queueMicrotask(() => {
        throw error;
      });
    }
    return client;
  }

  #freePort(): number {
    for (let tries = 0; tries <= LAST_PORT - FIRST_DYNAMIC_PORT; tries++) {
      const port = this.#nextPort;
      this.#nextPort = port === LAST_PORT ? FIRST_DYNAMIC_PORT : port + 1;
      if (!this.#endpoints.has(endpointKey({ port }))) return port;
    }
    throw new MemoryNetworkError("EADDRINUSE", "Cannot listen on memory port 0: every dynamic port is in use");
  }

  #clientPort(): number {
    const port = this.#nextClientPort;
    this.#nextClientPort = port === LAST_PORT ? FIRST_DYNAMIC_PORT : port + 1;
    return port;
  }
}
