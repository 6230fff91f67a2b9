/**
 * The `Sec-WebSocket-Extensions` header (RFC 6455 §9.1):
 *
 * ```
 * Sec-WebSocket-Extensions = extension-list
 * extension-list = 1#extension
 * extension = extension-token *( ";" extension-param )
 * extension-token = registered-token
 * registered-token = token
 * extension-param = token [ "=" (token | quoted-string) ]
 * ```
 *
 * "When using the quoted-string syntax variant, the value after
 * quoted-string unescaping MUST conform to the 'token' ABNF." Names are
 * compared case-insensitively and returned in lower case.
 *
 * @module
 */
import { RemoteProtocolError } from "../../core/errors";
import { WS_ERR } from "./constants";

/** One `name[=value]` parameter; `value` is null when there is none. */
export interface ExtensionParam {
  readonly name: string;
  readonly value: string | null;
}

/** One extension with its parameters, in header order. */
export interface Extension {
  readonly name: string;
  readonly params: readonly ExtensionParam[];
}

/** RFC 9110 §5.6.2 tchar. */
const TCHAR = (() => {
  const t = new Uint8Array(128);
  for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") t[c.charCodeAt(0)] = 1;
  return t;
})();

/**
 * True if `s` is a non-empty RFC 9110 token.
 *
 * @example
 * ```ts
 * isToken("permessage-deflate") // true
 * isToken("a b") // false
 * ```
 */
export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TCHAR[c] === 0) return false;
  }
  return true;
}

function fail(header: string, at: number, what: string): never {
  throw new RemoteProtocolError(
    WS_ERR.INVALID_EXTENSION,
    `Cannot parse Sec-WebSocket-Extensions: ${what} at index ${at} of ${JSON.stringify(header)}`,
    { status: 400, position: at },
  );
}

/**
 * Parses one or more `Sec-WebSocket-Extensions` values (repeated header
 * lines form one comma-separated list; empty list elements are skipped as
 * RFC 9110 §5.6.1 requires). Throws a {@link RemoteProtocolError}
 * (`WS_ERR_INVALID_EXTENSION`, status 400) on a syntax error.
 *
 * @example
 * ```ts
 * parseExtensions("permessage-deflate; client_max_window_bits, x-foo")
 * // [{ name: "permessage-deflate", params: [{ name: "client_max_window_bits", value: null }] },
 * //  { name: "x-foo", params: [] }]
 * ```
 */
export function parseExtensions(header: string | readonly string[]): Extension[] {
  const text = typeof header === "string" ? header : header.join(", ");
  const out: Extension[] = [];
  const n = text.length;
  let i = 0;
  const skipOws = () => {
    while (i < n && (text.charCodeAt(i) === 0x20 || text.charCodeAt(i) === 0x09)) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c >= 128 || TCHAR[c] === 0) break;
      i++;
    }
    return text.slice(start, i);
  };
  for (;;) {
    skipOws();
    if (i === n) break;
    if (text.charCodeAt(i) === 0x2c) {
      i++; // empty list element
      continue;
    }
    const name = readToken();
    if (name.length === 0) fail(text, i, "expected an extension name");
    const params: ExtensionParam[] = [];
    skipOws();
    while (i < n && text.charCodeAt(i) === 0x3b) {
      i++;
      skipOws();
      const pname = readToken();
      if (pname.length === 0) fail(text, i, "expected a parameter name");
      skipOws();
      let value: string | null = null;
      if (i < n && text.charCodeAt(i) === 0x3d) {
        i++;
        skipOws();
        if (i < n && text.charCodeAt(i) === 0x22) {
          i++;
          let v = "";
          for (;;) {
            if (i >= n) fail(text, i, "unterminated quoted string");
            const c = text.charCodeAt(i);
            if (c === 0x22) {
              i++;
              break;
            }
            if (c === 0x5c) {
              i++;
              if (i >= n) fail(text, i, "unterminated quoted string");
            }
            v += text[i];
            i++;
          }
          if (!isToken(v)) fail(text, i, "a quoted value that is not a token");
          value = v;
        } else {
          value = readToken();
          if (value.length === 0) fail(text, i, "expected a parameter value");
        }
        skipOws();
      }
      params.push({ name: pname.toLowerCase(), value });
    }
    out.push({ name: name.toLowerCase(), params });
    if (i === n) break;
    if (text.charCodeAt(i) !== 0x2c) fail(text, i, "expected ',' or ';'");
    i++;
  }
  return out;
}

/**
 * Formats an extension for a header value.
 *
 * @example
 * ```ts
 * formatExtension({ name: "permessage-deflate", params: [{ name: "server_max_window_bits", value: "10" }] })
 * // "permessage-deflate; server_max_window_bits=10"
 * ```
 */
export function formatExtension(extension: Extension): string {
  let s = extension.name;
  for (const p of extension.params) s += p.value === null ? `; ${p.name}` : `; ${p.name}=${p.value}`;
  return s;
}
