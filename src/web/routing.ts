/**
 * URL rules of an {@link Application}: a pattern, the handler class that
 * serves it, the arguments of the handler's `initialize`, and a name for
 * `reverseUrl` (Tornado's `URLSpec` and `PathMatches`).
 *
 * How matching works: a pattern is a regular expression matched against the
 * whole request path (`^(?:pattern)$`: anchored at both ends), as Tornado
 * matches `re.match(pattern + "$")`. A pattern without regex metacharacters
 * (after unescaping `\.` and the like) is a *literal*: the router finds it
 * with one `Map` lookup and tries only the regex rules listed before it, so
 * that the first matching rule wins as in Tornado while plain paths never
 * run a regex.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { HTTPServerRequest } from "../server";
import type { Application } from "./application";
import type { RequestHandler } from "./request-handler";

/** What `initialize` of a handler gets: the third element of a route. */
export type InitArgs = Record<string, unknown>;

/** A {@link RequestHandler} subclass, as routes name them. */
export type RequestHandlerClass = new (
  application: Application,
  request: HTTPServerRequest,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each handler declares its own shape
  initArgs?: any,
) => RequestHandler;

/**
 * A route as a tuple, as Tornado's `(pattern, Handler, kwargs, name)`.
 *
 * @example
 * ```ts
 * const routes: Route[] = [
 *   ["/", MainHandler],
 *   ["/user/([0-9]+)", UserHandler, { db }, "user"],
 * ];
 * ```
 */
export type RouteTuple =
  | readonly [pattern: string | RegExp, handler: RequestHandlerClass]
  | readonly [pattern: string | RegExp, handler: RequestHandlerClass, initArgs: InitArgs | undefined]
  | readonly [pattern: string | RegExp, handler: RequestHandlerClass, initArgs: InitArgs | undefined, name: string | undefined];

/** Anything an {@link Application} accepts as a route. */
export type Route = RouteTuple | URLSpec;

/** Options of {@link url}. */
export interface URLSpecOptions {
  /** Passed to the handler's `initialize`. @default {} */
  initArgs?: InitArgs;
  /** A name for `Application.reverseUrl`. */
  name?: string;
}

/** Regex metacharacters: a pattern without any (unescaped) is a literal path. */
const META = new Set(["\\", ".", "^", "$", "*", "+", "?", "(", ")", "[", "]", "{", "}", "|"]);

const EMPTY_INIT_ARGS: InitArgs = Object.freeze({}) as InitArgs;

/**
 * One URL rule (Tornado's `URLSpec`): a pattern, its handler class, the
 * handler's `initialize` arguments and an optional name.
 *
 * String patterns use JavaScript regex syntax; Python's `(?P<name>...)` is
 * accepted and read as `(?<name>...)`. A `RegExp` is used with its flags
 * (but `g` and `y`), anchored at both ends like a string.
 *
 * @example
 * ```ts
 * const spec = new URLSpec("/article/([0-9]+)", ArticleHandler, { name: "article" });
 * spec.reverse(42); // "/article/42"
 * ```
 */
export class URLSpec {
  /** The pattern as given (a string, or the source of a RegExp). */
  readonly pattern: string;
  /** The compiled pattern, anchored at both ends. */
  readonly regex: RegExp;
  readonly handlerClass: RequestHandlerClass;
  readonly initArgs: InitArgs;
  readonly name: string | undefined;
  /** The path itself when the pattern has no regex metacharacters; else null. */
  readonly literal: string | null;
  /** Number of capturing groups. */
  readonly groupCount: number;
  /** True if the groups are named (their values also go to `pathKwargs`). */
  readonly namedGroups: boolean;
  /** `/a/%s/b` for reversing, or null if the pattern is too complex to reverse. */
  readonly #reverseTemplate: string[] | null;

