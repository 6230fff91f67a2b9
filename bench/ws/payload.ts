/**
 * Message payloads for the WebSocket benchmarks: ASCII text that reads like
 * JSON chat traffic, so that permessage-deflate has something realistic to
 * compress (about 3:1 for 16 KiB; a 32-byte message is below every
 * compression threshold anyway). A pool of distinct messages per size, so
 * that the compressor's 32 KiB window does not turn the same message sent
 * again into a few bytes of back-reference.
 *
 * @module
 */

const WORDS = (
  "the of and to in is you that it he was for on are as with his they at be this have from or one had by word but not what all were we when your can said " +
  "there use an each which she do how their if will up other about out many then them these so some her would make like him into time has look two more write go see " +
  "number no way could people my than first water been call who oil its now find long down day did get come made may part server client socket frame message"
).split(" ");

/** A small deterministic PRNG (mulberry32), so every run sends the same bytes. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One message of exactly `size` ASCII bytes (`seed` picks which). */
export function textPayload(size: number, seed: number): string {
  const rand = prng(seed * 7919 + size);
  let out = `{"id":${seed},"user":"u${Math.floor(rand() * 1000)}","body":"`;
  while (out.length < size) out += `${WORDS[Math.floor(rand() * WORDS.length)]!} `;
  out = out.slice(0, Math.max(0, size - 2));
  return (out + '"}').slice(0, size).padEnd(size, " ");
}

/** `count` distinct messages of `size` bytes. */
export function payloadPool(size: number, count: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(textPayload(size, i));
  return out;
}
