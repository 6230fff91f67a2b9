import { Buffer } from "node:buffer";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Connection, ConnectionHandler, Listener } from "../../src/core/transport";
import { NodeConnection, NodeTransport, nodeTransport } from "../../src/transports/node";
import { runTransportSuite } from "../transport-contract";

const fixtures = join(import.meta.dirname, "..", "fixtures");
const key = readFileSync(join(fixtures, "localhost-key.pem"), "utf8");
const cert = readFileSync(join(fixtures, "localhost-cert.pem"), "utf8");

const socketDir = mkdtempSync(join(tmpdir(), "typhoon-transports-"));
let socketCount = 0;
const socketPath = (): string => join(socketDir, `s${++socketCount}.sock`);
afterAll(() => rmSync(socketDir, { recursive: true, force: true }));

runTransportSuite({
  name: "node tcp 127.0.0.1",
  transport: nodeTransport,
  listenOptions: () => ({ host: "127.0.0.1", port: 0 }),
  connectOptions: (address) => ({ host: "127.0.0.1", port: address.port }),
});

runTransportSuite({
  name: "node unix socket",
  transport: nodeTransport,
  listenOptions: () => ({ path: socketPath() }),
  connectOptions: (address) => ({ path: address.address }),
});

// The same contract on the sockets' streams (directIo: false), the path
// TLS connections and runtimes without Node's handle API take.
const streamTransport = new NodeTransport({ directIo: false });

runTransportSuite({
  name: "node tcp 127.0.0.1, stream I/O",
  transport: streamTransport,
  listenOptions: () => ({ host: "127.0.0.1", port: 0 }),
  connectOptions: (address) => ({ host: "127.0.0.1", port: address.port }),
  propertyRuns: 20,
});

runTransportSuite({
  name: "node unix socket, stream I/O",
  transport: streamTransport,
  listenOptions: () => ({ path: socketPath() }),
  connectOptions: (address) => ({ path: address.address }),
  propertyRuns: 20,
});

runTransportSuite({
  name: "node tls 127.0.0.1",
  transport: nodeTransport,
  listenOptions: () => ({ host: "127.0.0.1", port: 0, tls: { key, cert } }),
  connectOptions: (address) => ({ host: "127.0.0.1", port: address.port, tls: { ca: cert, servername: "localhost" } }),
  encrypted: true,
  propertyRuns: 10,
});