  constructor(pattern: string | RegExp, handlerClass: RequestHandlerClass, options: URLSpecOptions = {}) {
    if (typeof handlerClass !== "function") {
      throw new TypeError(`Cannot add the route ${String(pattern)}: its handler is not a class`);
    }
    let source: string;
    let flags = "";
    if (pattern instanceof RegExp) {
      source = pattern.source;
      flags = pattern.flags.replace(/[gy]/g, "");
    } else if (typeof pattern === "string") {
      source = pattern.replace(/\(\?P</g, "(?<");
    } else {
      throw new TypeError(`Cannot add a route: its pattern must be a string or a RegExp, not ${typeof pattern}`);
    }
    this.pattern = typeof pattern === "string" ? pattern : pattern.source;
    try {
      this.regex = new RegExp(`^(?:${source})$`, flags);
    } catch (err) {
      throw new SyntaxError(`Cannot compile the route pattern ${JSON.stringify(this.pattern)}: ${(err as Error).message}`);
    }
    this.handlerClass = handlerClass;
    this.initArgs = options.initArgs ?? EMPTY_INIT_ARGS;
    this.name = options.name;
    this.groupCount = new RegExp(`${source}|`, flags).exec("")!.length - 1;
    this.namedGroups = /\(\?<[A-Za-z_$]/.test(source);
    this.literal = flags.includes("i") ? null : literalPath(stripAnchors(source));
    this.#reverseTemplate = reverseTemplate(stripAnchors(source), this.groupCount);
  }

  /**
   * The path of this rule with `args` in place of its groups, each
   * converted to a string and percent-encoded (`/` is kept, as Python's
   * `quote`). Throws if the pattern is too complex to reverse or the number
   * of arguments is wrong.
   *
   * @example
   * ```ts
   * new URLSpec("/u/([^/]+)/(\\d+)", UserHandler).reverse("ann lee", 7); // "/u/ann%20lee/7"
   * ```
   */
  reverse(...args: Array<string | number | boolean>): string {
    const template = this.#reverseTemplate;
    if (template === null) {
      throw new Error(`Cannot reverse the url pattern ${JSON.stringify(this.pattern)}: it is too complex`);
    }
    if (args.length !== this.groupCount) {
      throw new RangeError(
        `Cannot reverse the url pattern ${JSON.stringify(this.pattern)}: it needs ${this.groupCount} arguments, got ${args.length}`,
      );
    }
    let out = template[0]!;
    for (let i = 0; i < args.length; i++) out += urlQuote(String(args[i])) + template[i + 1]!;
    return out;
  }
}

/**
 * Makes a {@link URLSpec}, as Tornado's `url()`.
 *
 * @example
 * ```ts
 * new Application([
 *   url("/", MainHandler),
 *   url("/story/([0-9]+)", StoryHandler, { initArgs: { db }, name: "story" }),
 * ]);
 * ```
 */
export function url(pattern: string | RegExp, handlerClass: RequestHandlerClass, options: URLSpecOptions = {}): URLSpec {
  return new URLSpec(pattern, handlerClass, options);
}

/**
 * A route tuple or spec as a {@link URLSpec}.
 *
 * @example
 * ```ts
 * toURLSpec(["/u/([0-9]+)", UserHandler, { db }, "user"]).reverse(3) // "/u/3"
 * ```
 */
export function toURLSpec(route: Route): URLSpec {
  if (route instanceof URLSpec) return route;
  if (!Array.isArray(route) || route.length < 2 || route.length > 4) {
    throw new TypeError("Cannot add a route: give [pattern, Handler, initArgs?, name?] or url(...)");
  }
  const [pattern, handlerClass, initArgs, name] = route as readonly [string | RegExp, RequestHandlerClass, InitArgs?, string?];
  return new URLSpec(pattern, handlerClass, { initArgs, name });
}

function stripAnchors(source: string): string {
  let s = source;
  if (s.startsWith("^")) s = s.slice(1);
  if (s.endsWith("$") && !s.endsWith("\\$")) s = s.slice(0, -1);
  return s;
}

/** The path a pattern matches if it has no (unescaped) metacharacter; else null. */
function literalPath(source: string): string | null {
  let out = "";
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === "\\") {
      const next = source[i + 1];
      if (next === undefined || /[A-Za-z0-9]/.test(next)) return null; // \d, \w, \1, ...
      out += next;
      i++;
    } else if (META.has(c)) {
      return null;
    } else {
      out += c;
    }
  }
  return out;
}

