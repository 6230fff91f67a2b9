/**
 * The `ws` package's echo, the reference: `new WebSocketServer({ port,
 * perMessageDeflate })` and every message sent back as it came (text as
 * text, binary as binary). `ws` is used as installed (no `bufferutil` or
 * `utf-8-validate`: its JavaScript masking and Node's `buffer.isUtf8`).
 *
 * Environment: `BENCH_WS_COMPRESS=1` accepts permessage-deflate (ws's
 * defaults: 1 KiB threshold, level from zlib, context takeover);
 * `BENCH_GC=1` (with `node --expose-gc`) answers `gc` on stdin with the
 * memory after a full collection.
 */
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import { BENCH_HOST, benchPort, exitWithRunner, gcOnRequest } from "../servers/common";

exitWithRunner("ws-echo");
gcOnRequest();

const wss = new WebSocketServer({ host: BENCH_HOST, port: benchPort(), perMessageDeflate: process.env.BENCH_WS_COMPRESS === "1" });
wss.on("connection", (ws: WebSocket) => {
  ws.on("message", (data: RawData, isBinary: boolean) => ws.send(data, { binary: isBinary }));
  ws.on("error", () => {});
});
