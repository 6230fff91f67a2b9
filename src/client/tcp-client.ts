/**
 * Tornado's `tcpclient`: connect to a host name and get an {@link IOStream},
 * trying its addresses with Happy Eyeballs.
 *
 * How this works (Tornado's `_Connector`, after RFC 6555/8305): the name is
 * resolved to all its addresses, in the resolver's order. They are split in
 * two queues: the first address's family (the *primary*) and the other
 * family (the *secondary*). Each queue is tried one address at a time, the
 * next after the previous fails. The primary starts at once; the secondary
 * starts when the first primary attempt fails, or after 300 ms
 * ({@link INITIAL_CONNECT_TIMEOUT}) if the primary has not connected by then.
 * The first connection made wins; attempts that succeed later are closed. If
 * every attempt fails, the last error is the result. The whole of it
 * (resolving, connecting, the TLS handshake) is bounded by `timeout`, on an
 * injected {@link Clock}, so tests drive it with a `VirtualClock`.
 *
 * @module
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { systemClock, type Clock, type TimerHandle } from "../core/clock";
import { checkIOStreamOptions, IOStream, type IOStreamOptions } from "../core/iostream";
import { TimeoutError } from "../core/locks";
import type { ConnectOptions, Connection, TlsClientOptions, Transport } from "../core/transport";
import { defaultTransport } from "../server/default-transport";

/**
 * Delay before the second address family is tried when the first has not
 * connected: 300 ms, Tornado's `_INITIAL_CONNECT_TIMEOUT` (RFC 8305
 * recommends 250 ms).
 */
export const INITIAL_CONNECT_TIMEOUT = 300;

/** One address a name resolved to. */
export interface ResolvedAddress {
  readonly address: string;
  readonly family: "IPv4" | "IPv6";
}

/**
 * Resolves a host name to its addresses, most preferred first (Tornado's
 * `Resolver`). May reject with the lookup's error (`ENOTFOUND`, ...).
 */
export type Resolver = (host: string) => Promise<readonly ResolvedAddress[]>;

/**
 * The system resolver: an IP literal as it is, else `dns.lookup(host, { all:
 * true })` (getaddrinfo, as Tornado's `DefaultExecutorResolver`; `/etc/hosts`
 * counts), in the order the system gives.
 *
 * @example
 * ```ts
 * await defaultResolver("localhost"); // [{ address: "::1", family: "IPv6" }, { address: "127.0.0.1", family: "IPv4" }]
 * ```
 */
export const defaultResolver: Resolver = async (host) => {
  const literal = isIP(host);
  if (literal !== 0) return [{ address: host, family: literal === 6 ? "IPv6" : "IPv4" }];
  const results = await lookup(host, { all: true });
  return results.map((result) => ({ address: result.address, family: result.family === 6 ? "IPv6" : "IPv4" }));
};

/** Options of a {@link TCPClient}. */
export interface TCPClientOptions {
  /** How connections are made. @default defaultTransport() */
  transport?: Transport;
  /** How names are resolved. @default defaultResolver */
  resolver?: Resolver;
  /** Source of time for the Happy Eyeballs delay and the timeout. @default systemClock */
  clock?: Clock;
}

/** Options of {@link TCPClient.connect}: the client's options can be overridden per call. */
export interface TCPConnectOptions extends TCPClientOptions, IOStreamOptions {
  /**
   * TLS: `true` for the defaults, or settings. The certificate is checked
   * against `servername`, which defaults to the host name connected to.
   */
  tls?: boolean | TlsClientOptions;
  /** Local address to bind before connecting (Tornado's `source_ip`). */
  sourceIp?: string;
  /**
   * Local port to bind before connecting (Tornado's `source_port`); passed
   * to the transport as `localPort` (the Node transport honours it).
   */
  sourcePort?: number;
  /**
   * Milliseconds for the whole connect (resolving, connecting, TLS), after
   * which it rejects with a `TimeoutError`.
   * @default Infinity
   */
  timeout?: number;
  /** High-water mark of the connection's unflushed output, in bytes. */
  highWaterMark?: number;
}

/**
 * Tornado's `TCPClient`: opens TCP (or TLS) connections to host names and
 * returns them as {@link IOStream}s.
 *
 * @example
 * ```ts
 * const client = new TCPClient();
 * const stream = await client.connect("example.com", 80, { timeout: 10_000 });
 * await stream.write("GET / HTTP/1.0\r\nHost: example.com\r\n\r\n");
 * console.log(new TextDecoder().decode(await stream.readUntilClose()));
 * ```
 */
export class TCPClient {
  readonly #options: TCPClientOptions;

  constructor(options: TCPClientOptions = {}) {
    this.#options = { ...options };
  }

  /**
   * Connects to `host` (a name or an IP literal) on `port` and resolves with
   * a stream. Rejects with the last connection error if every address
   * fails, with the resolver's error if the name does not resolve, and with
   * a `TimeoutError` after `timeout`.
   *
   * @example
   * ```ts
   * const stream = await new TCPClient().connect("localhost", 8888, { sourceIp: "127.0.0.1", timeout: 5000 });
   * ```
   */
  async connect(host: string, port: number, options: TCPConnectOptions = {}): Promise<IOStream> {
    if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) {
      throw new RangeError(`Cannot connect to ${host}:${String(port)}: the port must be an integer from 0 to 65535`);
    }
    const timeout = options.timeout ?? Infinity;
    if (typeof timeout !== "number" || Number.isNaN(timeout) || timeout < 0) {
      throw new RangeError(`Cannot connect to ${host}:${port}: timeout must be a non-negative number of ms (Infinity for none), got ${String(timeout)}`);
    }
    const transport = options.transport ?? this.#options.transport ?? defaultTransport();
    const resolver = options.resolver ?? this.#options.resolver ?? defaultResolver;
    const clock = options.clock ?? this.#options.clock ?? systemClock;
    const streamOptions: IOStreamOptions = {
      maxBufferSize: options.maxBufferSize,
      maxWriteBufferSize: options.maxWriteBufferSize,
      readHighWaterMark: options.readHighWaterMark,
    };
    // Bad stream options fail here, before any connection is made.
    checkIOStreamOptions(streamOptions);