runTransportSuite({
  name: "node tls over a unix socket",
  transport: nodeTransport,
  listenOptions: () => ({ path: socketPath(), tls: { key, cert } }),
  connectOptions: (address) => ({ path: address.address, tls: { ca: cert, servername: "localhost" } }),
  encrypted: true,
  propertyRuns: 10,
  largePayload: 1024 * 1024,
});

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Collects what a connection receives and resolves promises on its events. */
class Probe implements ConnectionHandler {
  text = "";
  ended = false;
  closeError: Error | undefined;
  drains = 0;
  readonly closed: Promise<Error | undefined>;
  #resolveClosed!: (error: Error | undefined) => void;
  #waiters: Array<() => void> = [];
  constructor() {
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }
  data(chunk: Uint8Array): void {
    this.text += decoder.decode(chunk);
    this.#wake();
  }
  end(): void {
    this.ended = true;
    this.#wake();
  }
  drain(): void {
    this.drains++;
    this.#wake();
  }
  close(error?: Error): void {
    this.closeError = error;
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

/** Listens, connects once, and returns both ends with probes on them. */
async function connectedPair(
  listen: Parameters<typeof nodeTransport.listen>[0],
  connect: (listener: Listener) => Parameters<typeof nodeTransport.connect>[0],
  transport: NodeTransport = nodeTransport,
): Promise<{ listener: Listener; client: NodeConnection; server: NodeConnection; c: Probe; s: Probe }> {
  let accept!: (connection: Connection) => void;
  const accepted = new Promise<Connection>((resolve) => {
    accept = resolve;
  });
  const listener = await transport.listen(listen, accept);
  const client = await transport.connect(connect(listener));
  const server = (await accepted) as NodeConnection;
  const c = new Probe();
  const s = new Probe();
  client.setHandler(c);
  server.setHandler(s);
  return { listener, client, server, c, s };
}

/** A TCP pair on 127.0.0.1 whose sockets have this write high-water mark. */
function tcpPairWithHighWaterMark(highWaterMark: number): ReturnType<typeof connectedPair> {
  return connectedPair({ host: "127.0.0.1", port: 0, highWaterMark }, (listener) => ({
    host: "127.0.0.1",
    port: listener.address.port,
    highWaterMark,
  }));
}

/** Like {@link exchange}, for a pair whose probes already saw `serverSaw` and `clientSaw`. */
async function exchangeAfter(pair: Awaited<ReturnType<typeof connectedPair>>, serverSaw: string, clientSaw = ""): Promise<void> {
  const { client, server, c, s } = pair;
  client.write(encoder.encode("ping"));
  await s.until(() => s.text === `${serverSaw}ping`);
  server.write(encoder.encode("pong"));
  await c.until(() => c.text === `${clientSaw}pong`);
  client.end();
  server.end();
  expect(await c.closed).toBeUndefined();
  expect(await s.closed).toBeUndefined();
  await pair.listener.close();
}

/** Exchanges a message each way and closes both ends cleanly. */
async function exchange(pair: Awaited<ReturnType<typeof connectedPair>>): Promise<void> {
  const { client, server, c, s, listener } = pair;
  client.write(encoder.encode("ping"));
  await s.until(() => s.text === "ping");
  server.write(encoder.encode("pong"));
  await c.until(() => c.text === "pong");
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

describe("node transport: TCP", () => {
  it("works over IPv6 ::1 where the machine has it, and fails to listen where it does not", async () => {
    if (hasIPv6Loopback()) {
      const pair = await connectedPair({ host: "::1", port: 0 }, (listener) => ({ host: "::1", port: listener.address.port }));
      expect(pair.listener.address.family).toBe("IPv6");
      expect(pair.listener.address.address).toBe("::1");
      expect(pair.client.remoteAddress).toEqual({ family: "IPv6", address: "::1", port: pair.listener.address.port });
      expect(pair.server.remoteAddress?.family).toBe("IPv6");
      await exchange(pair);
    } else {
      const error = await nodeTransport.listen({ host: "::1", port: 0 }, () => {}).catch((e: unknown) => e);
      expect(["EADDRNOTAVAIL", "EAFNOSUPPORT"]).toContain((error as { code?: string }).code);
    }
  });

  it("reports IPv4 addresses and binds the local address asked for", async () => {
    const pair = await connectedPair({ host: "127.0.0.1", port: 0 }, (listener) => ({
      host: "127.0.0.1",
      port: listener.address.port,
      localAddress: "127.0.0.1",
    }));
    expect(pair.listener.address).toEqual({ family: "IPv4", address: "127.0.0.1", port: pair.listener.address.port });
    expect(pair.client.localAddress?.family).toBe("IPv4");
    expect(pair.client.localAddress?.address).toBe("127.0.0.1");
    expect(pair.client.encrypted).toBe(false);
    expect(pair.client.alpnProtocol).toBeNull();
    await exchange(pair);
  });

  it("answers addresses as the socket does, without leaving Node's address cache on the socket", async () => {
    const pair = await connectedPair({ host: "127.0.0.1", port: 0 }, (listener) => ({ host: "127.0.0.1", port: listener.address.port }));
    const onBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
    for (const end of [pair.server, pair.client]) {
      const remote = end.remoteAddress;
      const local = end.localAddress;
      const socket = end.socket as unknown as { _peername?: unknown; _sockname?: unknown };
      // Node caches what its getters found (an object and two strings per socket); asking the handle leaves none.
      if (!onBun) {
        expect(socket._peername ?? null).toBeNull();
        expect(socket._sockname ?? null).toBeNull();
      }
      expect(remote).toEqual({ family: "IPv4", address: end.socket.remoteAddress, port: end.socket.remotePort });
      expect(local).toEqual({ family: "IPv4", address: end.socket.localAddress, port: end.socket.localPort });
    }
    expect(pair.server.remoteAddress).toEqual(pair.client.localAddress);
    await exchange(pair);
  });

  it("rejects a refused connect with Node's ECONNREFUSED error", async () => {
    const listener = await nodeTransport.listen({ host: "127.0.0.1", port: 0 }, () => {});
    await listener.close();
    await expect(nodeTransport.connect({ host: "127.0.0.1", port: listener.address.port })).rejects.toMatchObject({
      code: "ECONNREFUSED",
    });
  });

  it("rejects a listen on a port in use with EADDRINUSE, unless reusePort shares it where Node supports it", async () => {
    const first = await nodeTransport.listen({ host: "127.0.0.1", port: 0, reusePort: true }, () => {});
    const port = first.address.port;
    await expect(nodeTransport.listen({ host: "127.0.0.1", port }, () => {})).rejects.toMatchObject({ code: "EADDRINUSE" });
    const [major, minor] = process.versions.node.split(".").map(Number) as [number, number];
    const supported = (major === 22 && minor >= 12) || major >= 23;
    const second = nodeTransport.listen({ host: "127.0.0.1", port, reusePort: true }, () => {});
    if (supported) {
      const listener = await second;
      expect(listener.address.port).toBe(port);
      await listener.close();
    } else {
      await expect(second).rejects.toMatchObject({ code: "EADDRINUSE" });
    }
    await first.close();
  });

  it("turns Nagle off by default on both ends, and leaves it on when asked", async () => {
    // Node records the setting under an internal symbol; read it to see what was asked of the socket.
    const noDelayOf = (connection: NodeConnection): unknown => {
      const socket = connection.socket as unknown as Record<symbol, unknown>;
      const symbol = Object.getOwnPropertySymbols(socket).find((s) => s.description === "kSetNoDelay");
      return symbol === undefined ? undefined : socket[symbol];
    };
    const pair = await connectedPair({ host: "127.0.0.1", port: 0 }, (listener) => ({ host: "127.0.0.1", port: listener.address.port }));
    expect(noDelayOf(pair.client)).toBe(true);
    expect(noDelayOf(pair.server)).toBe(true);
    pair.client.setNoDelay(false);
    expect(noDelayOf(pair.client)).toBe(false);
    await exchange(pair);
    const nagle = new NodeTransport({ noDelay: false });
    const other = await connectedPair(
      { host: "127.0.0.1", port: 0 },
      (listener) => ({ host: "127.0.0.1", port: listener.address.port }),
      nagle,
    );
    expect(noDelayOf(other.client)).toBeFalsy();
    expect(noDelayOf(other.server)).toBeFalsy();
    await exchange(other);
  });

  it("rejects options that give neither or both of port and path", async () => {
    await expect(nodeTransport.listen({}, () => {})).rejects.toThrow(TypeError);
    await expect(nodeTransport.listen({ port: 0, path: "/tmp/x" }, () => {})).rejects.toThrow(TypeError);
    await expect(nodeTransport.connect({})).rejects.toThrow(TypeError);
  });

  it("reads and writes TCP and Unix sockets through the handle on Node, TLS through the stream", async () => {
    const tcp = await connectedPair({ host: "127.0.0.1", port: 0 }, (listener) => ({ host: "127.0.0.1", port: listener.address.port }));
    const onBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
    expect(tcp.server.directIo).toBe(!onBun);
    expect(tcp.client.directIo).toBe(!onBun);
    await exchange(tcp);
    const unix = await connectedPair({ path: socketPath() }, (listener) => ({ path: listener.address.address }));
    expect(unix.server.directIo).toBe(!onBun);
    await exchange(unix);
    const stream = await connectedPair({ host: "127.0.0.1", port: 0 }, (listener) => ({ host: "127.0.0.1", port: listener.address.port }), streamTransport);
    expect(stream.server.directIo).toBe(false);
    await exchange(stream);
    const secure = await connectedPair({ host: "127.0.0.1", port: 0, tls: { key, cert } }, (listener) => ({
      host: "127.0.0.1",
      port: listener.address.port,
      tls: { ca: cert, servername: "localhost" },
    }));
    expect(secure.server.directIo).toBe(false);
    expect(secure.client.directIo).toBe(false);
    await exchange(secure);
  });

  it("hands each read over as bytes of its own: a chunk kept by the handler is not overwritten by later reads", async () => {
    const pair = await connectedPair({ host: "127.0.0.1", port: 0 }, (listener) => ({ host: "127.0.0.1", port: listener.address.port }));
    const kept: Uint8Array[] = [];
    const s = pair.s;
    const data = s.data.bind(s);
    s.data = (chunk: Uint8Array) => {
      kept.push(chunk);
      data(chunk);
    };
    const pieces = ["first read", "second", "x".repeat(70_000), "last"];
    let expected = "";
    for (const piece of pieces) {
      pair.client.write(encoder.encode(piece));
      expected += piece;
      await s.until(() => s.text === expected);
    }
    // Every chunk still reads as it did when it came, and they add up to what was sent.
    expect(decoder.decode(Buffer.concat(kept))).toBe(expected);
    expect(decoder.decode(kept[0])).toBe("first read");
    pair.client.destroy();
    pair.server.destroy();
    await pair.listener.close();
  });

  it("delivers bytes that came before the handler was set, in order, then reads directly", async () => {
    let accept!: (connection: Connection) => void;
    const accepted = new Promise<Connection>((resolve) => (accept = resolve));
    const listener = await nodeTransport.listen({ host: "127.0.0.1", port: 0 }, accept);
    const client = await nodeTransport.connect({ host: "127.0.0.1", port: listener.address.port });
    const server = (await accepted) as NodeConnection;
    client.setHandler(new Probe());
    client.write(encoder.encode("early"));
    while (server.socket.readableLength === 0) await new Promise((resolve) => setImmediate(resolve));
    const s = new Probe();
    server.setHandler(s);
    // Bytes in the stream's buffer keep this connection on the stream.
    expect(server.directIo).toBe(false);
    client.write(encoder.encode(" late"));
    await s.until(() => s.text === "early late");
    client.destroy();
    server.destroy();
    await listener.close();
  });

  it("reports write backpressure and drain from libuv's queue on direct I/O", async () => {
    const highWaterMark = 16 * 1024;
    const pair = await tcpPairWithHighWaterMark(highWaterMark);
    const { client, server } = pair;
    const c = pair.c;
    server.pause();
    let written = 0;
    const chunk = new Uint8Array(64 * 1024).fill(120);
    while (client.write(chunk)) written += chunk.byteLength;
    written += chunk.byteLength;
    expect(client.writableLength).toBeGreaterThanOrEqual(highWaterMark);
    expect(c.drains).toBe(0);
    server.resume();
    await pair.s.until(() => pair.s.text.length === written);
    await c.until(() => c.drains > 0);
    expect(c.drains).toBe(1);
    expect(client.writableLength).toBe(0);
    expect(pair.s.text).toBe("x".repeat(written));
    client.end();
    server.end();
    expect(await c.closed).toBeUndefined();
    await pair.listener.close();
  });

  it("takes every write at a high-water mark of 0 once it is sent (no drain owed), as the stream does", async () => {
    for (const transport of [nodeTransport, streamTransport]) {
      const pair = await connectedPair({ host: "127.0.0.1", port: 0, highWaterMark: 0 }, (listener) => ({
        host: "127.0.0.1",
        port: listener.address.port,
        highWaterMark: 0,
      }), transport);
      expect(pair.client.write(encoder.encode("a"))).toBe(true);
      expect(pair.client.writeLatin1("b")).toBe(true);
      await pair.s.until(() => pair.s.text === "ab");
      await exchangeAfter(pair, "ab");
    }
  });

  it("keeps a socket.setTimeout idle timer fresh on direct reads and writes", async () => {
    const pair = await connectedPair({ host: "127.0.0.1", port: 0 }, (listener) => ({ host: "127.0.0.1", port: listener.address.port }));
    if (typeof (globalThis as { Bun?: unknown }).Bun !== "undefined") {
      // Bun's node:net has no handle to read directly: its sockets keep their own timers.
      expect(pair.server.directIo).toBe(false);
      await exchange(pair);
      return;
    }
    const socket = pair.server.socket as unknown as { _unrefTimer: () => void; setTimeout(ms: number): void };
    let refreshed = 0;
    const original = socket._unrefTimer;
    socket._unrefTimer = function (this: unknown) {
      refreshed++;
      original.call(this);
    };
    socket.setTimeout(60_000);
    refreshed = 0;
    pair.client.write(encoder.encode("x"));
    await pair.s.until(() => pair.s.text === "x");
    expect(refreshed).toBeGreaterThanOrEqual(1);
    const afterRead = refreshed;
    pair.server.write(encoder.encode("y"));
    expect(refreshed).toBeGreaterThan(afterRead);
    await pair.c.until(() => pair.c.text === "y");
    socket.setTimeout(0);
    await exchangeAfter(pair, "x", "y");
  });

  it("stops reading from the kernel while paused, so the writer's buffer grows instead", async () => {
    const highWaterMark = 16 * 1024;
    const pair = await tcpPairWithHighWaterMark(highWaterMark);
    const { client, server } = pair;
    server.pause();
    let written = 0;
    while (client.write(new Uint8Array(8 * 1024))) written += 8 * 1024;
    // Let both sockets do all the I/O they can: a round trip the other way.
    server.write(encoder.encode("ping"));
    await pair.c.until(() => pair.c.text === "ping");
    const buffered = server.socket.readableLength;
    expect(buffered).toBeLessThanOrEqual(server.socket.readableHighWaterMark + 64 * 1024);
    expect(client.writableLength).toBeGreaterThanOrEqual(highWaterMark);
    expect(pair.s.text).toBe("");
    client.destroy();
    server.destroy();
    await pair.listener.close();
  });
});

describe("node transport: TLS", () => {
  it("negotiates ALPN by the server's preference", async () => {
    const pair = await connectedPair(
      { host: "127.0.0.1", port: 0, tls: { key, cert, alpnProtocols: ["h2", "http/1.1"] } },
      (listener) => ({
        host: "127.0.0.1",
        port: listener.address.port,
        tls: { ca: cert, servername: "localhost", alpnProtocols: ["http/1.1", "h2"] },
      }),
    );
    expect(pair.client.encrypted).toBe(true);
    expect(pair.server.encrypted).toBe(true);
    expect(pair.client.alpnProtocol).toBe("h2");
    expect(pair.server.alpnProtocol).toBe("h2");
    await exchange(pair);
  });

  it("has no ALPN protocol when the client offers none", async () => {
    const pair = await connectedPair(
      { host: "127.0.0.1", port: 0, tls: { key, cert, alpnProtocols: ["http/1.1"] } },
      (listener) => ({ host: "localhost", port: listener.address.port, tls: { ca: cert } }),
    );
    expect(pair.client.alpnProtocol).toBeNull();
    expect(pair.server.alpnProtocol).toBeNull();
    await exchange(pair);
  });

  it("rejects a certificate it cannot verify, and accepts it with rejectUnauthorized false", async () => {
    const listener = await nodeTransport.listen({ host: "127.0.0.1", port: 0, tls: { key, cert } }, (connection) => {
      connection.setHandler({ data() {}, end: () => connection.end(), drain() {}, close() {} });
    });
    const error = await nodeTransport
      .connect({ host: "127.0.0.1", port: listener.address.port, tls: true })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as { code?: string }).code).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY/);
    const insecure = await nodeTransport.connect({
      host: "127.0.0.1",
      port: listener.address.port,
      tls: { rejectUnauthorized: false },
    });
    expect(insecure.encrypted).toBe(true);
    const probe = new Probe();
    insecure.setHandler(probe);
    insecure.end();
    await probe.closed;
    await listener.close();
  });

  it("applies the listener's high-water mark to the sockets a TLS server makes", async () => {
    const highWaterMark = 12345;
    const pair = await connectedPair({ host: "127.0.0.1", port: 0, highWaterMark, tls: { key, cert } }, (listener) => ({
      host: "127.0.0.1",
      port: listener.address.port,
      highWaterMark: 5432,
      tls: { ca: cert, servername: "localhost" },
    }));
    expect(pair.server.socket.writableHighWaterMark).toBe(highWaterMark);
    expect(pair.client.socket.writableHighWaterMark).toBe(5432);
    await exchange(pair);
  });
});

