/**
 * typhoon's WebSocket echo: an `Application` with one `WebSocketHandler`
 * at `/`, as the demo's `/ws/echo` (examples/websocket.ts `EchoWebSocket`):
 * every message goes back as it came, text as text, binary as binary, and
 * `onMessage` returns the send's promise, so that reading waits while the
 * client is slow to read.
 *
 * Environment: `BENCH_WS_COMPRESS=1` accepts permessage-deflate (the
 * handler's `getCompressionOptions` returns `{}`: defaults, so messages
 * under 1 KiB go out uncompressed); otherwise it is declined.
 * `BENCH_WS_THRESHOLD=n` sets the threshold (0: compress every message, as
 * ws does whenever context takeover is in force). `BENCH_WS_AWAIT=0` sends
 * without returning the promise (no pause per message; an investigation).
 * `BENCH_GC=1` (with `node --expose-gc`) answers `gc` on stdin with the
 * memory after a full collection (see `gcOnRequest`).
 */
import { BENCH_HOST, benchPort, exitWithRunner, gcOnRequest } from "../servers/common";
import { Application, WebSocketHandler, type WebSocketCompressionOptions } from "../../src/web/index";

exitWithRunner("typhoon-ws-echo");
gcOnRequest();

const compress = process.env.BENCH_WS_COMPRESS === "1";
const awaitSend = process.env.BENCH_WS_AWAIT !== "0";
const threshold = process.env.BENCH_WS_THRESHOLD;
const compressionOptions: WebSocketCompressionOptions = threshold === undefined || threshold === "" ? {} : { threshold: Number(threshold) };

class EchoWebSocket extends WebSocketHandler {
  override checkOrigin(): boolean {
    return true;
  }

  override getCompressionOptions(): WebSocketCompressionOptions | null {
    return compress ? compressionOptions : null;
  }

  override onMessage(message: string | Uint8Array): Promise<void> | void {
    if (awaitSend) return this.writeMessage(message);
    void this.writeMessage(message).catch(() => {});
  }
}

const app = new Application([["/", EchoWebSocket]]);
await app.listen(benchPort(), BENCH_HOST);
