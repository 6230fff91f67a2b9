/**
 * The bare HTTP server over real sockets with real clients: Node's fetch,
 * curl, and Python's Tornado AsyncHTTPClient (Debian's python3-tornado,
 * installed by `npm run setup`); over TCP, a Unix socket and TLS. The same
 * scenarios run over memory pipes at the end (the TestClient, and raw bytes
 * for what it does not send: HTTP/1.0 and chunked uploads), so that both
 * paths are held to one answer.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { concatBytes, utf8Decode } from "../../src/core/bytes";
import { silentLogger } from "../../src/core/log";
import type { Connection, ConnectionHandler, Transport } from "../../src/core/transport";
import { defaultTransport, HTTPServer, type HTTPServerRequest } from "../../src/server";
import { TestClient } from "../../src/testing";
import { createPipe } from "../../src/transports/memory";

const run = promisify(execFile);

async function app(req: HTTPServerRequest): Promise<void> {
  const c = req.connection;
  switch (req.path) {
    case "/hello":
      return c.respond(200, { "Content-Type": "text/plain; charset=utf-8" }, "Hello, world");
    case "/echo":
      return c.respond(200, { "Content-Type": "application/octet-stream" }, req.body);
    case "/chunked":
      c.writeHeaders(200, { "Content-Type": "text/plain" });
      await c.write("one,");
      await c.write("two,");
      return c.finish();
    case "/info":
      return c.respond(200, { "Content-Type": "application/json" }, JSON.stringify({ method: req.method, version: req.version, length: req.body.length }));
    default:
      return c.respond(404, { "Content-Type": "text/plain" }, "Not Found");
  }
}

/**
 * The runtime's transport, recording the remote port of each connection it
 * accepts (the request object has the peer's IP, not its port), and which
 * connection's bytes are being handled now: a request callback runs while
 * the bytes that completed its request are handled, so `current.port` is
 * the client port its request came from. How a test tells one kept-alive
 * connection from several.
 */
function recordingTransport(): { transport: Transport; ports: number[]; current: { port: number } } {
  const inner = defaultTransport();
  const ports: number[] = [];
  const current = { port: -1 };
  const transport: Transport = {
    name: `recording ${inner.name}`,
    connect: (options) => inner.connect(options),
    listen: (options, onConnection) =>
      inner.listen(options, (connection: Connection) => {
        const port = connection.remoteAddress?.port ?? -1;
        ports.push(port);
        const setHandler = connection.setHandler.bind(connection);
        connection.setHandler = (handler: ConnectionHandler) =>
          setHandler({
            data: (chunk) => {
              current.port = port;
              handler.data(chunk);
            },
            end: () => handler.end(),
            drain: () => handler.drain(),
            close: (error) => handler.close(error),
          });
        onConnection(connection);
      }),
  };
  return { transport, ports, current };
}

let server: HTTPServer;
let base: string;
let accepted: number[];

beforeAll(async () => {
  const recording = recordingTransport();
  accepted = recording.ports;
  server = new HTTPServer(app, { logger: silentLogger, transport: recording.transport });
  const address = await server.listen(0, "127.0.0.1");
  base = `http://127.0.0.1:${address.port}`;
});

afterAll(async () => {
  await server.close({ timeout: 2000 });
});

