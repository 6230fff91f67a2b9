// Graceful shutdown: what a response in flight says when close() begins.
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../src/core/log";
import { HTTPServer, type HTTPServerRequest } from "../../src/server";
import { MemoryTransport } from "../../src/transports/memory";
import { connect, flushMemory, statusLines } from "./helpers";

describe("a response in flight when close() begins", () => {
  it("carries Connection: close even when it finishes before the listeners have closed", async () => {
    const transport = new MemoryTransport();
    const held: HTTPServerRequest[] = [];
    const server = new HTTPServer((req) => {
      held.push(req);
    }, { logger: silentLogger, transport });
    await server.listen(80, "localhost");
    const raw = connect(server);
    raw.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await flushMemory();
    expect(held).toHaveLength(1);
    const closed = server.close();
    // Answered in the same turn as close(), before the listener has closed.
    await held[0]!.connection.respond(200, { "Content-Type": "text/plain" }, "bye");
    await flushMemory();
    const text = raw.text();
    expect(statusLines(text)).toEqual(["HTTP/1.1 200 OK"]);
    expect(text).toMatch(/\r\nConnection: close\r\n/i);
    expect(text.endsWith("\r\n\r\nbye")).toBe(true);
    expect(raw.ended).toBe(true);
    await closed;
    expect(server.connectionCount).toBe(0);
  });
});
