/**
 * HTTP headers: multi-valued, case-insensitive, order-preserving. The engine
 * keeps headers as a flat array `[name, value, name, value, ...]`; this class
 * wraps such an array and builds its index only when a lookup needs it.
 *
 * @module
 */

/** A flat header list: `[name0, value0, name1, value1, ...]`. */
export type FlatHeaders = string[];

/** Anything that {@link HTTPHeaders} can be built from. */
export type HeadersInit =
  | HTTPHeaders
  | FlatHeaders
  | Iterable<readonly [string, string]>
  | Record<string, string | number | readonly string[] | undefined>;

/**
 * Case-insensitive, multi-valued headers, like Tornado's `HTTPHeaders`.
 *
 * `get` joins repeated values with `", "` (as RFC 9110 §5.3 allows for list
 * headers); `getAll` returns them one by one (use it for `Set-Cookie`).
 *
 * @example
 * ```ts
 * const h = new HTTPHeaders(["Accept", "text/html", "accept", "*\/*"]);
 * h.get("ACCEPT");    // "text/html, *\/*"
 * h.getAll("accept"); // ["text/html", "*\/*"]
 * h.add("X-Id", "1");
 * [...h];             // [["Accept","text/html"], ["accept","*\/*"], ["X-Id","1"]]
 * ```
 */
export class HTTPHeaders implements Iterable<[string, string]> {
  /** The flat list, in arrival order, names as given. */
  #flat: FlatHeaders;
  /** Lowercased name -> indices into #flat of its names; built lazily. */
  #index: Map<string, number[]> | null = null;

  constructor(init?: HeadersInit) {
    if (init === undefined) {
      this.#flat = [];
    } else if (init instanceof HTTPHeaders) {
      this.#flat = init.#flat.slice();
    } else if (Array.isArray(init) && (init.length === 0 || typeof init[0] === "string")) {
      if (init.length % 2 !== 0) throw new TypeError("Cannot build headers: a flat header list must have an even length");
      this.#flat = init as FlatHeaders;
    } else if (typeof (init as Iterable<unknown>)[Symbol.iterator] === "function") {
      this.#flat = [];
      for (const [name, value] of init as Iterable<readonly [string, string]>) this.#flat.push(name, value);
    } else {
      this.#flat = [];
      for (const [name, value] of Object.entries(init as Record<string, unknown>)) {
        if (value === undefined) continue;
        if (Array.isArray(value)) for (const v of value) this.#flat.push(name, String(v));
        else this.#flat.push(name, String(value));
      }
    }
  }

  /** Wraps a flat list without copying it (the list must not change afterwards). */
  static fromFlat(flat: FlatHeaders): HTTPHeaders {
    return new HTTPHeaders(flat);
  }

  #buildIndex(): Map<string, number[]> {
    const index = new Map<string, number[]>();
    const flat = this.#flat;
    for (let i = 0; i < flat.length; i += 2) {
      const key = flat[i]!.toLowerCase();
      const list = index.get(key);
      if (list === undefined) index.set(key, [i]);
      else list.push(i);
    }
    this.#index = index;
    return index;
  }

  #positions(name: string): number[] | undefined {
    return (this.#index ?? this.#buildIndex()).get(name.toLowerCase());
  }

  /** The values of `name` joined with `", "`, or `undefined` if absent. */
  get(name: string): string | undefined {
    const pos = this.#positions(name);
    if (pos === undefined) return undefined;
    if (pos.length === 1) return this.#flat[pos[0]! + 1];
    return pos.map((i) => this.#flat[i + 1]).join(", ");
  }

  /** Every value of `name`, in order; empty if absent. */
  getAll(name: string): string[] {
    const pos = this.#positions(name);
    return pos === undefined ? [] : pos.map((i) => this.#flat[i + 1]!);
  }

  /** True if `name` is present at least once. */
  has(name: string): boolean {
    return this.#positions(name) !== undefined;
  }

  /** Appends a value, keeping earlier ones. */
  add(name: string, value: string): void {
    const i = this.#flat.length;
    this.#flat.push(name, value);
    if (this.#index !== null) {
      const key = name.toLowerCase();
      const list = this.#index.get(key);
      if (list === undefined) this.#index.set(key, [i]);
      else list.push(i);
    }
  }

  /** Replaces every value of `name` with one value. */
  set(name: string, value: string): void {
    this.delete(name);
    this.add(name, value);
  }

  /** Removes every value of `name`. Returns true if there was any. */
  delete(name: string): boolean {
    const key = name.toLowerCase();
    const flat = this.#flat;
    let removed = false;
    for (let i = flat.length - 2; i >= 0; i -= 2) {
      if (flat[i]!.toLowerCase() === key) {
        flat.splice(i, 2);
        removed = true;
      }
    }
    if (removed) this.#index = null;
    return removed;
  }

  /** Number of header lines (a repeated name counts once per line). */
  get size(): number {
    return this.#flat.length / 2;
  }

  /** The flat list, names as given. Do not change it. */
  toFlat(): FlatHeaders {
    return this.#flat;
  }

  /** One entry per line, in order, names as given. */
  *[Symbol.iterator](): IterableIterator<[string, string]> {
    const flat = this.#flat;
    for (let i = 0; i < flat.length; i += 2) yield [flat[i]!, flat[i + 1]!];
  }

  /** Distinct lowercased names, in order of first appearance. */
  names(): string[] {
    return [...(this.#index ?? this.#buildIndex()).keys()];
  }

  /**
   * A plain object with lowercased names, as Node's `req.headers`: values of
   * repeated names joined with `", "`, except `set-cookie`, which is an array.
   */
  toObject(): Record<string, string | string[]> {
    const out: Record<string, string | string[]> = {};
    for (const key of this.names()) {
      out[key] = key === "set-cookie" ? this.getAll(key) : this.get(key)!;
    }
    return out;
  }
}

/**
 * Any {@link HeadersInit} as a flat list `[name, value, ...]`. A flat list is
 * returned as it is; other forms are copied.
 *
 * @example
 * ```ts
 * flattenHeaders({ "Content-Type": "text/plain", "Set-Cookie": ["a=1", "b=2"] })
 * // ["Content-Type", "text/plain", "Set-Cookie", "a=1", "Set-Cookie", "b=2"]
 * ```
 */
export function flattenHeaders(init: HeadersInit | undefined): FlatHeaders {
  if (init === undefined) return [];
  if (Object.getPrototypeOf(init) === Object.prototype) {
    // A plain object, the common case: no HTTPHeaders on the way.
    const out: FlatHeaders = [];
    const record = init as Record<string, string | number | readonly string[] | undefined>;
    for (const name in record) {
      const value = record[name];
      if (value === undefined) continue;
      if (typeof value === "string") out.push(name, value);
      else if (Array.isArray(value)) for (const v of value) out.push(name, String(v));
      else out.push(name, String(value));
    }
    return out;
  }
  if (init instanceof HTTPHeaders) return init.toFlat();
  if (Array.isArray(init) && (init.length === 0 || typeof init[0] === "string")) return init as FlatHeaders;
  return new HTTPHeaders(init).toFlat();
}
