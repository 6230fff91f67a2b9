/**
 * What the raw servers (the ceilings) share: counting request heads
 * (`\r\n\r\n`) in a stream of chunks, where `state` is how many bytes of
 * `\r\n\r\n` ended the previous chunk, and the canned responses they send.
 */
import { Buffer } from "node:buffer";

const CRLFCRLF = Buffer.from("\r\n\r\n", "latin1");
const PATTERN = [13, 10, 13, 10];

/** The result of {@link countHeadEnds}: heads ended in this chunk, and the state for the next. */
export interface HeadCount {
  count: number;
  state: number;
}

const result: HeadCount = { count: 0, state: 0 };

/**
 * Counts the `\r\n\r\n` in `chunk`, continuing a match cut by the previous
 * chunk. Matches do not overlap. The returned object is reused.
 */
export function countHeadEnds(chunk: Buffer, state: number): HeadCount {
  const len = chunk.length;
  let count = 0;
  let i = 0;
  // The first bytes may finish a match begun in the previous chunk: walk
  // them one by one (a mismatch on CR restarts at 1, else at 0).
  const prefix = Math.min(3, len);
  while (i < prefix) {
    const b = chunk[i++]!;
    if (b === PATTERN[state]) {
      if (++state === 4) {
        count++;
        state = 0;
      }
    } else {
      state = b === 13 ? 1 : 0;
    }
  }
  if (i < len) {
    // A partial match now lies wholly in this chunk: rescan it with indexOf.
    let pos = i - state;
    for (;;) {
      const at = chunk.indexOf(CRLFCRLF, pos);
      if (at === -1) break;
      count++;
      pos = at + 4;
    }
    // The state for the next chunk: the longest tail after `pos` that begins the pattern.
    state = 0;
    for (let k = Math.min(3, len - pos); k > 0; k--) {
      let ok = true;
      for (let j = 0; j < k; j++) {
        if (chunk[len - k + j] !== PATTERN[j]) {
          ok = false;
          break;
        }
      }
      if (ok) {
        state = k;
        break;
      }
    }
  }
  result.count = count;
  result.state = state;
  return result;
}

const BODY = "Hello, world";
let canned = buildCanned();
/** Responses for n pipelined requests, built once per n and per second. */
let multi = new Map<number, Buffer>();

/** The bytes typhoon's bare server sends for the hello world, with the Date of now. */
function buildCanned(): Buffer {
  return Buffer.from(
    `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${BODY.length}\r\nDate: ${new Date().toUTCString()}\r\n\r\n${BODY}`,
    "latin1",
  );
}

setInterval(() => {
  canned = buildCanned();
  multi = new Map();
}, 1000).unref();

/** The canned response `n` times in one buffer (for `n` pipelined requests). */
export function cannedResponses(n: number): Buffer {
  if (n === 1) return canned;
  let out = multi.get(n);
  if (out === undefined) {
    out = Buffer.allocUnsafe(canned.length * n);
    for (let i = 0; i < n; i++) canned.copy(out, i * canned.length);
    multi.set(n, out);
  }
  return out;
}
