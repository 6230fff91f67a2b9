/**
 * `Bun.serve` hello world: the reference typhoon on Bun is compared with.
 * The same bytes as the other servers: `200`, `Content-Type: text/plain`,
 * body `Hello, world` (Bun adds `Date` and `Content-Length`).
 *
 * Run with `bun bench/servers/bun-serve.ts`.
 */
import { BENCH_HOST, benchPort, exitWithRunner } from "./common";
import { bunGlobal } from "./bun-global";

exitWithRunner("bun-serve");

const HEADERS = { "Content-Type": "text/plain" };

bunGlobal("bun-serve").serve({
  hostname: BENCH_HOST,
  port: benchPort(),
  fetch(): Response {
    return new Response("Hello, world", { headers: HEADERS });
  },
});
