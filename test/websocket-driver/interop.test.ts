/**
 * Interoperability over real sockets on 127.0.0.1, with and without
 * permessage-deflate: the demo's server with the `ws` client, Python's
 * `websockets` client and a real Chromium page (the chat demo); the
 * typhoon client with a `ws` server and a Tornado 6.2 server.
 */
import { Buffer } from "node:buffer";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import { makeApp } from "../../examples/app";
import { websocketConnect } from "../../src/client/websocket";
import type { HTTPServer } from "../../src/server";
import { Application, WebSocketHandler } from "../../src/web";
import { deferred, RecordingLogger } from "./helpers";

const PYTHON = "/usr/bin/python3";
const CHROMIUM = "/usr/bin/chromium";
const here = (name: string) => fileURLToPath(new URL(`./${name}`, import.meta.url));
const fixture = (name: string) => readFileSync(fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url)), "utf8");
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/** Runs a program to its end; resolves with its exit code and output. */
function run(command: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Resolves with the next event `name` of a `ws` socket. */
function once<T extends unknown[]>(ws: WebSocket, name: string): Promise<T> {
  return new Promise((resolve, reject) => {
    ws.once(name, (...args: unknown[]) => resolve(args as T));
    if (name !== "error") ws.once("error", reject);
  });
}

describe("typhoon's server (the demo app) with other clients", () => {
  let server: HTTPServer;
  let base: string;
  const logger = new RecordingLogger();

  beforeAll(async () => {
    server = await makeApp({ logger }).listen(0, "127.0.0.1");
    base = `127.0.0.1:${server.address!.port}`;
  });
  afterAll(async () => {
    await server.close({ timeout: 5000 });
  });

  it.each([false, true])("the ws client echoes through /ws/echo (permessage-deflate: %s)", async (deflate) => {
    const ws = new WebSocket(`ws://${base}/ws/echo`, { perMessageDeflate: deflate });
    await once(ws, "open");
    expect(ws.extensions).toBe(deflate ? "permessage-deflate" : "");
    const next = () => once<[Buffer, boolean]>(ws, "message");
    let got = next();
    ws.send("hello from ws");
    let [data, isBinary] = await got;
    expect([data.toString(), isBinary]).toEqual(["hello from ws", false]);
    const binary = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 31) & 0xff));
    got = next();
    ws.send(binary);
    [data, isBinary] = await got;
    expect(isBinary).toBe(true);
    expect(Buffer.from(data).equals(binary)).toBe(true);
    const big = "typhoon ".repeat(512 * 1024); // 4 MiB
    got = next();
    ws.send(big);
    [data] = await got;
    expect(data.toString()).toBe(big);
    const pong = once<[Buffer]>(ws, "pong");
    ws.ping("ws-ping");
    expect((await pong)[0].toString()).toBe("ws-ping");
    const closed = once<[number, Buffer]>(ws, "close");
    ws.close(4000, "ws done");
    const [code, reason] = await closed;
    expect(code).toBe(4000);
    expect(reason.toString()).toBe("");
  });

  it.each(["none", "deflate"])("Python's websockets client echoes through /ws/echo (compression: %s)", async (mode) => {
    const { code, stdout, stderr } = await run(PYTHON, [here("python_ws_client.py"), `ws://${base}/ws/echo`, mode]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const result = JSON.parse(stdout) as Record<string, unknown>;
    expect(result).toEqual({
      extensions: mode === "none" ? null : "permessage-deflate",
      text: "Hello, typhoon",
      binary: true,
      big: true,
      pong: true,
      close_code: 4001,
      close_reason: "",
    });
  });

  it("a Chromium page opens the chat, posts a message and sees it broadcast, escaped", async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    try {
      const listener = await websocketConnect(`ws://${base}/chatsocket`);
      const page = await browser.newPage();
      const requests: string[] = [];
      page.on("websocket", (ws) => requests.push(ws.url()));
      await page.goto(`http://${base}/chat`);
      await page.waitForFunction(() => document.getElementById("status")?.textContent === "connected");
      const text = `<b>bold?</b> & "quotes" ${Date.now()}`;
      await page.fill("#message", text);
      await page.press("#message", "Enter");
      // The page shows its own message, as text, from the broadcast.
      await page.waitForFunction((t) => Array.from(document.querySelectorAll("#inbox .message")).some((m) => m.textContent === t), text);
      expect(await page.locator("#inbox b").count()).toBe(0);
      expect(await page.inputValue("#message")).toBe("");
      // Another listener got the same broadcast.
      const message = JSON.parse((await listener.readMessage()) as string) as { id: string; body: string; html: string };
      expect(message.body).toBe(text);
      expect(message.html).toBe(`<div class="message" id="m${message.id}">&lt;b&gt;bold?&lt;/b&gt; &amp; &quot;quotes&quot; ${text.split(" ").pop()}</div>\n`);
      expect(requests).toEqual([`ws://${base}/chatsocket`]);
      // A newcomer sees it too: the page is rendered with the cached messages.
      const second = await browser.newPage();
      await second.goto(`http://${base}/chat`);
      expect(await second.locator(`#m${message.id}`).textContent()).toBe(text);
      await listener.close();
    } finally {
      await browser.close();
    }
  });
});