describe("Node's fetch", () => {
  it("gets, posts binary bodies and streams chunked responses", async () => {
    const hello = await fetch(`${base}/hello`);
    expect(hello.status).toBe(200);
    expect(await hello.text()).toBe("Hello, world");
    const body = new Uint8Array(1 << 20).map((_, i) => (i * 7) & 0xff);
    const echo = await fetch(`${base}/echo`, { method: "POST", body });
    expect(new Uint8Array(await echo.arrayBuffer())).toEqual(body);
    const chunked = await fetch(`${base}/chunked`);
    expect(chunked.headers.get("transfer-encoding")).toBe("chunked");
    expect(await chunked.text()).toBe("one,two,");
    const missing = await fetch(`${base}/nope`);
    expect(missing.status).toBe(404);
    await missing.text();
    const all = await Promise.all(Array.from({ length: 50 }, (_, i) => fetch(`${base}/hello?i=${i}`).then((r) => r.text())));
    expect(new Set(all)).toEqual(new Set(["Hello, world"]));
  });

  it("keeps the connection: sequential requests reuse a connection, seen by the client's port", async () => {
    // A server of its own, so that no pooled connection of another test can answer.
    const { transport, ports, current } = recordingTransport();
    const requestPorts: number[] = [];
    const own = new HTTPServer(
      (req) => {
        requestPorts.push(current.port);
        return app(req);
      },
      { logger: silentLogger, transport },
    );
    const { port } = await own.listen(0, "127.0.0.1");
    try {
      for (let i = 0; i < 7; i++) {
        const res = await fetch(`http://127.0.0.1:${port}/hello?i=${i}`);
        expect(await res.text()).toBe("Hello, world");
      }
      const echo = await fetch(`http://127.0.0.1:${port}/echo`, { method: "POST", body: "kept" });
      expect(await echo.text()).toBe("kept");
      expect(requestPorts).toHaveLength(8);
      // Every request came on a connection the server accepted, from a real client port.
      for (const p of requestPorts) expect(ports).toContain(p);
      expect(ports.every((p) => p > 0)).toBe(true);
      // Node's fetch (undici) opens a second connection for the request that
      // follows the very first (its pool still counts the first as busy) and
      // then takes the two in turn; Bun's uses one. Either way 8 requests
      // travel on at most 2 connections, each carrying several.
      expect(ports.length).toBeLessThanOrEqual(2);
      for (const p of ports) expect(requestPorts.filter((q) => q === p).length).toBeGreaterThanOrEqual(3);
      expect(own.connectionCount).toBe(ports.length);
    } finally {
      await own.close({ timeout: 2000 });
    }
  });
});

describe("curl", () => {
  it("fetches several URLs over one kept-alive connection", async () => {
    const before = accepted.length;
    const { stdout, stderr } = await run("curl", ["-sv", `${base}/hello`, `${base}/info`, `${base}/hello`], { encoding: "utf8" });
    expect(accepted.length - before).toBe(1);
    expect(stdout).toBe(`Hello, world${JSON.stringify({ method: "GET", version: "HTTP/1.1", length: 0 })}Hello, world`);
    expect(stderr).toMatch(/Re-using existing connection|Reusing existing connection/);
    expect(stderr.match(/Connected to/g)).toHaveLength(1);
  });

  it("speaks HTTP/1.0 and sends chunked uploads", async () => {
    const old = await run("curl", ["-s", "--http1.0", "-i", `${base}/hello`], { encoding: "utf8" });
    expect(old.stdout).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(old.stdout).toContain("Connection: close\r\n");
    expect(old.stdout).toContain("Hello, world");
    const oldInfo = await run("curl", ["-s", "--http1.0", "--data-binary", "abc", `${base}/info`], { encoding: "utf8" });
    expect(JSON.parse(oldInfo.stdout)).toEqual({ method: "POST", version: "HTTP/1.0", length: 3 });
    const up = await run("sh", ["-c", `printf 'abcdef' | curl -s -H 'Transfer-Encoding: chunked' --data-binary @- ${base}/info`], { encoding: "utf8" });
    expect(JSON.parse(up.stdout)).toEqual({ method: "POST", version: "HTTP/1.1", length: 6 });
  });
});

