import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ChatServer } from "../examples/tcp-chat";
import { EchoServer } from "../examples/tcp-echo";
import { defaultResolver, INITIAL_CONNECT_TIMEOUT, TCPClient, type ResolvedAddress } from "../src/client";
import { toBytes, utf8Decode } from "../src/core/bytes";
import { VirtualClock } from "../src/core/clock";
import { IOStream, StreamClosedError } from "../src/core/iostream";
import { TimeoutError } from "../src/core/locks";
import type { Logger } from "../src/core/log";
import type { ConnectOptions, Connection, ConnectionHandler, Listener, ListenOptions, Transport } from "../src/core/transport";
import { bindSockets, TCPServer } from "../src/server/tcp-server";
import { createPipe, flushMemory, type MemoryConnection, MemoryNetworkError, MemoryTransport } from "../src/transports/memory";
import { bunTransport, isBun } from "../src/transports/bun";
import { NodeConnection, NodeTransport, nodeTransport } from "../src/transports/node";

const fixtures = join(import.meta.dirname, "fixtures");
const key = readFileSync(join(fixtures, "localhost-key.pem"), "utf8");
const cert = readFileSync(join(fixtures, "localhost-cert.pem"), "utf8");

const socketDir = mkdtempSync(join(tmpdir(), "typhoon-tcp-"));
let socketCount = 0;
const socketPath = (): string => join(socketDir, `s${++socketCount}.sock`);
afterAll(() => rmSync(socketDir, { recursive: true, force: true }));

const text = (bytes: Uint8Array): string => utf8Decode(bytes);

/** A logger that keeps what it is told. */
class RecordingLogger implements Logger {
  readonly lines: Array<{ level: string; message: string; details: unknown[] }> = [];
  debug(message: string, ...details: unknown[]): void {
    this.lines.push({ level: "debug", message, details });
  }
  info(message: string, ...details: unknown[]): void {
    this.lines.push({ level: "info", message, details });
  }
  warn(message: string, ...details: unknown[]): void {
    this.lines.push({ level: "warn", message, details });
  }
  error(message: string, ...details: unknown[]): void {
    this.lines.push({ level: "error", message, details });
  }
  at(level: string): string[] {
    return this.lines.filter((line) => line.level === level).map((line) => line.message);
  }
}

/** Echoes lines until the peer goes away. */
async function echoLines(stream: IOStream): Promise<void> {
  for (;;) await stream.write(await stream.readUntil("\n"));
}

const ipv4 = (address: string): ResolvedAddress => ({ address, family: "IPv4" });
const ipv6 = (address: string): ResolvedAddress => ({ address, family: "IPv6" });

