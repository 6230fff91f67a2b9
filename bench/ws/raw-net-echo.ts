/**
 * The WebSocket ceiling on Node: a `node:net` server that answers the
 * opening handshake with a canned 101 (no checks beyond finding the key),
 * then parses client frames just enough to echo them: header, length,
 * unmasking in place, and every echo owed for one read joined into one
 * buffer and written with one write. (Written as `writev` of header and
 * payload views instead, as ws does with `cork`, 16 KiB echoes went from
 * ~47,000 to ~33,000 a second: one contiguous buffer is cheaper on
 * loopback than two pieces.) No
 * UTF-8 validation, no fragmentation, no control frames but close, no
 * compression (it declines permessage-deflate by not answering it). What
 * an echo costs on Node's sockets when the protocol costs almost nothing:
 * the ceiling for small messages, where the system calls are most of the
 * cost. With 16 KiB messages and one in flight typhoon measured a little
 * faster than this server (the reason was not found), so it is no strict
 * ceiling there.
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import * as net from "node:net";
import { BENCH_HOST, benchPort, exitWithRunner, gcOnRequest } from "../servers/common";

exitWithRunner("raw-ws-net");
gcOnRequest();

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

interface EchoSocket extends net.Socket {
  open: boolean;
  /** Bytes of an incomplete frame (or head) kept from the previous read. */
  rest: Buffer | null;
}

function onData(this: EchoSocket, chunk: Buffer): void {
  let data = this.rest === null ? chunk : Buffer.concat([this.rest, chunk]);
  this.rest = null;
  if (!this.open) {
    const end = data.indexOf("\r\n\r\n");
    if (end === -1) {
      this.rest = data;
      return;
    }
    const head = data.subarray(0, end).toString("latin1");
    const key = /^sec-websocket-key:\s*(\S+)/im.exec(head)?.[1];
    if (key === undefined) {
      this.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      return;
    }
    const accept = createHash("sha1").update(key + GUID).digest("base64");
    this.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    this.open = true;
    data = data.subarray(end + 4);
  }
  const out: Buffer[] = [];
  let pos = 0;
  while (data.length - pos >= 2) {
    const b0 = data[pos]!;
    const b1 = data[pos + 1]!;
    let len = b1 & 0x7f;
    let head = 2;
    if (len === 126) {
      if (data.length - pos < 4) break;
      len = data.readUInt16BE(pos + 2);
      head = 4;
    } else if (len === 127) {
      if (data.length - pos < 10) break;
      len = Number(data.readBigUInt64BE(pos + 2));
      head = 10;
    }
    const masked = (b1 & 0x80) !== 0;
    const total = head + (masked ? 4 : 0) + len;
    if (data.length - pos < total) break;
    if ((b0 & 0x0f) === 0x8) {
      this.end(Buffer.from([0x88, 0x00]));
      return;
    }
    // The echo: the same header without the mask bit and key, then the payload unmasked in place.
    const header = Buffer.from(data.subarray(pos, pos + head));
    header[1] = b1 & 0x7f;
    const payload = pos + head + (masked ? 4 : 0);
    if (masked) unmask(data, payload, payload + len, pos + head);
    out.push(header, data.subarray(payload, payload + len));
    pos += total;
  }
  if (pos < data.length) this.rest = Buffer.from(data.subarray(pos));
  if (out.length > 0) this.write(Buffer.concat(out));
}

const key = new Uint8Array(4);
const keyWord = new Uint32Array(key.buffer);

/** XORs `data[start..end)` in place with the 4-byte key at `data[keyAt..]`: four bytes at a time over the aligned middle. */
function unmask(data: Buffer, start: number, end: number, keyAt: number): void {
  let i = start;
  if (end - start < 64) {
    for (let t = 0; i < end; i++, t++) data[i] = data[i]! ^ data[keyAt + (t & 3)]!;
    return;
  }
  const misalign = (data.byteOffset + i) & 3;
  const lead = misalign === 0 ? 0 : 4 - misalign;
  for (let b = 0; b < 4; b++) key[b] = data[keyAt + ((lead + b) & 3)]!;
  for (let h = 0; h < lead; h++, i++) data[i] = data[i]! ^ data[keyAt + h]!;
  const w = keyWord[0]!;
  const words = (end - i) >>> 2;
  const view = new Uint32Array(data.buffer, data.byteOffset + i, words);
  const unrolled = words & ~3;
  let j = 0;
  for (; j < unrolled; j += 4) {
    view[j] = view[j]! ^ w;
    view[j + 1] = view[j + 1]! ^ w;
    view[j + 2] = view[j + 2]! ^ w;
    view[j + 3] = view[j + 3]! ^ w;
  }
  for (; j < words; j++) view[j] = view[j]! ^ w;
  i += words << 2;
  for (let t = 0; i < end; i++, t++) data[i] = data[i]! ^ key[t & 3]!;
}

function ignore(): void {}

net
  .createServer({ noDelay: true }, (socket) => {
    const s = socket as EchoSocket;
    s.open = false;
    s.rest = null;
    s.on("data", onData);
    s.on("error", ignore);
  })
  .listen(benchPort(), BENCH_HOST);
