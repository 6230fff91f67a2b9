/**
 * WebSocketHandler through an Application and an HTTPServer over memory
 * pipes: the handshake and its refusals, the lifecycle (open with the
 * route's groups, onMessage, onClose with code and reason), errors (1011,
 * the server goes on), settings, subprotocols, compression, graceful
 * shutdown (1001).
 */
import { Buffer } from "node:buffer";
import { describe, expect, it } from "vitest";
import { HTTPError, RequestHandler, WebSocketClosedError, WebSocketHandler, type WebSocketCompressionOptions } from "../../src/web";
import {
  BINARY,
  CLIENT_ACCEPT,
  CLOSE,
  closeBody,
  closeOf,
  deferred,
  deflateMessage,
  flushMemory,
  frame,
  inflateMessage,
  PING,
  serveWs,
  splitHead,
  TEXT,
  upgradeRequest,
} from "./helpers";

/** Records its lifecycle in a shared log. */
function recorder() {
  const log: string[] = [];
  const handlers: WebSocketHandler[] = [];
  class Recorder extends WebSocketHandler {
    override open(...args: Array<string | undefined>) {
      handlers.push(this);
      log.push(`open ${JSON.stringify(args)} ${JSON.stringify(this.pathKwargs)}`);
    }
    override onMessage(message: string | Uint8Array) {
      log.push(typeof message === "string" ? `text ${message}` : `binary ${Buffer.from(message).toString("hex")}`);
      return this.writeMessage(message).catch(() => {});
    }
    override onPing(data: Uint8Array) {
      log.push(`ping ${Buffer.from(data).toString()}`);
    }
    override onPong(data: Uint8Array) {
      log.push(`pong ${Buffer.from(data).toString()}`);
    }
    override onClose() {
      log.push(`close ${this.closeCode} ${JSON.stringify(this.closeReason)}`);
    }
  }
  return { log, handlers, Recorder };
}

class Hello extends RequestHandler {
  get(): void {
    this.write("plain");
  }
}

