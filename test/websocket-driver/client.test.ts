/**
 * The WebSocket client over memory transports: against typhoon's own
 * WebSocketHandler, and against a raw server written by hand (bad
 * handshakes, silence, the close handshake from the server's side).
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { websocketConnect, WebSocketHandshakeError, type WebSocketClientConnection } from "../../src/client/websocket";
import { VirtualClock } from "../../src/core/clock";
import { RemoteProtocolError } from "../../src/core/errors";
import { TimeoutError } from "../../src/core/locks";
import { HTTPServer } from "../../src/server";
import { WebSocketClosedError } from "../../src/server/websocket-session";
import { MemoryTransport, type MemoryConnection } from "../../src/transports/memory";
import { Application, WebSocketHandler, type WebSocketCompressionOptions } from "../../src/web";
import { CLOSE, closeBody, closeOf, deferred, flushMemory, frame, parseFrames, PING, rawPeer, RecordingLogger, TEXT, type RawPeer } from "./helpers";

class Echo extends WebSocketHandler {
  static compression: WebSocketCompressionOptions | null = {};
  static burstSent = 0;
  override getCompressionOptions() {
    return Echo.compression;
  }
  override selectSubprotocol(offered: readonly string[]) {
    return offered.includes("echo") ? "echo" : null;
  }
  override onMessage(message: string | Uint8Array) {
    if (message === "close me") return void this.close(4000, "as you wish");
    if (message === "headers") return void this.writeMessage(`${this.request.headers.get("Origin")} ${this.request.headers.get("X-Token")}`);
    if (message === "extensions") return void this.writeMessage(this.request.headers.get("Sec-WebSocket-Extensions") ?? "none");
    if (typeof message === "string" && message.startsWith("burst ")) {
      const n = Number(message.slice(6));
      return (async () => {
        for (let i = 0; i < n; i++) {
          await this.writeMessage(`${i} ${"b".repeat(1000)}`);
          Echo.burstSent++;
        }
      })();
    }
    return this.writeMessage(message).catch(() => {});
  }
}

/** The echo application on a memory transport, port 80 (plain) and 443 (simulated TLS). */
async function echoServer(settings: Record<string, unknown> = {}) {
  const transport = new MemoryTransport();
  const logger = new RecordingLogger();
  const clock = new VirtualClock();
  const app = new Application([["/ws", Echo]], { logger, clock, ...settings });
  const server = new HTTPServer(app, { transport, logger, clock });
  await server.listen(80);
  await server.listen({ port: 443, tls: { key: "k", cert: "c" } });
  return { transport, server, logger, clock };
}

/** A hand-written server on a memory transport: `onRequest` gets the raw peer and the request head. */
async function rawServer(onRequest: (peer: RawPeer<MemoryConnection>, head: string) => void) {
  const transport = new MemoryTransport();
  const peers: Array<RawPeer<MemoryConnection>> = [];
  await transport.listen({ port: 80 }, (conn) => {
    const peer = rawPeer(conn as MemoryConnection, false);
    peers.push(peer);
    let answered = false;
    const original = peer.chunks.push.bind(peer.chunks);
    peer.chunks.push = (...items: Uint8Array[]) => {
      const n = original(...items);
      const text = peer.bytes().toString("latin1");
      if (!answered && text.includes("\r\n\r\n")) {
        answered = true;
        onRequest(peer, text.slice(0, text.indexOf("\r\n\r\n")));
      }
      return n;
    };
  });
  return { transport, peers };
}

function acceptFor(head: string): string {
  const key = /sec-websocket-key: *(\S+)/i.exec(head)![1]!;
  return createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
}