describe("TCPServer and TCPClient over memory", () => {
  it("serves a handler given as an option, to a client that resolves an IP literal", async () => {
    const transport = new MemoryTransport();
    const server = new TCPServer({ transport, handleStream: echoLines, logger: new RecordingLogger() });
    const address = await server.listen(0);
    expect(address.family).toBe("memory");
    const stream = await new TCPClient({ transport }).connect("127.0.0.1", address.port);
    await stream.write("hello\n");
    expect(text(await stream.readUntil("\n"))).toBe("hello\n");
    expect(server.streamCount).toBe(1);
    stream.close();
    await flushMemory();
    expect(server.streamCount).toBe(0);
    await server.close();
  });

  it("serves a subclass overriding handleStream, with the peer's address", async () => {
    const transport = new MemoryTransport();
    class Greeter extends TCPServer {
      override async handleStream(stream: IOStream, address: Parameters<TCPServer["handleStream"]>[1]): Promise<void> {
        await stream.write(`hello ${address?.address}:${address?.port}\n`);
        stream.close();
      }
    }
    const server = new Greeter({ transport });
    const { port } = await server.listen({ port: 0 });
    const stream = await new TCPClient({ transport }).connect("127.0.0.1", port, { sourceIp: "10.0.0.7" });
    expect(text(await stream.readUntilClose())).toMatch(/^hello 10\.0\.0\.7:\d+\n$/);
    await server.close();
  });

  it("logs an error thrown or rejected by handleStream, closes that stream, and keeps serving", async () => {
    const transport = new MemoryTransport();
    const logger = new RecordingLogger();
    let calls = 0;
    const server = new TCPServer({
      transport,
      logger,
      handleStream: (stream) => {
        calls++;
        if (calls === 1) throw new Error("sync failure");
        if (calls === 2) return Promise.reject(new Error("async failure"));
        return echoLines(stream);
      },
    });
    const { port } = await server.listen(0);
    const client = new TCPClient({ transport });
    for (const expected of ["sync failure", "async failure"]) {
      const stream = await client.connect("127.0.0.1", port);
      expect(text(await stream.readUntilClose())).toBe("");
      const last = logger.lines.filter((line) => line.level === "error").at(-1)!;
      expect(last.message).toMatch(/^Error in handleStream for /);
      expect((last.details[0] as Error).message).toBe(expected);
    }
    const third = await client.connect("127.0.0.1", port);
    await third.write("still serving\n");
    expect(text(await third.readUntil("\n"))).toBe("still serving\n");
    // A client that goes away is not an error: StreamClosedError is logged at debug.
    third.close();
    await flushMemory();
    expect(logger.at("error")).toHaveLength(2);
    expect(logger.at("debug").at(-1)).toMatch(/closed while being handled/);
    await server.close();
  });

  it("names the peer of a real socket that went away while being handled (its address is read while open)", async () => {
    let resolveLogged!: (message: string) => void;
    const logged = new Promise<string>((resolve) => (resolveLogged = resolve));
    const logger = new RecordingLogger();
    logger.debug = (message: string) => resolveLogged(message);
    const server = new TCPServer({
      transport: isBun() ? bunTransport : nodeTransport,
      logger,
      handleStream: async (stream) => void (await stream.readUntil("\n")),
    });
    const { port } = await server.listen(0, "127.0.0.1");
    const client = await new TCPClient({ transport: isBun() ? bunTransport : nodeTransport }).connect("127.0.0.1", port);
    await client.write("no newline yet");
    client.connection.destroy();
    expect(await logged).toMatch(/^Stream from 127\.0\.0\.1:\d+ closed while being handled$/);
    await server.close();
  });

  it("says what is missing when handleStream is neither given nor overridden", async () => {
    const logger = new RecordingLogger();
    const server = new TCPServer({ transport: new MemoryTransport(), logger });
    const [client, serverEnd] = createPipe();
    server.handleConnection(serverEnd);
    const stream = new IOStream(client);
    expect(text(await stream.readUntilClose())).toBe("");
    expect((logger.lines[0]!.details[0] as Error).message).toBe(
      "Cannot handle a stream: override TCPServer.handleStream or give the handleStream option",
    );
  });

  it("stop() stops listening but leaves streams open; close() closes them too", async () => {
    const transport = new MemoryTransport();
    const server = new TCPServer({ transport, handleStream: echoLines, logger: new RecordingLogger() });
    const { port } = await server.listen(0);
    const client = new TCPClient({ transport });
    const stream = await client.connect("127.0.0.1", port);
    await server.stop();
    expect(transport.listening).toEqual([]);
    await expect(client.connect("127.0.0.1", port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    await stream.write("after stop\n");
    expect(text(await stream.readUntil("\n"))).toBe("after stop\n");
    await expect(server.listen(0)).rejects.toThrow("Cannot listen: the server is stopped");
    const rest = stream.readUntilClose();
    await server.close();
    expect(text(await rest)).toBe("");
    expect(server.streamCount).toBe(0);
  });

  it("listens on a path", async () => {
    const transport = new MemoryTransport();
    const server = new TCPServer({ transport, handleStream: echoLines });
    const address = await server.listen({ path: "echo.sock" });
    expect(address).toEqual({ family: "memory", address: "echo.sock", port: 0 });
    const stream = new IOStream(await transport.connect({ path: "echo.sock" }));
    await stream.write("via path\n");
    expect(text(await stream.readUntil("\n"))).toBe("via path\n");
    await server.close();
  });

  it("serves sockets bound earlier with bindSockets/addSockets, with the connections they held", async () => {
    const transport = new MemoryTransport();
    const sockets = await bindSockets(0, "localhost", { transport });
    expect(sockets).toHaveLength(1);
    const { port } = sockets[0]!.address;
    const early = new IOStream(await transport.connect({ port }));
    await early.write("before the server\n");
    const server = new TCPServer({ transport, handleStream: echoLines });
    server.addSockets(sockets);
    expect(server.address?.port).toBe(port);
    expect(() => new TCPServer({ transport }).addSocket(sockets[0]!)).toThrow(/serves localhost:\d+ already/);
    expect(text(await early.readUntil("\n"))).toBe("before the server\n");
    await server.close();
    expect(transport.listening).toEqual([]);
  });

  it("a bound socket closed before any server takes it drops what it held", async () => {
    const transport = new MemoryTransport();
    const [socket] = await bindSockets({ port: 0 }, undefined, { transport });
    const stream = new IOStream(await transport.connect({ port: socket!.address.port }));
    await socket!.close();
    await expect(stream.readUntilClose()).resolves.toHaveLength(0);
    expect(stream.error).toMatchObject({ code: "ECONNRESET" });
    expect(() => new TCPServer({ transport }).addSockets([socket!])).toThrow("Cannot add a socket: it is closed");
  });

  it("passes TLS options to the transport (simulated TLS on memory)", async () => {
    const transport = new MemoryTransport();
    const server = new TCPServer({ transport, tls: { key, cert }, handleStream: echoLines });
    const { port } = await server.listen(0);
    const client = new TCPClient({ transport });
    await expect(client.connect("127.0.0.1", port)).rejects.toMatchObject({ code: "EPROTO" });
    const stream = await client.connect("127.0.0.1", port, { tls: { ca: cert } });
    expect(stream.connection.encrypted).toBe(true);
    await stream.write("secret\n");
    expect(text(await stream.readUntil("\n"))).toBe("secret\n");
    await server.close();
  });

  it("checks options when they are given", async () => {
    expect(() => new TCPServer({ maxBufferSize: 0 })).toThrow(RangeError);
    const client = new TCPClient({ transport: new MemoryTransport() });
    await expect(client.connect("127.0.0.1", 70000)).rejects.toThrow(RangeError);
    await expect(client.connect("127.0.0.1", 1, { timeout: -1 })).rejects.toThrow(RangeError);
    await expect(client.connect("127.0.0.1", 1, { readHighWaterMark: 0 })).rejects.toThrow(RangeError);
  });
});

/**
 * A network for Happy Eyeballs: a MemoryTransport behind a connect that, per
 * address, connects, refuses, or hangs (a blackhole) until the test lets it go.
 */
class FakeNetwork implements Transport {
  readonly name = "fake";
  readonly memory = new MemoryTransport();
  readonly attempts: string[] = [];
  readonly refuse = new Set<string>();
  readonly blackhole = new Set<string>();
  readonly hanging = new Map<string, { release: () => void; fail: (error: Error) => void }>();
  readonly winners = new Map<Connection, string>();
  readonly made: MemoryConnection[] = [];

  listen(options: ListenOptions, onConnection: (connection: Connection) => void): Promise<Listener> {
    return this.memory.listen(options, onConnection);
  }

  connect(options: ConnectOptions): Promise<Connection> {
    const host = options.host!;
    this.attempts.push(host);
    if (this.refuse.has(host)) return Promise.reject(new MemoryNetworkError("ECONNREFUSED", `Cannot connect to ${host}: refused`));
    const open = async (): Promise<Connection> => {
      const connection = await this.memory.connect(options);
      this.winners.set(connection, host);
      this.made.push(connection);
      return connection;
    };
    if (!this.blackhole.has(host)) return open();
    return new Promise((resolve, reject) => {
      this.hanging.set(host, { release: () => resolve(open()), fail: reject });
    });
  }
}

async function happyEyeballs(addresses: readonly ResolvedAddress[], setup: (network: FakeNetwork) => void = () => {}) {
  const network = new FakeNetwork();
  setup(network);
  const clock = new VirtualClock();
  const server = new TCPServer({ transport: network, handleStream: echoLines });
  const { port } = await server.listen(0);
  const client = new TCPClient({ transport: network, clock, resolver: async () => addresses });
  return { network, clock, server, port, client };
}

describe("TCPClient: Happy Eyeballs on a virtual clock", () => {
  it("takes the first family's first address when it answers, without trying the other family", async () => {
    const { network, clock, port, client } = await happyEyeballs([ipv6("2001:db8::1"), ipv4("192.0.2.1")]);
    const stream = await client.connect("dual.example", port);
    expect(network.winners.get(stream.connection)).toBe("2001:db8::1");
    expect(network.attempts).toEqual(["2001:db8::1"]);
    expect(clock.pendingTimers).toBe(0);
    await stream.write("ok\n");
    expect(text(await stream.readUntil("\n"))).toBe("ok\n");
  });

  it("starts the second family after 300 ms when the first hangs, and closes the first if it connects later", async () => {
    const { network, clock, port, client } = await happyEyeballs(
      [ipv6("2001:db8::1"), ipv6("2001:db8::2"), ipv4("192.0.2.1")],
      (n) => n.blackhole.add("2001:db8::1"),
    );
    const connecting = client.connect("dual.example", port);
    await flushMemory();
    expect(network.attempts).toEqual(["2001:db8::1"]);
    clock.advance(INITIAL_CONNECT_TIMEOUT - 1);
    await flushMemory();
    expect(network.attempts).toEqual(["2001:db8::1"]);
    clock.advance(1);
    await flushMemory();
    // Tornado's _Connector: the other family's queue starts; the first
    // family's next address waits for its first to fail.
    expect(network.attempts).toEqual(["2001:db8::1", "192.0.2.1"]);
    const stream = await connecting;
    expect(network.winners.get(stream.connection)).toBe("192.0.2.1");
    network.hanging.get("2001:db8::1")!.release();
    await flushMemory();
    const late = network.made.find((connection) => network.winners.get(connection) === "2001:db8::1")!;
    expect(late.closed).toBe(true);
    expect(stream.closed).toBe(false);
  });

  it("goes through each family's list, the second family at once when the first attempt fails", async () => {
    const { network, clock, port, client } = await happyEyeballs(
      [ipv6("2001:db8::1"), ipv4("192.0.2.1"), ipv6("2001:db8::2"), ipv4("192.0.2.2")],
      (n) => {
        n.refuse.add("2001:db8::1");
        n.blackhole.add("192.0.2.1");
        n.blackhole.add("2001:db8::2");
      },
    );
    const start = clock.now();
    const connecting = client.connect("dual.example", port);
    await flushMemory();
    expect(network.attempts).toEqual(["2001:db8::1", "2001:db8::2", "192.0.2.1"]);
    expect(clock.now()).toBe(start);
    network.hanging.get("192.0.2.1")!.fail(new MemoryNetworkError("ETIMEDOUT", "Cannot connect to 192.0.2.1: timed out"));
    await flushMemory();
    expect(network.attempts).toEqual(["2001:db8::1", "2001:db8::2", "192.0.2.1", "192.0.2.2"]);
    const stream = await connecting;
    expect(network.winners.get(stream.connection)).toBe("192.0.2.2");
  });

  it("rejects with the last error when every address fails", async () => {
    const addresses = [ipv6("2001:db8::1"), ipv4("192.0.2.1"), ipv6("2001:db8::2")];
    const { network, port, client } = await happyEyeballs(addresses, (n) => {
      for (const { address } of addresses) n.refuse.add(address);
    });
    const error = await client.connect("dual.example", port).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MemoryNetworkError);
    expect((error as MemoryNetworkError).code).toBe("ECONNREFUSED");
    expect([...network.attempts].sort()).toEqual(addresses.map((a) => a.address).sort());
    const lastTried = network.attempts.at(-1)!;
    expect((error as Error).message).toBe(`Cannot connect to ${lastTried}: refused`);
  });

  it("rejects with a TimeoutError at the timeout, and closes attempts that connect after it", async () => {
    const { network, clock, port, client } = await happyEyeballs([ipv6("2001:db8::1"), ipv4("192.0.2.1")], (n) => {
      n.blackhole.add("2001:db8::1");
      n.blackhole.add("192.0.2.1");
    });
    const result = client.connect("dual.example", port, { timeout: 1000 }).catch((e: unknown) => e);
    await flushMemory();
    clock.advance(999);
    await flushMemory();
    expect(network.attempts).toEqual(["2001:db8::1", "192.0.2.1"]);
    clock.advance(1);
    const error = await result;
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as Error).message).toBe("Cannot connect to dual.example:" + port + ": no connection within 1000 ms");
    network.hanging.get("192.0.2.1")!.release();
    await flushMemory();
    expect(network.made).toHaveLength(1);
    expect(network.made[0]!.closed).toBe(true);
    expect(clock.pendingTimers).toBe(0);
  });

  it("times out a resolver that does not answer, and reports a resolver's failure or an empty answer", async () => {
    const clock = new VirtualClock();
    const transport = new MemoryTransport();
    const never = new TCPClient({ transport, clock, resolver: () => new Promise(() => {}) });
    const result = never.connect("slow.example", 80, { timeout: 50 }).catch((e: unknown) => e);
    await flushMemory();
    clock.advance(50);
    expect(await result).toBeInstanceOf(TimeoutError);
    const failing = new TCPClient({ transport, resolver: () => Promise.reject(Object.assign(new Error("getaddrinfo ENOTFOUND"), { code: "ENOTFOUND" })) });
    await expect(failing.connect("nowhere.example", 80)).rejects.toMatchObject({ code: "ENOTFOUND" });
    const empty = new TCPClient({ transport, resolver: async () => [] });
    await expect(empty.connect("empty.example", 80)).rejects.toThrow("Cannot connect to empty.example:80: the name resolved to no address");
  });
});