/**
 * Pieces between the groups of a pattern (Tornado's `_find_groups`): null if
 * the pattern has parentheses that are not groups (`(?:`, lookarounds),
 * nested groups, or an escape that has no literal meaning (`\d`).
 */
function reverseTemplate(source: string, groupCount: number): string[] | null {
  const parts = source.split("(");
  if (parts.length - 1 !== groupCount) return null;
  const pieces: string[] = [];
  const first = unescapeFragment(parts[0]!);
  if (first === null) return null;
  pieces.push(first);
  for (let i = 1; i < parts.length; i++) {
    const fragment = parts[i]!;
    const close = fragment.indexOf(")");
    if (close === -1) return null; // a nested group
    const rest = unescapeFragment(fragment.slice(close + 1));
    if (rest === null) return null;
    pieces.push(rest);
  }
  return pieces;
}

/** Tornado's `re_unescape`: `\.` is `.`, but `\d` has no literal meaning. */
function unescapeFragment(fragment: string): string | null {
  if (!fragment.includes("\\")) return fragment;
  let out = "";
  for (let i = 0; i < fragment.length; i++) {
    const c = fragment[i]!;
    if (c !== "\\") {
      out += c;
      continue;
    }
    const next = fragment[i + 1];
    if (next === undefined || /[A-Za-z0-9]/.test(next)) return null;
    out += next;
    i++;
  }
  return out;
}

/**
 * Percent-encodes as Python's `urllib.parse.quote(s, safe="/")` (what
 * `reverseUrl` does to its arguments).
 *
 * @example
 * ```ts
 * urlQuote("a b/é") // "a%20b/%C3%A9"
 * ```
 */
export function urlQuote(text: string): string {
  return encodeURIComponent(text).replace(/%2F|[!'()*]/gi, (c) =>
    c.length === 3 ? "/" : `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * Percent-decodes a path argument as UTF-8, as Tornado's `_unquote_or_none`
 * followed by `decode_argument`: `+` stays `+`, a `%` that starts no valid
 * escape stays as it is, and bytes that are not UTF-8 make it return null.
 * Characters U+0080..U+00FF count as the raw bytes they were on the wire
 * (the server decodes request targets as latin1).
 *
 * @example
 * ```ts
 * urlUnquote("caf%C3%A9") // "café"
 * urlUnquote("%FF")       // null (not UTF-8)
 * ```
 */
export function urlUnquote(text: string): string | null {
  if (!NEEDS_DECODING.test(text)) return text;
  if (!NON_ASCII.test(text)) {
    try {
      return decodeURIComponent(text);
    } catch {
      // A bad escape: decode byte by byte below.
    }
  }
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x25 && i + 2 < text.length && HEX2.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c < 0x100) {
      bytes.push(c);
    } else {
      const cp = text.codePointAt(i)!;
      if (cp > 0xffff) i++;
      for (const b of Buffer.from(String.fromCodePoint(cp), "utf8")) bytes.push(b);
    }
  }
  try {
    return UTF8_STRICT.decode(new Uint8Array(bytes));
  } catch {
    return null;
  }
}

const NEEDS_DECODING = /[%\u0080-\uffff]/;
const NON_ASCII = /[\u0080-\uffff]/;
const HEX2 = /^[0-9A-Fa-f]{2}$/;
const UTF8_STRICT = new TextDecoder("utf-8", { fatal: true });
