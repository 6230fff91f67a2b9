/**
 * The Autobahn client runner (examples/autobahn-client.ts) against a small
 * fake of the suite's fuzzingserver on a memory transport: the same URLs
 * (`/getCaseCount`, `/runCase?case=N&agent=A`, `/updateReports?agent=A`),
 * a handshake written by hand that accepts permessage-deflate only for the
 * cases that negotiate it (as the fuzzingserver does for 12.x and 13.x),
 * and a few cases played with frames written by hand, each judged on what
 * the client sends back. So the runner cannot rot: a wrong URL, an echo
 * that changes the message type, no compression offer, or a message limit
 * under 64 MiB fails here.
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import * as zlib from "node:zlib";
import { describe, expect, it } from "vitest";
import { AUTOBAHN_MAX_MESSAGE_SIZE, runAutobahnClient } from "../../examples/autobahn-client";
import { websocketConnect } from "../../src/client/websocket";
import { MemoryTransport, type MemoryConnection } from "../../src/transports/memory";
import { BINARY, CLOSE, closeBody, closeOf, deflateMessage, frame, PING, PONG, TAIL, TEXT, utf8, type Frame } from "./helpers";

const s = { mask: null } as const;
const SYNC = { finishFlush: zlib.constants.Z_SYNC_FLUSH };

/** A case of the fake fuzzingserver: what it sends, what it expects back. */
interface FakeCase {
  readonly id: string;
  /** The answer to a permessage-deflate offer; the case fails if none was offered. */
  readonly extensions?: string;
  /** Frames (or pieces of frames) sent after the 101. */
  readonly send: readonly Uint8Array[];
  /** The client's frames, summarised (see `describeFrame`), ending with its close when it fails the connection. */
  readonly expect: readonly string[];
}

const digest = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex").slice(0, 16);

const kosme = Buffer.from("cebae1bdb9cf83cebcceb5", "hex");
const big = Buffer.from(Array.from({ length: 65536 }, (_, i) => (i * 31) & 0xff));
/** 64 MiB of zeros: the message size limit the runner must allow, compressed to about 64 KiB on the wire. */
const huge = Buffer.alloc(AUTOBAHN_MAX_MESSAGE_SIZE);
const compressible = "Hello, compressed world! ".repeat(80);

