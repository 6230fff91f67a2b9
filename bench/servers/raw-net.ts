/**
 * The ceiling: a `node:net` server that parses nothing and writes one canned
 * response (the same bytes typhoon's bare server sends) per request. A
 * request is counted per `\r\n\r\n` seen, across chunk boundaries, so that
 * pipelined requests get one response each (GET requests only: no bodies).
 * All responses owed for one chunk go out in one write, as typhoon does.
 *
 * It counts the requests it answered; a line `count` on stdin prints
 * `count <n>` on stdout (the runner uses it to check wrk's figures).
 */
import * as net from "node:net";
import { Buffer } from "node:buffer";
import { BENCH_HOST, benchPort, exitWithRunner } from "./common";
import { cannedResponses, countHeadEnds } from "./count-heads";

exitWithRunner("raw-net");

let answered = 0;

interface CountingSocket extends net.Socket {
  headState: number;
}

function onData(this: CountingSocket, chunk: Buffer): void {
  const counted = countHeadEnds(chunk, this.headState);
  this.headState = counted.state;
  if (counted.count > 0) {
    answered += counted.count;
    this.write(cannedResponses(counted.count));
  }
}

function ignore(): void {}

net
  .createServer({ noDelay: true }, (socket) => {
    (socket as CountingSocket).headState = 0;
    socket.on("data", onData);
    socket.on("error", ignore);
  })
  .listen(benchPort(), BENCH_HOST);

process.stdin.setEncoding("latin1");
process.stdin.on("data", (text: string) => {
  if (text.includes("count")) process.stdout.write(`count ${answered}\n`);
});