describe("TCPServer and TCPClient over the runtime's default sockets", () => {
  it("echoes over TCP on 127.0.0.1 with the default transport, and binds the source address", async () => {
    const server = new TCPServer({ handleStream: echoLines });
    const { port } = await server.listen(0, "127.0.0.1");
    const stream = await new TCPClient().connect("127.0.0.1", port, { sourceIp: "127.0.0.1" });
    // The default transport is the runtime's own: Bun sockets under Bun, net under Node.
    if (typeof (globalThis as { Bun?: unknown }).Bun === "undefined") expect(stream.connection).toBeInstanceOf(NodeConnection);
    else expect(stream.connection.constructor.name).toBe("BunConnection");
    expect(stream.connection.localAddress?.address).toBe("127.0.0.1");
    const big = "x".repeat(1 << 20);
    const echoed = stream.readUntil("\n");
    await stream.write(`${big}\n`);
    expect((await echoed).byteLength).toBe(big.length + 1);
    stream.close();
    await server.close();
  });

  it("connects to localhost whichever family it resolves to first, with a server on IPv4 only", async () => {
    const server = new TCPServer({ handleStream: echoLines });
    const { port } = await server.listen(0, "127.0.0.1");
    const addresses = await defaultResolver("localhost");
    expect(addresses.length).toBeGreaterThan(0);
    const stream = await new TCPClient().connect("localhost", port, { timeout: 10_000 });
    expect(stream.connection.remoteAddress).toMatchObject({ address: "127.0.0.1", port });
    await stream.write("hi\n");
    expect(text(await stream.readUntil("\n"))).toBe("hi\n");
    stream.close();
    await server.close();
  });

  it("binds the source port asked for", async () => {
    const server = new TCPServer({ handleStream: echoLines });
    const { port } = await server.listen(0, "127.0.0.1");
    // A port that is free now: bind it, note it, let it go.
    const probe = await nodeTransport.listen({ host: "127.0.0.1", port: 0 }, () => {});
    const sourcePort = probe.address.port;
    await probe.close();
    const stream = await new TCPClient().connect("127.0.0.1", port, { sourceIp: "127.0.0.1", sourcePort });
    expect(stream.connection.localAddress?.port).toBe(sourcePort);
    stream.close();
    await server.close();
  });

  it("serves TLS, verifying the certificate against the host name by default", async () => {
    const server = new TCPServer({ tls: { key, cert }, handleStream: echoLines });
    const { port } = await server.listen(0, "127.0.0.1");
    const client = new TCPClient();
    const stream = await client.connect("localhost", port, { tls: { ca: cert } });
    expect(stream.connection.encrypted).toBe(true);
    await stream.write("over tls\n");
    expect(text(await stream.readUntil("\n"))).toBe("over tls\n");
    stream.close();
    await expect(client.connect("127.0.0.1", port, { tls: true })).rejects.toMatchObject({ code: expect.stringMatching(/SELF_SIGNED|UNABLE_TO_VERIFY/) });
    await server.close();
  });

  it("listens on a Unix socket and serves pre-bound sockets", async () => {
    const path = socketPath();
    const server = new TCPServer({ handleStream: echoLines });
    expect(await server.listen({ path })).toEqual({ family: "unix", address: path, port: 0 });
    const viaPath = new IOStream(await nodeTransport.connect({ path }));
    await viaPath.write("unix\n");
    expect(text(await viaPath.readUntil("\n"))).toBe("unix\n");
    server.addSockets(await bindSockets(0, "127.0.0.1"));
    const tcp = await new TCPClient().connect("127.0.0.1", server.addresses[1]!.port);
    await tcp.write("bound\n");
    expect(text(await tcp.readUntil("\n"))).toBe("bound\n");
    const closedA = viaPath.readUntilClose();
    const closedB = tcp.readUntilClose();
    await server.close();
    await Promise.all([closedA, closedB]);
  });
});

