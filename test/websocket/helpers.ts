/**
 * Test helpers for the WebSocket engine: frame vectors written as hex,
 * feeding in pieces, events as comparable plain data, and a reference
 * UTF-8 checker written independently of the engine's DFA.
 */
import { Buffer } from "node:buffer";
import { expect } from "vitest";
import {
  decodeFrame,
  WebSocketConnection,
  type WebSocketConnectionOptions,
  type WebSocketEvent,
} from "../../src/protocols/websocket";
import { applyMask } from "../../src/protocols/websocket/mask";

/** Bytes from hex, ignoring spaces. */
export function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  if (clean.length % 2 !== 0) throw new Error(`odd hex: ${s}`);
  return Uint8Array.from(Buffer.from(clean, "hex"));
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

export function utf8(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s, "utf8"));
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

/**
 * One frame on the wire: `header` is the frame header in hex exactly as
 * sent (with the mask key if the mask bit is set); `payload` is the
 * unmasked payload, masked here with that key.
 */
export function f(header: string, payload: string | Uint8Array = new Uint8Array(0)): Uint8Array {
  const head = hex(header);
  const body = typeof payload === "string" ? utf8(payload) : Uint8Array.from(payload);
  if (head.length >= 2 && (head[1]! & 0x80) !== 0) {
    const key = head.subarray(head.length - 4);
    applyMask(body, 0, body.length, key, 0);
  }
  return concat(head, body);
}

/** A masked client frame with key 37 fa 21 3d and the shortest length. */
export function cf(first: number, payload: string | Uint8Array = new Uint8Array(0), key = "37fa213d"): Uint8Array {
  const body = typeof payload === "string" ? utf8(payload) : payload;
  return f(lengthHeader(first, body.length, true) + key, body);
}

/** An unmasked server frame with the shortest length. */
export function sf(first: number, payload: string | Uint8Array = new Uint8Array(0)): Uint8Array {
  const body = typeof payload === "string" ? utf8(payload) : payload;
  return f(lengthHeader(first, body.length, false), body);
}

function lengthHeader(first: number, n: number, masked: boolean): string {
  const m = masked ? 0x80 : 0;
  const b0 = first.toString(16).padStart(2, "0");
  if (n < 126) return b0 + (m | n).toString(16).padStart(2, "0");
  if (n < 65536) return b0 + (m | 126).toString(16) + n.toString(16).padStart(4, "0");
  return b0 + (m | 127).toString(16) + n.toString(16).padStart(16, "0");
}

/** Splits bytes at the given offsets (copies, since the engine owns what it gets). */
export function splitAt(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const sorted = [...new Set(cuts)].filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...sorted, bytes.length]) {
    out.push(bytes.slice(prev, c));
    prev = c;
  }
  return out;
}

export function byteByByte(bytes: Uint8Array): Uint8Array[] {
  return Array.from(bytes, (b) => Uint8Array.of(b));
}

/** An event as comparable data: bytes as hex, errors as their code, close code and position. */
export type Plain =
  | { type: "text"; data: string }
  | { type: "binary" | "ping" | "pong"; data: string }
  | { type: "close"; code: number; reason: string }
  | { type: "error"; code: string; closeCode: number | undefined; position: number | undefined };

export function plain(e: WebSocketEvent): Plain {
  switch (e.type) {
    case "text":
      return { type: "text", data: e.data };
    case "binary":
    case "ping":
    case "pong":
      return { type: e.type, data: toHex(e.data) };
    case "close":
      return { type: "close", code: e.code, reason: e.reason };
    case "error":
      return { type: "error", code: e.error.code, closeCode: e.error.closeCode, position: e.error.position };
    case "need-data":
      throw new Error("need-data is not a plain event");
  }
}

/** Pulls every event until need-data. */
export function drain(conn: WebSocketConnection, onEvent?: (e: WebSocketEvent) => void): Plain[] {
  const out: Plain[] = [];
  for (let e = conn.nextEvent(); e.type !== "need-data"; e = conn.nextEvent()) {
    onEvent?.(e);
    out.push(plain(e));
  }
  return out;
}

/** Echoes messages back, like the Autobahn test servers. */
export function echo(conn: WebSocketConnection): (e: WebSocketEvent) => void {
  return (e) => {
    if (e.type === "text") conn.sendText(e.data);
    else if (e.type === "binary") conn.sendBinary(e.data);
  };
}