function chops(bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

const CASES: readonly FakeCase[] = [
  { id: "1.1.2", send: [frame(TEXT, "*".repeat(125), s)], expect: [`text ${"*".repeat(125)}`] },
  { id: "1.2.8", send: chops(frame(BINARY, big, s), 997), expect: [`binary ${big.length} ${digest(big)}`] },
  {
    id: "5.6",
    send: [frame(TEXT, "fragment1", { ...s, fin: false }), frame(PING, "pongme!", s), frame(0, "fragment2", s)],
    expect: ["pong pongme!", "text fragment1fragment2"],
  },
  // Fails fast: the last fragment never comes.
  { id: "6.4.1", send: [frame(TEXT, kosme, { ...s, fin: false }), frame(0, Buffer.from("f4908080", "hex"), { ...s, fin: false })], expect: ["close 1007"] },
  { id: "7.7.13", send: [frame(CLOSE, closeBody(4999), s)], expect: ["close 4999"] },
  {
    id: "12.1.5",
    extensions: "permessage-deflate",
    send: [frame(TEXT, deflateMessage(compressible), { ...s, rsv1: true }), frame(TEXT, deflateMessage(compressible), { ...s, rsv1: true })],
    expect: [`text(z) ${compressible}`, `text(z) ${compressible}`],
  },
  {
    id: "13.3.1",
    extensions: "permessage-deflate; client_no_context_takeover; server_max_window_bits=9",
    send: [frame(BINARY, deflateMessage(huge, 9), { ...s, rsv1: true })],
    expect: [`binary(z) ${huge.length} ${digest(huge)}`],
  },
];

/** Records what the runner asked for, and each case's verdict. */
interface FakeLog {
  requests: string[];
  offers: Array<string | null>;
  verdicts: Map<string, string>;
}

/**
 * One connection to the fake fuzzingserver. Reads the request head, answers
 * 101, then plays the endpoint: the case count, a case, or the reports.
 */
function serveConnection(conn: MemoryConnection, log: FakeLog): void {
  let input = Buffer.alloc(0);
  let headDone = false;
  let sentClose = false;
  let current: FakeCase | null = null;
  let noContextTakeover = false;
  /** The client's frames of the case, described once each as they arrive. */
  const got: string[] = [];
  let unmasked = false;
  const compressed: Buffer[] = [];
  let inflatedSoFar = 0;

  const send = (bytes: Uint8Array) => conn.write(bytes);
  const close = (code: number) => {
    if (sentClose) return;
    sentClose = true;
    send(frame(CLOSE, closeBody(code), s));
  };

  const describeFrame = (f: Frame): string => {
    let payload: Buffer = f.payload;
    if (f.rsv1) {
      if (noContextTakeover) {
        payload = zlib.inflateRawSync(Buffer.concat([f.payload, TAIL]), SYNC);
      } else {
        compressed.push(f.payload, TAIL);
        const all = zlib.inflateRawSync(Buffer.concat(compressed), SYNC);
        payload = all.subarray(inflatedSoFar);
        inflatedSoFar = all.length;
      }
    }
    const z = f.rsv1 ? "(z)" : "";
    switch (f.opcode) {
      case TEXT:
        return `text${z} ${payload.toString()}`;
      case BINARY:
        return `binary${z} ${payload.length} ${digest(payload)}`;
      case PONG:
        return `pong ${payload.toString()}`;
      case CLOSE:
        return `close ${closeOf(f).code ?? "none"}`;
      default:
        return `opcode ${f.opcode}`;
    }
  };

  const judge = (f: Frame) => {
    if (current === null || log.verdicts.has(current.id)) return;
    try {
      got.push(describeFrame(f));
    } catch (error) {
      got.push(`undecodable: ${(error as Error).message}`);
    }
    unmasked ||= !f.masked;
    if (unmasked) return void log.verdicts.set(current.id, "an unmasked frame");
    if (got.length < current.expect.length && f.opcode !== CLOSE) return;
    const verdict = JSON.stringify(got) === JSON.stringify(current.expect) ? "OK" : `got ${JSON.stringify(got)}`;
    log.verdicts.set(current.id, verdict);
    close(1000);
  };

  /** Takes the complete frames at the start of `input`. */
  const readFrames = () => {
    for (;;) {
      if (input.length < 2) return;
      let n = input[1]! & 0x7f;
      let at = 2;
      if (n === 126) {
        if (input.length < 4) return;
        n = input.readUInt16BE(2);
        at = 4;
      } else if (n === 127) {
        if (input.length < 10) return;
        n = Number(input.readBigUInt64BE(2));
        at = 10;
      }
      const masked = (input[1]! & 0x80) !== 0;
      const end = at + (masked ? 4 : 0) + n;
      if (input.length < end) return;
      const b0 = input[0]!;
      const key = masked ? input.subarray(at, at + 4) : null;
      const payload = Buffer.from(input.subarray(end - n, end));
      if (key !== null) for (let i = 0; i < n; i++) payload[i]! ^= key[i & 3]!;
      input = input.subarray(end);
      const f: Frame = { fin: (b0 & 0x80) !== 0, rsv1: (b0 & 0x40) !== 0, opcode: b0 & 0x0f, masked, payload };
      judge(f);
      if (f.opcode === CLOSE) {
        // The client answered (or started) the closing handshake: echo it if need be, then the server closes TCP first.
        close(closeOf(f).code ?? 1000);
        conn.end();
        return;
      }
    }
  };

  const onHead = (head: string) => {
    const target = /^GET (\S+) HTTP\/1\.1\r\n/.exec(head)?.[1] ?? "";
    const url = new URL(target, "ws://fuzzingserver");
    log.requests.push(`${url.pathname}${url.search}`);
    const key = /\r\nsec-websocket-key: *(\S+)/i.exec(head)?.[1] ?? "";
    const offer = /\r\nsec-websocket-extensions: *([^\r]+)/i.exec(head)?.[1] ?? null;
    const accept = createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
    let extensions = "";
    if (url.pathname === "/runCase") {
      log.offers.push(offer);
      current = CASES[Number(url.searchParams.get("case")) - 1] ?? null;
      if (current?.extensions !== undefined) {
        if (offer === null || !/^permessage-deflate\b/.test(offer)) log.verdicts.set(current.id, "permessage-deflate was not offered");
        else {
          extensions = `Sec-WebSocket-Extensions: ${current.extensions}\r\n`;
          noContextTakeover = current.extensions.includes("client_no_context_takeover");
        }
      }
    }
    send(utf8(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n${extensions}\r\n`));
    switch (url.pathname) {
      case "/getCaseCount":
        send(frame(TEXT, String(CASES.length), s));
        close(1000);
        return;
      case "/updateReports":
        close(1000);
        return;
      case "/runCase":
        if (current === null) return close(1000);
        for (const piece of current.send) {
          send(piece);
          if (piece[0] === 0x88) sentClose = true; // the case closes itself
        }
        return;
      default:
        close(1008);
    }
  };

  conn.setHandler({
    data: (chunk) => {
      input = Buffer.concat([input, chunk]);
      if (!headDone) {
        const end = input.indexOf("\r\n\r\n");
        if (end === -1) return;
        headDone = true;
        const head = input.subarray(0, end + 2).toString("latin1");
        input = input.subarray(end + 4);
        onHead(head);
      }
      readFrames();
    },
    end: () => conn.end(),
    drain: () => {},
    close: () => {},
  });
}

describe("examples/autobahn-client.ts against a fake fuzzingserver", () => {
  it("asks for the case count, runs every case as an echo loop with compression offered and 64 MiB messages, then updates the reports", async () => {
    const transport = new MemoryTransport();
    const log: FakeLog = { requests: [], offers: [], verdicts: new Map() };
    await transport.listen({ port: 9001 }, (conn) => serveConnection(conn as MemoryConnection, log));
    const lines: string[] = [];
    const result = await runAutobahnClient({ url: "ws://fuzzingserver:9001", agent: "typhoon-test", connect: { transport }, log: (line) => lines.push(line) });
    expect(result).toEqual({ cases: CASES.length, notOpened: [] });
    expect(log.requests).toEqual([
      "/getCaseCount",
      ...CASES.map((_, i) => `/runCase?case=${i + 1}&agent=typhoon-test`),
      "/updateReports?agent=typhoon-test",
    ]);
    expect(log.offers).toEqual(CASES.map(() => "permessage-deflate; client_max_window_bits"));
    expect(Object.fromEntries(log.verdicts)).toEqual(Object.fromEntries(CASES.map((c) => [c.id, "OK"])));
    expect(lines.at(0)).toBe(`${CASES.length} cases on ws://fuzzingserver:9001, agent typhoon-test`);
    expect(lines.at(-1)).toBe("reports updated");
  });

  it("the fake fuzzingserver fails a client that does not echo (so a broken runner would be caught)", async () => {
    const transport = new MemoryTransport();
    const log: FakeLog = { requests: [], offers: [], verdicts: new Map() };
    await transport.listen({ port: 9001 }, (conn) => serveConnection(conn as MemoryConnection, log));
    const ws = await websocketConnect("ws://fuzzingserver:9001/runCase?case=1&agent=silent", { transport });
    // Reads without echoing; the fake judges once the server's close comes back answered.
    for await (const message of ws) if (message !== "") void ws.close(1000);
    expect(log.verdicts.get("1.1.2")).toBe('got ["close 1000"]');
  });
});
