import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LocalProtocolError, RemoteProtocolError } from "../../src/core/errors";
import { HTTPHeaders } from "../../src/core/headers";
import {
  checkServerHandshake,
  computeAcceptKey,
  createClientHandshake,
  generateClientKey,
  isValidClientKey,
  isWebSocketUpgrade,
  parseSubprotocols,
  serverHandshake,
  sha1,
  type ServerHandshakeAccept,
  type ServerHandshakeReject,
  type UpgradeRequest,
} from "../../src/protocols/websocket";
import { toHex, utf8 } from "./helpers";

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

function request(extra: string[] = [], omit: string[] = [], method = "GET", httpVersion = "1.1"): UpgradeRequest {
  const base = [
    "Host", "server.example.com",
    "Upgrade", "websocket",
    "Connection", "Upgrade",
    "Sec-WebSocket-Key", KEY,
    "Sec-WebSocket-Version", "13",
  ];
  const headers: string[] = [];
  for (let i = 0; i < base.length; i += 2) if (!omit.includes(base[i]!)) headers.push(base[i]!, base[i + 1]!);
  return { method, httpVersion, headers: [...headers, ...extra] };
}

function accepted(r: ReturnType<typeof serverHandshake>): ServerHandshakeAccept {
  if (!r.ok) throw new Error(`rejected: ${r.error.message}`);
  return r;
}

function rejected(r: ReturnType<typeof serverHandshake>): ServerHandshakeReject {
  if (r.ok) throw new Error("accepted");
  return r;
}