export interface RunResult {
  events: Plain[];
  /** Frames the engine wrote, decoded. */
  out: OutFrame[];
  conn: WebSocketConnection;
}

export interface OutFrame {
  fin: boolean;
  rsv1: boolean;
  opcode: number;
  masked: boolean;
  payload: string;
  /** For close frames with a body. */
  code?: number;
}

/** Decodes all frames in `bytes`. */
export function decodeAll(bytes: Uint8Array | null): OutFrame[] {
  const out: OutFrame[] = [];
  if (bytes === null) return out;
  let at = 0;
  while (at < bytes.length) {
    const r = decodeFrame(bytes, at);
    if (r === null) throw new Error(`truncated output frame at ${at}`);
    const fr: OutFrame = {
      fin: r.frame.fin,
      rsv1: r.frame.rsv1,
      opcode: r.frame.opcode,
      masked: r.frame.mask !== null,
      payload: toHex(r.frame.payload),
    };
    if (r.frame.opcode === 8 && r.frame.payload.length >= 2) fr.code = (r.frame.payload[0]! << 8) | r.frame.payload[1]!;
    out.push(fr);
    at += r.length;
  }
  return out;
}

/**
 * Feeds `pieces` to a fresh connection, draining events after each piece
 * (as a driver does per read), with an echo application; returns the events
 * and the output frames.
 *
 * The vectors are written as a client sends them, for a server. Unless
 * `options` name a role or a codec, the same vector is also played to a
 * client as a server would send it ({@link toClientStream}: every frame
 * unmasked, the cuts kept), and the client must see the same events (with
 * stream positions moved by the mask keys that are gone, and the mask
 * errors swapped) and write the same frames, masked. The server's result
 * is returned.
 */
export function run(
  pieces: readonly Uint8Array[],
  options: Partial<WebSocketConnectionOptions> = {},
  app: "echo" | "none" = "echo",
): RunResult {
  const result = runRole(pieces, { role: "server", ...options }, app);
  if (options.role === undefined && options.perMessageDeflate == null) {
    const mirror = toClientStream(pieces);
    const client = runRole(mirror.pieces, { ...options, role: "client" }, app);
    expect(client.events, "the same vector played to a client").toEqual(mirrorEvents(result.events, mirror.position));
    expect(client.out, "what the client wrote").toEqual(result.out.map((o) => ({ ...o, masked: true })));
  }
  return result;
}

function runRole(pieces: readonly Uint8Array[], options: WebSocketConnectionOptions, app: "echo" | "none"): RunResult {
  const conn = new WebSocketConnection(options);
  const onEvent = app === "echo" ? echo(conn) : undefined;
  const events: Plain[] = [];
  const outBytes: Uint8Array[] = [];
  for (const piece of pieces) {
    conn.receiveData(Uint8Array.from(piece));
    events.push(...drain(conn, onEvent));
    const o = conn.takeOutput();
    if (o !== null) outBytes.push(Uint8Array.from(o));
  }
  return { events, out: decodeAll(concat(...outBytes)), conn };
}

/** The key that {@link toClientStream} gives to a frame that a client sent unmasked (a vector of a masking error). */
const MIRROR_KEY = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d);

/**
 * A client-to-server vector turned into the server-to-client one: each
 * frame's mask bit flipped, its key removed and its payload unmasked (a
 * frame sent unmasked gets masked with 37 fa 21 3d instead, so that a
 * masking error stays one). The pieces are cut at the same places;
 * `position` maps an offset of the original stream to the new one (an
 * offset inside a removed key maps to where the key was).
 *
 * @example
 * ```ts
 * toClientStream([f("81 85 37fa213d", "Hello")]).pieces // [81 05 48 65 6c 6c 6f]
 * ```
 */
