/**
 * WebSocket echo load generator, on Bun: opens `--connections`
 * connections, keeps `--depth` messages in flight on each (every echo
 * received sends the next message), and counts the echoes in a measured
 * window after a warm-up.
 *
 *   npx bun bench/ws/load.ts --url ws://127.0.0.1:8888/ --size 32 --depth 1 \
 *     --connections 64 --warmup 2 --duration 5 [--compress] [--text] [--client native|frames]
 *
 * Two clients, one per `--client`:
 *
 * - `native` (the default): Bun's own `WebSocket` client. Each `send()` is
 *   one write to the socket (a system call), so with many messages in
 *   flight it spends ~95% of its CPU in `send` and saturates its CPU at
 *   about 150,000 messages/s of 32 bytes, whatever the depth: enough to
 *   load one server CPU with one message in flight, not with 16.
 * - `frames`: pre-built frames over `Bun.connect`, as a pipelining HTTP
 *   client does: the handshake written by hand, every message's frame
 *   masked once at start, and all the frames owed on a connection (one per
 *   echo that came back in a read) written with one write. Echoes are
 *   parsed from the frame headers. With `--compress`, messages of 1 KiB or
 *   more (Bun's client sent 860 bytes uncompressed and 1,024 compressed)
 *   are deflated once at start, each on its own (sync-flushed, tail
 *   removed, RSV1 set): valid for a server that keeps its inflate context,
 *   since the message needs nothing from the window. Compressed echoes are
 *   counted, not inflated (the runner checks the bytes with the native
 *   client, at depth 1, on the same server).
 *
 * Messages are binary by default (`--text`: text), `--size` bytes of
 * JSON-like ASCII from a pool of 64 distinct ones (bench/ws/payload.ts).
 * `--compress` offers permessage-deflate and fails if the server does not
 * accept it; without it, nothing is offered (Bun's client offers it unless
 * told not to), and an agreed extension fails the run. The first echoes of
 * each connection are compared byte for byte, the rest by length.
 *
 * Output, on stdout, for the runner (bench/lib/ws-bench.ts): `BENCH_READY`
 * once every connection is open, `BENCH_START` and `BENCH_STOP` around the
 * measured window (the runner reads CPU counters when it sees them), then
 * one `BENCH_JSON {...}` line: echoes in the window, its length,
 * messages/s, round-trip percentiles (µs, per message, from its send to its
 * echo) and the extensions agreed. Exits 1 with a message on stderr when
 * anything goes wrong (a connection refused or closed, an echo that
 * differs).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import process from "node:process";
import * as zlib from "node:zlib";
import { payloadPool } from "./payload";

interface Options {
  url: string;
  connections: number;
  depth: number;
  size: number;
  warmup: number;
  duration: number;
  compress: boolean;
  text: boolean;
  client: "native" | "frames";
}

const USAGE =
  "Usage: bun bench/ws/load.ts --url ws://host:port/path [--connections 64] [--depth 1] [--size 32] [--warmup 2] [--duration 5] [--compress] [--text] [--client native|frames]";

function fail(message: string): never {
  process.stderr.write(`ws-load: ${message}\n`);
  process.exit(1);
}

function parseArgs(argv: string[]): Options {
  const o: Options = { url: "", connections: 64, depth: 1, size: 32, warmup: 2, duration: 5, compress: false, text: false, client: "native" };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const num = (min: number): number => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < min) fail(`${a} needs a number of at least ${min}\n${USAGE}`);
      return v;
    };
    if (a === "--url") o.url = argv[++i] ?? "";
    else if (a === "--connections") o.connections = Math.round(num(1));
    else if (a === "--depth") o.depth = Math.round(num(1));
    else if (a === "--size") o.size = Math.round(num(1));
    else if (a === "--warmup") o.warmup = num(0);
    else if (a === "--duration") o.duration = num(0.1);
    else if (a === "--compress") o.compress = true;
    else if (a === "--text") o.text = true;
    else if (a === "--client") {
      const c = argv[++i];
      if (c !== "native" && c !== "frames") fail(`--client is native or frames\n${USAGE}`);
      o.client = c;
    } else fail(`unknown argument ${JSON.stringify(a)}\n${USAGE}`);
  }
  if (!/^ws:\/\//.test(o.url)) fail(`--url must be a ws:// URL\n${USAGE}`);
  return o;
}

const o = parseArgs(process.argv.slice(2));

/** What this script uses of the `Bun` global. */
interface BunForLoad {
  version: string;
  connect<Data>(options: {
    hostname: string;
    port: number;
    data: Data;
    socket: {
      open?(socket: RawSocket<Data>): void;
      data?(socket: RawSocket<Data>, chunk: Buffer): void;
      drain?(socket: RawSocket<Data>): void;
      close?(socket: RawSocket<Data>): void;
      error?(socket: RawSocket<Data>, error: Error): void;
    };
  }): Promise<RawSocket<Data>>;
}