describe("Chromium's WebSocket with and without permessage-deflate", () => {
  class Plain extends WebSocketHandler {
    override checkOrigin() {
      return true;
    }
    override onMessage(message: string | Uint8Array) {
      void this.writeMessage(typeof message === "string" ? `echo: ${message}` : message);
    }
  }
  class Deflate extends Plain {
    override getCompressionOptions() {
      return { threshold: 0 };
    }
  }

  it("opens both, and echoes text and binary through each", async () => {
    const server = await new Application([["/plain", Plain], ["/deflate", Deflate]], { logger: new RecordingLogger() }).listen(0, "127.0.0.1");
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    try {
      const page = await browser.newPage();
      // A string, so that the page's WebSocket is not taken for the `ws` import of this file.
      const results = (await page.evaluate(`(async (port) => {
        const exchange = (path) => new Promise((resolve, reject) => {
          const ws = new WebSocket("ws://127.0.0.1:" + port + path);
          ws.binaryType = "arraybuffer";
          const got = [];
          ws.onerror = () => reject(new Error("WebSocket error on " + path));
          ws.onopen = () => {
            ws.send("from chromium ".repeat(100));
            ws.send(new Uint8Array([1, 2, 3, 250]));
          };
          ws.onmessage = (e) => {
            got.push(e.data);
            if (got.length === 2) ws.close(4010, "page done");
          };
          ws.onclose = (e) => resolve({ extensions: ws.extensions, text: got[0], binary: Array.from(new Uint8Array(got[1])), code: e.code });
        });
        return [await exchange("/plain"), await exchange("/deflate")];
      })(${server.address!.port})`)) as Array<{ extensions: string; text: string; binary: number[]; code: number }>;
      for (const [i, r] of results.entries()) {
        expect(r.extensions).toBe(i === 0 ? "" : "permessage-deflate");
        expect(r.text).toBe(`echo: ${"from chromium ".repeat(100)}`);
        expect(r.binary).toEqual([1, 2, 3, 250]);
        expect(r.code).toBe(4010);
      }
    } finally {
      await browser.close();
      await server.close({ timeout: 5000 });
    }
  });
});

describe("typhoon's client with typhoon's server over real TLS", () => {
  it.each([false, true])("wss:// with the node transport (permessage-deflate: %s)", async (deflate) => {
    const server = await makeApp({ logger: new RecordingLogger() }).listen({ port: 0, host: "127.0.0.1", tls: { key: fixture("localhost-key.pem"), cert: fixture("localhost-cert.pem") } });
    try {
      const ws = await websocketConnect(`wss://localhost:${server.address!.port}/ws/echo`, { tls: { ca: fixture("localhost-cert.pem") }, compression: deflate });
      expect(ws.headers.get("Sec-WebSocket-Extensions")).toBe(deflate ? "permessage-deflate" : undefined);
      const big = Buffer.alloc(2 * 1024 * 1024, "tls");
      await ws.writeMessage(big);
      expect(Buffer.from((await ws.readMessage()) as Uint8Array).equals(big)).toBe(true);
      await ws.writeMessage("secure hello");
      expect(await ws.readMessage()).toBe("secure hello");
      await ws.close(1000);
      expect(ws.closeCode).toBe(1000);
      // Without the CA, the certificate is refused.
      await expect(websocketConnect(`wss://localhost:${server.address!.port}/ws/echo`)).rejects.toThrow();
    } finally {
      await server.close({ timeout: 5000 });
    }
  });
});