describe("the handshake", () => {
  it("answers 101 with the accept key, and the handler's default headers", async () => {
    const { Recorder } = recorder();
    const t = serveWs([["/ws", Recorder]]);
    const ws = await t.open("/ws");
    expect(ws.headers.get("sec-websocket-accept")).toBe(CLIENT_ACCEPT);
    expect(ws.headers.get("upgrade")).toBe("websocket");
    expect(ws.headers.get("connection")).toBe("Upgrade");
    expect(ws.headers.get("server")).toMatch(/^typhoon\//);
    expect(ws.headers.has("content-type")).toBe(false);
    expect(ws.headers.has("content-length")).toBe(false);
    expect(ws.headers.has("sec-websocket-extensions")).toBe(false);
    expect(t.server.connectionCount).toBe(0); // detached from the HTTP server
  });

  it("keeps the request but lets the HTTP side and the 101's headers go once open", async () => {
    const { Recorder, handlers } = recorder();
    const t = serveWs([["/ws/(.*)", Recorder]]);
    const ws = await t.open("/ws/room", { Origin: "http://test" });
    expect(ws.headers.get("sec-websocket-accept")).toBe(CLIENT_ACCEPT);
    const handler = handlers[0]!;
    expect(handler.openArgs).toEqual(["room"]);
    expect(handler.getStatus()).toBe(101);
    expect(handler.getHeader("Sec-WebSocket-Accept")).toBeUndefined();
    expect(handler.request.path).toBe("/ws/room");
    expect(handler.request.headers.get("Origin")).toBe("http://test");
    const connection = handler.request.connection;
    expect([connection.finished, connection.closed]).toEqual([true, false]);
    expect(() => connection.detach()).toThrow(/detached already/);
    ws.sendFrames(frame(CLOSE, closeBody(1000)));
    await flushMemory();
    expect(connection.closed).toBe(true);
    expect(handler.closeCode).toBe(1000);
  });

  it('answers a plain GET with 400 "Can "Upgrade" only to "WebSocket"." and keeps serving HTTP', async () => {
    const { Recorder } = recorder();
    const t = serveWs([["/ws", Recorder], ["/", Hello]]);
    const peer = await t.raw("GET /ws HTTP/1.1\r\nHost: test\r\n\r\nGET / HTTP/1.1\r\nHost: test\r\n\r\n");
    const text = peer.bytes().toString();
    expect(text).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(text).toContain('Can "Upgrade" only to "WebSocket".');
    expect(text).toContain("\r\n\r\nplain");
  });

  it.each([
    ["a Connection header without Upgrade", { Connection: "keep-alive" }, 400, '"Connection" must be "Upgrade".'],
    ["no key", { "Sec-WebSocket-Key": "" }, 400, "Sec-WebSocket-Key"],
    ["a bad key", { "Sec-WebSocket-Key": "short" }, 400, "Sec-WebSocket-Key"],
    ["version 8", { "Sec-WebSocket-Version": "8" }, 426, "not 13"],
    ["a foreign Origin", { Origin: "http://evil.example" }, 403, "Cross origin websockets not allowed"],
    ["a foreign Sec-Websocket-Origin", { "Sec-Websocket-Origin": "http://evil.example" }, 403, "Cross origin websockets not allowed"],
  ])("refuses %s", async (_what, headers, status, text) => {
    const { Recorder, log } = recorder();
    const t = serveWs([["/ws", Recorder]]);
    const peer = await t.raw(upgradeRequest("/ws", headers));
    const head = splitHead(peer.bytes());
    expect(head.status).toBe(status);
    expect(peer.bytes().toString()).toContain(text);
    if (status === 426) expect(head.headers.get("sec-websocket-version")).toBe("13");
    expect(log).toEqual([]);
  });

  it("answers 405 to POST", async () => {
    const { Recorder } = recorder();
    const t = serveWs([["/ws", Recorder]]);
    const peer = await t.raw("POST /ws HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n");
    expect(splitHead(peer.bytes()).status).toBe(405);
  });

  it("accepts the same origin (Origin host equal to Host) and requests without Origin", async () => {
    const { Recorder, log } = recorder();
    const t = serveWs([["/ws", Recorder]]);
    await t.open("/ws", { Host: "example.com:8080", Origin: "https://Example.com:8080" });
    await t.open("/ws");
    expect(log).toHaveLength(2);
  });

  it("lets checkOrigin allow other origins", async () => {
    class AnyOrigin extends WebSocketHandler {
      override checkOrigin(origin: string) {
        return origin.endsWith(".friend.example");
      }
      override onMessage() {}
    }
    const t = serveWs([["/ws", AnyOrigin]]);
    await t.open("/ws", { Origin: "https://a.friend.example" });
    const refused = await t.raw(upgradeRequest("/ws", { Origin: "https://a.enemy.example" }));
    expect(splitHead(refused.bytes()).status).toBe(403);
  });

  it("runs prepare before the handshake: an HTTPError there refuses it", async () => {
    class Guarded extends WebSocketHandler {
      override prepare() {
        if (this.request.headers.get("Authorization") !== "Bearer ok") throw new HTTPError(401);
      }
      override onMessage() {}
    }
    const t = serveWs([["/ws", Guarded]]);
    expect(splitHead((await t.raw(upgradeRequest("/ws"))).bytes()).status).toBe(401);
    await t.open("/ws", { Authorization: "Bearer ok" });
  });

  it("selects a subprotocol", async () => {
    class Chat extends WebSocketHandler {
      override selectSubprotocol(offered: readonly string[]) {
        return offered.includes("chat.v2") ? "chat.v2" : null;
      }
      override open() {
        void this.writeMessage(`using ${this.selectedSubprotocol}`);
      }
      override onMessage() {}
    }
    const t = serveWs([["/ws", Chat]]);
    const ws = await t.open("/ws", { "Sec-WebSocket-Protocol": "chat.v1, chat.v2" });
    expect(ws.headers.get("sec-websocket-protocol")).toBe("chat.v2");
    expect(ws.frames()[0]!.payload.toString()).toBe("using chat.v2");
    const none = await t.open("/ws", { "Sec-WebSocket-Protocol": "other" });
    expect(none.headers.has("sec-websocket-protocol")).toBe(false);
  });
});

describe("the lifecycle", () => {
  it("calls open with the route's groups, onMessage for each message, onClose with the code and reason", async () => {
    const { Recorder, log, handlers } = recorder();
    const t = serveWs([["/room/(?<room>[a-z]+)/([0-9]+)", Recorder]]);
    const ws = await t.open("/room/lobby/42");
    ws.sendFrames(frame(TEXT, "hello"), frame(BINARY, Uint8Array.of(0xca, 0xfe)), frame(PING, "p"));
    await flushMemory();
    expect(ws.frames().map((f) => [f.opcode, f.payload.toString("hex")])).toEqual([
      [TEXT, Buffer.from("hello").toString("hex")],
      [BINARY, "cafe"],
      [0xa, Buffer.from("p").toString("hex")],
    ]);
    ws.sendFrames(frame(CLOSE, closeBody(4001, "see you")));
    await flushMemory();
    expect(log).toEqual(['open ["lobby","42"] {"room":"lobby"}', "text hello", "binary cafe", "ping p", 'close 4001 "see you"']);
    expect(handlers[0]!.closeCode).toBe(4001);
    expect(handlers[0]!.closeReason).toBe("see you");
    expect(closeOf(ws.frames()[3]!).code).toBe(4001);
    expect(ws.closed).toBe(true);
  });

  it("waits for an async open before delivering messages that came with the handshake", async () => {
    const gate = deferred();
    const log: string[] = [];
    class SlowOpen extends WebSocketHandler {
      override async open() {
        await gate.promise;
        log.push("opened");
      }
      override onMessage(m: string | Uint8Array) {
        log.push(`message ${String(m)}`);
      }
    }
    const t = serveWs([["/ws", SlowOpen]]);
    const peer = await t.raw(Buffer.concat([Buffer.from(upgradeRequest("/ws")), frame(TEXT, "early")]));
    expect(splitHead(peer.bytes()).status).toBe(101);
    expect(log).toEqual([]);
    gate.resolve();
    await flushMemory();
    expect(log).toEqual(["opened", "message early"]);
  });

  it("sends objects as JSON text, and bytes as binary", async () => {
    class Json extends WebSocketHandler {
      override open() {
        void this.writeMessage({ a: 1, html: "</script>" });
        void this.writeMessage(Uint8Array.of(1, 2));
        void this.writeMessage("as bytes", { binary: true });
      }
      override onMessage() {}
    }
    const t = serveWs([["/ws", Json]]);
    const ws = await t.open("/ws");
    expect(ws.frames().map((f) => [f.opcode, f.payload.toString("latin1")])).toEqual([
      [TEXT, '{"a":1,"html":"<\\/script>"}'],
      [BINARY, "\x01\x02"],
      [BINARY, "as bytes"],
    ]);
  });

  it("closes from the server with close(code, reason) and reports the client's answer", async () => {
    const { Recorder, log, handlers } = recorder();
    const t = serveWs([["/ws", Recorder]]);
    const ws = await t.open("/ws");
    const done = handlers[0]!.close(4000, "kicked");
    await flushMemory();
    expect(closeOf(ws.frames()[0]!)).toEqual({ code: 4000, reason: "kicked" });
    expect(handlers[0]!.isClosing).toBe(true);
    await expect(handlers[0]!.writeMessage("late")).rejects.toBeInstanceOf(WebSocketClosedError);
    expect(() => handlers[0]!.ping()).toThrow(WebSocketClosedError);
    ws.sendFrames(frame(CLOSE, closeBody(4000)));
    await done;
    expect(log[log.length - 1]).toBe('close 4000 ""');
  });

  it("passes the code and reason to onClose(code, reason), the same as closeCode and closeReason", async () => {
    const calls: Array<[number, string, number | null, string | null]> = [];
    class Closer extends WebSocketHandler {
      override onMessage() {}
      override onClose(code: number, reason: string) {
        calls.push([code, reason, this.closeCode, this.closeReason]);
      }
    }
    const t = serveWs([["/ws", Closer]]);
    // The client's close, with a reason; then one without a body (1005).
    const a = await t.open("/ws");
    a.sendFrames(frame(CLOSE, closeBody(4001, "see you")));
    const b = await t.open("/ws");
    b.sendFrames(frame(CLOSE));
    // A protocol error (an unmasked frame): we fail the connection with 1002.
    const c = await t.open("/ws");
    c.sendFrames(frame(TEXT, "unmasked", { mask: null }));
    // The transport just goes away: 1006.
    const d = await t.open("/ws");
    d.conn.destroy();
    await flushMemory();
    expect(calls).toEqual([
      [4001, "see you", 4001, "see you"],
      [1005, "", 1005, ""],
      [1002, "", 1002, ""],
      [1006, "", 1006, ""],
    ]);
  });

  it("close() throws for a code that may not be sent and stays open; 1012-1014 may be sent", async () => {
    const { Recorder, handlers } = recorder();
    const t = serveWs([["/ws", Recorder]]);
    const ws = await t.open("/ws");
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000]) {
      expect(() => handlers[0]!.close(code), `code ${code}`).toThrow(expect.objectContaining({ code: "WS_ERR_INVALID_CLOSE_CODE" }));
    }
    expect(handlers[0]!.isClosing).toBe(false);
    void handlers[0]!.close(1012, "Service Restart");
    await flushMemory();
    expect(closeOf(ws.frames()[0]!)).toEqual({ code: 1012, reason: "Service Restart" });
  });

  it("reports 1006 when the client disappears", async () => {
    const { Recorder, log } = recorder();
    const t = serveWs([["/ws", Recorder]]);
    const ws = await t.open("/ws");
    ws.conn.destroy();
    await flushMemory();
    expect(log[log.length - 1]).toBe('close 1006 ""');
  });

  it("closes with 1011 when open throws, logs it, and goes on serving", async () => {
    const onClose: Array<number | null> = [];
    class Broken extends WebSocketHandler {
      override open() {
        throw new Error("open failed");
      }
      override onMessage() {}
      override onClose() {
        onClose.push(this.closeCode);
      }
    }
    const t = serveWs([["/ws", Broken], ["/", Hello]]);
    const ws = await t.open("/ws");
    expect(closeOf(ws.frames()[0]!).code).toBe(1011);
    expect(t.logger.messages("error").some((m) => m.includes("Uncaught exception"))).toBe(true);
    ws.sendFrames(frame(CLOSE, closeBody(1011)));
    await flushMemory();
    expect(ws.closed).toBe(true);
    expect(onClose).toEqual([1011]);
    const next = await t.raw("GET / HTTP/1.1\r\nHost: test\r\n\r\n");
    expect(next.bytes().toString()).toContain("plain");
  });

  it("closes with 1011 when an async open rejects", async () => {
    class Broken extends WebSocketHandler {
      override async open() {
        await null;
        throw new Error("async open failed");
      }
      override onMessage() {}
    }
    const t = serveWs([["/ws", Broken]]);
    const ws = await t.open("/ws");
    await flushMemory();
    expect(closeOf(ws.frames()[0]!).code).toBe(1011);
    expect(t.logger.messages("error")).toContain("Uncaught error in WebSocket open");
  });

  it("closes with 1011 when onMessage throws, and other connections carry on", async () => {
    class Picky extends WebSocketHandler {
      override onMessage(message: string | Uint8Array) {
        if (message === "bad") throw new Error("cannot handle it");
        void this.writeMessage(message);
      }
    }
    const t = serveWs([["/ws", Picky]]);
    const a = await t.open("/ws");
    const b = await t.open("/ws");
    a.sendFrames(frame(TEXT, "bad"));
    b.sendFrames(frame(TEXT, "good"));
    await flushMemory();
    expect(closeOf(a.frames()[0]!).code).toBe(1011);
    expect(b.frames().map((f) => f.payload.toString())).toEqual(["good"]);
    expect(t.logger.messages("error")).toContain("Uncaught error in WebSocket onMessage");
  });

  it("needs onMessage to be overridden (as Tornado)", async () => {
    class Silent extends WebSocketHandler {}
    const t = serveWs([["/ws", Silent]]);
    const ws = await t.open("/ws");
    ws.sendFrames(frame(TEXT, "anyone?"));
    await flushMemory();
    expect(closeOf(ws.frames()[0]!).code).toBe(1011);
  });

  it("rejects writeMessage before the connection is open", async () => {
    let outcome: unknown;
    class Early extends WebSocketHandler {
      override prepare() {
        outcome = this.writeMessage("too early");
      }
      override onMessage() {}
    }
    const t = serveWs([["/ws", Early]]);
    await t.open("/ws");
    await expect(outcome).rejects.toBeInstanceOf(WebSocketClosedError);
  });
});