function accept101(peer: RawPeer<MemoryConnection>, head: string, extra = ""): void {
  peer.send(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(head)}\r\n${extra}\r\n`);
}

/** Frames the raw server received after the request head. */
function clientFrames(peer: RawPeer<MemoryConnection>): ReturnType<typeof parseFrames> {
  const bytes = peer.bytes();
  return parseFrames(bytes.subarray(bytes.indexOf("\r\n\r\n") + 4));
}

async function readAll(ws: WebSocketClientConnection): Promise<Array<string | Uint8Array>> {
  const out: Array<string | Uint8Array> = [];
  for await (const m of ws) out.push(m);
  return out;
}

describe("against typhoon's WebSocketHandler", () => {
  it("sends and reads text and binary messages, then closes", async () => {
    const { transport, server } = await echoServer();
    const ws = await websocketConnect("ws://localhost/ws", { transport });
    expect(ws.closeCode).toBe(null);
    await ws.writeMessage("hello");
    await ws.writeMessage(Uint8Array.of(1, 2, 3));
    await ws.writeMessage("text as binary", { binary: true });
    expect(await ws.readMessage()).toBe("hello");
    expect(Buffer.from((await ws.readMessage()) as Uint8Array)).toEqual(Buffer.from([1, 2, 3]));
    expect(Buffer.from((await ws.readMessage()) as Uint8Array).toString()).toBe("text as binary");
    await ws.close(1000, "bye");
    expect(ws.closeCode).toBe(1000);
    expect(await ws.readMessage()).toBe(null);
    await expect(ws.writeMessage("late")).rejects.toBeInstanceOf(WebSocketClosedError);
    await server.close();
  });

  it("close() takes the codes that may be sent (1012-1014 included) and throws for the others, staying open", async () => {
    const { transport, server } = await echoServer();
    const ws = await websocketConnect("ws://localhost/ws", { transport });
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000]) {
      expect(() => ws.close(code), `code ${code}`).toThrow(expect.objectContaining({ code: "WS_ERR_INVALID_CLOSE_CODE" }));
    }
    expect(ws.isClosing).toBe(false);
    await ws.writeMessage("still open");
    expect(await ws.readMessage()).toBe("still open");
    await ws.close(1013, "try again later");
    expect([ws.closeCode, ws.closeReason]).toEqual([1013, ""]); // the server echoes the code
    await server.close();
  });

  it("iterates over messages until the server closes, with its code and reason", async () => {
    const { transport } = await echoServer();
    const ws = await websocketConnect("ws://localhost/ws", { transport });
    void ws.writeMessage("one");
    void ws.writeMessage("two");
    void ws.writeMessage("close me");
    expect(await readAll(ws)).toEqual(["one", "two"]);
    expect(ws.closeCode).toBe(4000);
    expect(ws.closeReason).toBe("as you wish");
  });

  it("sends the given headers and the Host of the URL", async () => {
    const { transport } = await echoServer();
    const ws = await websocketConnect("ws://localhost/ws", { transport, headers: { Origin: "http://localhost", "X-Token": "t1" } });
    await ws.writeMessage("headers");
    expect(await ws.readMessage()).toBe("http://localhost t1");
    await ws.close();
  });

  it("rejects with the status, headers and body when the server does not answer 101", async () => {
    const { transport } = await echoServer();
    const error = await websocketConnect("ws://localhost/nowhere", { transport }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WebSocketHandshakeError);
    const e = error as WebSocketHandshakeError;
    expect(e.status).toBe(404);
    expect(e.message).toBe("Cannot open the WebSocket: the server answered 404 Not Found");
    expect(e.headers.get("Content-Type")).toContain("text/html");
    expect(Buffer.from(e.body).toString()).toContain("404: Not Found");
    const forbidden = await websocketConnect("ws://localhost/ws", { transport, headers: { Origin: "http://elsewhere" } }).catch((x: unknown) => x);
    expect((forbidden as WebSocketHandshakeError).status).toBe(403);
  });

  it("negotiates a subprotocol", async () => {
    const { transport } = await echoServer();
    const ws = await websocketConnect("ws://localhost/ws", { transport, subprotocols: ["other", "echo"] });
    expect(ws.selectedSubprotocol).toBe("echo");
    expect(ws.headers.get("Sec-WebSocket-Protocol")).toBe("echo");
    const plain = await websocketConnect("ws://localhost/ws", { transport });
    expect(plain.selectedSubprotocol).toBe(null);
  });

  it.each([
    ["defaults", true, "permessage-deflate; client_max_window_bits", "permessage-deflate"],
    ["server_no_context_takeover", { serverNoContextTakeover: true }, "permessage-deflate; server_no_context_takeover; client_max_window_bits", "permessage-deflate; server_no_context_takeover"],
    ["client_no_context_takeover", { clientNoContextTakeover: true }, "permessage-deflate; client_no_context_takeover; client_max_window_bits", "permessage-deflate; client_no_context_takeover"],
    ["server_max_window_bits=9", { serverMaxWindowBits: 9 }, "permessage-deflate; server_max_window_bits=9; client_max_window_bits", "permessage-deflate; server_max_window_bits=9"],
    ["client_max_window_bits=8", { clientMaxWindowBits: 8 }, "permessage-deflate; client_max_window_bits=8", "permessage-deflate; client_max_window_bits=8"],
    ["no client_max_window_bits", { clientMaxWindowBits: false }, "permessage-deflate", "permessage-deflate"],
  ] as const)("compresses both ways with %s", async (_name, compression, offer, answer) => {
    const { transport } = await echoServer();
    const ws = await websocketConnect("ws://localhost/ws", { transport, compression: { ...(compression === true ? {} : compression), threshold: 0 } });
    expect(ws.headers.get("Sec-WebSocket-Extensions")).toBe(answer);
    await ws.writeMessage("extensions");
    expect(await ws.readMessage()).toBe(offer);
    // Several similar messages: context takeover (or not) must agree on both sides.
    const messages = Array.from({ length: 20 }, (_, i) => `message ${i} ${"abcdefgh".repeat(50 + i)}`);
    for (const m of messages) void ws.writeMessage(m);
    const big = Buffer.alloc(300_000, "0123456789abcdef");
    void ws.writeMessage(big);
    for (const m of messages) expect(await ws.readMessage()).toBe(m);
    expect(Buffer.from((await ws.readMessage()) as Uint8Array).equals(big)).toBe(true);
    await ws.close();
  });

  it("goes without compression when the server declines it", async () => {
    Echo.compression = null;
    try {
      const { transport } = await echoServer();
      const ws = await websocketConnect("ws://localhost/ws", { transport, compression: true });
      expect(ws.headers.has("Sec-WebSocket-Extensions")).toBe(false);
      await ws.writeMessage("x".repeat(5000));
      expect(await ws.readMessage()).toBe("x".repeat(5000));
    } finally {
      Echo.compression = {};
    }
  });

  it("connects with wss:// through the transport's TLS", async () => {
    const { transport } = await echoServer();
    const ws = await websocketConnect("wss://localhost/ws", { transport });
    await ws.writeMessage("secure");
    expect(await ws.readMessage()).toBe("secure");
    // The plain port refuses TLS and the TLS port refuses plain connections.
    await expect(websocketConnect("wss://localhost:80/ws", { transport })).rejects.toThrow(/only the server|only the client/);
  });

  it("stops reading while the application does not read, which pauses the server's writer", async () => {
    const { transport } = await echoServer();
    const ws = await websocketConnect("ws://localhost/ws", { transport });
    Echo.burstSent = 0;
    await ws.writeMessage("burst 400");
    await flushMemory();
    // 400 KB to send, but the server's writer is paused once about 64 KiB
    // wait unread on our side and the transports' high-water marks are full.
    expect(Echo.burstSent).toBeGreaterThan(50);
    expect(Echo.burstSent).toBeLessThan(250);
    let read = 0;
    for await (const m of ws) {
      expect(m).toBe(`${read} ${"b".repeat(1000)}`);
      if (++read === 400) break;
    }
    expect(read).toBe(400);
    expect(Echo.burstSent).toBe(400);
    await ws.close();
  });

  it("rejects bad URLs and options", () => {
    expect(() => websocketConnect("ftp://localhost/")).toThrow(TypeError);
    expect(() => websocketConnect("not a url")).toThrow(TypeError);
    expect(() => websocketConnect("ws://localhost/#frag")).toThrow(TypeError);
    expect(() => websocketConnect("ws://localhost/", { connectTimeout: 0 })).toThrow(RangeError);
  });
});

describe("against a server written by hand", () => {
  it("sends a proper handshake request", async () => {
    const heads: string[] = [];
    const { transport } = await rawServer((peer, head) => {
      heads.push(head);
      accept101(peer, head);
    });
    const ws = await websocketConnect("ws://localhost/path?q=1", { transport, subprotocols: ["a", "b"], compression: true });
    expect(ws.selectedSubprotocol).toBe(null);
    const head = heads[0]!;
    expect(head).toMatch(/^GET \/path\?q=1 HTTP\/1\.1\r\n/);
    expect(head).toContain("\r\nHost: localhost\r\n");
    expect(head).toContain("\r\nUpgrade: websocket\r\n");
    expect(head).toContain("\r\nConnection: Upgrade\r\n");
    expect(head).toContain("\r\nSec-WebSocket-Version: 13\r\n");
    expect(head).toContain("\r\nSec-WebSocket-Protocol: a, b\r\n");
    expect(head).toContain("\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits");
    expect(head).not.toMatch(/Content-Length|Transfer-Encoding/i);
  });

  it("rejects a 101 with a wrong accept key, an extension or a subprotocol it did not offer", async () => {
    for (const [extra, pattern] of [
      ["BAD", /Sec-WebSocket-Accept/],
      ["Sec-WebSocket-Extensions: permessage-deflate\r\n", /not offered/],
      ["Sec-WebSocket-Protocol: surprise\r\n", /not offered/],
    ] as const) {
      const { transport, peers } = await rawServer((peer, head) => {
        if (extra === "BAD") peer.send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: nope\r\n\r\n");
        else accept101(peer, head, extra);
      });
      const error = await websocketConnect("ws://localhost/", { transport }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RemoteProtocolError);
      expect((error as Error).message).toMatch(pattern);
      await flushMemory();
      expect(peers[0]!.closed).toBe(true);
    }
  });

  it("gives up after connectTimeout when the server never answers", async () => {
    const { transport, peers } = await rawServer(() => {});
    const clock = new VirtualClock();
    const pending = websocketConnect("ws://localhost/", { transport, clock, connectTimeout: 5000 });
    let error: unknown;
    pending.catch((e: unknown) => (error = e));
    await flushMemory();
    clock.advance(4999);
    await flushMemory();
    expect(error).toBe(undefined);
    clock.advance(1);
    await flushMemory();
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as Error).message).toBe("Cannot open the WebSocket ws://localhost/: no answer within 5000 ms");
    expect(peers[0]!.closed).toBe(true);
  });

  it("fails when the server closes during the handshake, and when nothing listens", async () => {
    const { transport } = await rawServer((peer) => peer.conn.end());
    await expect(websocketConnect("ws://localhost/", { transport })).rejects.toThrow(/closed the connection/);
    await expect(websocketConnect("ws://localhost:81/", { transport })).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });

  it("reads frames that came in the same packet as the 101", async () => {
    const { transport } = await rawServer((peer, head) => {
      peer.send(
        Buffer.concat([
          Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(head)}\r\n\r\n`),
          frame(TEXT, "right away", { mask: null }),
        ]),
      );
    });
    const ws = await websocketConnect("ws://localhost/", { transport });
    expect(await ws.readMessage()).toBe("right away");
  });

  it("masks its frames, answers pings, and echoes the server's close then waits for its TCP close", async () => {
    let server!: RawPeer<MemoryConnection>;
    const { transport } = await rawServer((peer, head) => {
      server = peer;
      accept101(peer, head);
    });
    const ws = await websocketConnect("ws://localhost/", { transport });
    await ws.writeMessage("masked?");
    server.send(frame(PING, "hb", { mask: null }));
    await flushMemory();
    const sent = clientFrames(server);
    expect(sent.map((f) => [f.opcode, f.masked, f.payload.toString()])).toEqual([
      [TEXT, true, "masked?"],
      [0xa, true, "hb"],
    ]);
    server.send(frame(CLOSE, closeBody(1000, "server done"), { mask: null }));
    await flushMemory();
    expect(closeOf(clientFrames(server)[2]!)).toEqual({ code: 1000, reason: "" });
    expect(server.ended).toBe(false);
    expect(ws.closeCode).toBe(null);
    server.conn.end();
    await ws.closed;
    expect(ws.closeCode).toBe(1000);
    expect(ws.closeReason).toBe("server done");
  });

  it("pings on its own with pingInterval and closes after pingTimeout", async () => {
    let server!: RawPeer<MemoryConnection>;
    const { transport } = await rawServer((peer, head) => {
      server = peer;
      accept101(peer, head);
    });
    const clock = new VirtualClock();
    const ws = await websocketConnect("ws://localhost/", { transport, clock, pingInterval: 1000, pingTimeout: 300, closeTimeout: 1000 });
    clock.advance(1000);
    await flushMemory();
    expect(clientFrames(server).map((f) => f.opcode)).toEqual([PING]);
    clock.advance(300);
    await flushMemory();
    expect(clientFrames(server).map((f) => f.opcode)).toEqual([PING, CLOSE]);
    clock.advance(1000);
    await ws.closed;
    expect(ws.closeCode).toBe(1006);
  });

  it("holds back the server when the application does not read", async () => {
    let server!: RawPeer<MemoryConnection>;
    const { transport } = await rawServer((peer, head) => {
      server = peer;
      accept101(peer, head);
    });
    const ws = await websocketConnect("ws://localhost/", { transport });
    const message = frame(TEXT, "m".repeat(10_000), { mask: null });
    for (let i = 0; i < 100; i++) server.send(message);
    await flushMemory();
    // About 64 KiB were taken as messages; the rest waits in the server's output.
    expect(server.conn.writableLength).toBeGreaterThan(800_000);
    const gate = deferred<number>();
    void (async () => {
      let n = 0;
      for await (const m of ws) {
        expect(m).toHaveLength(10_000);
        if (++n === 100) break;
      }
      gate.resolve(n);
    })();
    expect(await gate.promise).toBe(100);
    expect(server.conn.writableLength).toBe(0);
  });
});