describe("SHA-1 and keys", () => {
  it("hashes FIPS 180 test vectors", () => {
    expect(toHex(sha1(utf8("abc")))).toBe("a9993e364706816aba3e25717850c26c9cd0d89d");
    expect(toHex(sha1(new Uint8Array(0)))).toBe("da39a3ee5e6b4b0d3255bfef95601890afd80709");
    expect(toHex(sha1(utf8("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")))).toBe("84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  });

  it("agrees with node:crypto for any input (block edges included)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (data) => toHex(sha1(data)) === createHash("sha1").update(data).digest("hex")),
      { numRuns: 200 },
    );
  });

  it("computes RFC 6455 §1.3's Sec-WebSocket-Accept", () => {
    expect(computeAcceptKey(KEY)).toBe(ACCEPT);
    expect(computeAcceptKey(KEY, (d) => createHash("sha1").update(d).digest())).toBe(ACCEPT);
  });

  it("generates 16-byte keys from the injected source", () => {
    expect(generateClientKey((b) => b.fill(0))).toBe("AAAAAAAAAAAAAAAAAAAAAA==");
    const a = generateClientKey();
    expect(isValidClientKey(a)).toBe(true);
    expect(generateClientKey()).not.toBe(a);
    expect(isValidClientKey("dGhlIHNhbXBsZSBub25jZQ=")).toBe(false);
    expect(isValidClientKey("dGhlIHNhbXBsZSBub25jZQ==x")).toBe(false);
  });
});

describe("serverHandshake", () => {
  it("accepts RFC 6455 §1.3's request", () => {
    const r = accepted(serverHandshake(request()));
    expect(r.status).toBe(101);
    expect(r.headers).toEqual(["Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Accept", ACCEPT]);
    expect(r.subprotocol).toBeNull();
    expect(r.perMessageDeflate).toBeNull();
  });

  it("takes headers as a flat list, an HTTPHeaders or a lookup function; tokens case-insensitively", () => {
    const flat = request(["Connection", "keep-alive"], ["Connection", "Upgrade"]).headers as string[];
    flat.push("connection", "keep-alive, UPGRADE", "upgrade", "WebSocket");
    expect(serverHandshake({ method: "GET", httpVersion: "HTTP/1.1", headers: flat }).ok).toBe(true);
    const h = new HTTPHeaders(request().headers as string[]);
    expect(serverHandshake({ method: "GET", httpVersion: "1.1", headers: h }).ok).toBe(true);
    expect(serverHandshake({ method: "GET", httpVersion: "2.0", headers: (name) => h.getAll(name) }).ok).toBe(true);
    expect(isWebSocketUpgrade(h)).toBe(true);
    expect(isWebSocketUpgrade(["Upgrade", "h2c"])).toBe(false);
  });

  it.each<[string, UpgradeRequest, number, string[]]>([
    ["POST", request([], [], "POST"), 405, ["Allow", "GET"]],
    ["HTTP/1.0", request([], [], "GET", "1.0"), 400, []],
    ["no Upgrade", request([], ["Upgrade"]), 400, []],
    ["Upgrade: h2c", request(["Upgrade", "h2c"], ["Upgrade"]), 400, []],
    ["no Connection: Upgrade", request(["Connection", "keep-alive"], ["Connection"]), 400, []],
    ["no Host", request([], ["Host"]), 400, []],
    ["two Host headers", request(["Host", "other"]), 400, []],
    ["no Sec-WebSocket-Key", request([], ["Sec-WebSocket-Key"]), 400, []],
    ["a short key", request(["Sec-WebSocket-Key", "c2hvcnQ="], ["Sec-WebSocket-Key"]), 400, []],
    ["two keys", request(["Sec-WebSocket-Key", KEY]), 400, []],
    ["no version", request([], ["Sec-WebSocket-Version"]), 400, ["Sec-WebSocket-Version", "13"]],
    ["version 8", request(["Sec-WebSocket-Version", "8"], ["Sec-WebSocket-Version"]), 426, ["Sec-WebSocket-Version", "13"]],
    ["versions 13 and 8", request(["Sec-WebSocket-Version", "8"]), 426, ["Sec-WebSocket-Version", "13"]],
    ["a bad subprotocol list", request(["Sec-WebSocket-Protocol", "chat, chat"]), 400, []],
  ])("rejects %s", (_name, req, status, headers) => {
    const r = rejected(serverHandshake(req));
    expect(r.status).toBe(status);
    expect(r.headers).toEqual(headers);
    expect(r.error).toBeInstanceOf(RemoteProtocolError);
    expect(r.error.status).toBe(status);
  });

  it.each(["permessage-deflate;", "permessage-deflate; a=", '"quoted"', "x-foo; a=\"b c\"", "permessage-deflate, ;x"])(
    "with permessage-deflate enabled, rejects the malformed extension header %j with 400; without, ignores it",
    (value) => {
      const req = request(["Sec-WebSocket-Extensions", value]);
      const r = rejected(serverHandshake(req, { perMessageDeflate: true }));
      expect(r.status).toBe(400);
      expect(r.error.code).toBe("WS_ERR_INVALID_EXTENSION");
      for (const options of [{}, { perMessageDeflate: false }]) {
        const ok = accepted(serverHandshake(req, options));
        expect(ok.perMessageDeflate).toBeNull();
        expect(ok.headers).not.toContain("Sec-WebSocket-Extensions");
      }
    },
  );

  it("selects a subprotocol from the client's list, or none", () => {
    const req = request(["Sec-WebSocket-Protocol", "chat, superchat", "Sec-WebSocket-Protocol", "v2.json"]);
    let seen: readonly string[] = [];
    const r = accepted(serverHandshake(req, { selectSubprotocol: (offered) => ((seen = offered), "superchat") }));
    expect(seen).toEqual(["chat", "superchat", "v2.json"]);
    expect(r.subprotocol).toBe("superchat");
    expect(r.headers.slice(-2)).toEqual(["Sec-WebSocket-Protocol", "superchat"]);
    expect(accepted(serverHandshake(req, { selectSubprotocol: () => null })).headers).not.toContain("Sec-WebSocket-Protocol");
    expect(accepted(serverHandshake(req)).subprotocol).toBeNull();
    expect(() => serverHandshake(req, { selectSubprotocol: () => "other" })).toThrow(LocalProtocolError);
  });

  it("negotiates permessage-deflate when enabled; ignores unknown extensions", () => {
    const req = request(["Sec-WebSocket-Extensions", "x-unknown; a=1, permessage-deflate; client_max_window_bits"]);
    expect(accepted(serverHandshake(req)).perMessageDeflate).toBeNull();
    const r = accepted(serverHandshake(req, { perMessageDeflate: { serverMaxWindowBits: 10 } }));
    expect(r.headers.slice(-2)).toEqual(["Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=10"]);
    expect(r.perMessageDeflate).toEqual({ serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 10, clientMaxWindowBits: 15 });
    expect(accepted(serverHandshake(request(["Sec-WebSocket-Extensions", "x-unknown"]), { perMessageDeflate: true })).headers).toHaveLength(6);
    expect(() => serverHandshake(req, { perMessageDeflate: { serverMaxWindowBits: 20 } })).toThrow(RangeError);
  });
});

describe("client handshake", () => {
  const response = (extra: string[] = [], omit: string[] = [], status = 101) => {
    const base = ["Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Accept", ACCEPT];
    const headers: string[] = [];
    for (let i = 0; i < base.length; i += 2) if (!omit.includes(base[i]!)) headers.push(base[i]!, base[i + 1]!);
    return { status, headers: [...headers, ...extra] };
  };

  it("builds the request headers", () => {
    const hs = createClientHandshake({ key: KEY, protocols: ["chat", "superchat"], perMessageDeflate: true });
    expect(hs.headers).toEqual([
      "Upgrade", "websocket",
      "Connection", "Upgrade",
      "Sec-WebSocket-Key", KEY,
      "Sec-WebSocket-Version", "13",
      "Sec-WebSocket-Protocol", "chat, superchat",
      "Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits",
    ]);
    expect(isValidClientKey(createClientHandshake().key)).toBe(true);
    expect(() => createClientHandshake({ protocols: ["a b"] })).toThrow(TypeError);
    expect(() => createClientHandshake({ protocols: ["a", "a"] })).toThrow(TypeError);
    expect(() => createClientHandshake({ key: "nope" })).toThrow(TypeError);
  });

  it("accepts a matching answer and returns what was negotiated", () => {
    const hs = createClientHandshake({ key: KEY, protocols: ["chat"], perMessageDeflate: { serverNoContextTakeover: true } });
    const r = checkServerHandshake(hs, response(["Sec-WebSocket-Protocol", "chat", "Sec-WebSocket-Extensions", "permessage-deflate; server_no_context_takeover"]));
    expect(r.subprotocol).toBe("chat");
    expect(r.perMessageDeflate).toEqual({ serverNoContextTakeover: true, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 });
    expect(checkServerHandshake(createClientHandshake({ key: KEY }), response())).toEqual({ subprotocol: null, perMessageDeflate: null });
  });

  it("works end to end with serverHandshake", () => {
    const hs = createClientHandshake({ protocols: ["a", "b"], perMessageDeflate: { clientMaxWindowBits: 12 } });
    const srv = accepted(
      serverHandshake({ method: "GET", httpVersion: "1.1", headers: ["Host", "h", ...hs.headers] }, { selectSubprotocol: (o) => o[1], perMessageDeflate: true }),
    );
    const r = checkServerHandshake(hs, { status: 101, headers: srv.headers });
    expect(r.subprotocol).toBe("b");
    expect(r.perMessageDeflate).toEqual(srv.perMessageDeflate);
    expect(r.perMessageDeflate?.clientMaxWindowBits).toBe(12);
  });

  it.each<[string, ReturnType<typeof response>]>([
    ["a 200", response([], [], 200)],
    ["no Upgrade", response([], ["Upgrade"])],
    ["Upgrade: h2c", response(["Upgrade", "h2c"], ["Upgrade"])],
    ["no Connection", response([], ["Connection"])],
    ["no accept", response([], ["Sec-WebSocket-Accept"])],
    ["a wrong accept", response(["Sec-WebSocket-Accept", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="], ["Sec-WebSocket-Accept"])],
    ["an extension not offered", response(["Sec-WebSocket-Extensions", "x-foo"])],
    ["permessage-deflate twice", response(["Sec-WebSocket-Extensions", "permessage-deflate, permessage-deflate"])],
    ["an invalid permessage-deflate", response(["Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"])],
    ["a subprotocol not offered", response(["Sec-WebSocket-Protocol", "other"])],
    ["two subprotocols", response(["Sec-WebSocket-Protocol", "chat, superchat"])],
  ])("fails on %s", (_name, res) => {
    const hs = createClientHandshake({ key: KEY, protocols: ["chat", "superchat"], perMessageDeflate: true });
    expect(() => checkServerHandshake(hs, res)).toThrow(RemoteProtocolError);
  });

  it("parses subprotocol lists strictly", () => {
    expect(parseSubprotocols(" chat ,, superchat ")).toEqual(["chat", "superchat"]);
    expect(() => parseSubprotocols("chat, {bad}")).toThrow(RemoteProtocolError);
  });
});

describe("the import graph", () => {
  it("no WebSocket module imports I/O, and the engine does not import zlib", () => {
    const dir = join(__dirname, "../../src/protocols/websocket");
    for (const file of readdirSync(dir)) {
      const source = readFileSync(join(dir, file), "utf8");
      const imports = [...source.matchAll(/from\s+"([^"]+)"/g)].map((m) => m[1]!);
      for (const spec of imports) {
        expect(["node:net", "node:tls", "node:fs", "node:http", "node:https", "node:crypto", "node:dgram", "node:child_process"]).not.toContain(spec);
        if (spec.startsWith("node:")) expect(["node:buffer", "node:zlib"]).toContain(spec);
        if (spec === "node:zlib") expect(file).toBe("deflate-zlib.ts");
      }
      expect(source).not.toMatch(/\bBun\./);
    }
    const engine = readFileSync(join(dir, "connection.ts"), "utf8");
    expect(engine).not.toMatch(/deflate-zlib/);
  });
});
