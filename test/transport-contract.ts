/**
 * The Transport contract suite: the one set of tests that every transport
 * (memory, Node, Bun) must pass. It uses only the contract in
 * `src/core/transport.ts`, never a transport's internals or a runtime's
 * modules, so that the same file runs under Node and under Bun.
 *
 * Tests never sleep. They wait for promises and conditions that handler
 * callbacks resolve; when a transport runs on a virtual clock, the suite's
 * `advance` hook moves time while it waits. Only the checks that something
 * does *not* happen (no `data` while paused, no second `close`) let the event
 * loop turn a few times, after a round trip that proves bytes had time to
 * travel.
 *
 * @example
 * ```ts
 * runTransportSuite({
 *   name: "node tcp",
 *   transport: nodeTransport,
 *   listenOptions: () => ({ host: "127.0.0.1", port: 0 }),
 *   connectOptions: (address) => ({ host: "127.0.0.1", port: address.port }),
 * });
 * ```
 *
 * @module
 */
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import type {
  ConnectOptions,
  Connection,
  ConnectionHandler,
  Listener,
  ListenOptions,
  SocketAddress,
  Transport,
} from "../src/core/transport";

/** Per-pair settings the suite asks for. */
export interface PairOptions {
  /** High-water mark of both ends, when a test needs a known one. */
  highWaterMark?: number;
}

/** How to run the suite against one transport (and one configuration of it). */
export interface TransportSuiteOptions {
  /** Title of the `describe` block. */
  name: string;
  /** The transport under test; the listen/connect tests use it. */
  transport: Transport;
  /** Fresh options to listen with (a new Unix path each call, port 0, TLS material...). */
  listenOptions(): ListenOptions;
  /** Options to connect to a listener at `address`, made from `listen`. */
  connectOptions(address: SocketAddress, listen: ListenOptions): ConnectOptions;
  /**
   * Makes a connected pair `[a, b]` without handlers. Defaults to listening
   * with `listenOptions()` and connecting with `connectOptions()` (then `a`
   * is the client and `b` the accepted end).
   */
  createPair?(options: PairOptions): Promise<readonly [Connection, Connection]>;
  /** What both ends must report as `encrypted`. @default false */
  encrypted?: boolean;
  /**
   * Moves a virtual clock to its next timer, returning false if none is set.
   * Called while the suite waits, for transports that deliver on a clock.
   */
  advance?(): boolean;
  /** Bytes sent each way by the large-payload test. @default 4 MiB */
  largePayload?: number;
  /** Runs of each fast-check property. @default 20 */
  propertyRuns?: number;
}

/** Upper bound of any single wait: a test that waits longer has failed. */
const WAIT_LIMIT_MS = 10_000;
/** Event-loop turns allowed for something that must not happen to show up. */
const QUIET_TURNS = 10;
/** The backpressure test gives up (and fails) after writing this much. */
const BACKPRESSURE_CAP = 256 * 1024 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string): Uint8Array => encoder.encode(text);

const nextTurn: () => Promise<void> =
  typeof globalThis.setImmediate === "function"
    ? () => new Promise((resolve) => globalThis.setImmediate(resolve))
    : () => new Promise((resolve) => globalThis.setTimeout(resolve, 0));

// Anything that may satisfy a wait (a handler event, an accepted connection)
// pokes this signal, so that waits need no polling on real transports.
let signalResolve: (() => void) | null = null;
let signal: Promise<void> | null = null;
function poke(): void {
  const resolve = signalResolve;
  signal = null;
  signalResolve = null;
  resolve?.();
}
function nextSignal(): Promise<void> {
  signal ??= new Promise<void>((resolve) => {
    signalResolve = resolve;
  });
  return signal;
}

/** Deterministic, non-repeating bytes: byte `i` of stream `seed`. */
function patternByte(i: number, seed: number): number {
  return Math.imul(i + seed * 0x1000193, 0x9e3779b1) >>> 24;
}

function pattern(length: number, seed: number, offset = 0): Uint8Array {
  const result = new Uint8Array(length);
  for (let i = 0; i < length; i++) result[i] = patternByte(offset + i, seed);
  return result;
}