export function toClientStream(pieces: readonly Uint8Array[]): { pieces: Uint8Array[]; position(offset: number): number } {
  const all = concat(...pieces);
  const view = Buffer.from(all.buffer, all.byteOffset, all.byteLength);
  const out: Uint8Array[] = [];
  // Breakpoints [offset in `all`, offset in the output]: linear between them,
  // clamped to the next one (a removed key), the later of two at one offset winning (an added key).
  const points: Array<[number, number]> = [[0, 0]];
  let i = 0;
  let c = 0;
  const push = (bytes: Uint8Array) => {
    out.push(bytes);
    c += bytes.length;
  };
  while (i < all.length) {
    if (all.length - i < 2) {
      push(all.slice(i));
      break;
    }
    const len7 = all[i + 1]! & 0x7f;
    const masked = (all[i + 1]! & 0x80) !== 0;
    const headEnd = i + 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0);
    const head = all.slice(i, Math.min(headEnd, all.length));
    head[1]! ^= 0x80;
    push(head);
    if (headEnd > all.length) break;
    const length = len7 === 126 ? view.readUInt16BE(i + 2) : len7 === 127 ? view.readUInt32BE(i + 2) * 2 ** 32 + view.readUInt32BE(i + 6) : len7;
    i = headEnd;
    let key: Uint8Array;
    if (masked) {
      const keyEnd = Math.min(i + 4, all.length);
      points.push([i, c], [keyEnd, c]);
      key = all.subarray(i, keyEnd);
      i = keyEnd;
      if (key.length < 4) break;
    } else {
      key = MIRROR_KEY;
      push(key);
      points.push([i, c]);
    }
    const payload = all.slice(i, i + Math.min(length, all.length - i));
    applyMask(payload, 0, payload.length, key, 0);
    push(payload);
    i += payload.length;
  }
  const position = (offset: number): number => {
    let j = 0;
    while (j + 1 < points.length && points[j + 1]![0] <= offset) j++;
    const [s, t] = points[j]!;
    const next = points[j + 1];
    const mapped = t + (offset - s);
    return next === undefined ? mapped : Math.min(mapped, next[1]);
  };
  const cuts: number[] = [];
  let at = 0;
  for (const piece of pieces.slice(0, -1)) cuts.push(position((at += piece.length)));
  return { pieces: splitAt(concat(...out), cuts), position };
}

/** What a client must see for the events a server saw of the same vector (see {@link toClientStream}). */
function mirrorEvents(events: readonly Plain[], position: (offset: number) => number): Plain[] {
  return events.map((e) => {
    if (e.type !== "error") return e;
    const code = e.code === "WS_ERR_EXPECTED_MASK" ? "WS_ERR_UNEXPECTED_MASK" : e.code;
    // UTF-8 errors count from the start of the message (or of the close reason); the others are stream offsets.
    const moved = e.position === undefined || e.code === "WS_ERR_INVALID_UTF8" ? e.position : position(e.position);
    return { ...e, code, position: moved };
  });
}

/**
 * Runs a vector given as pieces, then whole and byte by byte, and checks
 * that all three agree; returns the result of the first.
 */
export function runThreeWays(
  pieces: readonly Uint8Array[],
  options: Partial<WebSocketConnectionOptions> = {},
): RunResult {
  const first = run(pieces, options);
  const all = concat(...pieces);
  const whole = run([all], options);
  const bytewise = run(byteByByte(all), options);
  expect(whole.events).toEqual(first.events);
  expect(whole.out).toEqual(first.out);
  expect(bytewise.events).toEqual(first.events);
  expect(bytewise.out).toEqual(first.out);
  return first;
}

/**
 * Reference UTF-8 check, written from Unicode Table 3-7 (well-formed byte
 * sequences) and independent of the DFA: the index of the first byte that
 * cannot continue a well-formed sequence, the length if the input ends
 * inside one, or -1 if valid.
 */
export function referenceFirstInvalid(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let ranges: Array<[number, number]>;
    if (b >= 0xc2 && b <= 0xdf) ranges = [[0x80, 0xbf]];
    else if (b === 0xe0) ranges = [[0xa0, 0xbf], [0x80, 0xbf]];
    else if ((b >= 0xe1 && b <= 0xec) || b === 0xee || b === 0xef) ranges = [[0x80, 0xbf], [0x80, 0xbf]];
    else if (b === 0xed) ranges = [[0x80, 0x9f], [0x80, 0xbf]];
    else if (b === 0xf0) ranges = [[0x90, 0xbf], [0x80, 0xbf], [0x80, 0xbf]];
    else if (b >= 0xf1 && b <= 0xf3) ranges = [[0x80, 0xbf], [0x80, 0xbf], [0x80, 0xbf]];
    else if (b === 0xf4) ranges = [[0x80, 0x8f], [0x80, 0xbf], [0x80, 0xbf]];
    else return i;
    for (let k = 0; k < ranges.length; k++) {
      const j = i + 1 + k;
      if (j >= n) return n;
      const [lo, hi] = ranges[k]!;
      if (bytes[j]! < lo || bytes[j]! > hi) return j;
    }
    i += 1 + ranges.length;
  }
  return -1;
}