describe("settings", () => {
  it("pings every websocketPingInterval ms and closes after websocketPingTimeout", async () => {
    const { Recorder, log } = recorder();
    const t = serveWs([["/ws", Recorder]], { websocketPingInterval: 10_000, websocketPingTimeout: 2_000 });
    const ws = await t.open("/ws");
    t.clock.advance(10_000);
    await flushMemory();
    expect(ws.frames().map((f) => f.opcode)).toEqual([PING]);
    ws.sendFrames(frame(0xa));
    await flushMemory();
    t.clock.advance(10_000);
    await flushMemory();
    expect(ws.frames().map((f) => f.opcode)).toEqual([PING, PING]);
    t.clock.advance(2_000);
    await flushMemory();
    expect(ws.frames().map((f) => f.opcode)).toEqual([PING, PING, CLOSE]);
    expect(log).toContain("pong ");
  });

  it("closes with 1009 above websocketMaxMessageSize (default 10 MiB)", async () => {
    const { Recorder } = recorder();
    const small = serveWs([["/ws", Recorder]], { websocketMaxMessageSize: 1000 });
    const ws = await small.open("/ws");
    ws.sendFrames(frame(TEXT, "x".repeat(1001)));
    await flushMemory();
    expect(closeOf(ws.frames()[0]!).code).toBe(1009);

    const byDefault = serveWs([["/ws", Recorder]]);
    const ws2 = await byDefault.open("/ws");
    // A frame header announcing 10 MiB + 1 is refused before its payload comes.
    ws2.send(Buffer.from([0x82, 0xff, 0, 0, 0, 0, 0, 0xa0, 0, 1, 1, 2, 3, 4]));
    await flushMemory();
    expect(closeOf(ws2.frames()[0]!).code).toBe(1009);
  });

  it("uses websocketCloseTimeout for a peer that never answers the close", async () => {
    const { Recorder, handlers } = recorder();
    const t = serveWs([["/ws", Recorder]], { websocketCloseTimeout: 1000 });
    const ws = await t.open("/ws");
    void handlers[0]!.close();
    await flushMemory();
    t.clock.advance(1000);
    await flushMemory();
    expect(ws.closed).toBe(true);
  });
});