/** Index of the first byte that differs from the pattern, or -1. */
function patternMismatch(data: Uint8Array, seed: number): number {
  for (let i = 0; i < data.length; i++) if (data[i] !== patternByte(i, seed)) return i;
  return -1;
}

type EventName = "data" | "end" | "drain" | "close";

/**
 * A handler that records what it is told and checks the contract's ordering
 * rules as it goes (nothing after `close`, no `data` after `end`, one `end`,
 * one `close`). Tests add behaviour through the `on*` hooks.
 */
class Recorder implements ConnectionHandler {
  /** Events in order; consecutive `data` calls are recorded once. */
  readonly events: EventName[] = [];
  /** Contract violations seen; a test ends by expecting none. */
  readonly problems: string[] = [];
  dataCalls = 0;
  endCount = 0;
  drainCount = 0;
  closeCount = 0;
  closeError: Error | undefined = undefined;
  onData: ((chunk: Uint8Array) => void) | undefined;
  onEnd: (() => void) | undefined;
  onDrain: (() => void) | undefined;
  #buffer = new Uint8Array(1024);
  #length = 0;

  constructor(readonly label: string) {}

  data(chunk: Uint8Array): void {
    if (this.closeCount > 0) this.problems.push(`${this.label}: data after close`);
    if (this.endCount > 0) this.problems.push(`${this.label}: data after end`);
    if (!(chunk instanceof Uint8Array)) this.problems.push(`${this.label}: data is not a Uint8Array`);
    if (chunk.byteLength === 0) this.problems.push(`${this.label}: empty data`);
    if (this.#length + chunk.byteLength > this.#buffer.length) {
      const grown = new Uint8Array(Math.max(this.#buffer.length * 2, this.#length + chunk.byteLength));
      grown.set(this.#buffer.subarray(0, this.#length));
      this.#buffer = grown;
    }
    this.#buffer.set(chunk, this.#length);
    this.#length += chunk.byteLength;
    this.dataCalls++;
    if (this.events[this.events.length - 1] !== "data") this.events.push("data");
    this.onData?.(chunk);
    poke();
  }

  end(): void {
    if (this.closeCount > 0) this.problems.push(`${this.label}: end after close`);
    if (this.endCount > 0) this.problems.push(`${this.label}: end twice`);
    this.endCount++;
    this.events.push("end");
    this.onEnd?.();
    poke();
  }

  drain(): void {
    if (this.closeCount > 0) this.problems.push(`${this.label}: drain after close`);
    this.drainCount++;
    this.events.push("drain");
    this.onDrain?.();
    poke();
  }

  close(error?: Error): void {
    if (this.closeCount > 0) this.problems.push(`${this.label}: close twice`);
    if (error !== undefined && !(error instanceof Error)) this.problems.push(`${this.label}: close with a non-Error`);
    this.closeCount++;
    this.closeError = error;
    this.events.push("close");
    poke();
  }

  /** Bytes received so far. */
  get received(): number {
    return this.#length;
  }

  bytes(): Uint8Array {
    return this.#buffer.slice(0, this.#length);
  }

  text(): string {
    return decoder.decode(this.bytes());
  }
}

interface Pair {
  client: Connection;
  server: Connection;
}

interface OpenPair extends Pair {
  /** The client's handler. */
  c: Recorder;
  /** The server's handler. */
  s: Recorder;
}

/**
 * Defines the contract tests for one transport configuration. Call it at the
 * top level of a test file.
 *
 * @example
 * ```ts
 * runTransportSuite({
 *   name: "memory",
 *   transport: new MemoryTransport(),
 *   listenOptions: () => ({ port: 0 }),
 *   connectOptions: (address) => ({ port: address.port }),
 *   createPair: async ({ highWaterMark }) => createPipe({ highWaterMark }),
 * });
 * ```
 */
export function runTransportSuite(suite: TransportSuiteOptions): void {
  const { transport } = suite;
  const encrypted = suite.encrypted ?? false;
  const largePayload = suite.largePayload ?? 4 * 1024 * 1024;
  const propertyRuns = suite.propertyRuns ?? 20;

  describe(`Transport contract: ${suite.name}`, () => {
    const cleanups: Array<() => unknown> = [];

    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    function track(connection: Connection): Connection {
      cleanups.push(() => {
        if (!connection.closed) connection.destroy();
      });
      return connection;
    }

    /** Waits until `condition` holds, moving virtual time if there is some. */
    async function waitUntil(what: string, condition: () => boolean): Promise<void> {
      const deadline = Date.now() + WAIT_LIMIT_MS;
      while (!condition()) {
        const remaining = deadline - Date.now();
        if (remaining <= 0) throw new Error(`Timed out waiting for ${what}`);
        if (suite.advance !== undefined) {
          // Let what is due now happen, then move the clock if still waiting.
          await nextTurn();
          if (!condition() && !suite.advance()) await waitSignal(Math.min(remaining, 50));
        } else {
          await waitSignal(remaining);
        }
      }
    }

    async function waitSignal(ms: number): Promise<void> {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
      });
      await Promise.race([nextSignal(), timeout]);
      clearTimeout(timer);
    }

    /** Awaits a promise, moving virtual time meanwhile. */
    async function settle<T>(promise: Promise<T>, what: string): Promise<T> {
      let done = false;
      promise.then(
        () => {
          done = true;
          poke();
        },
        () => {
          done = true;
          poke();
        },
      );
      await waitUntil(what, () => done);
      return promise;
    }

    /** Lets the event loop (and virtual time) run, for checks that something does not happen. */
    async function quiet(): Promise<void> {
      for (let i = 0; i < QUIET_TURNS; i++) {
        await nextTurn();
        suite.advance?.();
      }
    }

    async function listen(options: ListenOptions, onConnection: (connection: Connection) => void): Promise<Listener> {
      const listener = await settle(transport.listen(options, onConnection), "listen");
      cleanups.push(() => listener.close());
      return listener;
    }

    async function makePair(options: PairOptions = {}): Promise<Pair> {
      const highWaterMark = options.highWaterMark === undefined ? {} : { highWaterMark: options.highWaterMark };
      if (suite.createPair !== undefined) {
        const [client, server] = await settle(suite.createPair(options), "a connected pair");
        return { client: track(client), server: track(server) };
      }
      const listenOptions = { ...suite.listenOptions(), ...highWaterMark };
      let server: Connection | undefined;
      const listener = await listen(listenOptions, (connection) => {
        if (server === undefined) server = connection;
        else connection.destroy();
        poke();
      });
      const connectOptions = { ...suite.connectOptions(listener.address, listenOptions), ...highWaterMark };
      const client = track(await settle(transport.connect(connectOptions), "connect"));
      await waitUntil("the listener to accept", () => server !== undefined);
      return { client, server: track(server!) };
    }

    async function openPair(options: PairOptions = {}): Promise<OpenPair> {
      const pair = await makePair(options);
      const c = new Recorder("client");
      const s = new Recorder("server");
      pair.client.setHandler(c);
      pair.server.setHandler(s);
      return { ...pair, c, s };
    }

    /** Writes all of `data`, waiting for `drain` whenever `write` says so. */
    async function send(connection: Connection, recorder: Recorder, data: Uint8Array, chunkSize: number): Promise<void> {
      for (let offset = 0; offset < data.length; offset += chunkSize) {
        const drains = recorder.drainCount;
        if (!connection.write(data.subarray(offset, offset + chunkSize))) {
          await waitUntil(`drain after writing ${offset + chunkSize} bytes`, () => recorder.drainCount > drains);
        }
      }
    }

    /** Ends both sides and waits for both closes. */
    async function closeCleanly({ client, server, c, s }: OpenPair): Promise<void> {
      client.end();
      server.end();
      await waitUntil("both ends to close", () => c.closeCount > 0 && s.closeCount > 0);
      expect(c.closeError).toBeUndefined();
      expect(s.closeError).toBeUndefined();
    }

    function expectNoProblems(...recorders: Recorder[]): void {
      for (const recorder of recorders) expect(recorder.problems).toEqual([]);
    }

    async function expectRejected(promise: Promise<Connection>, what: string): Promise<Error> {
      const outcome = await settle(
        promise.then(
          (connection) => {
            track(connection);
            return null;
          },
          (error: unknown) => error,
        ),
        what,
      );
      if (!(outcome instanceof Error)) throw new Error(`Expected ${what} to be rejected with an Error, got ${String(outcome)}`);
      expect(typeof (outcome as { code?: unknown }).code).toBe("string");
      return outcome as Error;
    }

    it("reports matching addresses, its encryption and an open state", async () => {
      const { client, server } = await makePair();
      for (const connection of [client, server]) {
        expect(connection.localAddress).not.toBeNull();
        expect(connection.remoteAddress).not.toBeNull();
        expect(["IPv4", "IPv6", "unix", "memory"]).toContain(connection.localAddress!.family);
        expect(connection.encrypted).toBe(encrypted);
        expect(connection.writable).toBe(true);
        expect(connection.closed).toBe(false);
        expect(connection.writableLength).toBe(0);
        expect(() => connection.setNoDelay(true)).not.toThrow();
        expect(() => connection.setNoDelay(false)).not.toThrow();
      }
      expect(client.remoteAddress).toEqual(server.localAddress);
      expect(server.remoteAddress).toEqual(client.localAddress);
    });

    it("delivers data both ways, in order", async () => {
      const pair = await openPair();
      const { client, server, c, s } = pair;
      let fromClient = "";
      let fromServer = "";
      for (let i = 0; i < 200; i++) {
        const up = `client ${i} ${"u".repeat(i % 17)};`;
        const down = `server ${i} ${"d".repeat(i % 13)};`;
        expect(client.write(bytes(up))).toBe(true);
        expect(server.write(bytes(down))).toBe(true);
        fromClient += up;
        fromServer += down;
      }
      await waitUntil("all data", () => s.received >= fromClient.length && c.received >= fromServer.length);
      expect(s.text()).toBe(fromClient);
      expect(c.text()).toBe(fromServer);
      await closeCleanly(pair);
      expect(c.events).toEqual(["data", "end", "close"]);
      expect(s.events).toEqual(["data", "end", "close"]);
      expectNoProblems(c, s);
    });

    it("writes latin1 strings byte for byte where the transport has writeLatin1, in order with bytes", async () => {
      const pair = await openPair();
      const { server, s } = pair;
      const text = "HTTP/1.1 200 OK\r\nX: caf\u00e9 \u00ff\r\n\r\n";
      const expected = [...Array.from(text, (ch) => ch.charCodeAt(0)), 1, 2, 3, ...Array.from(text, (ch) => ch.charCodeAt(0))];
      if (typeof pair.client.writeLatin1 === "function") {
        expect(pair.client.writeLatin1(text)).toBe(true);
        pair.client.write(new Uint8Array([1, 2, 3]));
        expect(pair.client.writeLatin1(text)).toBe(true);
      } else {
        // Without the fast path the same bytes go through write.
        const latin1 = Uint8Array.from(text, (ch) => ch.charCodeAt(0));
        pair.client.write(latin1);
        pair.client.write(new Uint8Array([1, 2, 3]));
        pair.client.write(latin1);
      }
      await waitUntil("all data", () => s.received >= expected.length);
      expect(Array.from(s.bytes())).toEqual(expected);
      void server;
      await closeCleanly(pair);
      expectNoProblems(pair.c, s);
    });

    it("delivers any sequence of writes as the same bytes (property)", async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.uint8Array({ minLength: 0, maxLength: 3000 }), { maxLength: 24 }), async (chunks) => {
          const pair = await openPair();
          const expected = new Uint8Array(chunks.reduce((total, chunk) => total + chunk.length, 0));
          let offset = 0;
          for (const chunk of chunks) {
            pair.client.write(chunk);
            expected.set(chunk, offset);
            offset += chunk.length;
          }
          pair.client.end();
          await waitUntil("the end of the stream", () => pair.s.endCount > 0);
          expect(pair.s.bytes()).toEqual(expected);
          pair.server.end();
          await waitUntil("both ends to close", () => pair.c.closeCount > 0 && pair.s.closeCount > 0);
          expectNoProblems(pair.c, pair.s);
        }),
        { numRuns: propertyRuns },
      );
    });

    it(`delivers ${largePayload} bytes each way intact, at the same time`, async () => {
      const pair = await openPair();
      const { client, server, c, s } = pair;
      const up = pattern(largePayload, 1);
      const down = pattern(largePayload, 2);
      await Promise.all([send(client, c, up, 64 * 1024), send(server, s, down, 48 * 1024 + 7)]);
      await waitUntil("all data", () => s.received >= up.length && c.received >= down.length);
      expect(s.received).toBe(up.length);
      expect(c.received).toBe(down.length);
      expect(patternMismatch(s.bytes(), 1)).toBe(-1);
      expect(patternMismatch(c.bytes(), 2)).toBe(-1);
      await closeCleanly(pair);
      expectNoProblems(c, s);
    });

    it("holds data written before the peer sets its handler, and delivers it in order", async () => {
      const { client, server } = await makePair();
      const c = new Recorder("client");
      client.setHandler(c);
      // Pausing and resuming without a handler must not let data slip past.
      server.pause();
      server.resume();
      client.write(bytes("written "));
      client.write(bytes("early"));
      client.end();
      await quiet();
      const s = new Recorder("server");
      server.setHandler(s);
      await waitUntil("the held data and end", () => s.endCount > 0);
      expect(s.text()).toBe("written early");
      expect(s.events).toEqual(["data", "end"]);
      server.end();
      await waitUntil("both ends to close", () => c.closeCount > 0 && s.closeCount > 0);
      expectNoProblems(c, s);
    });

    it("stops data while paused and restarts it on resume", async () => {
      const pair = await openPair();
      const { client, server, c, s } = pair;
      server.pause();
      client.write(bytes("sent while "));
      client.write(bytes("paused"));
      // A round trip the other way shows that time passed for the bytes to arrive.
      server.write(bytes("ping"));
      await waitUntil("the ping", () => c.received === 4);
      await quiet();
      expect(s.dataCalls).toBe(0);
      server.resume();
      await waitUntil("the data after resume", () => s.received === 17);
      expect(s.text()).toBe("sent while paused");

      // Pausing from inside a data call stops the next one.
      let pausedAt = -1;
      s.onData = () => {
        if (pausedAt < 0) {
          pausedAt = s.received;
          server.pause();
        }
      };
      client.write(bytes("0123456789"));
      client.write(bytes("abcdefghij"));
      await waitUntil("the first data call", () => pausedAt >= 0);
      server.write(bytes("ping"));
      await waitUntil("the second ping", () => c.received === 8);
      await quiet();
      expect(s.received).toBe(pausedAt);
      s.onData = undefined;
      server.resume();
      await waitUntil("the rest", () => s.received === 37);
      expect(s.text()).toBe("sent while paused0123456789abcdefghij");
      await closeCleanly(pair);
      expectNoProblems(c, s);
    });

    it("pushes back at the high-water mark while the peer is paused, drains after resume, loses nothing", async () => {
      const highWaterMark = 16 * 1024;
      const chunkSize = 4 * 1024;
      const pair = await openPair({ highWaterMark });
      const { client, server, c, s } = pair;
      server.pause();
      // Write as a driver would (until write says no, then wait for drain)
      // until the writer stalls: kernel buffers between real sockets absorb
      // some data first, but a paused peer must stop the flow eventually.
      let written = 0;
      let accepted = 0;
      let stalled = false;
      while (!stalled) {
        if (written >= BACKPRESSURE_CAP) throw new Error(`The writer never stalled against a paused peer: ${written} bytes written`);
        let ok: boolean;
        do {
          ok = client.write(pattern(chunkSize, 3, written));
          written += chunkSize;
          if (ok) {
            accepted++;
            // true means: still below the mark.
            if (client.writableLength >= highWaterMark) throw new Error(`write returned true at ${client.writableLength} bytes`);
          }
        } while (ok);
        // false means: at or above the mark, reached by this very write.
        expect(client.writableLength).toBeGreaterThanOrEqual(highWaterMark);
        expect(client.writableLength).toBeLessThan(highWaterMark + chunkSize);
        const drains = c.drainCount;
        await quiet();
        if (c.drainCount > drains) continue;
        // No drain yet: a round trip the other way gives the bytes time to move.
        const pings = c.received;
        server.write(bytes("ping"));
        await waitUntil("a ping from the paused side", () => c.received === pings + 4);
        await quiet();
        stalled = c.drainCount === drains;
      }
      expect(accepted).toBeGreaterThan(0);
      expect(s.dataCalls).toBe(0);
      // Stalled with bytes still waiting (Node drains only once it is empty).
      expect(client.writableLength).toBeGreaterThan(0);

      const drainsBefore = c.drainCount;
      let lengthAtDrain = -1;
      c.onDrain = () => {
        lengthAtDrain = client.writableLength;
      };
      server.resume();
      await waitUntil("drain", () => c.drainCount > drainsBefore);
      expect(lengthAtDrain).toBeLessThan(highWaterMark);
      client.end();
      await waitUntil("all data and the end", () => s.endCount > 0);
      expect(s.received).toBe(written);
      expect(patternMismatch(s.bytes(), 3)).toBe(-1);
      expect(c.drainCount).toBe(drainsBefore + 1);
      server.end();
      await waitUntil("both ends to close", () => c.closeCount > 0 && s.closeCount > 0);
      expectNoProblems(c, s);
    });

    it("half-closes on end: the peer sees end, can still write back, then both close once", async () => {
      const { client, server, c, s } = await openPair();
      client.write(bytes("request"));
      client.end();
      expect(client.writable).toBe(false);
      await waitUntil("the end at the server", () => s.endCount > 0);
      expect(s.text()).toBe("request");
      expect(server.writable).toBe(true);
      expect(c.closeCount + s.closeCount).toBe(0);
      expect(server.write(bytes("response"))).toBe(true);
      await waitUntil("the response", () => c.received === 8);
      expect(c.text()).toBe("response");
      expect(c.closeCount + s.closeCount).toBe(0);
      server.end();
      await waitUntil("both ends to close", () => c.closeCount > 0 && s.closeCount > 0);
      expect(c.events).toEqual(["data", "end", "close"]);
      expect(s.events).toEqual(["data", "end", "close"]);
      expect(c.closeError).toBeUndefined();
      expect(s.closeError).toBeUndefined();
      expect(client.closed && server.closed).toBe(true);
      await quiet();
      expect(c.closeCount + s.closeCount).toBe(2);
      expectNoProblems(c, s);
    });

    it("ignores writes after end", async () => {
      const { client, server, c, s } = await openPair();
      expect(client.write(bytes("before"))).toBe(true);
      client.end();
      expect(client.write(bytes("after"))).toBe(false);
      expect(() => client.end()).not.toThrow();
      await waitUntil("the end", () => s.endCount > 0);
      expect(s.text()).toBe("before");
      server.end();
      await waitUntil("both ends to close", () => c.closeCount > 0 && s.closeCount > 0);
      expect(client.write(bytes("after close"))).toBe(false);
      await quiet();
      expect(s.text()).toBe("before");
      expect(c.closeError).toBeUndefined();
      expect(s.closeError).toBeUndefined();
      expectNoProblems(c, s);
    });

    it("destroys at once: the peer sees close, later writes return false and do not throw", async () => {
      const { client, server, c, s } = await openPair();
      // A transport may report the peer's destroy as a FIN; answer it as a driver would.
      s.onEnd = () => server.end();
      client.write(bytes("hello"));
      await waitUntil("the first bytes", () => s.received === 5);
      client.destroy();
      expect(client.closed).toBe(true);
      expect(client.writable).toBe(false);
      expect(client.write(bytes("after destroy"))).toBe(false);
      expect(() => {
        client.end();
        client.destroy();
        client.pause();
        client.resume();
        client.setNoDelay(true);
      }).not.toThrow();
      await waitUntil("both ends to close", () => c.closeCount > 0 && s.closeCount > 0);
      expect(c.closeError).toBeUndefined();
      expect(server.closed).toBe(true);
      expect(server.writable).toBe(false);
      expect(server.write(bytes("to a closed peer"))).toBe(false);
      await quiet();
      expect(c.events).toEqual(["close"]);
      expect(s.events[s.events.length - 1]).toBe("close");
      expect(c.closeCount + s.closeCount).toBe(2);
      expectNoProblems(c, s);
    });

    it("reports the error given to destroy in close", async () => {
      const { client, c, s, server } = await openPair();
      s.onEnd = () => server.end();
      const error = new Error("Cannot continue: the test says so");
      client.destroy(error);
      await waitUntil("both ends to close", () => c.closeCount > 0 && s.closeCount > 0);
      expect(c.closeError).toBe(error);
      expectNoProblems(c, s);
    });

    it("calls close exactly once and last, even when both ends end at once", async () => {
      const pair = await openPair();
      const { client, server, c, s } = pair;
      client.end();
      server.end();
      await waitUntil("both ends to close", () => c.closeCount > 0 && s.closeCount > 0);
      expect(c.events).toEqual(["end", "close"]);
      expect(s.events).toEqual(["end", "close"]);
      // Calls on a closed connection are harmless and report nothing.
      for (const connection of [client, server]) {
        expect(connection.write(bytes("late"))).toBe(false);
        connection.end();
        connection.pause();
        connection.resume();
        connection.destroy(new Error("Cannot matter: already closed"));
      }
      await quiet();
      expect(c.events).toEqual(["end", "close"]);
      expect(s.events).toEqual(["end", "close"]);
      expect(c.closeError).toBeUndefined();
      expectNoProblems(c, s);
    });

    it("hands later data to a replaced handler", async () => {
      const { client, server, c, s } = await openPair();
      client.write(bytes("one"));
      await waitUntil("the first message", () => s.received === 3);
      const next = new Recorder("server, replaced");
      server.setHandler(next);
      client.write(bytes("two"));
      client.end();
      await waitUntil("the end at the new handler", () => next.endCount > 0);
      expect(s.text()).toBe("one");
      expect(next.text()).toBe("two");
      server.end();
      await waitUntil("both ends to close", () => c.closeCount > 0 && next.closeCount > 0);
      expect(s.closeCount).toBe(0);
      expectNoProblems(c, s, next);
    });

    it("stops accepting when the listener closes, while open connections keep working", async () => {
      const listenOptions = suite.listenOptions();
      const accepted: Connection[] = [];
      const listener = await listen(listenOptions, (connection) => {
        accepted.push(track(connection));
        poke();
      });
      const connectOptions = suite.connectOptions(listener.address, listenOptions);
      const client = track(await settle(transport.connect(connectOptions), "connect"));
      await waitUntil("the listener to accept", () => accepted.length === 1);
      await settle(listener.close(), "the listener to close");
      await expectRejected(transport.connect(connectOptions), "a connect after the listener closed");
      expect(accepted.length).toBe(1);

      const pair: OpenPair = { client, server: accepted[0]!, c: new Recorder("client"), s: new Recorder("server") };
      pair.client.setHandler(pair.c);
      pair.server.setHandler(pair.s);
      pair.client.write(bytes("still"));
      pair.server.write(bytes("working"));
      await waitUntil("data both ways", () => pair.s.received === 5 && pair.c.received === 7);
      expect(pair.s.text()).toBe("still");
      expect(pair.c.text()).toBe("working");
      await closeCleanly(pair);
      expectNoProblems(pair.c, pair.s);
    });

    it("rejects a connect to an endpoint nobody listens on", async () => {
      const listenOptions = suite.listenOptions();
      const listener = await listen(listenOptions, (connection) => {
        track(connection);
      });
      const connectOptions = suite.connectOptions(listener.address, listenOptions);
      await settle(listener.close(), "the listener to close");
      const error = await expectRejected(transport.connect(connectOptions), "a connect to a closed endpoint");
      expect(error.message.length).toBeGreaterThan(0);
    });
  });
}
