/**
 * `node:http` hello world: the reference every ratio is computed against.
 * `writeHead` sends the head at once, so without a Content-Length Node would
 * chunk the body; the length is given as typhoon's `respond` computes it.
 */
import * as http from "node:http";
import { BENCH_HOST, benchPort, exitWithRunner, forkIfAsked } from "./common";

await forkIfAsked();
exitWithRunner("node-http");
http
  .createServer((_req, res) => {
    res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": "12" });
    res.end("Hello, world");
  })
  .listen(benchPort(), BENCH_HOST);