describe("permessage-deflate", () => {
  class Compressed extends WebSocketHandler {
    static options: WebSocketCompressionOptions | null = {};
    override getCompressionOptions() {
      return (this.constructor as typeof Compressed).options;
    }
    override onMessage(message: string | Uint8Array) {
      void this.writeMessage(message);
    }
  }

  it("reads Sec-WebSocket-Extensions only when compression is on: a malformed one is ignored without, 400 with", async () => {
    const malformed = { "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits=" };
    const { Recorder } = recorder();
    const plain = serveWs([["/ws", Recorder]]);
    const ws = await plain.open("/ws", malformed);
    expect(ws.headers.has("sec-websocket-extensions")).toBe(false);
    ws.sendFrames(frame(TEXT, "still works"));
    await flushMemory();
    expect(ws.frames().map((f) => f.payload.toString())).toEqual(["still works"]);
    const t = serveWs([["/ws", Compressed]]);
    const peer = await t.raw(upgradeRequest("/ws", malformed));
    const head = splitHead(peer.bytes());
    expect(head.status).toBe(400);
    expect(peer.bytes().toString()).toContain("Cannot parse Sec-WebSocket-Extensions");
  });

  it("is declined unless getCompressionOptions returns options (Tornado's default)", async () => {
    const { Recorder } = recorder();
    const t = serveWs([["/ws", Recorder]]);
    const ws = await t.open("/ws", { "Sec-WebSocket-Extensions": "permessage-deflate" });
    expect(ws.headers.has("sec-websocket-extensions")).toBe(false);
    ws.sendFrames(frame(TEXT, deflateMessage("hi"), { rsv1: true }));
    await flushMemory();
    expect(closeOf(ws.frames()[0]!).code).toBe(1002);
  });

  it("accepts an offer and echoes compressed messages, threshold applied", async () => {
    class Eager extends Compressed {
      static override options = { threshold: 0 };
    }
    const t = serveWs([["/ws", Eager]]);
    const ws = await t.open("/ws", { "Sec-WebSocket-Extensions": "permessage-deflate; server_no_context_takeover; client_no_context_takeover" });
    expect(ws.headers.get("sec-websocket-extensions")).toBe("permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    const text = "compress me ".repeat(100);
    ws.sendFrames(frame(TEXT, deflateMessage(text), { rsv1: true }), frame(TEXT, deflateMessage("again"), { rsv1: true }));
    await flushMemory();
    const frames = ws.frames();
    expect(frames.map((f) => f.rsv1)).toEqual([true, true]);
    expect(frames[0]!.payload.length).toBeLessThan(text.length / 5);
    expect(frames.map((f) => inflateMessage(f.payload).toString())).toEqual([text, "again"]);
  });

  it("imposes its own parameters (server_max_window_bits, client_no_context_takeover)", async () => {
    class Strict extends Compressed {
      static override options = { serverMaxWindowBits: 10, clientNoContextTakeover: true, serverNoContextTakeover: true };
    }
    const t = serveWs([["/ws", Strict]]);
    const ws = await t.open("/ws", { "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits" });
    expect(ws.headers.get("sec-websocket-extensions")).toBe(
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10",
    );
    const big = Buffer.alloc(5000, "ab");
    ws.sendFrames(frame(BINARY, deflateMessage(big), { rsv1: true }));
    await flushMemory();
    const f = ws.frames()[0]!;
    expect(f.rsv1).toBe(true);
    expect(inflateMessage(f.payload).equals(big)).toBe(true);
  });
});

describe("graceful shutdown", () => {
  it("closes open WebSockets with 1001 and resolves once they are closed", async () => {
    const { Recorder, log } = recorder();
    const t = serveWs([["/ws", Recorder]]);
    const a = await t.open("/ws");
    const b = await t.open("/ws");
    let done = false;
    const closing = t.server.close().then(() => (done = true));
    await flushMemory();
    for (const ws of [a, b]) expect(closeOf(ws.frames()[0]!)).toEqual({ code: 1001, reason: "Going Away" });
    expect(done).toBe(false);
    a.sendFrames(frame(CLOSE, closeBody(1001)));
    await flushMemory();
    expect(done).toBe(false);
    b.sendFrames(frame(CLOSE, closeBody(1001)));
    await closing;
    expect(a.closed && b.closed).toBe(true);
    expect(log.filter((l) => l.startsWith("close"))).toEqual(['close 1001 ""', 'close 1001 ""']);
  });

  it("does not wait past the close timeout for a peer that never answers", async () => {
    const { Recorder } = recorder();
    const t = serveWs([["/ws", Recorder]]);
    const ws = await t.open("/ws");
    let done = false;
    const closing = t.server.close().then(() => (done = true));
    await flushMemory();
    expect(done).toBe(false);
    t.clock.advance(5000);
    await closing;
    expect(ws.closed).toBe(true);
  });
});
