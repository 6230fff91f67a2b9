/**
 * The Bun transport: the shared contract suite over TCP, Unix sockets and
 * TLS, and what only Bun needs checking (IPv6, partial writes, pause pushing
 * back, startTls). Under Node, one test checks that using the transport
 * fails with a clear error.
 *
 * Run under Bun: `npx bun --bun vitest run --pool=threads test/transports/bun.test.ts`.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import type { Connection, ConnectionHandler, Listener, ListenOptions } from "../../src/core/transport";
import { defaultTransport } from "../../src/server/default-transport";
import { type BunConnectOptions, BunConnection, BunTransport, bunTransport, isBun } from "../../src/transports/bun";
import type { BunRuntime } from "../../src/transports/bun/bun-api";
import { SOCKET_EVENTS } from "../../src/transports/bun/connection";
import { nodeTransport } from "../../src/transports/node";
import { runTransportSuite } from "../transport-contract";

const fixtures = join(import.meta.dirname, "..", "fixtures");
const key = readFileSync(join(fixtures, "localhost-key.pem"), "utf8");
const cert = readFileSync(join(fixtures, "localhost-cert.pem"), "utf8");

const encoder = new TextEncoder();
const decoder = new TextDecoder();

if (!isBun()) {
  describe("bun transport outside Bun", () => {
    it("fails with a clear error when used, and is not the default transport", async () => {
      expect(bunTransport.name).toBe("bun");
      await expect(bunTransport.listen({ port: 0 }, () => {})).rejects.toThrow(/^Cannot listen: the Bun transport needs the Bun runtime/);
      await expect(bunTransport.connect({ port: 1 })).rejects.toThrow(/^Cannot connect: the Bun transport needs the Bun runtime/);
      expect(defaultTransport()).toBe(nodeTransport);
    });
  });
} else {
  const socketDir = mkdtempSync(join(tmpdir(), "typhoon-bun-transport-"));
  let socketCount = 0;
  const socketPath = (): string => join(socketDir, `s${++socketCount}.sock`);
  afterAll(() => rmSync(socketDir, { recursive: true, force: true }));

  runTransportSuite({
    name: "bun tcp 127.0.0.1",
    transport: bunTransport,
    listenOptions: () => ({ host: "127.0.0.1", port: 0 }),
    connectOptions: (address) => ({ host: "127.0.0.1", port: address.port }),
  });

  runTransportSuite({
    name: "bun unix socket",
    transport: bunTransport,
    listenOptions: () => ({ path: socketPath() }),
    connectOptions: (address) => ({ path: address.address }),
  });

  runTransportSuite({
    name: "bun tls 127.0.0.1",
    transport: bunTransport,
    listenOptions: () => ({ host: "127.0.0.1", port: 0, tls: { key, cert } }),
    connectOptions: (address) => ({ host: "127.0.0.1", port: address.port, tls: { ca: cert, servername: "localhost" } }),
    encrypted: true,
    propertyRuns: 10,
  });

  runTransportSuite({
    name: "bun tls over a unix socket",
    transport: bunTransport,
    listenOptions: () => ({ path: socketPath(), tls: { key, cert } }),
    connectOptions: (address) => ({ path: address.address, tls: { ca: cert, servername: "localhost" } }),
    encrypted: true,
    propertyRuns: 10,
    largePayload: 1024 * 1024,
  });

  /** Collects what a connection receives and resolves promises on its events. */
  class Probe implements ConnectionHandler {
    text = "";
    /** Every event in order: `data:<text>` (`data:<n> bytes` when keeping chunks), `end`, `drain`, `close` or `close:error`. */
    readonly events: string[] = [];
    received = 0;
    ended = false;
    drains = 0;
    closeError: Error | undefined;
    readonly closed: Promise<Error | undefined>;
    #resolveClosed!: (error: Error | undefined) => void;
    #waiters: Array<() => void> = [];
    #keep: boolean;
    readonly chunks: Uint8Array[] = [];
    constructor({ keep = false } = {}) {
      this.#keep = keep;
      this.closed = new Promise((resolve) => {
        this.#resolveClosed = resolve;
      });
    }
    data(chunk: Uint8Array): void {
      this.received += chunk.byteLength;
      if (this.#keep) {
        this.chunks.push(chunk);
        this.events.push(`data:${chunk.byteLength} bytes`);
      } else {
        const text = decoder.decode(chunk);
        this.text += text;
        this.events.push(`data:${text}`);
      }
      this.#wake();
    }
    end(): void {
      this.ended = true;
      this.events.push("end");
      this.#wake();
    }
    drain(): void {
      this.drains++;
      this.events.push("drain");
      this.#wake();
    }
    close(error?: Error): void {
      this.closeError = error;
      this.events.push(error === undefined ? "close" : "close:error");
      this.#resolveClosed(error);
      this.#wake();
    }
    /** Resolves once `condition` holds (checked after every event). */
    until(condition: () => boolean): Promise<void> {
      if (condition()) return Promise.resolve();
      return new Promise((resolve) => {
        const check = (): void => {
          if (condition()) resolve();
          else this.#waiters.push(check);
        };
        this.#waiters.push(check);
      });
    }
    #wake(): void {
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const waiter of waiters) waiter();
    }
  }

  interface Pair {
    listener: Listener;
    client: BunConnection;
    server: BunConnection;
    c: Probe;
    s: Probe;
  }

  /** Listens, connects once, and returns both ends with probes on them. */
  async function connectedPair(
    listen: ListenOptions,
    connect: (listener: Listener) => BunConnectOptions,
    { transport = bunTransport, keep = false }: { transport?: BunTransport; keep?: boolean } = {},
  ): Promise<Pair> {
    let accept!: (connection: Connection) => void;
    const accepted = new Promise<Connection>((resolve) => {
      accept = resolve;
    });
    const listener = await transport.listen(listen, accept);
    const client = await transport.connect(connect(listener));
    const server = (await accepted) as BunConnection;
    const c = new Probe({ keep });
    const s = new Probe({ keep });
    client.setHandler(c);
    server.setHandler(s);
    return { listener, client, server, c, s };
  }

  /** Exchanges a message each way and closes both ends cleanly. */
  async function exchange(pair: Pair): Promise<void> {
    const { client, server, c, s, listener } = pair;
    client.write(encoder.encode("ping"));
    await s.until(() => s.text.endsWith("ping"));
    server.write(encoder.encode("pong"));
    await c.until(() => c.text.endsWith("pong"));
    client.end();
    server.end();
    expect(await c.closed).toBeUndefined();
    expect(await s.closed).toBeUndefined();
    await listener.close();
  }

  function hasIPv6Loopback(): boolean {
    return Object.values(networkInterfaces()).some((addresses) =>
      (addresses ?? []).some((address) => address.internal && address.address === "::1"),
    );
  }

  const tcp = (listener: Listener): BunConnectOptions => ({ host: "127.0.0.1", port: listener.address.port });

  /** The prototype that Bun's TCP and Unix sockets share (accepted or made), where a spy sees the transport's calls. */
  async function tcpSocketPrototype(): Promise<{ setNoDelay(noDelay: boolean): void; write(data: Uint8Array, offset?: number, length?: number): number }> {
    const bun = (globalThis as unknown as { Bun: BunRuntime }).Bun;
    const listener = bun.listen<undefined>({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const socket = await bun.connect<undefined>({ hostname: "127.0.0.1", port: listener.port!, socket: { data() {} } });
    const prototype = Object.getPrototypeOf(socket) as { setNoDelay(noDelay: boolean): void; write(data: Uint8Array): number };
    socket.terminate();
    listener.stop(true);
    return prototype;
  }

  describe("bun transport: runtime selection", () => {
    it("is the default transport under Bun", () => {
      expect(defaultTransport()).toBe(bunTransport);
    });
  });

  describe("bun transport: TCP", () => {
    it("works over IPv6 ::1 where the machine has it", async () => {
      if (!hasIPv6Loopback()) {
        const error = await bunTransport.listen({ host: "::1", port: 0 }, () => {}).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(Error);
        return;
      }
      const pair = await connectedPair({ host: "::1", port: 0 }, (listener) => ({ host: "::1", port: listener.address.port }));
      expect(pair.listener.address).toEqual({ family: "IPv6", address: "::1", port: pair.listener.address.port });
      expect(pair.client.remoteAddress).toEqual({ family: "IPv6", address: "::1", port: pair.listener.address.port });
      expect(pair.server.remoteAddress).toEqual(pair.client.localAddress);
      expect(pair.server.remoteAddress?.family).toBe("IPv6");
      await exchange(pair);
    });

    it("listens on all interfaces by default, reachable over IPv4", async () => {
      const pair = await connectedPair({ port: 0 }, tcp);
      expect(["::", "0.0.0.0"]).toContain(pair.listener.address.address);
      await exchange(pair);
    });

    it("reports IPv4 addresses and binds the local address and port asked for", async () => {
      // A port that is free now: bind it, note it, let it go.
      const probe = await bunTransport.listen({ host: "127.0.0.1", port: 0 }, () => {});
      const localPort = probe.address.port;
      await probe.close();
      const pair = await connectedPair({ host: "127.0.0.1", port: 0 }, (listener) => ({
        ...tcp(listener),
        localAddress: "127.0.0.1",
        localPort,
      }));
      expect(pair.client.localAddress?.port).toBe(localPort);
      expect(pair.listener.address).toEqual({ family: "IPv4", address: "127.0.0.1", port: pair.listener.address.port });
      expect(pair.client.localAddress?.family).toBe("IPv4");
      expect(pair.client.localAddress?.address).toBe("127.0.0.1");
      expect(pair.client.encrypted).toBe(false);
      expect(pair.client.alpnProtocol).toBeNull();
      await exchange(pair);
    });

    it("rejects a refused connect with ECONNREFUSED and an unknown host with ENOTFOUND", async () => {
      const listener = await bunTransport.listen({ host: "127.0.0.1", port: 0 }, () => {});
      await listener.close();
      await expect(bunTransport.connect(tcp(listener))).rejects.toMatchObject({ code: "ECONNREFUSED" });
      await expect(bunTransport.connect({ host: "nowhere.invalid", port: 80 })).rejects.toMatchObject({ code: "ENOTFOUND" });
    });

    it("rejects a listen on a port in use with EADDRINUSE, unless reusePort shares it", async () => {
      const first = await bunTransport.listen({ host: "127.0.0.1", port: 0, reusePort: true }, () => {});
      const port = first.address.port;
      await expect(bunTransport.listen({ host: "127.0.0.1", port }, () => {})).rejects.toMatchObject({ code: "EADDRINUSE" });
      const second = await bunTransport.listen({ host: "127.0.0.1", port, reusePort: true }, () => {});
      expect(second.address.port).toBe(port);
      await second.close();
      await first.close();
    });

    it("rejects options that give neither or both of port and path, and a bad high-water mark", async () => {
      await expect(bunTransport.listen({}, () => {})).rejects.toThrow(TypeError);
      await expect(bunTransport.listen({ port: 0, path: "/tmp/x" }, () => {})).rejects.toThrow(TypeError);
      await expect(bunTransport.connect({})).rejects.toThrow(TypeError);
      await expect(bunTransport.connect({ port: 1, highWaterMark: 0 })).rejects.toThrow(RangeError);
    });

    it("buffers partial writes under backpressure and delivers a multi-MiB payload intact", async () => {
      const highWaterMark = 64 * 1024;
      const pair = await connectedPair({ host: "127.0.0.1", port: 0, highWaterMark }, (listener) => ({ ...tcp(listener), highWaterMark }), {
        keep: true,
      });
      const { client, c, s } = pair;
      const size = 24 * 1024 * 1024;
      const payload = new Uint8Array(size);
      for (let i = 0; i < size; i++) payload[i] = (i * 31 + (i >>> 11)) & 0xff;
      // With the reader paused, one huge write: it goes out at once (large
      // chunks are not held for the end of the turn), the kernel takes a
      // part, the connection queues the rest.
      pair.server.pause();
      expect(client.write(payload)).toBe(false);
      const queued = client.writableLength;
      expect(queued).toBeGreaterThan(0);
      expect(queued).toBeLessThan(size);
      // Then many small writes, queued behind it (and joined when flushed).
      const small = payload.subarray(0, 3 * 1024 * 1024);
      for (let offset = 0; offset < small.length; offset += 1000) {
        expect(client.write(small.subarray(offset, offset + 1000))).toBe(false);
      }
      expect(client.writableLength).toBe(queued + small.length);
      pair.server.resume();
      await c.until(() => c.drains > 0);
      expect(client.writableLength).toBeLessThan(highWaterMark);
      client.end();
      await s.until(() => s.ended);
      expect(s.received).toBe(size + small.length);
      const got = new Uint8Array(s.received);
      let at = 0;
      for (const chunk of s.chunks) {
        got.set(chunk, at);
        at += chunk.byteLength;
      }
      expect(Buffer.compare(got.subarray(0, size), payload)).toBe(0);
      expect(Buffer.compare(got.subarray(size), small)).toBe(0);
      pair.server.end();
      expect(await c.closed).toBeUndefined();
      expect(await s.closed).toBeUndefined();
      await pair.listener.close();
    });

    it("stops reading from the kernel while paused, so the writer's own buffer fills", async () => {
      const highWaterMark = 16 * 1024;
      const pair = await connectedPair({ host: "127.0.0.1", port: 0, highWaterMark }, (listener) => ({ ...tcp(listener), highWaterMark }));
      const { client, server, c, s } = pair;
      server.pause();
      // Write until the kernel buffers on both sides are full: the writer's
      // own queue then holds what the paused reader did not take.
      const chunk = new Uint8Array(256 * 1024);
      let written = 0;
      for (let round = 0; round < 200 && client.writableLength < 1024 * 1024; round++) {
        client.write(chunk);
        written += chunk.byteLength;
        // A round trip the other way lets both sockets do what I/O they can.
        const before = c.received;
        server.write(encoder.encode("ping"));
        await c.until(() => c.received === before + 4);
      }
      expect(client.writableLength).toBeGreaterThanOrEqual(1024 * 1024);
      expect(s.received).toBe(0);
      // Less than what was written reached the kernel: the rest is queued here.
      expect(written - client.writableLength).toBeLessThan(written);
      server.resume();
      client.end();
      await s.until(() => s.ended);
      expect(s.received).toBe(written);
      expect(client.writableLength).toBe(0);
      server.end();
      await c.closed;
      await pair.listener.close();
    });

    it("delivers nothing while paused (data and FIN wait), then the data, end and close in order on resume", async () => {
      const pair = await connectedPair({ host: "127.0.0.1", port: 0 }, tcp);
      const { client, server, c, s } = pair;
      client.write(encoder.encode("one"));
      await s.until(() => s.text === "one");
      server.pause();
      client.write(encoder.encode("two"));
      client.end();
      // Two round trips the other way: the server's socket has had its turns
      // at I/O since "two" and the FIN were sent, and delivered nothing.
      for (const expected of ["ping", "pingping"]) {
        server.write(encoder.encode("ping"));
        await c.until(() => c.text === expected);
      }
      expect(s.events).toEqual(["data:one"]);
      expect(s.ended).toBe(false);
      server.resume();
      await s.until(() => s.ended);
      expect(s.text).toBe("onetwo");
      server.end();
      expect(await c.closed).toBeUndefined();
      expect(await s.closed).toBeUndefined();
      // "two" may come in one piece or several, but before end, and close last.
      const after = s.events.slice(1);
      expect(after.slice(-2)).toEqual(["end", "close"]);
      expect(after.slice(0, -2).every((event) => event.startsWith("data:"))).toBe(true);
      await pair.listener.close();
    });

    it("leaves Nagle off by default, turns it back on per transport with noDelay false, and per connection when asked", async () => {
      // Every call of setNoDelay on a Bun TCP socket, as "<which end>:<value>".
      const spy = vi.spyOn(await tcpSocketPrototype(), "setNoDelay");
      const ends = new Map<unknown, string>();
      const calls = (): string[] => spy.mock.contexts.map((socket, i) => `${ends.get((socket as { data?: unknown }).data) ?? "other"}:${spy.mock.calls[i]![0]}`);
      try {
        // Bun turns Nagle off on every TCP socket: by default nothing more is asked.
        const plain = await connectedPair({ host: "127.0.0.1", port: 0 }, tcp);
        ends.set(plain.client, "client").set(plain.server, "server");
        expect(calls()).toEqual([]);
        plain.client.setNoDelay(false);
        plain.client.setNoDelay(false); // already so: not asked again
        plain.server.setNoDelay(true); // already so
        plain.client.setNoDelay(true);
        expect(calls()).toEqual(["client:false", "client:true"]);
        await exchange(plain);

        // A transport made with noDelay false turns Nagle back on for each
        // connection, accepted or made.
        spy.mockClear();
        const nagle = new BunTransport({ noDelay: false });
        const pair = await connectedPair({ host: "127.0.0.1", port: 0 }, tcp, { transport: nagle });
        ends.set(pair.client, "nagle client").set(pair.server, "nagle server");
        expect(calls().sort()).toEqual(["nagle client:false", "nagle server:false"]);
        pair.client.setNoDelay(true);
        pair.server.setNoDelay(false); // already so
        expect(calls().slice(2)).toEqual(["nagle client:true"]);
        await exchange(pair);

        // Unix sockets have no Nagle: nothing is asked of them.
        spy.mockClear();
        const path = socketPath();
        const unix = await connectedPair({ path }, () => ({ path }), { transport: nagle });
        unix.client.setNoDelay(true);
        unix.server.setNoDelay(true);
        expect(calls()).toEqual([]);
        await exchange(unix);
      } finally {
        spy.mockRestore();
      }
    });

    it("writes what each connection was given in one turn of the event loop as one socket write, after that turn's reads", async () => {
      const a = await connectedPair({ host: "127.0.0.1", port: 0 }, tcp);
      const b = await connectedPair({ host: "127.0.0.1", port: 0 }, tcp);
      const spy = vi.spyOn(await tcpSocketPrototype(), "write");
      const writes = (): string[] =>
        spy.mock.contexts.map((socket, i) => {
          const end = (socket as { data?: unknown }).data === a.client ? "a" : (socket as { data?: unknown }).data === b.client ? "b" : "other";
          return `${end}:${(spy.mock.calls[i]![2] as number | undefined) ?? (spy.mock.calls[i]![0] as Uint8Array).byteLength}`;
        });
      try {
        expect(a.client.write(encoder.encode("one "))).toBe(true);
        expect(b.client.write(encoder.encode("x"))).toBe(true);
        expect(a.client.write(encoder.encode("two "))).toBe(true);
        expect(a.client.write(encoder.encode("three"))).toBe(true);
        // Nothing is written during the turn; it is all queued.
        expect(writes()).toEqual([]);
        expect(a.client.writableLength).toBe(13);
        expect(b.client.writableLength).toBe(1);
        await a.s.until(() => a.s.received === 13);
        await b.s.until(() => b.s.received === 1);
        // One write per connection, the first connection written to first.
        expect(writes()).toEqual(["a:13", "b:1"]);
        expect(a.s.text).toBe("one two three");
        expect(a.client.writableLength).toBe(0);
        // end() after a write in the same turn: the data goes first, then FIN.
        b.client.write(encoder.encode("last"));
        b.client.end();
        await b.s.until(() => b.s.ended);
        expect(b.s.text).toBe("xlast");
        // destroy() drops what this turn has not written yet.
        a.client.write(encoder.encode("never"));
        a.client.destroy();
        await a.c.closed;
        expect(writes().filter((w) => w === "a:5")).toEqual([]);
      } finally {
        spy.mockRestore();
      }
      b.server.end();
      a.server.destroy();
      await a.listener.close();
      await b.listener.close();
    });

    it("copies what it holds for the end of the turn: the caller may reuse its buffer once write returns", async () => {
      const pair = await connectedPair({ host: "127.0.0.1", port: 0 }, tcp);
      const buffer = encoder.encode("hello");
      expect(pair.client.write(buffer)).toBe(true);
      buffer.fill(0x78);
      expect(pair.client.write(buffer)).toBe(true);
      await pair.s.until(() => pair.s.received === 10);
      expect(pair.s.text).toBe("helloxxxxx");
      await exchange(pair);
    });

    it("writes at once when one turn queued 64 KiB or more", async () => {
      const pair = await connectedPair({ host: "127.0.0.1", port: 0 }, tcp);
      const piece = new Uint8Array(1000).fill(0x61);
      for (let i = 0; i < 200; i++) pair.client.write(piece);
      // 200,000 bytes written in this turn: all but the last < 64 KiB went out.
      expect(pair.client.writableLength).toBeLessThan(64 * 1024);
      expect(pair.client.writableLength).toBeGreaterThan(0);
      await pair.s.until(() => pair.s.received === 200_000);
      expect(pair.s.text).toBe("a".repeat(200_000));
      await exchange(pair);
    });

    it("flushes with the runtime's setImmediate even while fake timers are installed", async () => {
      const pair = await connectedPair({ host: "127.0.0.1", port: 0 }, tcp);
      vi.useFakeTimers({ toFake: ["setImmediate", "setTimeout"] });
      try {
        expect(pair.client.write(encoder.encode("a"))).toBe(true);
      } finally {
        vi.useRealTimers();
      }
      expect(pair.client.write(encoder.encode("b"))).toBe(true);
      await pair.s.until(() => pair.s.text === "ab");
      expect(pair.client.writableLength).toBe(0);
      await exchange(pair);
    });

    it("a drain handler that throws at the end of a turn closes its connection only; the turn's other writes still go out", async () => {
      const a = await connectedPair({ host: "127.0.0.1", port: 0 }, (listener) => ({ ...tcp(listener), highWaterMark: 4 }));
      const b = await connectedPair({ host: "127.0.0.1", port: 0 }, tcp);
      const boom = new Error("drain handler failed");
      a.client.setHandler({ data() {}, end() {}, drain() { throw boom; }, close: (error) => a.c.close(error) });
      // The error is rethrown in a microtask, where the runtime reports
      // uncaught errors; caught here so that the test sees it.
      const caught: unknown[] = [];
      const original = globalThis.queueMicrotask;
      const spy = vi.spyOn(globalThis, "queueMicrotask").mockImplementation((callback) =>
        original(() => {
          try {
            callback();
          } catch (error) {
            caught.push(error);
          }
        }),
      );
      try {
        expect(a.client.write(encoder.encode("0123456789"))).toBe(false); // over the mark: drain is owed
        expect(b.client.write(encoder.encode("still sent"))).toBe(true);
        expect(await a.c.closed).toBe(boom);
        await b.s.until(() => b.s.text === "still sent");
        expect(caught).toEqual([boom]);
      } finally {
        spy.mockRestore();
      }
      b.client.end();
      b.server.end();
      expect(await b.c.closed).toBeUndefined();
      await a.listener.close();
      await b.listener.close();
    });

    it("reports the peer's reset as close with ECONNRESET", async () => {
      const pair = await connectedPair({ host: "127.0.0.1", port: 0 }, tcp);
      pair.client.write(encoder.encode("hello"));
      await pair.s.until(() => pair.s.text === "hello");
      pair.client.destroy();
      expect(await pair.c.closed).toBeUndefined();
      const error = await pair.s.closed;
      expect(error).toBeInstanceOf(Error);
      expect((error as { code?: string }).code).toBe("ECONNRESET");
      await pair.listener.close();
    });

    it("upgrades a plain connection to TLS with startTls, both sides", async () => {
      const pair = await connectedPair({ host: "127.0.0.1", port: 0 }, tcp);
      const { client, server, c, s } = pair;
      client.write(encoder.encode("STARTTLS\r\n"));
      await s.until(() => s.text === "STARTTLS\r\n");
      server.write(encoder.encode("220 go ahead\r\n"));
      await c.until(() => c.text === "220 go ahead\r\n");
      expect(typeof client.startTls).toBe("function");
      const [secureServer, secureClient] = await Promise.all([
        server.startTls!({ server: { key, cert, alpnProtocols: ["imap"] } }),
        client.startTls!({ client: { ca: cert, servername: "localhost", alpnProtocols: ["imap"] } }),
      ]);
      expect(secureClient.encrypted).toBe(true);
      expect(secureServer.encrypted).toBe(true);
      expect(secureClient.alpnProtocol).toBe("imap");
      expect(secureClient.remoteAddress).toEqual(client.remoteAddress);
      const sc = new Probe();
      const ss = new Probe();
      secureClient.setHandler(sc);
      secureServer.setHandler(ss);
      secureClient.write(encoder.encode("a secret"));
      await ss.until(() => ss.text === "a secret");
      secureServer.write(encoder.encode("kept"));
      await sc.until(() => sc.text === "kept");
      secureClient.end();
      await ss.until(() => ss.ended);
      secureServer.end();
      expect(await sc.closed).toBeUndefined();
      expect(await ss.closed).toBeUndefined();
      expect(sc.ended).toBe(true);
      await pair.listener.close();
    });

    it("flushes what was written before startTls in the clear, then upgrades", async () => {
      const pair = await connectedPair({ host: "127.0.0.1", port: 0 }, tcp, { keep: true });
      const { client, server, c } = pair;
      // The client reads nothing for now, so the server's clear text queues up.
      client.pause();
      const clear = new Uint8Array(16 * 1024 * 1024).fill(7);
      server.write(clear);
      expect(server.writableLength).toBeGreaterThan(0);
      const secureServer = server.startTls!({ server: { key, cert } });
      expect(server.write(encoder.encode("ignored"))).toBe(false);
      client.resume();
      await c.until(() => c.received === clear.length);
      expect(c.chunks.every((chunk) => chunk.every((byte) => byte === 7))).toBe(true);
      const secureClient = await client.startTls!({ client: { ca: cert, servername: "localhost" } });
      const secure = await secureServer;
      const ss = new Probe();
      const sc = new Probe();
      secure.setHandler(ss);
      secureClient.setHandler(sc);
      secureClient.write(encoder.encode("over TLS"));
      await ss.until(() => ss.text === "over TLS");
      secureClient.end();
      await ss.until(() => ss.ended);
      secure.end();
      expect(await sc.closed).toBeUndefined();
      expect(await ss.closed).toBeUndefined();
      await pair.listener.close();
    });

    it("rejects startTls when the handshake fails, with undelivered data, or on an encrypted connection", async () => {
      const pair = await connectedPair({ host: "127.0.0.1", port: 0 }, tcp);
      const [serverSide, clientSide] = await Promise.allSettled([
        pair.server.startTls!({ server: { key, cert } }),
        pair.client.startTls!({ client: { servername: "localhost" } }),
      ]);
      expect(clientSide.status).toBe("rejected");
      expect(((clientSide as PromiseRejectedResult).reason as { code?: string }).code).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY/);
      expect(serverSide.status).toBe("rejected");
      await pair.listener.close();

      // Bytes that came before any handler was set are held, and Bun's TLS
      // layer cannot be given them. The listener's socket callbacks are
      // copied from SOCKET_EVENTS when it listens: wrap `data` there to know
      // when the bytes have reached the connection.
      let accept!: (connection: Connection) => void;
      const accepted = new Promise<Connection>((resolve) => {
        accept = resolve;
      });
      let arrived!: () => void;
      const bytesArrived = new Promise<void>((resolve) => {
        arrived = resolve;
      });
      const socketData = SOCKET_EVENTS.data;
      let listener: Listener;
      SOCKET_EVENTS.data = (socket, chunk) => {
        socketData(socket, chunk);
        arrived();
      };
      try {
        listener = await bunTransport.listen({ host: "127.0.0.1", port: 0 }, accept);
      } finally {
        SOCKET_EVENTS.data = socketData;
      }
      const early = await bunTransport.connect(tcp(listener));
      const probe = new Probe();
      early.setHandler(probe);
      const serverEnd = await accepted;
      early.write(encoder.encode("abc"));
      await bytesArrived;
      await expect(serverEnd.startTls!({ server: { key, cert } })).rejects.toThrow(
        "Cannot start TLS: 3 bytes received are not delivered yet (no handler was set, or the connection is paused)",
      );
      // They are still there for a handler, in the clear.
      const late = new Probe();
      serverEnd.setHandler(late);
      await late.until(() => late.text === "abc");
      serverEnd.destroy();
      await probe.closed;
      await listener.close();

      const tls = await connectedPair({ host: "127.0.0.1", port: 0, tls: { key, cert } }, (listener) => ({
        ...tcp(listener),
        tls: { ca: cert, servername: "localhost" },
      }));
      await expect(tls.client.startTls!({ client: {} })).rejects.toThrow("Cannot start TLS: the connection is already encrypted");
      await exchange(tls);
    });
  });

  describe("bun transport: TLS", () => {
    it("negotiates ALPN by the server's preference", async () => {
      const pair = await connectedPair({ host: "127.0.0.1", port: 0, tls: { key, cert, alpnProtocols: ["h2", "http/1.1"] } }, (listener) => ({
        ...tcp(listener),
        tls: { ca: cert, servername: "localhost", alpnProtocols: ["http/1.1", "h2"] },
      }));
      expect(pair.client.encrypted).toBe(true);
      expect(pair.server.encrypted).toBe(true);
      expect(pair.client.alpnProtocol).toBe("h2");
      expect(pair.server.alpnProtocol).toBe("h2");
      await exchange(pair);
    });

    it("has no ALPN protocol when the client offers none, and verifies by the host name", async () => {
      const pair = await connectedPair({ host: "127.0.0.1", port: 0, tls: { key, cert, alpnProtocols: ["http/1.1"] } }, (listener) => ({
        host: "localhost",
        port: listener.address.port,
        tls: { ca: cert },
      }));
      expect(pair.client.alpnProtocol).toBeNull();
      expect(pair.server.alpnProtocol).toBeNull();
      await exchange(pair);
    });

    it("takes key and certificate as bytes", async () => {
      const pair = await connectedPair(
        { host: "127.0.0.1", port: 0, tls: { key: encoder.encode(key), cert: encoder.encode(cert) } },
        (listener) => ({ ...tcp(listener), tls: { ca: encoder.encode(cert), servername: "localhost" } }),
      );
      await exchange(pair);
    });

    it("rejects a certificate it cannot verify or a wrong name, and accepts it with rejectUnauthorized false", async () => {
      let accepted = 0;
      const listener = await bunTransport.listen({ host: "127.0.0.1", port: 0, tls: { key, cert } }, (connection) => {
        accepted++;
        connection.setHandler({ data() {}, end: () => connection.end(), drain() {}, close() {} });
      });
      const error = await bunTransport.connect({ ...tcp(listener), tls: true }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      expect((error as { code?: string }).code).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY/);
      const wrongName = await bunTransport.connect({ ...tcp(listener), tls: { ca: cert, servername: "example.com" } }).catch((e: unknown) => e);
      expect((wrongName as { code?: string }).code).toBe("ERR_TLS_CERT_ALTNAME_INVALID");
      const insecure = await bunTransport.connect({ ...tcp(listener), tls: { rejectUnauthorized: false } });
      expect(insecure.encrypted).toBe(true);
      const probe = new Probe();
      insecure.setHandler(probe);
      insecure.end();
      expect(await probe.closed).toBeUndefined();
      expect(accepted).toBe(1);
      await listener.close();
    });
  });

  describe("bun transport: Unix sockets", () => {
    it("reports the path as the listening side's address", async () => {
      const path = socketPath();
      const pair = await connectedPair({ path }, () => ({ path }));
      expect(pair.listener.address).toEqual({ family: "unix", address: path, port: 0 });
      expect(pair.server.localAddress).toEqual({ family: "unix", address: path, port: 0 });
      expect(pair.client.remoteAddress).toEqual({ family: "unix", address: path, port: 0 });
      expect(pair.client.localAddress).toEqual({ family: "unix", address: "", port: 0 });
      await exchange(pair);
    });

    it("replaces a stale socket file that nothing listens on", async () => {
      const path = socketPath();
      // A process that binds the path and exits without closing leaves the file behind.
      const script = `Bun.listen({ unix: ${JSON.stringify(path)}, socket: { data() {} } }); process.exit(0)`;
      const child = spawnSync(process.execPath, ["-e", script], { timeout: 20_000 });
      expect(child.status).toBe(0);
      expect(statSync(path).isSocket()).toBe(true);
      await expect(bunTransport.connect({ path })).rejects.toMatchObject({ code: "ECONNREFUSED" });
      const pair = await connectedPair({ path }, () => ({ path }));
      await exchange(pair);
    });

    it("does not take over a socket someone listens on, nor a file that is not a socket", async () => {
      const path = socketPath();
      const live = await connectedPair({ path }, () => ({ path }));
      await expect(bunTransport.listen({ path }, () => {})).rejects.toMatchObject({ code: "EADDRINUSE" });
      await exchange(live);
      const file = socketPath();
      writeFileSync(file, "precious");
      await expect(bunTransport.listen({ path: file }, () => {})).rejects.toMatchObject({ code: "EADDRINUSE" });
      expect(readFileSync(file, "utf8")).toBe("precious");
    });

    it("removes the socket file when the listener closes", async () => {
      const path = socketPath();
      const listener = await bunTransport.listen({ path }, () => {});
      expect(statSync(path).isSocket()).toBe(true);
      await listener.close();
      expect(() => statSync(path)).toThrow();
      await expect(bunTransport.connect({ path })).rejects.toMatchObject({ code: "ENOENT" });
    });
  });
}
