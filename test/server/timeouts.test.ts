// Timeouts that depend on when the application answers, and on requests
// pipelined behind each other (the basic cases are in http-server.test.ts).
import { describe, expect, it } from "vitest";
import { VirtualClock } from "../../src/core/clock";
import { silentLogger } from "../../src/core/log";
import { HTTPServer } from "../../src/server";
import { advance, connect, deferred, flushMemory, statusLines } from "./helpers";

const quiet = { logger: silentLogger };

describe("the idle timeout after an answer that came later", () => {
  it("starts when an asynchronous response finishes, and closes the connection idleTimeout after it", async () => {
    const clock = new VirtualClock();
    const gate = deferred();
    const server = new HTTPServer(async (req) => {
      await gate.promise;
      await req.connection.respond(200, {}, "late");
    }, { ...quiet, clock, idleTimeout: 1000 });
    const raw = connect(server);
    raw.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    await advance(clock, 5000);
    expect(raw.ended).toBe(false);
    gate.resolve();
    await flushMemory();
    expect(raw.text()).toContain("late");
    await advance(clock, 999);
    expect(raw.ended).toBe(false);
    await advance(clock, 1);
    expect(raw.ended).toBe(true);
    expect(server.connectionCount).toBe(0);
  });

  it("a streamed response finished outside a read starts the idle timeout too", async () => {
    const clock = new VirtualClock();
    const gate = deferred();
    const server = new HTTPServer(async (req) => {
      await req.connection.writeHeaders(200, { "Transfer-Encoding": "chunked" });
      await gate.promise;
      await req.connection.write("tail");
      await req.connection.finish();
    }, { ...quiet, clock, idleTimeout: 2000 });
    const raw = connect(server);
    raw.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    clock.advance(3000);
    gate.resolve();
    await flushMemory();
    expect(raw.text()).toMatch(/0\r\n\r\n$/);
    await advance(clock, 1999);
    expect(raw.ended).toBe(false);
    await advance(clock, 1);
    expect(raw.ended).toBe(true);
  });

  it("does not start while a pipelined request is still unanswered", async () => {
    const clock = new VirtualClock();
    const gates = [deferred(), deferred()];
    let n = 0;
    const server = new HTTPServer(async (req) => {
      const gate = gates[n++]!;
      await gate.promise;
      await req.connection.respond(200, {}, req.path);
    }, { ...quiet, clock, idleTimeout: 1000 });
    const raw = connect(server);
    raw.send("GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    gates[0]!.resolve();
    await flushMemory();
    await advance(clock, 5000);
    expect(raw.ended).toBe(false);
    gates[1]!.resolve();
    await flushMemory();
    expect(statusLines(raw.text())).toHaveLength(2);
    await advance(clock, 1000);
    expect(raw.ended).toBe(true);
  });
});

describe("the body timeout of pipelined requests", () => {
  it("gives a request whose head came in the same read as the end of the previous body its whole bodyTimeout", async () => {
    const clock = new VirtualClock();
    const server = new HTTPServer((req) => req.connection.respond(200, {}, `got ${req.body.byteLength}`), { ...quiet, clock, bodyTimeout: 2000 });
    const raw = connect(server);
    raw.send("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab");
    await flushMemory();
    clock.advance(1500);
    raw.send("cdPOST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nxy");
    await flushMemory();
    expect(statusLines(raw.text())).toEqual(["HTTP/1.1 200 OK"]);
    // A's deadline (t = 2000) must not apply to B, whose body began at t = 1500.
    await advance(clock, 1000);
    expect(raw.ended).toBe(false);
    await advance(clock, 999);
    expect(raw.ended).toBe(false);
    await advance(clock, 1);
    expect(statusLines(raw.text())).toEqual(["HTTP/1.1 200 OK", "HTTP/1.1 408 Request Timeout"]);
    expect(raw.ended).toBe(true);
  });

  it("does not restart the deadline while the same body keeps trickling in", async () => {
    const clock = new VirtualClock();
    const server = new HTTPServer((req) => req.connection.respond(200, {}, "x"), { ...quiet, clock, bodyTimeout: 2000 });
    const raw = connect(server);
    raw.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\na");
    await flushMemory();
    for (let i = 0; i < 3; i++) {
      clock.advance(600);
      raw.send("b");
      await flushMemory();
    }
    expect(raw.ended).toBe(false);
    await advance(clock, 200);
    expect(statusLines(raw.text())).toEqual(["HTTP/1.1 408 Request Timeout"]);
  });
});