interface RawSocket<Data> {
  data: Data;
  write(data: Uint8Array, byteOffset?: number, byteLength?: number): number;
  setNoDelay?(noDelay?: boolean): boolean;
  end(): void;
}

const bun = (globalThis as { Bun?: BunForLoad }).Bun;
if (bun === undefined) fail("run it with Bun (npx bun bench/ws/load.ts ...): it uses Bun's WebSocket client and sockets");

const POOL = 64;
const texts = payloadPool(o.size, POOL);
const binaries = texts.map((t) => Buffer.from(t, "latin1"));
/** Echoes per connection compared byte for byte. */
const VERIFY_FIRST = 4;

// Round-trip histogram: buckets of 1/16 of a power of two, in µs.
const BUCKETS = 16 * 32;
const histogram = new Float64Array(BUCKETS);
function record(us: number): void {
  if (us < 1) us = 1;
  const e = Math.floor(Math.log2(us));
  const frac = us / 2 ** e - 1;
  const b = Math.min(BUCKETS - 1, e * 16 + Math.floor(frac * 16));
  histogram[b]! += 1;
}
function percentile(p: number): number {
  let total = 0;
  for (let i = 0; i < BUCKETS; i++) total += histogram[i]!;
  if (total === 0) return NaN;
  let acc = 0;
  for (let i = 0; i < BUCKETS; i++) {
    acc += histogram[i]!;
    if (acc >= total * p) return 2 ** Math.floor(i / 16) * (1 + ((i % 16) + 0.5) / 16);
  }
  return NaN;
}

let counting = false;
let counted = 0;
let finished = false;

/** One connection's bookkeeping, whichever client. */
abstract class Load {
  /** Messages sent and echoes received on this connection. */
  sent = 0;
  received = 0;
  /** Send times of the messages in flight (a ring of `depth`). */
  readonly sentAt = new Float64Array(o.depth);
  readonly offset: number;
  extensions = "";

  constructor(readonly index: number) {
    this.offset = (index * 17) % POOL;
  }

  /** Sends `n` messages (the next ones of this connection's sequence). */
  abstract send(n: number): void;

  /** An echo arrived; returns the pool index it should match. */
  protected echoed(): number {
    const n = this.received++;
    if (counting) {
      counted++;
      record((performance.now() - this.sentAt[n % o.depth]!) * 1000);
    }
    return (this.offset + n) % POOL;
  }

  protected bad(what: string): never {
    fail(`connection ${this.index}: ${what}`);
  }
}

// ------------------------------------------------------------------ native

// Bun's WebSocket takes an options object as its second argument.
type BunWebSocketConstructor = new (url: string, options: { perMessageDeflate?: boolean }) => WebSocket;

class NativeLoad extends Load {
  readonly ws: WebSocket;

  constructor(index: number, onOpen: () => void) {
    super(index);
    const ws = new (WebSocket as unknown as BunWebSocketConstructor)(o.url, { perMessageDeflate: o.compress });
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.extensions = ws.extensions;
      checkExtensions(this.extensions);
      onOpen();
    };
    ws.onmessage = (event: MessageEvent) => this.#onMessage(event.data as string | ArrayBuffer);
    ws.onerror = () => {
      if (!finished) this.bad(`WebSocket error (${o.url})`);
    };
    ws.onclose = (event: CloseEvent) => {
      if (!finished) this.bad(`closed by the server: code ${event.code} ${JSON.stringify(event.reason)} after ${this.received} echoes`);
    };
  }

  send(n: number): void {
    for (let k = 0; k < n; k++) {
      const i = (this.offset + this.sent) % POOL;
      this.sentAt[this.sent % o.depth] = performance.now();
      this.sent++;
      this.ws.send(o.text ? texts[i]! : binaries[i]!);
    }
  }

  #onMessage(data: string | ArrayBuffer): void {
    const n = this.received;
    const i = this.echoed();
    if (o.text) {
      if (typeof data !== "string") this.bad("a binary message came back for a text one");
      if (n < VERIFY_FIRST ? data !== texts[i] : data.length !== o.size) this.bad(`echo ${n} differs from what was sent (${data.length} characters)`);
    } else {
      if (typeof data === "string") this.bad("a text message came back for a binary one");
      if (data.byteLength !== o.size || (n < VERIFY_FIRST && !binaries[i]!.equals(new Uint8Array(data)))) {
        this.bad(`echo ${n} differs from what was sent (${data.byteLength} bytes)`);
      }
    }
    if (!finished) this.send(1);
  }

  close(): void {
    this.ws.close(1000);
  }
}

