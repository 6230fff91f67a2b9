/**
 * The engine's outbound bytes: frames are written straight into one
 * contiguous region so that `takeOutput()` hands the driver a single buffer
 * (one socket write per batch) without joining.
 *
 * Regions are carved from a slab shared by all connections of the process
 * (a bump allocator, like `Buffer.allocUnsafe`'s pool but larger): a
 * connection grows its region in place while it is the last one carved,
 * and moves it (one copy) when another connection carved after it. Bytes
 * handed out are never written again, so the driver may keep them as long
 * as its write takes; an idle connection holds no memory. Regions larger
 * than a quarter of a slab get a buffer of their own.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { view } from "./buffers";

/** Slab size: 256 KiB, shared by every connection of the process. */
const SLAB_SIZE = 256 * 1024;
/** Regions above this leave the shared slab. */
const MAX_SHARED = SLAB_SIZE / 4;

let slab: Buffer = Buffer.allocUnsafeSlow(SLAB_SIZE);
let slabOffset = 0;

/**
 * A growable, contiguous run of output bytes.
 *
 * @example
 * ```ts
 * const out = new OutputBuffer();
 * const buf = out.reserve(2);
 * buf[out.end] = 0x89; buf[out.end + 1] = 0x00; // an empty ping
 * out.commit(out.end + 2);
 * out.take(); // <Buffer 89 00>
 * ```
 */
export class OutputBuffer {
  /** The buffer holding the pending bytes, or null when there are none. */
  buffer: Buffer | null = null;
  /** Start of the pending bytes in `buffer`. */
  start = 0;
  /** End of the pending bytes (where the next write goes). */
  end = 0;
  #shared = false;

  /** Pending bytes. */
  get length(): number {
    return this.end - this.start;
  }

  /**
   * Makes room for `n` more bytes at `this.end` and returns the buffer to
   * write into. The caller writes at `this.end`, then calls `commit`.
   */
  reserve(n: number): Buffer {
    const buf = this.buffer;
    if (buf !== null) {
      if (this.#shared) {
        if (buf === slab && slabOffset === this.end && this.end + n <= SLAB_SIZE) return buf;
      } else if (this.end + n <= buf.length) {
        return buf;
      }
    }
    return this.#move(n);
  }

  /** Marks the bytes up to `end` as written. */
  commit(end: number): void {
    this.end = end;
    if (this.#shared) slabOffset = end;
  }

  #move(n: number): Buffer {
    const pending = this.end - this.start;
    const need = pending + n;
    let target: Buffer;
    let at: number;
    if (need <= MAX_SHARED) {
      if (slabOffset + need > SLAB_SIZE) {
        slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
        slabOffset = 0;
      }
      target = slab;
      at = slabOffset;
      this.#shared = true;
    } else {
      target = Buffer.allocUnsafe(need * 2);
      at = 0;
      this.#shared = false;
    }
    if (pending > 0) this.buffer!.copy(target, at, this.start, this.end);
    this.buffer = target;
    this.start = at;
    this.end = at + pending;
    if (this.#shared) slabOffset = this.end;
    return target;
  }

  /** Hands over the pending bytes (null if none) and forgets them. */
  take(): Buffer | null {
    const buf = this.buffer;
    if (buf === null || this.end === this.start) return null;
    const out = view(buf, this.start, this.end);
    this.buffer = null;
    this.start = this.end = 0;
    return out;
  }
}