/** A listener on 127.0.0.1 (from `transport`), a client connected to it with the default Node transport, and the accepted end. */
async function nodeConnectedPair(transport: NodeTransport = nodeTransport): Promise<{ listener: Listener; client: NodeConnection; server: NodeConnection }> {
  let accept!: (connection: Connection) => void;
  const accepted = new Promise<Connection>((resolve) => (accept = resolve));
  const listener = await transport.listen({ host: "127.0.0.1", port: 0 }, accept);
  const client = await nodeTransport.connect({ host: "127.0.0.1", port: listener.address.port });
  return { listener, client, server: (await accepted) as NodeConnection };
}

/**
 * IOStream.startTls over one transport, both ends on it: an SMTP-like
 * exchange (STARTTLS / 220 in the clear, then lines over TLS).
 */
function ioStreamStartTlsSuite(name: string, transport: Transport): void {
  describe(`IOStream.startTls over the ${name} transport`, () => {
    type ServerResult = { ok: string; encrypted: boolean } | { error: Error; closed: boolean };

    /** A TCPServer that answers STARTTLS, upgrades and echoes one line; a client that got the 220. */
    async function smtpLike(clientTls: { ca?: string; servername?: string; rejectUnauthorized?: boolean }) {
      let serverDone!: (result: ServerResult) => void;
      const serverResult = new Promise<ServerResult>((resolve) => (serverDone = resolve));
      const server = new TCPServer({
        transport,
        logger: new RecordingLogger(),
        handleStream: async (stream) => {
          expect(text(await stream.readUntil("\r\n"))).toBe("STARTTLS\r\n");
          await stream.write("220 go\r\n");
          let secure: IOStream;
          try {
            secure = await stream.startTls({ server: { key, cert } });
          } catch (error) {
            serverDone({ error: error as Error, closed: stream.closed });
            return;
          }
          const line = text(await secure.readUntil("\r\n"));
          serverDone({ ok: line, encrypted: secure.connection.encrypted });
          await secure.write(`250 ${line}`);
          secure.close();
        },
      });
      const { port } = await server.listen(0, "127.0.0.1");
      const plain = await new TCPClient({ transport }).connect("127.0.0.1", port);
      expect(plain.connection.constructor.name).toBe(name === "Bun" ? "BunConnection" : "NodeConnection");
      await plain.write("STARTTLS\r\n");
      expect(text(await plain.readUntil("\r\n"))).toBe("220 go\r\n");
      return { server, plain, serverResult, upgrade: () => plain.startTls({ client: clientTls }) };
    }

    it("upgrades both sides of a plain connection, and data round trips over TLS", async () => {
      const { server, plain, serverResult, upgrade } = await smtpLike({ ca: cert, servername: "localhost" });
      expect(plain.connection.encrypted).toBe(false);
      const secure = await upgrade();
      expect(plain.closed).toBe(true);
      await expect(plain.write("clear\r\n")).rejects.toThrow(StreamClosedError);
      expect(secure.connection.encrypted).toBe(true);
      expect(secure.connection.remoteAddress).toMatchObject({ address: "127.0.0.1" });
      await secure.write("HELO secure\r\n");
      expect(text(await secure.readUntilClose())).toBe("250 HELO secure\r\n");
      expect(await serverResult).toEqual({ ok: "HELO secure\r\n", encrypted: true });
      await server.close();
    });

    it("rejects an untrusted certificate on both sides, and accepts it with rejectUnauthorized false", async () => {
      const untrusted = await smtpLike({});
      const error = await untrusted.upgrade().catch((e: unknown) => e);
      expect((error as { code?: string }).code).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY/);
      expect(untrusted.plain.closed).toBe(true);
      expect(untrusted.plain.error).toBe(error);
      // The server's handshake fails too (the client gave up), and its stream is closed.
      const serverSide = await untrusted.serverResult;
      expect("error" in serverSide && serverSide.error).toBeInstanceOf(Error);
      expect("error" in serverSide && serverSide.closed).toBe(true);
      await untrusted.server.close();

      const insecure = await smtpLike({ rejectUnauthorized: false });
      const secure = await insecure.upgrade();
      await secure.write("HELO anyway\r\n");
      expect(text(await secure.readUntilClose())).toBe("250 HELO anyway\r\n");
      expect(await insecure.serverResult).toEqual({ ok: "HELO anyway\r\n", encrypted: true });
      await insecure.server.close();
    });

    it("refuses while bytes received are not read, and the plain stream goes on", async () => {
      // Two lines in one small write, which arrives as one chunk: the second waits in the stream's buffer.
      const server = new TCPServer({
        transport,
        handleStream: async (stream) => {
          await stream.write("one\ntwo\n");
          await echoLines(stream);
        },
      });
      const { port } = await server.listen(0, "127.0.0.1");
      const stream = await new TCPClient({ transport }).connect("127.0.0.1", port);
      expect(text(await stream.readUntil("\n"))).toBe("one\n");
      await expect(stream.startTls({ client: { ca: cert, servername: "localhost" } })).rejects.toThrow(
        "Cannot start TLS: the stream is not idle (4 bytes were received and not read)",
      );
      expect(stream.closed).toBe(false);
      expect(text(await stream.readUntil("\n"))).toBe("two\n");
      await stream.write("three\n");
      expect(text(await stream.readUntil("\n"))).toBe("three\n");
      stream.close();
      await server.close();
    });
  });
}

