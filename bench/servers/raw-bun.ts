/**
 * The Bun ceiling: a `Bun.listen` server that parses nothing and writes one
 * canned response (the bytes typhoon's bare server sends) per `\r\n\r\n`
 * seen, across chunks, all the responses owed for one chunk in one write,
 * as `raw-net.ts` does on Node. What the kernel does not take at once is
 * kept and written on `drain` (Bun does not keep it).
 *
 * It counts the requests it answered; a line `count` on stdin prints
 * `count <n>` on stdout (the runner checks wrk's count against it).
 *
 * Run with `bun bench/servers/raw-bun.ts`.
 */
import { Buffer } from "node:buffer";
import { BENCH_HOST, benchPort, exitWithRunner } from "./common";
import { bunGlobal, type BunTcpSocket } from "./bun-global";
import { cannedResponses, countHeadEnds } from "./count-heads";

exitWithRunner("raw-bun");

interface State {
  headState: number;
  /** Bytes the kernel did not take yet. */
  pending: Buffer | null;
}

let answered = 0;

function send(socket: BunTcpSocket<State>, bytes: Buffer): void {
  const s = socket.data;
  if (s.pending !== null) {
    s.pending = Buffer.concat([s.pending, bytes]);
    return;
  }
  const n = socket.write(bytes);
  if (n >= 0 && n < bytes.length) s.pending = Buffer.from(bytes.subarray(n));
}

bunGlobal("raw-bun").listen<State>({
  hostname: BENCH_HOST,
  port: benchPort(),
  socket: {
    open(socket) {
      socket.data = { headState: 0, pending: null };
      socket.setNoDelay?.(true);
    },
    data(socket, chunk) {
      const counted = countHeadEnds(chunk as Buffer, socket.data.headState);
      socket.data.headState = counted.state;
      if (counted.count > 0) {
        answered += counted.count;
        send(socket, cannedResponses(counted.count));
      }
    },
    drain(socket) {
      const pending = socket.data.pending;
      if (pending === null) return;
      socket.data.pending = null;
      send(socket, pending);
    },
  },
});

process.stdin.setEncoding("latin1");
process.stdin.on("data", (text: string) => {
  if (text.includes("count")) process.stdout.write(`count ${answered}\n`);
});