function checkExtensions(ext: string): void {
  if (o.compress && !/permessage-deflate/.test(ext)) fail(`the server did not accept permessage-deflate (extensions: ${JSON.stringify(ext)})`);
  if (!o.compress && ext !== "") fail(`an extension was agreed although none was offered: ${JSON.stringify(ext)}`);
}

// ------------------------------------------------------------------ frames

const MASK = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);

/** A client frame (FIN, masked) around `payload`, RSV1 set when `deflated`. */
function clientFrame(payload: Uint8Array, deflated: boolean): Buffer {
  const len = payload.length;
  const headLen = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headLen + 4 + len);
  frame[0] = 0x80 | (deflated ? 0x40 : 0) | (o.text ? 0x1 : 0x2);
  if (len < 126) frame[1] = 0x80 | len;
  else if (len < 65536) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(len, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(len), 2);
  }
  MASK.copy(frame, headLen);
  for (let i = 0; i < len; i++) frame[headLen + 4 + i] = payload[i]! ^ MASK[i & 3]!;
  return frame;
}

/** RFC 7692 §7.2.1: deflate, sync flush, and drop the `00 00 ff ff` tail. */
function deflateMessage(data: Uint8Array): Buffer {
  const out = zlib.deflateRawSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  return out.subarray(0, out.length - 4);
}

/** Messages shorter than this go uncompressed, as Bun's client sends them. */
const COMPRESS_FROM = 1024;
const frames: Buffer[] =
  o.client === "frames" ? binaries.map((b) => (o.compress && b.length >= COMPRESS_FROM ? clientFrame(deflateMessage(b), true) : clientFrame(b, false))) : [];

interface FrameState {
  load: FrameLoad;
}

class FrameLoad extends Load {
  socket: RawSocket<FrameState> | null = null;
  /** Bytes the kernel did not take yet (Bun does not keep them). */
  #pending: Buffer[] = [];
  #handshaking = true;
  #head = "";
  readonly #key = randomBytes(16).toString("base64");
  readonly #onOpen: () => void;
  // Frame parser state.
  #header = Buffer.alloc(14);
  #headerHave = 0;
  #payloadLeft = -1;
  #compressed = false;
  #payloadLen = 0;
  #collect: Buffer[] | null = null;

  constructor(index: number, onOpen: () => void) {
    super(index);
    this.#onOpen = onOpen;
    const url = new URL(o.url);
    const self = this;
    bun!
      .connect<FrameState>({
        hostname: url.hostname,
        port: Number(url.port || 80),
        data: { load: this },
        socket: {
          open(socket) {
            socket.setNoDelay?.(true);
            self.socket = socket;
            const ext = o.compress ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "";
            self.#write(
              Buffer.from(
                `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
                  `Sec-WebSocket-Key: ${self.#key}\r\nSec-WebSocket-Version: 13\r\n${ext}\r\n`,
                "latin1",
              ),
            );
          },
          data(_socket, chunk) {
            self.#onData(chunk);
          },
          drain() {
            self.#flushPending();
          },
          close() {
            if (!finished) self.bad(`closed by the server after ${self.received} echoes`);
          },
          error(_socket, error) {
            if (!finished) self.bad(`socket error: ${error.message}`);
          },
        },
      })
      .catch((error: Error) => this.bad(`cannot connect to ${o.url}: ${error.message}`));
  }

  send(n: number): void {
    const now = performance.now();
    if (n === 1) {
      this.sentAt[this.sent % o.depth] = now;
      this.#write(frames[(this.offset + this.sent++) % POOL]!);
      return;
    }
    const parts: Buffer[] = [];
    for (let k = 0; k < n; k++) {
      this.sentAt[this.sent % o.depth] = now;
      parts.push(frames[(this.offset + this.sent++) % POOL]!);
    }
    this.#write(Buffer.concat(parts));
  }