ioStreamStartTlsSuite("Node", nodeTransport);
// The Bun transport exists only under Bun; under Node its suite is not run
// (test/transports/bun.test.ts checks that it fails there with a clear error).
if (isBun()) ioStreamStartTlsSuite("Bun", bunTransport);

describe("STARTTLS on Node connections", () => {
  it("flushes what was written in the clear first, and hands bytes that arrived early to TLS", async () => {
    // On the stream, so that the early bytes wait in the socket's buffer where the test can see them.
    const { listener, client, server } = await nodeConnectedPair(new NodeTransport({ directIo: false }));
    const seenByOldHandler: string[] = [];
    const oldHandler: ConnectionHandler = {
      data: (chunk) => seenByOldHandler.push(text(chunk)),
      end: () => seenByOldHandler.push("<end>"),
      drain() {},
      close: () => seenByOldHandler.push("<close>"),
    };
    server.setHandler(oldHandler);
    // The server writes a lot in the clear (more than the socket takes at
    // once), then upgrades right away.
    const clientStream = new IOStream(client);
    const blob = "p".repeat(4 * 1024 * 1024);
    server.write(toBytes(`${blob}\n`));
    server.pause();
    expect((await clientStream.readUntil("\n")).byteLength).toBe(blob.length + 1);
    // The client's ClientHello arrives while the server is paused, before it calls startTls.
    const clientSide = clientStream.startTls({ client: { ca: cert, servername: "localhost" } });
    const socket = server.socket;
    while (socket.readableLength === 0) await new Promise((resolve) => setImmediate(resolve));
    const serverSide = server.startTls({ server: { key, cert } });
    const [secureClient, secureServer] = await Promise.all([clientSide, serverSide]);
    expect(secureServer.encrypted).toBe(true);
    expect(server.closed).toBe(true);
    expect(server.writable).toBe(false);
    const serverStream = new IOStream(secureServer);
    await secureClient.write("over tls\n");
    expect(text(await serverStream.readUntil("\n"))).toBe("over tls\n");
    await expect(secureServer.startTls!({ server: { key, cert } })).rejects.toThrow("Cannot start TLS: the connection is encrypted already");
    await expect(server.startTls({ server: { key, cert } })).rejects.toThrow("Cannot start TLS: the connection was upgraded already");
    // The old connection is inert: it neither writes nor tears down the TLS one.
    expect(server.write(toBytes("clear"))).toBe(false);
    server.pause();
    server.resume();
    server.destroy();
    expect(secureServer.closed).toBe(false);
    secureClient.close();
    await serverStream.readUntilClose();
    await serverStream.waitClosed();
    expect(seenByOldHandler).toEqual([]);
    await listener.close();
  });

  it("with direct I/O, waits for clear-text writes still in libuv's queue before the TLS layer takes the socket", async () => {
    const { listener, client, server } = await nodeConnectedPair();
    server.setHandler({ data() {}, end() {}, drain() {}, close() {} });
    const clientStream = new IOStream(client);
    const blob = "q".repeat(4 * 1024 * 1024);
    // More than the socket takes at once: most of it waits in libuv's queue.
    server.write(toBytes(`${blob}\n`));
    expect(server.writableLength).toBeGreaterThan(0);
    const serverSide = server.startTls({ server: { key, cert } });
    const clientSide = clientStream.readUntil("\n").then((line) => {
      expect(line.byteLength).toBe(blob.length + 1);
      return clientStream.startTls({ client: { ca: cert, servername: "localhost" } });
    });
    const [secureClient, secureServer] = await Promise.all([clientSide, serverSide]);
    const serverStream = new IOStream(secureServer);
    await secureClient.write("over tls\n");
    expect(text(await serverStream.readUntil("\n"))).toBe("over tls\n");
    secureClient.close();
    await serverStream.readUntilClose();
    await listener.close();
  });

  it("rejects on the server side when the client gives up during the handshake", async () => {
    const { listener, client, server } = await nodeConnectedPair();
    server.setHandler({ data() {}, end() {}, drain() {}, close() {} });
    const serverSide = server.startTls({ server: { key, cert } }).catch((e: unknown) => e);
    const clientSide = client.startTls({ client: {} }).catch((e: unknown) => e);
    expect(await clientSide).toMatchObject({ code: expect.stringMatching(/SELF_SIGNED|UNABLE_TO_VERIFY/) });
    expect(await serverSide).toBeInstanceOf(Error);
    await listener.close();
  });

  it("refuses options that give neither or both sides", async () => {
    const { listener, client, server } = await nodeConnectedPair();
    await expect(client.startTls({} as never)).rejects.toThrow(TypeError);
    await expect(client.startTls({ server: { key, cert }, client: {} } as never)).rejects.toThrow(TypeError);
    // Still a usable plain connection.
    const stream = new IOStream(client);
    server.setHandler({ data: (chunk) => server.write(chunk), end: () => server.end(), drain() {}, close() {} });
    await stream.write("plain\n");
    expect(text(await stream.readUntil("\n"))).toBe("plain\n");
    stream.close();
    await stream.waitClosed();
    await listener.close();
  });
});

