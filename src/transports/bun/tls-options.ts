/**
 * The contract's TLS options turned into Bun's.
 *
 * @module
 */
import { isIP } from "node:net";
import type { TlsClientOptions, TlsServerOptions } from "../../core/transport";
import type { BunPem, BunTlsOptions } from "./bun-api";

const encoder = new TextEncoder();

/**
 * ALPN protocol names in the wire format Bun takes: each prefixed by its
 * length (RFC 7301 §3.1).
 *
 * @example
 * ```ts
 * alpnWireFormat(["h2", "http/1.1"]); // bytes "\x02h2\x08http/1.1"
 * ```
 */
export function alpnWireFormat(protocols: readonly string[]): Uint8Array {
  const names = protocols.map((protocol) => encoder.encode(protocol));
  const out = new Uint8Array(names.reduce((total, name) => total + 1 + name.byteLength, 0));
  let at = 0;
  for (const [i, name] of names.entries()) {
    if (name.byteLength === 0 || name.byteLength > 255) {
      throw new RangeError(`Cannot use ALPN protocol ${JSON.stringify(protocols[i])}: a name is 1 to 255 bytes long`);
    }
    out[at++] = name.byteLength;
    out.set(name, at);
    at += name.byteLength;
  }
  return out;
}

function pemList(value: BunPem | BunPem[] | undefined): BunPem | BunPem[] | undefined {
  return value === undefined ? undefined : Array.isArray(value) ? [...value] : value;
}

/** Bun's options for a TLS listener (or the server side of startTls). */
export function serverTlsOptions(settings: TlsServerOptions): BunTlsOptions {
  const tls: BunTlsOptions = { key: settings.key, cert: settings.cert };
  const ca = pemList(settings.ca);
  if (ca !== undefined) tls.ca = ca;
  if (settings.passphrase !== undefined) tls.passphrase = settings.passphrase;
  if (settings.alpnProtocols !== undefined && settings.alpnProtocols.length > 0) tls.ALPNProtocols = alpnWireFormat(settings.alpnProtocols);
  return tls;
}

/**
 * Bun's options for an outgoing TLS connection. The SNI name defaults to the
 * host when it is a name, not an IP address; certificates are verified
 * unless `rejectUnauthorized` is false.
 */
export function clientTlsOptions(settings: TlsClientOptions | true, host: string | undefined, unix: boolean): BunTlsOptions {
  const options = settings === true ? {} : settings;
  const tls: BunTlsOptions = { rejectUnauthorized: options.rejectUnauthorized ?? true };
  const servername = options.servername ?? (!unix && host !== undefined && isIP(host) === 0 ? host : undefined);
  if (servername !== undefined) tls.serverName = servername;
  const ca = pemList(options.ca);
  if (ca !== undefined) tls.ca = ca;
  if (options.alpnProtocols !== undefined && options.alpnProtocols.length > 0) tls.ALPNProtocols = alpnWireFormat(options.alpnProtocols);
  return tls;
}