    const base: ConnectOptions & { localPort?: number } = { port };
    if (options.sourceIp !== undefined) base.localAddress = options.sourceIp;
    if (options.sourcePort !== undefined) base.localPort = options.sourcePort;
    if (options.highWaterMark !== undefined) base.highWaterMark = options.highWaterMark;
    if (options.tls !== undefined && options.tls !== false) {
      const settings = options.tls === true ? {} : options.tls;
      // Verify the certificate against the name asked for, not the address it resolved to.
      base.tls = settings.servername === undefined && isIP(host) === 0 ? { ...settings, servername: host } : settings;
    }

    let connector: Connector | null = null;
    let timer: TimerHandle | null = null;
    let expired = false;
    const deadline = new Promise<never>((_, reject) => {
      if (!Number.isFinite(timeout)) return;
      timer = clock.setTimeout(() => {
        timer = null;
        expired = true;
        connector?.cancel();
        reject(new TimeoutError(`Cannot connect to ${host}:${port}: no connection within ${timeout} ms`));
      }, timeout);
    });
    deadline.catch(() => {});
    try {
      const addresses = await Promise.race([resolver(host), deadline]);
      if (addresses.length === 0) throw new Error(`Cannot connect to ${host}:${port}: the name resolved to no address`);
      if (expired) await deadline;
      connector = new Connector(addresses, (address) => transport.connect({ ...base, host: address.address }), clock);
      const connection = await Promise.race([connector.start(), deadline]);
      return new IOStream(connection, streamOptions);
    } finally {
      if (timer !== null) clock.clearTimeout(timer);
    }
  }
}

/**
 * Tornado's `_Connector`: Happy Eyeballs over a list of addresses. See the
 * module documentation for the algorithm.
 */
class Connector {
  readonly #primary: readonly ResolvedAddress[];
  readonly #secondary: readonly ResolvedAddress[];
  readonly #connect: (address: ResolvedAddress) => Promise<Connection>;
  readonly #clock: Clock;
  #remaining: number;
  #lastError: unknown = undefined;
  #done = false;
  #timer: TimerHandle | null = null;
  #resolve!: (connection: Connection) => void;
  #reject!: (error: unknown) => void;

  constructor(addresses: readonly ResolvedAddress[], connect: (address: ResolvedAddress) => Promise<Connection>, clock: Clock) {
    const family = addresses[0]!.family;
    this.#primary = addresses.filter((address) => address.family === family);
    this.#secondary = addresses.filter((address) => address.family !== family);
    this.#remaining = addresses.length;
    this.#connect = connect;
    this.#clock = clock;
  }

  start(): Promise<Connection> {
    const promise = new Promise<Connection>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#tryConnect(this.#primary[Symbol.iterator]());
    if (!this.#done) this.#timer = this.#clock.setTimeout(() => this.#onTimeout(), INITIAL_CONNECT_TIMEOUT);
    return promise;
  }

  /** Gives up (the overall timeout): connections that arrive later are closed. */
  cancel(): void {
    this.#done = true;
    this.#clearTimer();
  }

  #tryConnect(queue: Iterator<ResolvedAddress>): void {
    const next = queue.next();
    if (next.done) {
      // This queue is exhausted; fail only when the other one is finished too.
      if (this.#remaining === 0 && !this.#done) {
        this.#done = true;
        this.#clearTimer();
        this.#reject(this.#lastError ?? new Error("Cannot connect: every attempt failed"));
      }
      return;
    }
    let attempt: Promise<Connection>;
    try {
      attempt = this.#connect(next.value);
    } catch (error) {
      attempt = Promise.reject(error);
    }
    attempt.then(
      (connection) => this.#onSuccess(connection),
      (error: unknown) => this.#onFailure(queue, error),
    );
  }

  #onSuccess(connection: Connection): void {
    this.#remaining--;
    if (this.#done) {
      // A late arrival: another attempt won, or the connect timed out.
      connection.destroy();
      return;
    }
    this.#done = true;
    this.#clearTimer();
    this.#resolve(connection);
  }

  #onFailure(queue: Iterator<ResolvedAddress>, error: unknown): void {
    this.#remaining--;
    if (this.#done) return;
    this.#lastError = error;
    this.#tryConnect(queue);
    if (this.#timer !== null) {
      // The first attempt failed: start the other family now, not at the timeout.
      this.#clearTimer();
      this.#onTimeout();
    }
  }

  #onTimeout(): void {
    this.#timer = null;
    if (!this.#done) this.#tryConnect(this.#secondary[Symbol.iterator]());
  }

  #clearTimer(): void {
    if (this.#timer !== null) {
      this.#clock.clearTimeout(this.#timer);
      this.#timer = null;
    }
  }
}
