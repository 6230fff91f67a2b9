/**
 * The version of typhoon, as sent in the default `Server` header.
 *
 * @module
 */

/**
 * typhoon's version (kept equal to `package.json`'s; a test checks it).
 *
 * @example
 * ```ts
 * console.log(`typhoon/${VERSION}`); // "typhoon/0.1.0"
 * ```
 */
export const VERSION = "0.1.0";
