/**
 * The `Date` header value (RFC 9110 §5.6.7, IMF-fixdate), cached per second
 * so that a busy server formats it once a second, not once a response.
 *
 * @module
 */

let cachedSecond = -1;
let cachedValue = "";

/**
 * The IMF-fixdate for a time in milliseconds since the epoch.
 *
 * @example
 * ```ts
 * httpDate(0) // "Thu, 01 Jan 1970 00:00:00 GMT"
 * ```
 */
export function httpDate(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedValue = new Date(second * 1000).toUTCString();
  }
  return cachedValue;
}