describe("other listeners: a Unix socket and TLS", () => {
  const fixture = (name: string): string => readFileSync(fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url)), "utf8");

  interface Seen {
    method: string;
    uri: string;
    version: string;
    host: string;
    protocol: string;
    remoteIp: string;
    body: string;
  }
  const recorder = (seen: Seen[]) => (req: HTTPServerRequest) => {
    seen.push({ method: req.method, uri: req.uri, version: req.version, host: req.host, protocol: req.protocol, remoteIp: req.remoteIp, body: utf8Decode(req.body) });
    return app(req);
  };

  it("serves curl --unix-socket on listen({ path })", async () => {
    const dir = mkdtempSync(join(tmpdir(), "typhoon-http-unix-"));
    const path = join(dir, "http.sock");
    const seen: Seen[] = [];
    const unix = new HTTPServer(recorder(seen), { logger: silentLogger });
    try {
      const address = await unix.listen({ path });
      expect(address.family).toBe("unix");
      expect(address.address).toBe(path);
      const get = await run("curl", ["-sv", "--unix-socket", path, "http://localhost/hello", "http://localhost/info?x=1"], { encoding: "utf8" });
      expect(get.stdout).toBe(`Hello, world${JSON.stringify({ method: "GET", version: "HTTP/1.1", length: 0 })}`);
      expect(get.stderr).toMatch(/Re-using existing connection|Reusing existing connection/);
      const post = await run("curl", ["-s", "--unix-socket", path, "--data-binary", "over unix", "http://localhost/echo"], { encoding: "utf8" });
      expect(post.stdout).toBe("over unix");
      expect(seen.map(({ method, uri, host, protocol, body }) => ({ method, uri, host, protocol, body }))).toEqual([
        { method: "GET", uri: "/hello", host: "localhost", protocol: "http", body: "" },
        { method: "GET", uri: "/info?x=1", host: "localhost", protocol: "http", body: "" },
        { method: "POST", uri: "/echo", host: "localhost", protocol: "http", body: "over unix" },
      ]);
      // A Unix socket has no peer IP: 0.0.0.0, as Tornado says.
      expect(seen.map((s) => s.remoteIp)).toEqual(["0.0.0.0", "0.0.0.0", "0.0.0.0"]);
    } finally {
      await unix.close({ timeout: 2000 });
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("serves https on listen({ port, tls }): the request says https and the peer's IP", async () => {
    const cert = fixture("localhost-cert.pem");
    const seen: Seen[] = [];
    const secure = new HTTPServer(recorder(seen), { logger: silentLogger });
    try {
      const { port } = await secure.listen({ port: 0, host: "127.0.0.1", tls: { key: fixture("localhost-key.pem"), cert } });
      const get = (path: string, method = "GET", body?: string) =>
        new Promise<{ status: number; body: string; encrypted: boolean }>((resolve, reject) => {
          const req = httpsRequest({ host: "127.0.0.1", port, path, method, ca: cert, servername: "localhost", agent: false }, (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8"), encrypted: "encrypted" in res.socket }));
            res.on("error", reject);
          });
          req.on("error", reject);
          req.end(body);
        });
      const hello = await get("/hello");
      expect([hello.status, hello.body]).toEqual([200, "Hello, world"]);
      const echo = await get("/echo", "POST", "secret bytes");
      expect([echo.status, echo.body]).toEqual([200, "secret bytes"]);
      expect(seen).toEqual([
        { method: "GET", uri: "/hello", version: "HTTP/1.1", host: `127.0.0.1:${port}`, protocol: "https", remoteIp: "127.0.0.1", body: "" },
        { method: "POST", uri: "/echo", version: "HTTP/1.1", host: `127.0.0.1:${port}`, protocol: "https", remoteIp: "127.0.0.1", body: "secret bytes" },
      ]);
    } finally {
      await secure.close({ timeout: 2000 });
    }
  });
});

describe("graceful shutdown over TCP", () => {
  /** A raw TCP client: what it received, and how the connection ended. */
  function rawClient(port: number): { connected: Promise<void>; done: Promise<{ text: string; error: string | null }>; socket: Socket } {
    const socket = netConnect({ port, host: "127.0.0.1" });
    const chunks: Buffer[] = [];
    let error: string | null = null;
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    const connected = new Promise<void>((resolve, reject) => {
      socket.once("connect", () => resolve());
      socket.once("error", reject);
    });
    const done = new Promise<{ text: string; error: string | null }>((resolve) => socket.on("close", () => resolve({ text: Buffer.concat(chunks).toString("latin1"), error })));
    return { connected, done, socket };
  }

  it("refuses new connections once close begins, finishes the request in flight, then resolves", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const started: string[] = [];
    let signalStarted!: () => void;
    const slowStarted = new Promise<void>((resolve) => (signalStarted = resolve));
    const own = new HTTPServer(async (req) => {
      started.push(req.path);
      if (req.path === "/slow") {
        signalStarted();
        await gate;
      }
      await req.connection.respond(200, {}, `done ${req.path}`);
    }, { logger: silentLogger });
    const { port } = await own.listen(0, "127.0.0.1");
    const busy = rawClient(port);
    await busy.connected;
    busy.socket.write("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    await slowStarted;
    let resolved = false;
    const closing = own.close().then(() => {
      resolved = true;
    });
    // close() stops listening before it returns its promise: nobody answers on the port now.
    const late = rawClient(port);
    late.connected.catch(() => {});
    late.socket.write("GET /late HTTP/1.1\r\nHost: a\r\n\r\n");
    const lateEnd = await late.done;
    expect(lateEnd).toEqual({ text: "", error: "ECONNREFUSED" });
    expect(started).toEqual(["/slow"]);
    expect(resolved).toBe(false);
    release();
    await closing;
    const busyEnd = await busy.done;
    expect(busyEnd.text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(busyEnd.text).toContain("Connection: close\r\n");
    expect(busyEnd.text.endsWith("done /slow")).toBe(true);
    expect(started).toEqual(["/slow"]);
  });
});

describe("Python's Tornado AsyncHTTPClient", () => {
  it("sees what a Tornado client expects", async () => {
    const script = fileURLToPath(new URL("./tornado_client.py", import.meta.url));
    const { stdout } = await run("/usr/bin/python3", [script, base], { encoding: "utf8", timeout: 20_000 });
    const results = JSON.parse(stdout);
    expect(results[0]).toEqual({ status: 200, body: "Hello, world", ctype: "text/plain; charset=utf-8" });
    expect(results[1]).toEqual({ status: 200, same: true, length: 256_000 });
    expect(results[2]).toEqual({ status: 200, body: "", length: "12" });
    expect(results[3]).toEqual({ status: 200, body: "one,two,", te: "chunked" });
    expect(results[4]).toEqual({ status: 404 });
    expect(results[5]).toEqual({ statuses: [200] });
  });
});

describe("the same scenarios over memory pipes", () => {
  it("answers the TestClient as it answers the real clients, on one kept-alive connection", async () => {
    const peers: string[] = [];
    const memory = new HTTPServer(
      (req) => {
        // A memory pipe's end is named after its pipe: one name, one connection.
        peers.push(req.remoteIp);
        return app(req);
      },
      { logger: silentLogger },
    );
    const client = new TestClient(memory, { pipe: { split: 3 } });
    const hello = await client.fetch("/hello");
    expect([hello.status, hello.text(), hello.headers.get("content-type")]).toEqual([200, "Hello, world", "text/plain; charset=utf-8"]);
    const body = new Uint8Array(256_000).map((_, i) => i & 0xff);
    const echo = await client.fetch("/echo", { method: "POST", body });
    expect(Buffer.from(echo.body).equals(Buffer.from(body))).toBe(true);
    const head = await client.fetch("/hello", { method: "HEAD" });
    expect([head.status, head.body.length, head.headers.get("content-length")]).toEqual([200, 0, "12"]);
    const chunked = await client.fetch("/chunked");
    expect([chunked.text(), chunked.headers.get("transfer-encoding")]).toEqual(["one,two,", "chunked"]);
    expect((await client.fetch("/missing")).status).toBe(404);
    const info = await client.fetch("/info", { method: "POST", body: "abcdef" });
    expect(info.json()).toEqual({ method: "POST", version: "HTTP/1.1", length: 6 });
    // Connection reuse, as curl's several URLs and fetch's pool above: six requests, one connection.
    expect(peers).toHaveLength(6);
    expect(peers[0]).toMatch(/^pipe-\d+:[ab]$/);
    expect(new Set(peers)).toEqual(new Set([peers[0]]));
    expect(memory.connectionCount).toBe(1);
    client.close();
  });

  it("speaks HTTP/1.0 and reads chunked uploads, as with curl", async () => {
    const memory = new HTTPServer(app, { logger: silentLogger });
    // HTTP/1.0 without keep-alive: answered, then the server closes.
    const old = await exchange(memory, "GET /hello HTTP/1.0\r\n\r\nGET /info HTTP/1.0\r\n\r\n");
    expect(old).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(old.match(/HTTP\/1\.1 \d{3}/g)).toHaveLength(1);
    expect(old).toContain("Content-Length: 12\r\n");
    expect(old).toContain("Connection: close\r\n");
    expect(old.endsWith("\r\n\r\nHello, world")).toBe(true);
    const info = await exchange(memory, "POST /info HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc");
    expect(info.slice(info.indexOf("\r\n\r\n") + 4)).toBe(JSON.stringify({ method: "POST", version: "HTTP/1.0", length: 3 }));
    // A chunked upload, cut at every third byte on the way.
    const up = await exchange(memory, "POST /info HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nab\r\n4;x=y\r\ncdef\r\n0\r\n\r\n", 3);
    expect(up).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(up.slice(up.indexOf("\r\n\r\n") + 4)).toBe(JSON.stringify({ method: "POST", version: "HTTP/1.1", length: 6 }));
  });
});

/** Sends `request` on a new memory pipe (cut every `split` bytes) and resolves with all the server sent until it closed. */
function exchange(target: HTTPServer, request: string, split = Infinity): Promise<string> {
  const [client, serverEnd] = createPipe({ split });
  const chunks: Uint8Array[] = [];
  return new Promise((resolve) => {
    client.setHandler({
      data: (chunk) => chunks.push(chunk),
      end: () => client.end(),
      drain() {},
      close: () => resolve(Buffer.from(concatBytes(chunks)).toString("latin1")),
    });
    target.handleConnection(serverEnd);
    client.write(Buffer.from(request, "latin1"));
  });
}