  #write(bytes: Buffer): void {
    if (this.#pending.length > 0) {
      this.#pending.push(bytes);
      return;
    }
    const n = this.socket!.write(bytes);
    if (n < 0) {
      if (!finished) this.bad("the socket is closed");
      return;
    }
    if (n < bytes.length) this.#pending.push(bytes.subarray(n));
  }

  #flushPending(): void {
    while (this.#pending.length > 0) {
      const bytes = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending);
      this.#pending = [];
      const n = this.socket!.write(bytes);
      if (n < 0) return;
      if (n < bytes.length) {
        this.#pending.push(bytes.subarray(n));
        return;
      }
    }
  }

  #onData(chunk: Buffer): void {
    if (this.#handshaking) {
      this.#head += chunk.toString("latin1");
      const end = this.#head.indexOf("\r\n\r\n");
      if (end === -1) return;
      const head = this.#head.slice(0, end);
      const rest = Buffer.from(this.#head.slice(end + 4), "latin1");
      this.#handshaking = false;
      if (!/^HTTP\/1\.1 101 /.test(head)) this.bad(`the handshake failed: ${head.split("\r\n")[0]}`);
      const ext = /^sec-websocket-extensions:\s*(.*)$/im.exec(head);
      this.extensions = ext === null ? "" : ext[1]!.trim();
      checkExtensions(this.extensions);
      this.#onOpen();
      if (rest.length > 0) this.#frames(rest);
      return;
    }
    this.#frames(chunk);
  }

  /** Parses server frames (unmasked), counting each echo; sends one message per echo, in one write. */
  #frames(chunk: Buffer): void {
    let pos = 0;
    const len = chunk.length;
    let echoes = 0;
    while (pos < len) {
      if (this.#payloadLeft < 0) {
        // Header: 2 bytes, then 0, 2 or 8 of length.
        while (this.#headerHave < 2 && pos < len) this.#header[this.#headerHave++] = chunk[pos++]!;
        if (this.#headerHave < 2) break;
        const b0 = this.#header[0]!;
        const b1 = this.#header[1]!;
        if ((b0 & 0x0f) === 0x8) this.bad("the server sent a close frame");
        if ((b0 & 0x80) === 0 || (b1 & 0x80) !== 0) this.bad(`unexpected frame header ${b0.toString(16)} ${b1.toString(16)} (fragmented or masked)`);
        const len7 = b1 & 0x7f;
        const need = len7 < 126 ? 2 : len7 === 126 ? 4 : 10;
        while (this.#headerHave < need && pos < len) this.#header[this.#headerHave++] = chunk[pos++]!;
        if (this.#headerHave < need) break;
        this.#payloadLen = len7 < 126 ? len7 : len7 === 126 ? this.#header.readUInt16BE(2) : Number(this.#header.readBigUInt64BE(2));
        this.#payloadLeft = this.#payloadLen;
        this.#compressed = (b0 & 0x40) !== 0;
        if (!this.#compressed && this.#payloadLen !== o.size) this.bad(`echo ${this.received} has ${this.#payloadLen} bytes, expected ${o.size}`);
        this.#collect = !this.#compressed && this.received < VERIFY_FIRST ? [] : null;
      }
      const take = Math.min(this.#payloadLeft, len - pos);
      if (this.#collect !== null) this.#collect.push(chunk.subarray(pos, pos + take));
      pos += take;
      this.#payloadLeft -= take;
      if (this.#payloadLeft === 0) {
        const n = this.received;
        const i = this.echoed();
        if (this.#collect !== null && !binaries[i]!.equals(Buffer.concat(this.#collect))) this.bad(`echo ${n} differs from what was sent`);
        this.#collect = null;
        this.#payloadLeft = -1;
        this.#headerHave = 0;
        echoes++;
      }
    }
    if (echoes > 0 && !finished) this.send(echoes);
  }

  close(): void {
    this.socket?.end();
  }
}

// -------------------------------------------------------------------- main

const loads: Array<NativeLoad | FrameLoad> = [];
let opened = 0;
const allOpen = new Promise<void>((resolve) => {
  const onOpen = (): void => {
    if (++opened === o.connections) resolve();
  };
  for (let i = 0; i < o.connections; i++) loads.push(o.client === "native" ? new NativeLoad(i, onOpen) : new FrameLoad(i, onOpen));
});
const openTimer = setTimeout(() => fail(`only ${opened} of ${o.connections} connections opened within 10 s (${o.url})`), 10_000);
await allOpen;
clearTimeout(openTimer);
process.stdout.write(`BENCH_READY ${o.connections}\n`);

for (const l of loads) l.send(o.depth);

await new Promise((resolve) => setTimeout(resolve, o.warmup * 1000));
process.stdout.write("BENCH_START\n");
const t0 = performance.now();
counting = true;
await new Promise((resolve) => setTimeout(resolve, o.duration * 1000));
counting = false;
const t1 = performance.now();
process.stdout.write("BENCH_STOP\n");
finished = true;
const summary = {
  messages: counted,
  durationUs: Math.round((t1 - t0) * 1000),
  rate: counted / ((t1 - t0) / 1000),
  connections: o.connections,
  depth: o.depth,
  size: o.size,
  text: o.text,
  compress: o.compress,
  client: o.client,
  extensions: loads[0]!.extensions,
  latencyUs: { p50: percentile(0.5), p90: percentile(0.9), p99: percentile(0.99) },
  bun: bun.version,
};
process.stdout.write(`BENCH_JSON ${JSON.stringify(summary)}\n`);
for (const l of loads) l.close();
setTimeout(() => process.exit(0), 200);
