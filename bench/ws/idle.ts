/**
 * Idle WebSocket connections for the memory benchmark, on Bun's client,
 * driven by lines on stdin so that the runner can measure the server
 * between steps:
 *
 *   open <n>   opens n more connections (at most 256 handshakes at a time)
 *              and answers `opened <total>`
 *   message    every open connection sends one message (`--size` bytes,
 *              binary) and waits for its echo; answers `echoed <n>`
 *   close      closes every connection and answers `closed` once the
 *              server has closed them all
 *
 *   npx bun bench/ws/idle.ts --url ws://127.0.0.1:8888/ [--compress] [--size 32]
 *
 * Errors (a connection refused or closed by the server, an echo that
 * differs) go to stderr and exit 1.
 *
 * @module
 */
import process from "node:process";
import { onStdinLines } from "../servers/common";
import { textPayload } from "./payload";

const USAGE = "Usage: bun bench/ws/idle.ts --url ws://host:port/path [--compress] [--size 32]";
let url = "";
let compress = false;
let size = 32;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]!;
  if (a === "--url") url = argv[++i] ?? "";
  else if (a === "--compress") compress = true;
  else if (a === "--size") size = Number(argv[++i]);
  else fail(`unknown argument ${JSON.stringify(a)}\n${USAGE}`);
}
if (!/^wss?:\/\//.test(url) || !Number.isInteger(size) || size < 1) fail(USAGE);
if (typeof (globalThis as { Bun?: unknown }).Bun !== "object") fail("run it with Bun (npx bun bench/ws/idle.ts ...)");

function fail(message: string): never {
  process.stderr.write(`ws-idle: ${message}\n`);
  process.exit(1);
}

type BunWebSocketConstructor = new (url: string, options: { perMessageDeflate?: boolean }) => WebSocket;
const BunWebSocket = WebSocket as unknown as BunWebSocketConstructor;
const MESSAGE = new TextEncoder().encode(textPayload(size, 1));
/** Handshakes in progress at most (the server's listen backlog is 511 on Node). */
const CONCURRENT_OPENS = 256;

const sockets = new Set<WebSocket>();
let closing = false;
let echoWaiters = 0;
let onEchoed: (() => void) | null = null;
let onAllClosed: (() => void) | null = null;

function openOne(): Promise<void> {
  return new Promise((resolve) => {
    const ws = new BunWebSocket(url, { perMessageDeflate: compress });
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      if (compress && !/permessage-deflate/.test(ws.extensions)) fail(`the server did not accept permessage-deflate (extensions: ${JSON.stringify(ws.extensions)})`);
      if (!compress && ws.extensions !== "") fail(`an extension was agreed although none was offered: ${JSON.stringify(ws.extensions)}`);
      sockets.add(ws);
      resolve();
    };
    ws.onmessage = (event: MessageEvent) => {
      const data = event.data as ArrayBuffer | string;
      if (typeof data === "string" || data.byteLength !== MESSAGE.length) fail("an echo differs from the message sent");
      if (--echoWaiters === 0) onEchoed?.();
    };
    ws.onerror = () => {
      if (!closing) fail(`a connection failed (${sockets.size} open; is the file limit high enough? ulimit -n is per process)`);
    };
    ws.onclose = (event: CloseEvent) => {
      sockets.delete(ws);
      if (!closing) fail(`the server closed a connection: code ${event.code} ${JSON.stringify(event.reason)} (${sockets.size} open)`);
      if (sockets.size === 0) onAllClosed?.();
    };
  });
}

async function open(n: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      await openOne();
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENT_OPENS, n) }, worker));
}

async function handle(line: string): Promise<void> {
  const [command, arg] = line.trim().split(/\s+/);
  if (command === "open") {
    const n = Number(arg);
    if (!Number.isInteger(n) || n < 1) fail(`open needs a count, got ${JSON.stringify(arg)}`);
    await open(n);
    process.stdout.write(`opened ${sockets.size}\n`);
  } else if (command === "message") {
    echoWaiters = sockets.size;
    const done = new Promise<void>((resolve) => (onEchoed = resolve));
    for (const ws of sockets) ws.send(MESSAGE);
    await done;
    process.stdout.write(`echoed ${sockets.size}\n`);
  } else if (command === "close") {
    closing = true;
    const done = new Promise<void>((resolve) => (onAllClosed = resolve));
    if (sockets.size > 0) {
      for (const ws of sockets) ws.close(1000);
      await done;
    }
    closing = false;
    process.stdout.write("closed\n");
  } else if (command !== "") {
    fail(`unknown command ${JSON.stringify(line)}`);
  }
}

// Commands run one after the other.
let chain = Promise.resolve();
onStdinLines((line) => {
  chain = chain.then(() => handle(line));
});
process.stdin.on("end", () => process.exit(0));
process.stdout.write("ready\n");