describe("examples", () => {
  it("tcp-echo echoes lines over memory pipes", async () => {
    const server = new EchoServer({ transport: new MemoryTransport(), logger: new RecordingLogger() });
    const [client, serverEnd] = createPipe({ split: 3 });
    server.handleConnection(serverEnd);
    const stream = new IOStream(client);
    for (const line of ["hello\n", "wörld\n", "\n"]) {
      await stream.write(line);
      expect(text(await stream.readUntil("\n"))).toBe(line);
    }
    stream.close();
    await flushMemory();
    expect(server.streamCount).toBe(0);
  });

  it("tcp-echo echoes lines over real sockets", async () => {
    const logger = new RecordingLogger();
    const server = new EchoServer({ logger });
    const { port } = await server.listen(0, "127.0.0.1");
    const stream = await new TCPClient().connect("127.0.0.1", port);
    await stream.write("ping\nping again\n");
    expect(text(await stream.readUntil("\n"))).toBe("ping\n");
    expect(text(await stream.readUntil("\n"))).toBe("ping again\n");
    stream.close();
    await server.close();
    expect(logger.at("info")).toContain('Received bytes: "ping\\n"');
  });

  it("tcp-chat sends each line to the other members, with a name prompt", async () => {
    const server = new ChatServer({ transport: new MemoryTransport(), logger: new RecordingLogger() });
    const join = async (name: string): Promise<IOStream> => {
      const [client, serverEnd] = createPipe();
      server.handleConnection(serverEnd);
      const stream = new IOStream(client);
      expect(text(await stream.readUntil("\n"))).toBe("Welcome! What is your name?\n");
      await stream.write(`${name}\r\n`);
      expect(text(await stream.readUntil("\n"))).toMatch(/^Hello /);
      return stream;
    };
    const alice = await join("alice");
    const bob = await join("bob");
    expect(text(await alice.readUntil("\n"))).toBe("* bob joined\n");
    const carol = await join("alice");
    expect(server.members).toEqual(["alice", "bob", "alice2"]);
    expect(text(await alice.readUntil("\n"))).toBe("* alice2 joined\n");
    expect(text(await bob.readUntil("\n"))).toBe("* alice2 joined\n");
    await alice.write("hi all\n");
    expect(text(await bob.readUntil("\n"))).toBe("alice: hi all\n");
    expect(text(await carol.readUntil("\n"))).toBe("alice: hi all\n");
    await bob.write("/who\n");
    expect(text(await bob.readUntil("\n"))).toBe("Here: alice, bob, alice2\n");
    await bob.write("/quit\n");
    expect(text(await bob.readUntilClose())).toBe("Bye!\n");
    expect(text(await alice.readUntil("\n"))).toBe("* bob left\n");
    carol.close();
    expect(text(await alice.readUntil("\n"))).toBe("* alice2 left\n");
    await flushMemory();
    // Alice got nothing of her own.
    expect(alice.bufferedLength).toBe(0);
    expect(server.members).toEqual(["alice"]);
  });

  it("tcp-chat works over real sockets", async () => {
    const server = new ChatServer({ logger: new RecordingLogger() });
    const { port } = await server.listen(0, "127.0.0.1");
    const client = new TCPClient();
    const a = await client.connect("127.0.0.1", port);
    const b = await client.connect("127.0.0.1", port);
    await a.readUntil("\n");
    await b.readUntil("\n");
    await a.write("ann\n");
    await a.readUntil("\n");
    await b.write("ben\n");
    await b.readUntil("\n");
    expect(text(await a.readUntil("\n"))).toBe("* ben joined\n");
    await b.write("hello ann\n");
    expect(text(await a.readUntil("\n"))).toBe("ben: hello ann\n");
    b.close();
    expect(text(await a.readUntil("\n"))).toBe("* ben left\n");
    const closed = a.readUntilClose();
    await server.close();
    await closed;
    expect(a.closed).toBe(true);
  });
});

describe("StreamClosedError", () => {
  it("is what a read gets when the server closes", async () => {
    const transport = new MemoryTransport();
    const server = new TCPServer({ transport, handleStream: (stream) => stream.close() });
    const { port } = await server.listen(0);
    const stream = await new TCPClient({ transport }).connect("127.0.0.1", port);
    await expect(stream.readUntil("\n")).rejects.toBeInstanceOf(StreamClosedError);
    await server.close();
  });
});
