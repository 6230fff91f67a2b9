/**
 * `Bun.serve`'s WebSocket echo (for comparison only, with `--only bun-ws`):
 * every message back as it came. `BENCH_WS_COMPRESS=1` accepts
 * permessage-deflate.
 *
 * Run with `bun bench/ws/bun-echo.ts`.
 */
import { BENCH_HOST, benchPort, exitWithRunner, gcOnRequest } from "../servers/common";
import { bunGlobal } from "../servers/bun-global";

exitWithRunner("bun-ws-echo");
gcOnRequest();

bunGlobal("bun-ws-echo").serve({
  hostname: BENCH_HOST,
  port: benchPort(),
  fetch(request, server) {
    if (server.upgrade(request)) return undefined;
    return new Response("WebSocket only", { status: 400 });
  },
  websocket: {
    perMessageDeflate: process.env.BENCH_WS_COMPRESS === "1",
    maxPayloadLength: 64 * 1024 * 1024,
    message(ws, message) {
      ws.send(message);
    },
  },
});
