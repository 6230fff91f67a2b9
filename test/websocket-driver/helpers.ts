/**
 * Helpers of the WebSocket driver tests: frames written and read by hand
 * (not by the engine under test), a raw peer on a memory pipe, and an
 * application served over memory pipes with a recording logger.
 */
import { Buffer } from "node:buffer";
import * as zlib from "node:zlib";
import { VirtualClock } from "../../src/core/clock";
import type { Logger } from "../../src/core/log";
import type { Connection } from "../../src/core/transport";
import { HTTPServer, type HTTPServerOptions } from "../../src/server";
import { createPipe, flushMemory, type MemoryConnection, type MemoryPipeOptions } from "../../src/transports/memory";
import { Application, type ApplicationSettings, type Route } from "../../src/web";

export { flushMemory };

export const TEXT = 0x1;
export const BINARY = 0x2;
export const CLOSE = 0x8;
export const PING = 0x9;
export const PONG = 0xa;

/** A logger that keeps every line. */
export class RecordingLogger implements Logger {
  readonly lines: Array<{ level: string; message: string; details: unknown[] }> = [];
  debug(message: string, ...details: unknown[]): void {
    this.lines.push({ level: "debug", message, details });
  }
  info(message: string, ...details: unknown[]): void {
    this.lines.push({ level: "info", message, details });
  }
  warn(message: string, ...details: unknown[]): void {
    this.lines.push({ level: "warn", message, details });
  }
  error(message: string, ...details: unknown[]): void {
    this.lines.push({ level: "error", message, details });
  }
  messages(level?: string): string[] {
    return this.lines.filter((l) => level === undefined || l.level === level).map((l) => l.message);
  }
}

/** A promise with its resolver outside. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export const utf8 = (s: string): Uint8Array => Buffer.from(s, "utf8");

/** Options of {@link frame}. */
export interface FrameOptions {
  fin?: boolean;
  rsv1?: boolean;
  rsv2?: boolean;
  rsv3?: boolean;
  /** Mask key (4 bytes); null for an unmasked frame. @default 37 fa 21 3d */
  mask?: Uint8Array | null;
}

const DEFAULT_KEY = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d);

/** Builds one frame by hand (masked, as a client sends, unless `mask: null`). */
export function frame(opcode: number, payload: string | Uint8Array = new Uint8Array(0), options: FrameOptions = {}): Uint8Array {
  const data = typeof payload === "string" ? utf8(payload) : payload;
  const key = options.mask === undefined ? DEFAULT_KEY : options.mask;
  const first = (options.fin === false ? 0 : 0x80) | (options.rsv1 ? 0x40 : 0) | (options.rsv2 ? 0x20 : 0) | (options.rsv3 ? 0x10 : 0) | opcode;
  const maskBit = key === null ? 0 : 0x80;
  let header: number[];
  const n = data.length;
  if (n < 126) header = [first, maskBit | n];
  else if (n < 65536) header = [first, maskBit | 126, n >> 8, n & 0xff];
  else {
    const hi = Math.floor(n / 2 ** 32);
    const lo = n >>> 0;
    header = [first, maskBit | 127, hi >>> 24, (hi >>> 16) & 0xff, (hi >>> 8) & 0xff, hi & 0xff, lo >>> 24, (lo >>> 16) & 0xff, (lo >>> 8) & 0xff, lo & 0xff];
  }
  const out = Buffer.alloc(header.length + (key === null ? 0 : 4) + n);
  out.set(header, 0);
  let p = header.length;
  if (key !== null) {
    out.set(key, p);
    p += 4;
    for (let i = 0; i < n; i++) out[p + i] = data[i]! ^ key[i & 3]!;
  } else {
    out.set(data, p);
  }
  return out;
}

/** A close frame body: the code in two bytes, then the reason. */
export function closeBody(code: number, reason = ""): Uint8Array {
  return Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from(reason, "utf8")]);
}