describe("node transport: Unix sockets", () => {
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
    const child = spawnSync(
      process.execPath,
      ["-e", "require('node:net').createServer().listen(process.argv[1], () => process.exit(0))", path],
      { timeout: 20_000 },
    );
    expect(child.status).toBe(0);
    expect(statSync(path).isSocket()).toBe(true);
    await expect(nodeTransport.connect({ path })).rejects.toMatchObject({ code: "ECONNREFUSED" });
    const pair = await connectedPair({ path }, () => ({ path }));
    await exchange(pair);
  });

  it("does not take over a socket someone listens on", async () => {
    const path = socketPath();
    const live = await connectedPair({ path }, () => ({ path }));
    await expect(nodeTransport.listen({ path }, () => {})).rejects.toMatchObject({ code: "EADDRINUSE" });
    await exchange(live);
  });

  it("does not remove a file that is not a socket", async () => {
    const path = socketPath();
    writeFileSync(path, "precious");
    await expect(nodeTransport.listen({ path }, () => {})).rejects.toMatchObject({ code: "EADDRINUSE" });
    expect(readFileSync(path, "utf8")).toBe("precious");
  });

  it("removes the socket file when the listener closes", async () => {
    const path = socketPath();
    const listener = await nodeTransport.listen({ path }, () => {});
    expect(statSync(path).isSocket()).toBe(true);
    await listener.close();
    expect(() => statSync(path)).toThrow();
    await expect(nodeTransport.connect({ path })).rejects.toMatchObject({ code: "ENOENT" });
  });
});
