import { describe, expect, it } from "vitest";
import { VirtualClock } from "../../src/core/clock";
import { silentLogger } from "../../src/core/log";
import { HTTPServer, type HTTPMessageDelegate, type HTTPServerRequest } from "../../src/server";
import { TestClient } from "../../src/testing";
import type { Connection } from "../../src/core/transport";
import { createPipe, MemoryTransport } from "../../src/transports/memory";
import { connect, deferred, flushMemory, statusLines } from "./helpers";

const quiet = { logger: silentLogger };

/** Records what a client end receives; closes when the server closes, as real clients do. */
function record(conn: Connection): { send(text: string): void; text(): string; closed: boolean } {
  const chunks: Uint8Array[] = [];
  const client = {
    closed: false,
    send: (text: string) => void conn.write(new TextEncoder().encode(text)),
    text: () => Buffer.concat(chunks).toString("latin1"),
  };
  conn.setHandler({
    data: (chunk) => chunks.push(chunk),
    end: () => conn.end(),
    drain() {},
    close: () => {
      client.closed = true;
    },
  });
  return client;
}

describe("HTTPServer over memory pipes", () => {
  it("answers a request with the callback's response and fills the request object", async () => {
    let seen: HTTPServerRequest | null = null;
    const server = new HTTPServer(async (req) => {
      seen = req;
      await req.connection.respond(200, { "Content-Type": "text/plain" }, `path=${req.path} q=${req.query}`);
    }, quiet);
    const client = new TestClient(server);
    const res = await client.fetch("/a/b?x=1&x=2&y=%20z", { headers: { "X-Multi": ["1", "2"], Host: "example.com:8080" } });
    expect(res.status).toBe(200);
    expect(res.text()).toBe("path=/a/b q=x=1&x=2&y=%20z");
    expect(res.headers.get("Content-Length")).toBe(String(res.body.length));
    expect(res.headers.has("Date")).toBe(true);
    const req = seen! as HTTPServerRequest;
    // header() reads the list without building the index, and agrees with it after.
    expect([req.header("X-MULTI"), req.header("host"), req.header("absent")]).toEqual(["1, 2", "example.com:8080", undefined]);
    expect(req.method).toBe("GET");
    expect(req.version).toBe("HTTP/1.1");
    expect(req.headers.get("x-multi")).toBe("1, 2");
    expect(req.headers.getAll("X-MULTI")).toEqual(["1", "2"]);
    expect(req.header("x-Multi")).toBe("1, 2");
    expect(req.host).toBe("example.com:8080");
    expect(req.hostName).toBe("example.com");
    expect(req.protocol).toBe("http");
    expect(req.queryArguments).toEqual({ x: ["1", "2"], y: [" z"] });
    expect(req.fullUrl()).toBe("http://example.com:8080/a/b?x=1&x=2&y=%20z");
    client.close();
  });

  it("buffers the body for the callback and echoes it byte for byte", async () => {
    const server = new HTTPServer((req) => req.connection.respond(200, {}, req.body), quiet);
    const client = new TestClient(server, { pipe: { split: 7 } });
    const body = new Uint8Array(300_000).map((_, i) => (i * 31) & 0xff);
    const res = await client.fetch("/echo", { method: "POST", body });
    expect(res.status).toBe(200);
    expect(Buffer.from(res.body).equals(Buffer.from(body))).toBe(true);
  });

  it("answers 500 when a handler throws or rejects, and keeps serving", async () => {
    const server = new HTTPServer(async (req) => {
      if (req.path === "/sync") throw new Error("sync boom");
      if (req.path === "/async") {
        await Promise.resolve();
        throw new Error("async boom");
      }
      await req.connection.respond(200, {}, "fine");
    }, quiet);
    const client = new TestClient(server);
    const a = await client.fetch("/sync");
    expect(a.status).toBe(500);
    expect(a.text()).not.toContain("sync boom");
    const b = await client.fetch("/async");
    expect(b.status).toBe(500);
    const c = await client.fetch("/ok");
    expect(c.status).toBe(200);
    expect(c.text()).toBe("fine");
  });

  it("shows the stack in a 500 only in debug mode", async () => {
    const server = new HTTPServer(() => {
      throw new Error("visible boom");
    }, { ...quiet, debug: true });
    const res = await new TestClient(server).fetch("/");
    expect(res.status).toBe(500);
    expect(res.text()).toContain("visible boom");
  });

  it("drops the connection when a handler fails after its response started", async () => {
    const server = new HTTPServer(async (req) => {
      req.connection.writeHeaders(200, { "Content-Type": "text/plain" });
      await req.connection.write("partial");
      throw new Error("late boom");
    }, quiet);
    const raw = connect(server);
    raw.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    expect(raw.text()).toContain("HTTP/1.1 200 OK");
    expect(raw.text()).toContain("partial");
    expect(raw.text()).not.toMatch(/0\r\n\r\n$/);
    expect(raw.ended || raw.closed).toBe(true);
  });

  it("keeps pipelined responses in request order even when produced out of order", async () => {
    const gates = new Map<string, ReturnType<typeof deferred<void>>>();
    for (const p of ["/1", "/2", "/3"]) gates.set(p, deferred());
    const server = new HTTPServer(async (req) => {
      await gates.get(req.path)!.promise;
      await req.connection.respond(200, {}, req.path);
    }, quiet);
    const raw = connect(server);
    raw.send("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    gates.get("/3")!.resolve();
    gates.get("/2")!.resolve();
    await flushMemory();
    expect(raw.text()).toBe("");
    gates.get("/1")!.resolve();
    await flushMemory();
    const bodies = raw.text().split("\r\n\r\n").slice(1).map((s) => s.slice(0, 2));
    expect(bodies).toEqual(["/1", "/2", "/3"]);
    expect(statusLines(raw.text())).toHaveLength(3);
  });

  it("writes the responses produced while handling one read with one transport write", async () => {
    const server = new HTTPServer((req) => req.connection.respond(200, {}, "x"), quiet);
    const raw = connect(server);
    raw.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n".repeat(16));
    await flushMemory();
    expect(statusLines(raw.text())).toHaveLength(16);
    expect(raw.chunks).toHaveLength(1);
  });

  it("answers malformed requests with 400 and closes, never reading later bytes as a request", async () => {
    let handled = 0;
    const server = new HTTPServer((req) => {
      handled++;
      return req.connection.respond(200, {}, "ok");
    }, quiet);
    const raw = connect(server);
    raw.send("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    expect(statusLines(raw.text())).toEqual(["HTTP/1.1 400 Bad Request"]);
    expect(raw.text()).toContain("Connection: close");
    expect(raw.ended).toBe(true);
    expect(handled).toBe(0);
  });

  it("answers 417 to an expectation other than 100-continue", async () => {
    const server = new HTTPServer((req) => req.connection.respond(200, {}, "no"), quiet);
    const raw = connect(server);
    raw.send("POST / HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\nContent-Length: 2\r\n\r\nhi");
    await flushMemory();
    expect(statusLines(raw.text())).toEqual(["HTTP/1.1 417 Expectation Failed"]);
  });
});

describe("Expect: 100-continue", () => {
  it("sends 100 Continue at once when the application reads the whole body", async () => {
    const server = new HTTPServer((req) => req.connection.respond(200, {}, req.body), quiet);
    const raw = connect(server);
    raw.send("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    await flushMemory();
    expect(raw.text()).toBe("HTTP/1.1 100 Continue\r\n\r\n");
    raw.send("hello");
    await flushMemory();
    expect(raw.text()).toMatch(/HTTP\/1\.1 200 OK[\s\S]*\r\n\r\nhello$/);
  });

  it("sends no 100 when a streaming delegate answers from the head, and closes after", async () => {
    const server = new HTTPServer(
      {
        startRequest: (request): HTTPMessageDelegate => ({
          headersReceived: async () => {
            await request.connection.respond(413, {}, "too big");
          },
          dataReceived: () => {},
          finish: () => {},
        }),
      },
      quiet,
    );
    const raw = connect(server);
    raw.send("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5000000\r\n\r\n");
    await flushMemory();
    expect(raw.text()).not.toContain("100 Continue");
    expect(statusLines(raw.text())).toEqual(["HTTP/1.1 413 Payload Too Large"]);
    expect(raw.text()).toContain("Connection: close");
    expect(raw.ended).toBe(true);
  });
});

describe("Expect: 100-continue answered with 417 by the application", () => {
  // The server sends 100 when the application has seen the head and did not
  // answer; a streaming delegate that answers from headersReceived (417 here)
  // sends no 100. A whole-request callback runs after the body, so it cannot.
  const rejecting = (seen: string[]) =>
    new HTTPServer(
      {
        startRequest: (request): HTTPMessageDelegate => ({
          headersReceived: () => {
            seen.push(`head ${request.path}`);
            if (request.path === "/refuse") {
              return request.connection.respond(417, { "Content-Type": "text/plain" }, "no uploads here\n");
            }
          },
          dataReceived: (chunk) => {
            seen.push(`data ${chunk.byteLength}`);
          },
          finish: () => {
            seen.push(`finish ${request.path}`);
            return request.connection.respond(200, {}, "stored");
          },
        }),
      },
      quiet,
    );

  it("sends 417 instead of 100, reads none of the body and closes", async () => {
    const seen: string[] = [];
    const raw = connect(rejecting(seen));
    raw.send("PUT /refuse HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    await flushMemory();
    expect(raw.text()).not.toContain("100 Continue");
    expect(statusLines(raw.text())).toEqual(["HTTP/1.1 417 Expectation Failed"]);
    expect(raw.text()).toContain("Connection: close\r\n");
    expect(raw.text().endsWith("\r\n\r\nno uploads here\n")).toBe(true);
    expect(raw.ended).toBe(true);
    // A client that sends the body anyway (after its own timeout) is not read as a request.
    raw.send("hello");
    await flushMemory();
    expect(seen).toEqual(["head /refuse"]);
    expect(statusLines(raw.text())).toHaveLength(1);
  });

  it("the same delegate sends 100 and reads the body when it does not answer from the head", async () => {
    const seen: string[] = [];
    const raw = connect(rejecting(seen));
    raw.send("PUT /accept HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    await flushMemory();
    expect(raw.text()).toBe("HTTP/1.1 100 Continue\r\n\r\n");
    raw.send("hello");
    await flushMemory();
    expect(statusLines(raw.text())).toEqual(["HTTP/1.1 100 Continue", "HTTP/1.1 200 OK"]);
    expect(seen).toEqual(["head /accept", "data 5", "finish /accept"]);
    expect(raw.ended).toBe(false);
  });
});

describe("timeouts on a virtual clock", () => {
  it("closes a keep-alive connection after the idle timeout, and not before", async () => {
    const clock = new VirtualClock();
    const server = new HTTPServer((req) => req.connection.respond(200, {}, "x"), { ...quiet, clock, idleTimeout: 5000 });
    const raw = connect(server);
    raw.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    expect(statusLines(raw.text())).toHaveLength(1);
    clock.advance(4999);
    await flushMemory();
    expect(raw.ended).toBe(false);
    clock.advance(1);
    await flushMemory();
    expect(raw.ended).toBe(true);
    expect(server.connectionCount).toBe(0);
  });

  it("a request in between moves the idle deadline", async () => {
    const clock = new VirtualClock();
    const server = new HTTPServer((req) => req.connection.respond(200, {}, "x"), { ...quiet, clock, idleTimeout: 5000 });
    const raw = connect(server);
    clock.advance(3000);
    raw.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    clock.advance(3000);
    await flushMemory();
    expect(raw.ended).toBe(false);
    clock.advance(2000);
    await flushMemory();
    expect(raw.ended).toBe(true);
  });

  it("cuts off a slow head with 408 while a fast client on another connection is served", async () => {
    const clock = new VirtualClock();
    const server = new HTTPServer((req) => req.connection.respond(200, {}, "fast"), { ...quiet, clock, headerTimeout: 1000, idleTimeout: 60_000 });
    const slow = connect(server);
    const fast = connect(server);
    slow.send("GET / HTTP/1.1\r\nHo");
    await flushMemory();
    clock.advance(600);
    slow.send("st: a\r\n");
    fast.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    clock.advance(400);
    await flushMemory();
    expect(statusLines(slow.text())).toEqual(["HTTP/1.1 408 Request Timeout"]);
    expect(slow.ended).toBe(true);
    expect(fast.text()).toContain("fast");
    expect(fast.ended).toBe(false);
    fast.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    expect(statusLines(fast.text())).toHaveLength(2);
  });

  it("cuts off a slow body with 408", async () => {
    const clock = new VirtualClock();
    const server = new HTTPServer((req) => req.connection.respond(200, {}, "x"), { ...quiet, clock, bodyTimeout: 2000 });
    const raw = connect(server);
    raw.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    await flushMemory();
    clock.advance(1999);
    await flushMemory();
    expect(raw.text()).toBe("");
    clock.advance(1);
    await flushMemory();
    expect(statusLines(raw.text())).toEqual(["HTTP/1.1 408 Request Timeout"]);
    expect(raw.ended).toBe(true);
  });

  it("does not time out a request that the application is still answering", async () => {
    const clock = new VirtualClock();
    const gate = deferred();
    const server = new HTTPServer(async (req) => {
      await gate.promise;
      await req.connection.respond(200, {}, "late");
    }, { ...quiet, clock, idleTimeout: 1000, headerTimeout: 1000, bodyTimeout: 1000 });
    const raw = connect(server);
    raw.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    clock.advance(10_000);
    await flushMemory();
    expect(raw.ended).toBe(false);
    gate.resolve();
    await flushMemory();
    expect(raw.text()).toContain("late");
  });
});

describe("limits and backpressure", () => {
  it("answers 503 beyond maxConnections", async () => {
    const server = new HTTPServer((req) => req.connection.respond(200, {}, "x"), { ...quiet, maxConnections: 2 });
    const a = connect(server);
    const b = connect(server);
    const c = connect(server);
    await flushMemory();
    expect(statusLines(c.text())).toEqual(["HTTP/1.1 503 Service Unavailable"]);
    expect(c.ended).toBe(true);
    a.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    b.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    expect(statusLines(a.text())).toHaveLength(1);
    expect(statusLines(b.text())).toHaveLength(1);
  });

  it("runs at most maxRequestsInFlight handlers at once; the rest start as answers go out, all in order", async () => {
    const gates = Array.from({ length: 5 }, () => deferred());
    const started: string[] = [];
    const server = new HTTPServer(async (req) => {
      started.push(req.path);
      await gates[Number(req.path.slice(1))]!.promise;
      await req.connection.respond(200, {}, `answer${req.path}`);
    }, { ...quiet, maxRequestsInFlight: 2 });
    const raw = connect(server);
    raw.send([0, 1, 2, 3, 4].map((i) => `GET /${i} HTTP/1.1\r\nHost: a\r\n\r\n`).join(""));
    await flushMemory();
    expect(started).toEqual(["/0", "/1"]);
    // /1 answered first: it waits behind /0, and still counts as in flight.
    gates[1]!.resolve();
    await flushMemory();
    expect(started).toEqual(["/0", "/1"]);
    expect(raw.text()).toBe("");
    gates[0]!.resolve();
    await flushMemory();
    expect(statusLines(raw.text())).toHaveLength(2);
    expect(started).toEqual(["/0", "/1", "/2", "/3"]);
    gates[2]!.resolve();
    await flushMemory();
    expect(started).toEqual(["/0", "/1", "/2", "/3", "/4"]);
    gates[3]!.resolve();
    gates[4]!.resolve();
    await flushMemory();
    expect(statusLines(raw.text())).toEqual(new Array(5).fill("HTTP/1.1 200 OK"));
    expect(raw.text().match(/answer\/\d/g)).toEqual(["answer/0", "answer/1", "answer/2", "answer/3", "answer/4"]);
    expect(raw.ended).toBe(false);
  });

  it("a write promise waits for a slow reader, and reading pauses meanwhile", async () => {
    const body = new Uint8Array(64 * 1024);
    const log: string[] = [];
    const server = new HTTPServer(async (req) => {
      log.push(`start ${req.path}`);
      req.connection.writeHeaders(200, {});
      for (let i = 0; i < 8; i++) await req.connection.write(body);
      await req.connection.finish();
      log.push(`done ${req.path}`);
    }, { ...quiet, highWaterMark: 16 * 1024 });
    const raw = connect(server, { highWaterMark: 16 * 1024 });
    raw.conn.pause();
    raw.send("GET /a HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    expect(log).toEqual(["start /a"]);
    raw.send("GET /b HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    // /a cannot finish while the client does not read.
    expect(log).toEqual(["start /a"]);
    raw.conn.resume();
    await flushMemory();
    expect([...log].sort()).toEqual(["done /a", "done /b", "start /a", "start /b"]);
    expect(log.indexOf("start /b")).toBeGreaterThan(0);
    expect(raw.text().length).toBeGreaterThan(2 * 8 * 64 * 1024);
    expect(statusLines(raw.text())).toHaveLength(2);
  });

  it("a streaming delegate that awaits each chunk pauses the connection", async () => {
    const gates: Array<ReturnType<typeof deferred<void>>> = [];
    const received: number[] = [];
    const server = new HTTPServer(
      {
        startRequest: (request): HTTPMessageDelegate => ({
          headersReceived: () => {},
          dataReceived: (chunk) => {
            received.push(chunk.length);
            const gate = deferred();
            gates.push(gate);
            return gate.promise;
          },
          finish: () => request.connection.respond(200, {}, `got ${received.reduce((a, b) => a + b, 0)}`),
        }),
      },
      quiet,
    );
    const raw = connect(server, { split: 100 });
    raw.send(`POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 300\r\n\r\n${"x".repeat(300)}`);
    await flushMemory();
    expect(gates.length).toBe(1);
    gates[0]!.resolve();
    await flushMemory();
    expect(gates.length).toBe(2);
    while (gates.length < 10 && gates[gates.length - 1] !== undefined) {
      const n = gates.length;
      gates[n - 1]!.resolve();
      await flushMemory();
      if (gates.length === n) break;
    }
    await flushMemory();
    expect(received.reduce((a, b) => a + b, 0)).toBe(300);
    expect(raw.text()).toContain("got 300");
  });
});

describe("graceful shutdown", () => {
  it("closes idle connections at once, lets requests in flight finish with Connection: close, then resolves", async () => {
    const gate = deferred();
    const server = new HTTPServer(async (req) => {
      if (req.path === "/slow") await gate.promise;
      await req.connection.respond(200, {}, req.path);
    }, quiet);
    const idle = connect(server);
    const busy = connect(server);
    idle.send("GET /quick HTTP/1.1\r\nHost: a\r\n\r\n");
    busy.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    expect(statusLines(idle.text())).toHaveLength(1);
    let closed = false;
    const closing = server.close().then(() => {
      closed = true;
    });
    await flushMemory();
    expect(idle.ended).toBe(true);
    expect(busy.ended).toBe(false);
    expect(closed).toBe(false);
    gate.resolve();
    await flushMemory();
    await closing;
    expect(busy.text()).toContain("/slow");
    expect(busy.text()).toContain("Connection: close");
    expect(busy.ended).toBe(true);
    expect(server.connectionCount).toBe(0);
  });

  it("stops accepting as soon as close begins: new connections are refused or closed unserved, the request in flight completes", async () => {
    const transport = new MemoryTransport();
    const gate = deferred();
    const served: string[] = [];
    const server = new HTTPServer(async (req) => {
      served.push(req.path);
      if (req.path === "/slow") await gate.promise;
      await req.connection.respond(200, {}, `done ${req.path}`);
    }, { ...quiet, transport });
    const { port } = await server.listen(0);
    const busy = record(await transport.connect({ port }));
    busy.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    expect(served).toEqual(["/slow"]);
    let resolved = false;
    const closing = server.close().then(() => {
      resolved = true;
    });
    await flushMemory();
    // The listener is gone: a new connection is refused.
    expect(transport.listening).toEqual([]);
    await expect(transport.connect({ port })).rejects.toMatchObject({ code: "ECONNREFUSED" });
    await expect(server.listen(0)).rejects.toThrow("Cannot listen: the server is closing");
    // A connection accepted elsewhere and handed over is closed without an answer.
    const late = connect(server);
    late.send("GET /late HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    expect(late.closed).toBe(true);
    expect(late.text()).toBe("");
    // A request pipelined behind the one in flight is not started either.
    busy.send("GET /after HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    expect(served).toEqual(["/slow"]);
    expect(busy.text()).toBe("");
    expect(resolved).toBe(false);
    gate.resolve();
    await closing;
    expect(statusLines(busy.text())).toEqual(["HTTP/1.1 200 OK"]);
    expect(busy.text()).toContain("Connection: close\r\n");
    expect(busy.text().endsWith("done /slow")).toBe(true);
    expect(busy.closed).toBe(true);
    expect(served).toEqual(["/slow"]);
    expect(server.connectionCount).toBe(0);
  });

  it("destroys what is still open when the close timeout expires", async () => {
    const clock = new VirtualClock();
    const server = new HTTPServer(() => new Promise<void>(() => {}), { ...quiet, clock });
    const raw = connect(server);
    raw.send("GET /never HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    const closing = server.close({ timeout: 3000 });
    await flushMemory();
    expect(raw.closed).toBe(false);
    clock.advance(3000);
    await closing;
    await flushMemory();
    expect(raw.closed).toBe(true);
  });
});

describe("xheaders", () => {
  /**
   * Sends one request from the memory network's address `peer` (optionally
   * over simulated TLS) and returns what the server saw as the client's IP
   * and protocol.
   */
  async function seenFrom(options: { xheaders?: boolean; trustedDownstream?: string[] }, headers: Record<string, string>, peer = "10.9.8.7", tls = false) {
    const seen: Array<{ remoteIp: string; protocol: string }> = [];
    const transport = new MemoryTransport();
    const server = new HTTPServer((req) => {
      seen.push({ remoteIp: req.remoteIp, protocol: req.protocol });
      return req.connection.respond(204);
    }, { ...quiet, ...options, transport });
    // The memory transport simulates TLS: the key and certificate are not read.
    const { port } = await server.listen(tls ? { port: 0, tls: { key: "unused", cert: "unused" } } : 0);
    const client = record(await transport.connect({ port, localAddress: peer, tls }));
    client.send(`GET / HTTP/1.1\r\nHost: a\r\n${Object.entries(headers).map(([n, v]) => `${n}: ${v}\r\n`).join("")}\r\n`);
    await flushMemory();
    expect(statusLines(client.text())).toEqual(["HTTP/1.1 204 No Content"]);
    await server.close({ timeout: 1000 });
    expect(seen).toHaveLength(1);
    return seen[0]!;
  }

  const forwarded = { "X-Forwarded-For": "1.2.3.4, 10.0.0.1", "X-Real-Ip": "5.6.7.8", "X-Forwarded-Proto": "https", "X-Scheme": "https" };

  it("when disabled, the request has the real peer's IP and the connection's protocol, whatever the headers say", async () => {
    expect(await seenFrom({}, forwarded, "10.9.8.7")).toEqual({ remoteIp: "10.9.8.7", protocol: "http" });
    expect(await seenFrom({}, { ...forwarded, "X-Forwarded-Proto": "http", "X-Scheme": "http" }, "192.0.2.1", true)).toEqual({ remoteIp: "192.0.2.1", protocol: "https" });
  });

  it("X-Forwarded-For skips trusted proxies from the right; X-Real-Ip wins over it; a bad value keeps the peer's IP", async () => {
    const xff = { "X-Forwarded-For": "1.2.3.4, 10.0.0.1" };
    expect(await seenFrom({ xheaders: true, trustedDownstream: ["10.0.0.1"] }, xff)).toEqual({ remoteIp: "1.2.3.4", protocol: "http" });
    expect(await seenFrom({ xheaders: true }, xff)).toEqual({ remoteIp: "10.0.0.1", protocol: "http" });
    expect(await seenFrom({ xheaders: true }, { ...xff, "X-Real-Ip": "5.6.7.8" })).toEqual({ remoteIp: "5.6.7.8", protocol: "http" });
    expect(await seenFrom({ xheaders: true }, { "X-Real-Ip": "2001:db8::1" })).toEqual({ remoteIp: "2001:db8::1", protocol: "http" });
    expect(await seenFrom({ xheaders: true }, { "X-Real-Ip": "not an ip" }, "10.9.8.7")).toEqual({ remoteIp: "10.9.8.7", protocol: "http" });
    expect(await seenFrom({ xheaders: true }, {}, "10.9.8.7")).toEqual({ remoteIp: "10.9.8.7", protocol: "http" });
  });

  it("X-Forwarded-Proto and X-Scheme set the protocol (X-Scheme first, the last hop of a list); other values are ignored", async () => {
    expect(await seenFrom({ xheaders: true }, { "X-Forwarded-Proto": "https" })).toEqual({ remoteIp: "10.9.8.7", protocol: "https" });
    expect(await seenFrom({ xheaders: true }, { "X-Scheme": "HTTPS" })).toEqual({ remoteIp: "10.9.8.7", protocol: "https" });
    expect((await seenFrom({ xheaders: true }, { "X-Scheme": "http", "X-Forwarded-Proto": "https" })).protocol).toBe("http");
    expect((await seenFrom({ xheaders: true }, { "X-Forwarded-Proto": "http, https" })).protocol).toBe("https");
    expect((await seenFrom({ xheaders: true }, { "X-Forwarded-Proto": "https, http" })).protocol).toBe("http");
    expect((await seenFrom({ xheaders: true }, { "X-Forwarded-Proto": "ftp" })).protocol).toBe("http");
    // Behind a proxy on TLS that says the client spoke plain HTTP.
    expect((await seenFrom({ xheaders: true }, { "X-Scheme": "http" }, "10.9.8.7", true)).protocol).toBe("http");
  });
});

describe("upgrade and detach", () => {
  it("hands the connection over after 101 with the bytes that followed the head", async () => {
    let trailing = "";
    const server = new HTTPServer(
      {
        startRequest: (request): HTTPMessageDelegate => ({
          headersReceived: () => {},
          dataReceived: () => {},
          finish: () => {
            request.connection.writeHeaders(101, { Upgrade: "echo", Connection: "Upgrade" });
            const { connection, trailingData, release } = request.connection.detach();
            trailing = new TextDecoder().decode(trailingData);
            connection.setHandler({
              data: (chunk) => connection.write(new TextEncoder().encode(`echo:${new TextDecoder().decode(chunk)}`)),
              end: () => connection.end(),
              drain: () => {},
              close: () => release(),
            });
          },
        }),
      },
      quiet,
    );
    const raw = connect(server);
    raw.send("GET /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly");
    await flushMemory();
    expect(raw.text()).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
    expect(trailing).toBe("early");
    raw.send("later");
    await flushMemory();
    expect(raw.text()).toContain("echo:later");
    expect(server.connectionCount).toBe(0);
  });

  it("after detach, the request's connection answers for the hand-over without the HTTP side", async () => {
    const outcomes: string[] = [];
    const requests: HTTPServerRequest[] = [];
    const attempt = (what: string, fn: () => unknown): void => {
      try {
        fn();
        outcomes.push(`${what} ignored`);
      } catch (e) {
        outcomes.push(`${what} ${(e as { code?: string }).code}`);
      }
    };
    const server = new HTTPServer(
      async (request) => {
        requests.push(request);
        // The 101 left open (writeHeaders) for /open, finished (respond) otherwise.
        if (request.path === "/open") request.connection.writeHeaders(101, { Upgrade: "x", Connection: "Upgrade" });
        else await request.connection.respond(101, { Upgrade: "x", Connection: "Upgrade" });
        const { connection, release } = request.connection.detach();
        connection.setHandler({ data() {}, end: () => connection.end(), drain() {}, close: () => release() });
        const c = request.connection;
        expect([c.headersWritten, c.finished, c.closed]).toEqual([true, true, false]);
        attempt("write", () => c.write("late"));
        attempt("finish", () => c.finish());
        attempt("detach", () => c.detach());
        expect(() => c.setMaxBodyBytes(-1)).toThrow(RangeError);
      },
      quiet,
    );
    const open = connect(server);
    open.send("GET /open HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n");
    await flushMemory();
    const finished = connect(server);
    finished.send("GET /finished HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n");
    await flushMemory();
    expect(outcomes).toEqual([
      "write ignored",
      "finish ignored",
      "detach ERR_DETACHED",
      "write ERR_RESPONSE_FINISHED",
      "finish ERR_RESPONSE_FINISHED",
      "detach ERR_DETACHED",
    ]);
    expect(server.connectionCount).toBe(0);
    open.conn.destroy();
    await flushMemory();
    expect(requests[0]!.connection.closed).toBe(true);
    expect(requests[1]!.connection.closed).toBe(false);
    // Released already: shutdown does not wait for it; the other one closes on shutdown's destroy.
    const closing = server.close({ timeout: 10 });
    server.closeAllConnections();
    await closing;
    expect(requests[1]!.connection.closed).toBe(true);
  });

  it("keeps the request readable as it was after detach (its headers and target copied out of the head)", async () => {
    const seen: Array<{ before: Array<[string, string]>; after: Array<[string, string]>; uri: string; host: string; ip: [string, string] }> = [];
    const server = new HTTPServer(async (request) => {
      const before = [...request.headers];
      const ipBefore = request.remoteIp;
      await request.connection.respond(101, { Upgrade: "x", Connection: "Upgrade" });
      const { connection, release } = request.connection.detach();
      connection.setHandler({ data() {}, end: () => connection.end(), drain() {}, close: () => release() });
      seen.push({ before, after: [...request.headers], uri: request.uri, host: request.host, ip: [ipBefore, request.remoteIp] });
    }, quiet);
    const key = "dGhlIHNhbXBsZSBub25jZQ==";
    for (let i = 0; i < 2; i++) {
      const raw = connect(server);
      raw.send(`GET /a/long/target?with=query&n=${i} HTTP/1.1\r\nHost: example.com:8080\r\nConnection: Upgrade\r\nUpgrade: x\r\nSec-WebSocket-Key: ${key}\r\nX-Latin1: caf\xe9 au lait, s'il vous pla\xeet\r\n\r\n`);
      await flushMemory();
      raw.conn.destroy();
      await flushMemory();
    }
    expect(seen).toHaveLength(2);
    for (const [i, s] of seen.entries()) {
      expect(s.after).toEqual(s.before);
      expect(s.uri).toBe(`/a/long/target?with=query&n=${i}`);
      expect(s.host).toBe("example.com:8080");
      expect(s.ip[1]).toBe(s.ip[0]);
      expect(s.after).toContainEqual(["Sec-WebSocket-Key", key]);
      // Bytes above 0x7f read as latin1, the same after as before.
      expect(s.after.find(([name]) => name === "X-Latin1")?.[1]).toMatch(/^caf[\x80-\xff]+ au lait, s'il vous pla[\x80-\xff]+t$/);
    }
    await server.close();
  });

  it("releases a detached connection through the request's connection as through detach's release", async () => {
    const requests: HTTPServerRequest[] = [];
    const server = new HTTPServer(async (request) => {
      expect(request.connection.release).toBeUndefined();
      await request.connection.respond(101, { Upgrade: "x", Connection: "Upgrade" });
      const { connection } = request.connection.detach({ onShutdown: () => connection.destroy() });
      connection.setHandler({ data() {}, end: () => connection.end(), drain() {}, close() {} });
      requests.push(request);
    }, quiet);
    const kept = connect(server);
    kept.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n");
    const released = connect(server);
    released.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n");
    await flushMemory();
    expect(requests).toHaveLength(2);
    requests[1]!.connection.release!();
    requests[1]!.connection.release!(); // twice is harmless
    // Shutdown waits for the one still held (its onShutdown destroys it), not the released one.
    await server.close({ timeout: 1000 });
    expect(kept.conn.closed).toBe(true);
    expect(released.conn.closed).toBe(false);
    released.conn.destroy();
  });

  it("keeps speaking HTTP when an upgrade is declined", async () => {
    const server = new HTTPServer((req) => req.connection.respond(200, {}, `plain ${req.path}`), quiet);
    const raw = connect(server);
    raw.send("GET /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    expect(statusLines(raw.text())).toHaveLength(2);
    expect(raw.text()).toContain("plain /next");
  });
});

describe("closing connections", () => {
  it("sees the client's close after a Connection: close response, so the connection is forgotten", async () => {
    const server = new HTTPServer((req) => req.connection.respond(200, {}, "bye"), quiet);
    const [clientEnd, serverEnd] = createPipe();
    let ended = false;
    clientEnd.setHandler({ data() {}, end: () => (ended = true), drain() {}, close() {} });
    server.handleConnection(serverEnd);
    clientEnd.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
    await flushMemory();
    expect(ended).toBe(true);
    expect(server.connectionCount).toBe(1);
    clientEnd.end();
    await flushMemory();
    expect(server.connectionCount).toBe(0);
    await server.close();
  });

  it("destroys a connection whose peer never closes after our FIN", async () => {
    const clock = new VirtualClock();
    const server = new HTTPServer((req) => req.connection.respond(200, {}, "bye"), { ...quiet, clock });
    const [clientEnd, serverEnd] = createPipe();
    let closed = false;
    clientEnd.setHandler({ data() {}, end() {}, drain() {}, close: () => (closed = true) });
    server.handleConnection(serverEnd);
    clientEnd.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
    await flushMemory();
    expect(server.connectionCount).toBe(1);
    clock.advance(5000);
    await flushMemory();
    expect(closed).toBe(true);
    expect(server.connectionCount).toBe(0);
  });

  it("ignores writes to a response after its client went away", async () => {
    const gate = deferred();
    let outcome = "";
    const server = new HTTPServer(async (req) => {
      await gate.promise;
      try {
        req.connection.writeHeaders(200, {});
        await req.connection.write("late");
        await req.connection.finish();
        outcome = `ok closed=${req.connection.closed}`;
      } catch (e) {
        outcome = `threw ${(e as Error).message}`;
      }
    }, quiet);
    const raw = connect(server);
    raw.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    raw.conn.destroy();
    await flushMemory();
    gate.resolve();
    await flushMemory();
    expect(outcome).toBe("ok closed=true");
  });
});