/** A decoded frame. */
export interface Frame {
  fin: boolean;
  rsv1: boolean;
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

/** Decodes every whole frame in `bytes` (masked or not); throws on a partial one. */
export function parseFrames(bytes: Uint8Array): Frame[] {
  const buf = Buffer.from(bytes);
  const out: Frame[] = [];
  let p = 0;
  while (p < buf.length) {
    if (p + 2 > buf.length) throw new Error(`Cannot parse a frame: ${buf.length - p} bytes left`);
    const b0 = buf[p]!;
    const b1 = buf[p + 1]!;
    let n = b1 & 0x7f;
    let q = p + 2;
    if (n === 126) {
      n = buf.readUInt16BE(q);
      q += 2;
    } else if (n === 127) {
      n = Number(buf.readBigUInt64BE(q));
      q += 8;
    }
    const masked = (b1 & 0x80) !== 0;
    let key: Buffer | null = null;
    if (masked) {
      key = buf.subarray(q, q + 4);
      q += 4;
    }
    if (q + n > buf.length) throw new Error(`Cannot parse a frame: its payload of ${n} bytes is cut short`);
    const payload = Buffer.from(buf.subarray(q, q + n));
    if (key !== null) for (let i = 0; i < n; i++) payload[i]! ^= key[i & 3]!;
    out.push({ fin: (b0 & 0x80) !== 0, rsv1: (b0 & 0x40) !== 0, opcode: b0 & 0x0f, masked, payload });
    p = q + n;
  }
  return out;
}

/** The code and reason of a close frame. */
export function closeOf(f: Frame): { code: number | null; reason: string } {
  if (f.payload.length < 2) return { code: null, reason: "" };
  return { code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString("utf8") };
}

/** RFC 7692 compression of one whole message with a fresh raw deflate (no context takeover). */
export function deflateMessage(data: string | Uint8Array, windowBits = 15): Buffer {
  const out = zlib.deflateRawSync(typeof data === "string" ? utf8(data) : data, { windowBits, finishFlush: zlib.constants.Z_SYNC_FLUSH });
  return out.subarray(0, out.length - 4);
}

/** RFC 7692 §7.2.1: the end of a sync flush, left off each message's payload. */
export const TAIL = Buffer.from([0, 0, 0xff, 0xff]);

/** RFC 7692 decompression of one whole message (no context takeover). */
export function inflateMessage(data: Uint8Array, windowBits = 15): Buffer {
  return zlib.inflateRawSync(Buffer.concat([data, TAIL]), { windowBits, finishFlush: zlib.constants.Z_SYNC_FLUSH });
}

/** The raw end of a memory pipe, recording what arrives. */
export interface RawPeer<C extends Connection = MemoryConnection> {
  readonly conn: C;
  readonly chunks: Uint8Array[];
  ended: boolean;
  closed: boolean;
  closeError: Error | undefined;
  /** Everything received, joined. */
  bytes(): Buffer;
  send(data: string | Uint8Array): boolean;
}

/** Makes a recording raw peer from a connection; `echoEnd` half-closes when the other side does. */
export function rawPeer<C extends Connection = MemoryConnection>(conn: C, echoEnd = true): RawPeer<C> {
  const peer: RawPeer<C> = {
    conn,
    chunks: [],
    ended: false,
    closed: false,
    closeError: undefined,
    bytes: () => Buffer.concat(peer.chunks),
    send: (data) => conn.write(typeof data === "string" ? Buffer.from(data, "latin1") : data),
  };
  conn.setHandler({
    data: (chunk) => peer.chunks.push(chunk),
    end: () => {
      peer.ended = true;
      if (echoEnd) conn.end();
    },
    drain: () => {},
    close: (error) => {
      peer.closed = true;
      peer.closeError = error;
    },
  });
  return peer;
}

export const CLIENT_KEY = "dGhlIHNhbXBsZSBub25jZQ==";
export const CLIENT_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/** A WebSocket handshake request, by hand. */
export function upgradeRequest(path: string, headers: Record<string, string> = {}): string {
  const all: Record<string, string> = {
    Host: "test",
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": CLIENT_KEY,
    "Sec-WebSocket-Version": "13",
    ...headers,
  };
  let text = `GET ${path} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(all)) if (value !== "") text += `${name}: ${value}\r\n`;
  return `${text}\r\n`;
}

/** The parsed HTTP head at the start of `bytes`, and the bytes after it. */
export function splitHead(bytes: Buffer): { status: number; headers: Map<string, string>; head: string; rest: Buffer } {
  const end = bytes.indexOf("\r\n\r\n");
  if (end === -1) throw new Error(`Cannot find a response head in ${JSON.stringify(bytes.toString("latin1").slice(0, 200))}`);
  const head = bytes.subarray(0, end).toString("latin1");
  const lines = head.split("\r\n");
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0]!)?.[1]);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status, headers, head, rest: bytes.subarray(end + 4) };
}

/** An application on an HTTPServer over memory pipes, on a virtual clock. */
export interface WsTestServer {
  app: Application;
  server: HTTPServer;
  logger: RecordingLogger;
  clock: VirtualClock;
  /** Opens a raw connection and sends `request`; resolves after the answer arrived. */
  raw(request: string | Uint8Array, pipe?: MemoryPipeOptions): Promise<RawPeer>;
  /** Opens a WebSocket by hand; throws unless the answer is 101. Frames after the head are in `frames()`. */
  open(path: string, headers?: Record<string, string>, pipe?: MemoryPipeOptions): Promise<RawWs>;
}

/** A raw WebSocket peer after a successful handshake. */
export interface RawWs extends RawPeer {
  status: number;
  headers: Map<string, string>;
  /** The frames received after the 101 head. */
  frames(): Frame[];
  /** Sends frames (masked by default). */
  sendFrames(...frames: Uint8Array[]): void;
}

export function serveWs(routes: readonly Route[], settings: ApplicationSettings = {}, serverOptions: HTTPServerOptions = {}): WsTestServer {
  const logger = new RecordingLogger();
  const clock = new VirtualClock();
  const app = new Application(routes, { logger, clock, ...settings });
  const server = new HTTPServer(app, { logger, clock, ...serverOptions });
  const t: WsTestServer = {
    app,
    server,
    logger,
    clock,
    async raw(request, pipe = {}) {
      const [client, serverEnd] = createPipe({ clock, ...pipe });
      const peer = rawPeer(client);
      server.handleConnection(serverEnd);
      peer.send(request);
      await flushMemory();
      return peer;
    },
    async open(path, headers = {}, pipe = {}) {
      const peer = await t.raw(upgradeRequest(path, headers), pipe);
      const { status, headers: h, head } = splitHead(peer.bytes());
      if (status !== 101) throw new Error(`Cannot open ${path}: the answer was ${head}`);
      return Object.assign(peer, {
        status,
        headers: h,
        frames: () => parseFrames(splitHead(peer.bytes()).rest),
        sendFrames: (...frames: Uint8Array[]) => {
          for (const f of frames) peer.send(f);
        },
      });
    },
  };
  return t;
}

// ------------------------------------------------- a DEFLATE reader (RFC 1951)

interface Huffman {
  count: Uint16Array;
  symbol: Uint16Array;
}

function huffman(lengths: ArrayLike<number>, n: number, offset = 0): Huffman {
  const count = new Uint16Array(16);
  const symbol = new Uint16Array(n);
  for (let s = 0; s < n; s++) count[lengths[offset + s]!]!++;
  const offs = new Uint16Array(16);
  for (let len = 1; len < 15; len++) offs[len + 1] = offs[len]! + count[len]!;
  for (let s = 0; s < n; s++) if (lengths[offset + s] !== 0) symbol[offs[lengths[offset + s]!]!++] = s;
  return { count, symbol };
}

const LENGTH_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LENGTH_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DIST_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577];
const DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
const CODE_LENGTH_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

/**
 * Decodes a raw DEFLATE stream (blocks until the input ends at a block
 * boundary, or a final block), written from RFC 1951 after zlib's `puff.c`,
 * and reports how far back its matches reach: zlib's inflate does not
 * check that a match stays within the window it was told (a distance into
 * the output of the same call passes), so a window bound is checked here.
 * `history` is what the decoder's window held before (context takeover).
 * A message's payload needs its `00 00 ff ff` back first (RFC 7692 §7.2.2).
 *
 * @example
 * ```ts
 * deflateDistances(Buffer.concat([deflateMessage("abcabc"), TAIL])).maxDistance // 3
 * ```
 */
export function deflateDistances(data: Uint8Array, history: Uint8Array = new Uint8Array(0)): { output: Buffer; maxDistance: number } {
  let out = Buffer.alloc(Math.max(1024, history.length + data.length * 4));
  out.set(history, 0);
  let n = history.length;
  let bitPos = 0;
  let maxDistance = 0;
  const total = data.length * 8;
  const bit = (): number => {
    if (bitPos >= total) throw new Error("Cannot decode DEFLATE: the input ends inside a block");
    const b = (data[bitPos >>> 3]! >>> (bitPos & 7)) & 1;
    bitPos++;
    return b;
  };
  const bits = (count: number): number => {
    let v = 0;
    for (let i = 0; i < count; i++) v |= bit() << i;
    return v;
  };
  const decode = (h: Huffman): number => {
    let code = 0;
    let first = 0;
    let index = 0;
    for (let len = 1; len < 16; len++) {
      code |= bit();
      const count = h.count[len]!;
      if (code - count < first) return h.symbol[index + (code - first)]!;
      index += count;
      first += count;
      first <<= 1;
      code <<= 1;
    }
    throw new Error("Cannot decode DEFLATE: a code that is not in the table");
  };
  const put = (byte: number): void => {
    if (n === out.length) {
      const bigger = Buffer.alloc(out.length * 2);
      bigger.set(out);
      out = bigger;
    }
    out[n++] = byte;
  };
  const codes = (lencode: Huffman, distcode: Huffman): void => {
    for (;;) {
      const symbol = decode(lencode);
      if (symbol < 256) {
        put(symbol);
        continue;
      }
      if (symbol === 256) return;
      const s = symbol - 257;
      if (s >= 29) throw new Error("Cannot decode DEFLATE: an invalid length symbol");
      const length = LENGTH_BASE[s]! + bits(LENGTH_EXTRA[s]!);
      const d = decode(distcode);
      if (d >= 30) throw new Error("Cannot decode DEFLATE: an invalid distance symbol");
      const distance = DIST_BASE[d]! + bits(DIST_EXTRA[d]!);
      if (distance > n) throw new Error(`Cannot decode DEFLATE: a distance of ${distance} before the start`);
      if (distance > maxDistance) maxDistance = distance;
      for (let i = 0; i < length; i++) put(out[n - distance]!);
    }
  };
  const fixedLengths = new Uint8Array(288 + 30);
  fixedLengths.fill(8, 0, 144).fill(9, 144, 256).fill(7, 256, 280).fill(8, 280, 288).fill(5, 288);
  const fixedLen = huffman(fixedLengths, 288);
  const fixedDist = huffman(fixedLengths, 30, 288);
  let last = false;
  while (!last && bitPos < total) {
    last = bit() === 1;
    const type = bits(2);
    if (type === 0) {
      bitPos = (bitPos + 7) & ~7;
      const at = bitPos >>> 3;
      if (at + 4 > data.length) throw new Error("Cannot decode DEFLATE: a stored block header is cut short");
      const len = data[at]! | (data[at + 1]! << 8);
      const nlen = data[at + 2]! | (data[at + 3]! << 8);
      if ((len ^ 0xffff) !== nlen) throw new Error("Cannot decode DEFLATE: a stored block's length check fails");
      if (at + 4 + len > data.length) throw new Error("Cannot decode DEFLATE: a stored block is cut short");
      for (let i = 0; i < len; i++) put(data[at + 4 + i]!);
      bitPos = (at + 4 + len) * 8;
    } else if (type === 1) {
      codes(fixedLen, fixedDist);
    } else if (type === 2) {
      const nlen = bits(5) + 257;
      const ndist = bits(5) + 1;
      const ncode = bits(4) + 4;
      const lengths = new Uint8Array(320);
      for (let i = 0; i < ncode; i++) lengths[CODE_LENGTH_ORDER[i]!] = bits(3);
      const lencode = huffman(lengths, 19);
      let index = 0;
      const all = new Uint8Array(nlen + ndist);
      while (index < nlen + ndist) {
        const symbol = decode(lencode);
        if (symbol < 16) {
          all[index++] = symbol;
          continue;
        }
        let value = 0;
        let repeat: number;
        if (symbol === 16) {
          if (index === 0) throw new Error("Cannot decode DEFLATE: a repeat with no length before it");
          value = all[index - 1]!;
          repeat = 3 + bits(2);
        } else if (symbol === 17) {
          repeat = 3 + bits(3);
        } else {
          repeat = 11 + bits(7);
        }
        if (index + repeat > nlen + ndist) throw new Error("Cannot decode DEFLATE: too many code lengths");
        all.fill(value, index, index + repeat);
        index += repeat;
      }
      codes(huffman(all, nlen), huffman(all, ndist, nlen));
    } else {
      throw new Error("Cannot decode DEFLATE: block type 3");
    }
  }
  return { output: out.subarray(history.length, n), maxDistance };
}