describe("typhoon's client with other servers", () => {
  it.each([false, true])("a ws server (permessage-deflate: %s)", async (deflate) => {
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: deflate });
    await once(wss as unknown as WebSocket, "listening");
    // Resolved by the ws sockets' close events: the first connection (closed by
    // the server with 4003) and the second (closed by the client with 4004).
    const serverCloses = [deferred<[number, string]>(), deferred<[number, string]>()];
    let connections = 0;
    wss.on("connection", (socket) => {
      const closed = serverCloses[connections++]!;
      socket.on("message", (data, isBinary) => {
        if (!isBinary && data.toString() === "close please") socket.close(4003, "ws server done");
        else socket.send(data, { binary: isBinary });
      });
      socket.on("close", (code, reason) => closed.resolve([code, reason.toString()]));
    });
    try {
      const port = (wss.address() as { port: number }).port;
      const ws = await websocketConnect(`ws://127.0.0.1:${port}/`, { compression: deflate ? { threshold: 0 } : false });
      expect(ws.headers.get("Sec-WebSocket-Extensions")).toBe(deflate ? "permessage-deflate" : undefined);
      await ws.writeMessage("hello ws");
      expect(await ws.readMessage()).toBe("hello ws");
      const big = Buffer.alloc(3 * 1024 * 1024, "abc");
      await ws.writeMessage(big);
      expect(Buffer.from((await ws.readMessage()) as Uint8Array).equals(big)).toBe(true);
      for (let i = 0; i < 50; i++) void ws.writeMessage(`m${i}`);
      for (let i = 0; i < 50; i++) expect(await ws.readMessage()).toBe(`m${i}`);
      await ws.writeMessage("close please");
      expect(await ws.readMessage()).toBe(null);
      expect([ws.closeCode, ws.closeReason]).toEqual([4003, "ws server done"]);
      // And a close started by the client.
      const ws2 = await websocketConnect(`ws://127.0.0.1:${port}/`, { compression: deflate });
      await ws2.close(4004, "client done");
      expect(ws2.closeCode).toBe(4004);
      // ws reports the close it received: our echo of its 4003 (the code only), then our own 4004.
      expect(await serverCloses[0]!.promise).toEqual([4003, ""]);
      expect(await serverCloses[1]!.promise).toEqual([4004, "client done"]);
    } finally {
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    }
  });

  describe("a Tornado 6.2 server", () => {
    let child: ReturnType<typeof spawn>;
    let port = 0;
    beforeAll(async () => {
      child = spawn(PYTHON, [here("tornado_ws_server.py")], { stdio: ["pipe", "pipe", "inherit"] });
      port = await new Promise<number>((resolve, reject) => {
        let out = "";
        child.stdout!.on("data", (d: Buffer) => {
          out += d.toString();
          const m = /PORT (\d+)/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        child.on("error", reject);
        child.on("exit", (code) => reject(new Error(`The Tornado server exited with ${code}`)));
      });
    });
    afterAll(async () => {
      const exited = new Promise((resolve) => child.on("exit", resolve));
      child.stdin!.end();
      await exited;
    });

    it.each([
      ["/ws", false],
      ["/ws-deflate", true],
    ] as const)("%s (permessage-deflate: %s)", async (path, deflate) => {
      const ws = await websocketConnect(`ws://127.0.0.1:${port}${path}`, { compression: true });
      const extensions = ws.headers.get("Sec-WebSocket-Extensions");
      if (deflate) expect(extensions).toMatch(/^permessage-deflate/);
      else expect(extensions).toBe(undefined);
      await ws.writeMessage("extensions");
      expect(await ws.readMessage()).toBe("permessage-deflate; client_max_window_bits");
      await ws.writeMessage("héllo tornado ✓");
      expect(await ws.readMessage()).toBe("héllo tornado ✓");
      const binary = Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 13) & 0xff));
      await ws.writeMessage(binary);
      expect(Buffer.from((await ws.readMessage()) as Uint8Array).equals(binary)).toBe(true);
      const big = "tornado ".repeat(128 * 1024); // 1 MiB, under Tornado's 10 MiB limit
      await ws.writeMessage(big);
      expect(await ws.readMessage()).toBe(big);
      await ws.writeMessage("close please");
      expect(await ws.readMessage()).toBe(null);
      expect([ws.closeCode, ws.closeReason]).toEqual([4002, "tornado done"]);
      // A close started by the client reaches Tornado's on_close with its code.
      const ws2 = await websocketConnect(`ws://127.0.0.1:${port}${path}`, { compression: deflate });
      await ws2.close(4005, "bye tornado");
      expect(ws2.closeCode).toBe(4005);
      const ws3 = await websocketConnect(`ws://127.0.0.1:${port}${path}`);
      await ws3.writeMessage("last close");
      expect(await ws3.readMessage()).toBe("(4005, 'bye tornado')");
      await ws3.close();
    });
  });
});
