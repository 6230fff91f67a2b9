import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createPipe, flushMemory } from "../../src/transports/memory";
import {
  ErrorHandler,
  Finish,
  HTTPError,
  MissingArgumentError,
  RedirectHandler,
  RequestHandler,
  type ErrorOptions,
} from "../../src/web";
import { deferred, parseResponses, request, serve } from "./helpers";

const NOT_FOUND_PAGE = "<html><title>404: Not Found</title><body>404: Not Found</body></html>";

describe("lifecycle", () => {
  it("runs setDefaultHeaders, initialize, prepare, the method and onFinish in order", async () => {
    const calls: string[] = [];
    class H extends RequestHandler {
      // A field with an initializer: initialize must not be undone by it.
      db: string | null = null;
      override setDefaultHeaders() {
        calls.push("setDefaultHeaders");
      }
      override initialize(args: { db: string }) {
        calls.push("initialize");
        this.db = args.db;
      }
      override prepare() {
        calls.push("prepare");
      }
      get(id: string) {
        calls.push(`get ${id}`);
        this.write(`${this.db}:${id}`);
      }
      override onFinish() {
        calls.push(`onFinish ${this.finished}`);
      }
    }
    const t = serve([["/item/(\\d+)", H, { db: "main" }]]);
    const res = await t.fetch("GET", "/item/7");
    expect(res.status).toBe(200);
    expect(res.text).toBe("main:7");
    expect(calls).toEqual(["setDefaultHeaders", "initialize", "prepare", "get 7", "onFinish true"]);
  });

  it("waits for an async prepare and an async method", async () => {
    const gate = deferred();
    const calls: string[] = [];
    class H extends RequestHandler {
      override async prepare() {
        await gate.promise;
        calls.push("prepared");
      }
      async post() {
        await Promise.resolve();
        calls.push("post");
        this.write("done");
      }
    }
    const t = serve([["/", H]]);
    const pending = t.fetch("POST", "/", { body: "x" });
    await flushMemory();
    expect(calls).toEqual([]);
    gate.resolve();
    const res = await pending;
    expect(res.text).toBe("done");
    expect(calls).toEqual(["prepared", "post"]);
  });

  it("skips the method when prepare finishes the response", async () => {
    let called = false;
    class H extends RequestHandler {
      override prepare() {
        this.finish("from prepare");
      }
      get() {
        called = true;
      }
    }
    const res = await serve([["/", H]]).fetch("GET", "/");
    expect(res.text).toBe("from prepare");
    expect(called).toBe(false);
  });

  it("does not finish by itself when autoFinish is off", async () => {
    const returned = deferred();
    const gate = deferred();
    let handler: RequestHandler | null = null;
    class H extends RequestHandler {
      get() {
        this.autoFinish = false;
        this.write("later");
        handler = this;
        // Finishes when the test says so, long after get() returned.
        void gate.promise.then(() => this.finish("!"));
        returned.resolve();
      }
    }
    let answered = false;
    const pending = serve([["/", H]]).fetch("GET", "/").then((res) => {
      answered = true;
      return res;
    });
    await returned.promise;
    await flushMemory();
    expect(handler!.finished).toBe(false);
    expect(answered).toBe(false);
    gate.resolve();
    const res = await pending;
    expect(res.text).toBe("later!");
  });

  it("calls onConnectionClose when the client goes away before the answer", async () => {
    const closed = deferred();
    const started = deferred();
    let finishedCalled = false;
    class H extends RequestHandler {
      async get() {
        started.resolve();
        await closed.promise;
      }
      override onConnectionClose() {
        closed.resolve();
      }
      override onFinish() {
        finishedCalled = true;
      }
    }
    const t = serve([["/", H]]);
    const [client, serverEnd] = createPipe();
    t.server.handleConnection(serverEnd);
    client.setHandler({ data() {}, end() {}, drain() {}, close() {} });
    client.write(request("GET", "/"));
    await started.promise;
    client.destroy();
    await closed.promise;
    await flushMemory();
    // finish() after the client left: no error, and onFinish still runs.
    expect(finishedCalled).toBe(true);
    expect(t.logger.messages("error")).toEqual([]);
  });
});

describe("method dispatch", () => {
  it("calls put, patch, delete and options (and get, post, head) with the path arguments and the body", async () => {
    const calls: string[] = [];
    class Item extends RequestHandler {
      #record(name: string, id: string | undefined) {
        const body = Buffer.from(this.request.body).toString("latin1");
        calls.push(`${name} ${id} ${body}`);
        this.setHeader("X-Method", name);
        this.write(`${name}:${id}:${body}`);
      }
      get(id: string) {
        this.#record("get", id);
      }
      head(id: string) {
        this.#record("head", id);
      }
      post(id: string) {
        this.#record("post", id);
      }
      put(id: string) {
        this.#record("put", id);
      }
      async patch(id: string) {
        await Promise.resolve();
        this.#record("patch", id);
      }
      delete(id: string) {
        this.#record("delete", id);
      }
      options(id: string) {
        this.setHeader("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
        this.setStatus(204);
        calls.push(`options ${id} ${Buffer.from(this.request.body).toString("latin1")}`);
      }
    }
    const t = serve([["/items/(\\w+)", Item]]);
    const put = await t.fetch("PUT", "/items/a", { body: "new a" });
    expect([put.status, put.headers.get("X-Method"), put.text]).toEqual([200, "put", "put:a:new a"]);
    const patch = await t.fetch("PATCH", "/items/b", { body: "part of b" });
    expect([patch.status, patch.headers.get("X-Method"), patch.text]).toEqual([200, "patch", "patch:b:part of b"]);
    const del = await t.fetch("DELETE", "/items/c");
    expect([del.status, del.headers.get("X-Method"), del.text]).toEqual([200, "delete", "delete:c:"]);
    const delWithBody = await t.fetch("DELETE", "/items/d", { body: "why" });
    expect(delWithBody.text).toBe("delete:d:why");
    const options = await t.fetch("OPTIONS", "/items/e");
    expect([options.status, options.headers.get("Allow"), options.text]).toEqual([204, "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS", ""]);
    const get = await t.fetch("GET", "/items/f");
    expect(get.text).toBe("get:f:");
    const post = await t.fetch("POST", "/items/g", { body: "posted" });
    expect(post.text).toBe("post:g:posted");
    const head = await t.fetch("HEAD", "/items/h");
    expect([head.status, head.headers.get("X-Method"), head.headers.get("Content-Length"), head.text]).toEqual([200, "head", "7", ""]);
    expect(calls).toEqual(["put a new a", "patch b part of b", "delete c ", "delete d why", "options e ", "get f ", "post g posted", "head h "]);
  });

  it("answers 405 for put, patch, delete and options that the handler lacks, naming the ones it has", async () => {
    class ReadOnly extends RequestHandler {
      get() {
        this.write("read");
      }
      options() {
        this.setStatus(204);
      }
    }
    const t = serve([["/", ReadOnly]]);
    for (const method of ["PUT", "PATCH", "DELETE"]) {
      const res = await t.fetch(method, "/", { body: "x" });
      expect([method, res.status, res.headers.get("Allow")]).toEqual([method, 405, "GET, OPTIONS"]);
    }
    expect((await t.fetch("OPTIONS", "/")).status).toBe(204);
  });
});

describe("write, flush and finish", () => {
  it("sends strings as UTF-8 and bytes as they are, with Content-Length", async () => {
    class H extends RequestHandler {
      get() {
        this.write("héllo ");
        this.write(new Uint8Array([0, 255, 10]));
        this.write("");
      }
    }
    const res = await serve([["/", H]]).fetch("GET", "/");
    expect(res.body).toEqual(Buffer.concat([Buffer.from("héllo ", "utf8"), Buffer.from([0, 255, 10])]));
    expect(res.headers.get("Content-Length")).toBe(String(res.body.byteLength));
    expect(res.chunked).toBe(false);
  });

  it("sends the default headers: Server, Content-Type and the server's Date", async () => {
    class H extends RequestHandler {
      get() {
        this.write("x");
      }
    }
    const res = await serve([["/", H]]).fetch("GET", "/");
    expect(res.headers.get("Server")).toMatch(/^typhoon\/\d+\.\d+\.\d+/);
    expect(res.headers.get("Content-Type")).toBe("text/html; charset=UTF-8");
    expect(res.headers.get("Date")).toMatch(/GMT$/);
  });

  it("writes plain objects as JSON with escaped </ and the JSON content type", async () => {
    class H extends RequestHandler {
      get() {
        this.write({ a: 1, html: "</script>", nested: { list: [1, "two"] } });
      }
    }
    const res = await serve([["/", H]]).fetch("GET", "/");
    expect(res.headers.get("Content-Type")).toBe("application/json; charset=UTF-8");
    expect(res.text).toBe('{"a":1,"html":"<\\/script>","nested":{"list":[1,"two"]}}');
    expect(JSON.parse(res.text).html).toBe("</script>");
  });

  it("refuses arrays and other values with a TypeError", async () => {
    const errors: string[] = [];
    class H extends RequestHandler {
      get() {
        for (const value of [[1, 2], 42, null, new Map(), undefined]) {
          try {
            this.write(value as never);
          } catch (e) {
            errors.push(`${(e as Error).name}: ${(e as Error).message}`);
          }
        }
        this.write("ok");
      }
    }
    const res = await serve([["/", H]]).fetch("GET", "/");
    expect(res.text).toBe("ok");
    expect(errors).toHaveLength(5);
    expect(errors[0]).toMatch(/^TypeError: Cannot write an array: .*JSON hijacking/);
    expect(errors[1]).toBe("TypeError: Cannot write a number: write() accepts a string, a Uint8Array or a plain object");
    expect(errors[3]).toMatch(/Cannot write a Map/);
  });

  it("flush sends the head and the body so far, chunked; finish ends it", async () => {
    const flushed: boolean[] = [];
    class H extends RequestHandler {
      async get() {
        this.write("one,");
        await this.flush();
        flushed.push(this.headersWritten);
        this.write("two,");
        await this.flush();
        await this.flush();
        await this.finish("three");
        flushed.push(this.finished);
      }
    }
    const res = await serve([["/", H]]).fetch("GET", "/");
    expect(res.chunked).toBe(true);
    expect(res.complete).toBe(true);
    expect(res.text).toBe("one,two,three");
    expect(res.headers.has("Content-Length")).toBe(false);
    expect(res.headers.has("Etag")).toBe(false);
    expect(flushed).toEqual([true, true]);
  });

  it("finish(chunk) writes the chunk; a second finish or a write after it throws", async () => {
    const errors: string[] = [];
    class H extends RequestHandler {
      get() {
        void this.finish({ ok: true });
        for (const f of [() => this.finish(), () => this.write("x"), () => this.flush()]) {
          try {
            f();
          } catch (e) {
            errors.push((e as Error).message);
          }
        }
      }
    }
    const res = await serve([["/", H]]).fetch("GET", "/");
    expect(JSON.parse(res.text)).toEqual({ ok: true });
    expect(errors).toEqual([
      "Cannot finish: the response is already finished",
      "Cannot write: the response is already finished",
      "Cannot flush: the response is already finished",
    ]);
  });

  it("honours a Content-Length set by the handler when flushing", async () => {
    class H extends RequestHandler {
      async get() {
        this.setHeader("Content-Length", 6);
        this.write("abc");
        await this.flush();
        this.write("def");
      }
    }
    const res = await serve([["/", H]]).fetch("GET", "/");
    expect(res.chunked).toBe(false);
    expect(res.text).toBe("abcdef");
  });
});

describe("status and headers", () => {
  it("setStatus with standard, unknown and custom reasons; getStatus", async () => {
    class H extends RequestHandler {
      get(code: string) {
        if (code === "201") this.setStatus(201);
        else if (code === "299") this.setStatus(299);
        else this.setStatus(Number(code), "Custom Reason");
        this.write(`${this.getStatus()} ${this.reason}`);
      }
    }
    const t = serve([["/(\\d+)", H]]);
    const created = await t.fetch("GET", "/201");
    expect([created.status, created.reason, created.text]).toEqual([201, "Created", "201 Created"]);
    // Tornado 5+: an unknown code without a reason gets "Unknown".
    const unknown = await t.fetch("GET", "/299");
    expect([unknown.status, unknown.reason]).toEqual([299, "Unknown"]);
    const custom = await t.fetch("GET", "/599");
    expect([custom.status, custom.reason]).toEqual([599, "Custom Reason"]);
  });

  it("setStatus rejects codes outside 100..999 and unsafe reasons", () => {
    const h = new RequestHandler(serve([]).app, undefined as never);
    expect(() => h.setStatus(42)).toThrow("Cannot set status 42: it must be an integer from 100 to 999");
    expect(() => h.setStatus(200.5)).toThrow(RangeError);
    expect(() => h.setStatus(200, "OK\r\nX: y")).toThrow(/control character/);
    expect(() => h.setStatus(200, "<script>")).toThrow(/"<"/);
    expect(h.getStatus()).toBe(200);
  });

  it("setHeader replaces, addHeader appends, clearHeader removes, all case-insensitively", async () => {
    class H extends RequestHandler {
      get() {
        this.setHeader("X-One", "1");
        this.addHeader("x-one", "2");
        this.setHeader("X-Two", 2);
        this.setHeader("X-TWO", "two");
        this.addHeader("Link", "<a>");
        this.addHeader("Link", "<b>");
        this.setHeader("Last-Modified", new Date(Date.UTC(2020, 0, 2, 3, 4, 5)));
        this.clearHeader("server");
        this.write(`${this.getHeader("x-one")}|${this.getHeader("x-two")}|${this.getHeader("nope")}`);
      }
    }
    const res = await serve([["/", H]]).fetch("GET", "/");
    expect(res.text).toBe("1, 2|two|undefined");
    expect(res.headers.getAll("X-One")).toEqual(["1", "2"]);
    expect(res.headers.getAll("X-Two")).toEqual(["two"]);
    expect(res.headers.getAll("Link")).toEqual(["<a>", "<b>"]);
    expect(res.headers.get("Last-Modified")).toBe("Thu, 02 Jan 2020 03:04:05 GMT");
    expect(res.headers.has("Server")).toBe(false);
  });

  it("refuses header values that could split the response", () => {
    const h = new RequestHandler(serve([]).app, undefined as never);
    expect(() => h.setHeader("X", "a\r\nInjected: 1")).toThrow(/Cannot set header X: the value .* not allowed/);
    expect(() => h.addHeader("X", "a\u0000")).toThrow(TypeError);
    expect(() => h.setHeader("X", "\u0100")).toThrow(TypeError);
    expect(() => h.setHeader("Bad Name", "1")).toThrow('Cannot set header "Bad Name": the name is not a token');
    expect(() => h.setHeader("X", Infinity)).toThrow(/not a finite number/);
    expect(() => h.setHeader("X", {} as never)).toThrow(/not a string, number or Date/);
    h.setHeader("X", "tab\tand latin1 é");
    expect(h.getHeader("x")).toBe("tab\tand latin1 é");
  });

  it("checks every header, also right after an equal name or value passed", () => {
    const h = new RequestHandler(serve([]).app, undefined as never);
    h.setHeader("X-Ok", "fine");
    expect(() => h.setHeader("X Ok", "fine")).toThrow(/not a token/);
    h.setHeader("X-Ok", "fine");
    expect(() => h.setHeader("X-Ok", "fine\r\nInjected: 1")).toThrow(/not allowed/);
    h.setHeader("X-Ok", "fine");
    expect(() => h.addHeader("X-Ok\n", "fine")).toThrow(/not a token/);
    expect(() => h.setHeader("", "")).toThrow(/not a token/);
    expect(h.getHeader("X-Ok")).toBe("fine");
  });

  it("setDefaultHeaders and clear", async () => {
    class H extends RequestHandler {
      override setDefaultHeaders() {
        this.setHeader("Server", "Custom");
        this.setHeader("X-Default", "yes");
      }
      get() {
        this.setStatus(418);
        this.setHeader("X-Gone", "1");
        this.write("discarded");
        this.clear();
        this.write("kept");
      }
    }
    const res = await serve([["/", H]]).fetch("GET", "/");
    expect(res.status).toBe(200);
    expect(res.text).toBe("kept");
    expect(res.headers.get("Server")).toBe("Custom");
    expect(res.headers.get("X-Default")).toBe("yes");
    expect(res.headers.has("X-Gone")).toBe(false);
  });

  it("204 and 304 must have no body and drop representation headers", async () => {
    class H extends RequestHandler {
      get(code: string) {
        this.setStatus(Number(code));
        this.setHeader("Content-Language", "en");
      }
      post(code: string) {
        this.setStatus(Number(code));
        this.write("not allowed");
      }
    }
    const t = serve([["/(\\d+)", H]]);
    for (const code of ["204", "304"]) {
      const res = await t.fetch("GET", `/${code}`);
      expect(res.status).toBe(Number(code));
      expect(res.headers.has("Content-Type")).toBe(false);
      expect(res.headers.has("Content-Language")).toBe(false);
      expect(res.headers.has("Content-Length")).toBe(false);
      expect(res.body.byteLength).toBe(0);
    }
    const bad = await t.fetch("POST", "/204", { body: "" });
    expect(bad.status).toBe(500);
    expect(t.logger.lines.some((l) => l.level === "error" && String((l.details[0] as Error)?.message).includes("Cannot send a body with status 204"))).toBe(true);
  });
});

describe("HEAD", () => {
  it("is not mapped to get: a handler without head answers 405", async () => {
    class H extends RequestHandler {
      get() {
        this.write("x");
      }
    }
    const res = await serve([["/", H]]).fetch("HEAD", "/");
    expect(res.status).toBe(405);
    expect(res.headers.get("Allow")).toBe("GET");
    expect(res.body.byteLength).toBe(0);
  });

  it("sends the head with the Content-Length of the body written, and no body", async () => {
    class H extends RequestHandler {
      head() {
        this.write("twelve bytes");
      }
    }
    const t = serve([["/", H]]);
    const [res, next] = await t.pipeline([["HEAD", "/"], ["HEAD", "/"]]);
    expect(res!.status).toBe(200);
    expect(res!.headers.get("Content-Length")).toBe("12");
    expect(res!.body.byteLength).toBe(0);
    expect(next!.status).toBe(200);
  });
});

describe("Etag", () => {
  class Page extends RequestHandler {
    get(size: string) {
      this.write(size === "big" ? "x".repeat(5000) : "Hello, world");
    }
    post() {
      this.write("posted");
    }
  }

  it("computes an Etag for GET, answers 304 to a matching If-None-Match", async () => {
    const t = serve([["/(small|big)", Page]]);
    for (const size of ["small", "big"]) {
      const first = await t.fetch("GET", `/${size}`);
      const etag = first.headers.get("Etag")!;
      expect(etag).toMatch(/^"[^"]+"$/);
      expect((await t.fetch("GET", `/${size}`)).headers.get("Etag")).toBe(etag);
      const again = await t.fetch("GET", `/${size}`, { headers: { "If-None-Match": etag } });
      expect(again.status).toBe(304);
      expect(again.body.byteLength).toBe(0);
      expect(again.headers.get("Etag")).toBe(etag);
      expect(again.headers.has("Content-Type")).toBe(false);
      // Weak comparison, lists and *.
      expect((await t.fetch("GET", `/${size}`, { headers: { "If-None-Match": `"zzz", W/${etag}` } })).status).toBe(304);
      expect((await t.fetch("GET", `/${size}`, { headers: { "If-None-Match": "*" } })).status).toBe(304);
      expect((await t.fetch("GET", `/${size}`, { headers: { "If-None-Match": '"other"' } })).status).toBe(200);
    }
  });

  it("uses Tornado's SHA-1 for large bodies and differs when the body differs", async () => {
    const t = serve([["/(small|big)", Page]]);
    const big = await t.fetch("GET", "/big");
    expect(big.headers.get("Etag")).toBe(`"${createHash("sha1").update("x".repeat(5000)).digest("hex")}"`);
    const small = await t.fetch("GET", "/small");
    expect(small.headers.get("Etag")).not.toBe(big.headers.get("Etag"));
  });

  it("gives the same tag to the same bytes written as text or as bytes", async () => {
    class Bytes extends RequestHandler {
      get(kind: string) {
        this.write(kind === "text" ? "Hello, world" : Buffer.from("Hello, world"));
      }
    }
    const t = serve([["/(text|bytes)", Bytes]]);
    const a = (await t.fetch("GET", "/text")).headers.get("Etag");
    const b = (await t.fetch("GET", "/bytes")).headers.get("Etag");
    expect(a).toBe(b);
  });

  it("sends no Etag for POST, for non-200 answers, or when computeEtag returns null", async () => {
    class NoTag extends RequestHandler {
      get() {
        this.write("x");
      }
      override computeEtag() {
        return null;
      }
    }
    class Created extends RequestHandler {
      get() {
        this.setStatus(201);
        this.write("x");
      }
    }
    const t = serve([["/(small|big)", Page], ["/none", NoTag], ["/created", Created]]);
    expect((await t.fetch("POST", "/small", { body: "" })).headers.has("Etag")).toBe(false);
    expect((await t.fetch("GET", "/none", { headers: { "If-None-Match": "*" } })).status).toBe(200);
    expect((await t.fetch("GET", "/none")).headers.has("Etag")).toBe(false);
    expect((await t.fetch("GET", "/created")).headers.has("Etag")).toBe(false);
  });

  it("keeps an Etag set by the handler and checks it", async () => {
    class Versioned extends RequestHandler {
      get() {
        this.setHeader("Etag", '"v7"');
        if (this.checkEtagHeader()) {
          this.setStatus(304);
          return;
        }
        this.write("content v7");
      }
    }
    const t = serve([["/", Versioned]]);
    const res = await t.fetch("GET", "/");
    expect(res.headers.get("Etag")).toBe('"v7"');
    expect(res.text).toBe("content v7");
    expect((await t.fetch("GET", "/", { headers: { "If-None-Match": '"v7"' } })).status).toBe(304);
  });
});

describe("Etag hooks", () => {
  it("finish calls an overridden setEtagHeader and checkEtagHeader", async () => {
    const calls: string[] = [];
    class Custom extends RequestHandler {
      get() {
        this.write("body");
      }
      override setEtagHeader() {
        calls.push("set");
        this.setHeader("Etag", '"custom"');
      }
      override checkEtagHeader() {
        calls.push("check");
        return this.request.header("X-Cached") === "yes";
      }
    }
    const t = serve([["/", Custom]]);
    const fresh = await t.fetch("GET", "/");
    expect(fresh.status).toBe(200);
    expect(fresh.headers.get("Etag")).toBe('"custom"');
    expect(calls).toEqual(["set", "check"]);
    const cached = await t.fetch("GET", "/", { headers: { "X-Cached": "yes" } });
    expect(cached.status).toBe(304);
    expect(cached.body.byteLength).toBe(0);
    // The client's If-None-Match is the override's business, not finish's.
    expect((await t.fetch("GET", "/", { headers: { "If-None-Match": '"custom"' } })).status).toBe(200);
  });

  it("an overridden computeEtag still drives the built-in check", async () => {
    class Versioned extends RequestHandler {
      get() {
        this.write("content");
      }
      override computeEtag() {
        return '"v3"';
      }
    }
    class SetsItself extends RequestHandler {
      get() {
        this.write("content");
      }
      override computeEtag() {
        this.setHeader("Etag", '"early"');
        return '"v4"';
      }
    }
    const t = serve([["/", Versioned], ["/itself", SetsItself]]);
    // A computeEtag that sets an Etag itself: one header, the returned tag.
    expect((await t.fetch("GET", "/itself")).headers.getAll("Etag")).toEqual(['"v4"']);
    expect((await t.fetch("GET", "/")).headers.get("Etag")).toBe('"v3"');
    expect((await t.fetch("GET", "/", { headers: { "If-None-Match": 'W/"v3"' } })).status).toBe(304);
    expect((await t.fetch("GET", "/", { headers: { "If-None-Match": '"v2"' } })).status).toBe(200);
  });
});

describe("redirect", () => {
  it("sends 302, 301 when permanent, or the given 3xx status, with Location", async () => {
    class H extends RequestHandler {
      get(kind: string) {
        if (kind === "temp") this.redirect("/there?a=1");
        else if (kind === "perm") this.redirect("/there", true);
        else if (kind === "307") this.redirect("https://example.com/x", false, 307);
        else if (kind === "utf8") this.redirect("/café");
        else this.redirect("/x", false, 200);
      }
    }
    const t = serve([["/(\\w+)", H]]);
    const temp = await t.fetch("GET", "/temp");
    expect([temp.status, temp.headers.get("Location"), temp.body.byteLength]).toEqual([302, "/there?a=1", 0]);
    const perm = await t.fetch("GET", "/perm");
    expect([perm.status, perm.headers.get("Location")]).toEqual([301, "/there"]);
    const other = await t.fetch("GET", "/307");
    expect([other.status, other.headers.get("Location")]).toEqual([307, "https://example.com/x"]);
    expect((await t.fetch("GET", "/utf8")).headers.get("Location")).toBe("/caf%C3%A9");
    expect((await t.fetch("GET", "/bad")).status).toBe(500);
  });

  it("refuses to redirect after the headers were sent", async () => {
    let message = "";
    class H extends RequestHandler {
      async get() {
        await this.flush();
        try {
          this.redirect("/x");
        } catch (e) {
          message = (e as Error).message;
        }
      }
    }
    await serve([["/", H]]).fetch("GET", "/");
    expect(message).toBe("Cannot redirect: the headers were already sent");
  });

  it("RedirectHandler substitutes groups and carries the query over", async () => {
    const t = serve([
      ["/old/(.*)/(.*)", RedirectHandler, { url: "/new/{1}/{0}" }],
      ["/tmp", RedirectHandler, { url: "/elsewhere?x=1", permanent: false }],
    ]);
    const res = await t.fetch("GET", "/old/a/b?q=1");
    expect([res.status, res.headers.get("Location")]).toEqual([301, "/new/b/a?q=1"]);
    const tmp = await t.fetch("GET", "/tmp?y=2");
    expect([tmp.status, tmp.headers.get("Location")]).toEqual([302, "/elsewhere?x=1&y=2"]);
  });
});

describe("errors", () => {
  it("answers 404 with Tornado's page for unknown paths", async () => {
    const t = serve([]);
    const res = await t.fetch("GET", "/missing");
    expect(res.status).toBe(404);
    expect(res.headers.get("Content-Type")).toBe("text/html; charset=UTF-8");
    expect(res.text).toBe(NOT_FOUND_PAGE);
    expect(t.logger.messages("warn")).toEqual([expect.stringMatching(/^404 GET \/missing \(.*\) \d+\.\d\dms$/)]);
  });

  it("uses defaultHandlerClass and defaultHandlerArgs for unknown paths", async () => {
    class Fallback extends RequestHandler {
      label = "";
      override initialize(args: { label: string }) {
        this.label = args.label;
      }
      get() {
        this.setStatus(404);
        this.write(`custom ${this.label} ${this.request.path}`);
      }
    }
    const t = serve([], { defaultHandlerClass: Fallback, defaultHandlerArgs: { label: "nf" } });
    const res = await t.fetch("GET", "/x");
    expect([res.status, res.text]).toEqual([404, "custom nf /x"]);
    const gone = await serve([["/gone", ErrorHandler, { statusCode: 410 }]]).fetch("POST", "/gone", { body: "" });
    expect([gone.status, gone.text]).toEqual([410, "<html><title>410: Gone</title><body>410: Gone</body></html>"]);
  });

  it("answers 405 with Allow for a method the handler lacks or does not support", async () => {
    class H extends RequestHandler {
      get() {}
      post() {}
      delete() {}
    }
    const t = serve([["/", H]]);
    const put = await t.fetch("PUT", "/", { body: "" });
    expect(put.status).toBe(405);
    expect(put.headers.get("Allow")).toBe("GET, POST, DELETE");
    expect(put.text).toBe("<html><title>405: Method Not Allowed</title><body>405: Method Not Allowed</body></html>");
    const propfind = await t.fetch("PROPFIND", "/");
    expect(propfind.status).toBe(405);
    class Nothing extends RequestHandler {}
    const none = await serve([["/", Nothing]]).fetch("GET", "/");
    expect(none.status).toBe(405);
    expect(none.headers.get("Allow")).toBe("");
  });

  it("turns a thrown error into a 500 without a stack, and keeps serving", async () => {
    class H extends RequestHandler {
      get(what: string) {
        if (what === "boom") throw new Error("secret detail");
        this.write("fine");
      }
    }
    const t = serve([["/(\\w+)", H]]);
    const [bad, good] = await t.pipeline([["GET", "/boom"], ["GET", "/ok"]]);
    expect(bad!.status).toBe(500);
    expect(bad!.text).toBe("<html><title>500: Internal Server Error</title><body>500: Internal Server Error</body></html>");
    expect(bad!.text).not.toContain("secret");
    expect(good!.status).toBe(200);
    expect(good!.text).toBe("fine");
    const logged = t.logger.lines.find((l) => l.message.startsWith("Uncaught exception GET /boom"));
    expect((logged?.details[0] as Error).message).toBe("secret detail");
    expect(t.logger.messages("error")).toContain(t.logger.messages("error").find((m) => m.startsWith("500 GET /boom")));
  });

  it("shows the stack as text/plain with debug or serveTraceback", async () => {
    class H extends RequestHandler {
      async get() {
        await Promise.resolve();
        throw new TypeError("visible detail");
      }
    }
    for (const settings of [{ debug: true }, { serveTraceback: true }]) {
      const res = await serve([["/", H]], settings).fetch("GET", "/");
      expect(res.status).toBe(500);
      expect(res.headers.get("Content-Type")).toBe("text/plain; charset=UTF-8");
      expect(res.text).toMatch(/^TypeError: visible detail\n\s+at /);
    }
    const off = await serve([["/", H]], { debug: true, serveTraceback: false }).fetch("GET", "/");
    expect(off.text).not.toContain("visible detail");
  });

  it("HTTPError gives its status and reason; its log message goes to the log only", async () => {
    class H extends RequestHandler {
      get(kind: string) {
        if (kind === "plain") throw new HTTPError(403);
        if (kind === "logged") throw new HTTPError(409, "Version clash on item 5");
        throw new HTTPError(499, undefined, { reason: "Client Went Fishing" });
      }
    }
    const t = serve([["/(\\w+)", H]]);
    const plain = await t.fetch("GET", "/plain");
    expect([plain.status, plain.text]).toEqual([403, "<html><title>403: Forbidden</title><body>403: Forbidden</body></html>"]);
    const logged = await t.fetch("GET", "/logged");
    expect(logged.status).toBe(409);
    expect(logged.text).not.toContain("clash");
    expect(t.logger.messages("warn")).toContainEqual(expect.stringMatching(/^409 GET \/logged \(.*\): Version clash on item 5$/));
    const custom = await t.fetch("GET", "/custom");
    expect([custom.status, custom.reason]).toEqual([499, "Client Went Fishing"]);
    expect(custom.text).toBe("<html><title>499: Client Went Fishing</title><body>499: Client Went Fishing</body></html>");
    expect(new HTTPError(404, "no such item").message).toBe("HTTP 404: Not Found (no such item)");
  });

  it("HTTPError thrown from async prepare and from initialize", async () => {
    class FromPrepare extends RequestHandler {
      override async prepare() {
        throw new HTTPError(401);
      }
      get() {
        this.write("never");
      }
    }
    class FromInitialize extends RequestHandler {
      override initialize() {
        throw new HTTPError(503);
      }
      get() {}
    }
    const t = serve([["/p", FromPrepare], ["/i", FromInitialize]]);
    expect((await t.fetch("GET", "/p")).status).toBe(401);
    expect((await t.fetch("GET", "/i")).status).toBe(503);
  });

  it("sendError replaces the unflushed output; writeError can be overridden", async () => {
    class H extends RequestHandler {
      get() {
        this.setHeader("X-Dropped", "1");
        this.write("dropped");
        this.sendError(418, { reason: "Short And Stout" });
      }
      override writeError(status: number, options: ErrorOptions) {
        this.finish({ status, reason: this.reason, hasError: options.error !== undefined });
      }
    }
    const res = await serve([["/", H]]).fetch("GET", "/");
    expect([res.status, res.reason]).toEqual([418, "Short And Stout"]);
    expect(res.headers.has("X-Dropped")).toBe(false);
    expect(JSON.parse(res.text)).toEqual({ status: 418, reason: "Short And Stout", hasError: false });
  });

  it("a writeError that throws still ends the response", async () => {
    class H extends RequestHandler {
      get() {
        throw new HTTPError(400);
      }
      override writeError() {
        this.write("partial");
        throw new Error("broken page");
      }
    }
    const t = serve([["/", H]]);
    const res = await t.fetch("GET", "/");
    expect(res.status).toBe(400);
    expect(res.text).toBe("partial");
    expect(t.logger.messages("error")).toContain("Uncaught exception in writeError");
  });

  it("Finish ends the request without an error page", async () => {
    class H extends RequestHandler {
      override prepare() {
        if (this.request.path === "/deny") {
          this.setStatus(401);
          this.setHeader("WWW-Authenticate", 'Basic realm="x"');
          throw new Finish();
        }
        if (this.request.path === "/body") throw new Finish({ finished: "early" });
      }
      get() {
        this.write("normal");
      }
    }
    const t = serve([["/(?:deny|body|ok)", H]]);
    const deny = await t.fetch("GET", "/deny");
    expect([deny.status, deny.headers.get("WWW-Authenticate"), deny.text]).toEqual([401, 'Basic realm="x"', ""]);
    expect(JSON.parse((await t.fetch("GET", "/body")).text)).toEqual({ finished: "early" });
    expect((await t.fetch("GET", "/ok")).text).toBe("normal");
    expect(t.logger.messages("error")).toEqual([]);
  });

  it("an error after the head was sent closes the connection, cutting the body short", async () => {
    class H extends RequestHandler {
      async get() {
        this.write("partial ");
        await this.flush();
        throw new Error("mid-stream failure");
      }
    }
    class Fine extends RequestHandler {
      get() {
        this.write("fine");
      }
    }
    const t = serve([["/fail", H], ["/fine", Fine]]);
    const [res] = await t.pipeline([["GET", "/fail"]]);
    expect(res!.status).toBe(200);
    expect(res!.chunked).toBe(true);
    expect(res!.complete).toBe(false);
    expect(res!.text).toBe("partial ");
    expect(t.logger.lines.some((l) => l.level === "error" && (l.details[0] as Error)?.message === "mid-stream failure")).toBe(true);
    expect((await t.fetch("GET", "/fine")).text).toBe("fine");
  });

  it("sendError after a flush logs and ends the response", async () => {
    class H extends RequestHandler {
      async get() {
        this.write("started");
        await this.flush();
        this.sendError(500);
      }
    }
    const t = serve([["/", H]]);
    const res = await t.fetch("GET", "/");
    expect(res.complete).toBe(true);
    expect(res.text).toBe("started");
    expect(t.logger.messages("error")[0]).toMatch(/^Cannot send error response 500 for GET \/ .*: the headers were already sent$/);
  });

  it("MissingArgumentError answers 400", async () => {
    class H extends RequestHandler {
      get() {
        this.write(this.getArgument("q"));
      }
    }
    const t = serve([["/", H]]);
    const res = await t.fetch("GET", "/");
    expect(res.status).toBe(400);
    expect(t.logger.messages("warn")[0]).toMatch(/^400 GET \/ \(.*\): Missing argument q$/);
    const e = new MissingArgumentError("q");
    expect([e.statusCode, e.argName, e instanceof HTTPError]).toEqual([400, "q", true]);
  });
});

describe("arguments", () => {
  class Args extends RequestHandler {
    get() {
      this.write({
        a: this.getArgument("a", null),
        all: this.getArguments("a"),
        raw: this.getArguments("a", false),
        missing: this.getArgument("missing", "default"),
        q: this.getQueryArgument("q", null),
        qs: this.getQueryArguments("q"),
        ctrl: this.getArgument("ctrl", null),
      });
    }
    post() {
      this.write({
        a: this.getArguments("a"),
        body: this.getBodyArguments("a"),
        query: this.getQueryArguments("a"),
        last: this.getBodyArgument("a", null),
        unstripped: this.getBodyArgument("s", null, false),
        missing: this.getBodyArgument("missing", 0),
      });
    }
  }

  it("reads query arguments, last value wins, stripped, control characters replaced", async () => {
    const t = serve([["/", Args]]);
    const res = await t.fetch("GET", "/?a=1&a=+two+&q=caf%C3%A9&ctrl=x%01y");
    expect(JSON.parse(res.text)).toEqual({
      a: "two",
      all: ["1", "two"],
      raw: ["1", " two "],
      missing: "default",
      q: "café",
      qs: ["café"],
      ctrl: "x y",
    });
  });

  it("reads urlencoded body arguments after the query ones", async () => {
    const t = serve([["/", Args]]);
    const res = await t.fetch("POST", "/?a=q", {
      headers: { "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8" },
      body: "a=b1&a=b%202&s=+keep+",
    });
    expect(JSON.parse(res.text)).toEqual({
      a: ["q", "b1", "b 2"],
      body: ["b1", "b 2"],
      query: ["q"],
      last: "b 2",
      unstripped: " keep ",
      missing: 0,
    });
  });

  it("ignores bodies of other types and compressed ones", async () => {
    const t = serve([["/", Args]]);
    const json = await t.fetch("POST", "/?a=q", { headers: { "Content-Type": "application/json" }, body: "a=1" });
    expect(JSON.parse(json.text).body).toEqual([]);
    const gz = await t.fetch("POST", "/?a=q", {
      headers: { "Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "gzip" },
      body: "a=1",
    });
    expect(JSON.parse(gz.text).body).toEqual([]);
    expect(t.logger.messages("warn")).toContain("Unsupported Content-Encoding: gzip");
  });
});

describe("settings and helpers", () => {
  it("exposes settings, requireSetting, reverseUrl and requestSummary", async () => {
    class H extends RequestHandler {
      get() {
        this.requireSetting("siteName");
        let missing = "";
        try {
          this.requireSetting("cookieSecret", "secure cookies");
        } catch (e) {
          missing = (e as Error).message;
        }
        this.write({ name: this.settings.siteName, missing, url: this.reverseUrl("item", 3), summary: this.requestSummary() });
      }
    }
    const t = serve([["/", H], ["/item/(\\d+)", H, {}, "item"]], { siteName: "demo" });
    const body = JSON.parse((await t.fetch("GET", "/?x=1")).text);
    expect(body.name).toBe("demo");
    expect(body.missing).toBe('Cannot use secure cookies: the application has no "cookieSecret" setting');
    expect(body.url).toBe("/item/3");
    expect(body.summary).toMatch(/^GET \/\?x=1 \(.*\)$/);
  });

  it("logs requests below 400 only with accessLog, and through logFunction when given", async () => {
    class H extends RequestHandler {
      get() {
        this.write("x");
      }
    }
    const quiet = serve([["/", H]]);
    await quiet.fetch("GET", "/");
    expect(quiet.logger.lines).toEqual([]);
    const loud = serve([["/", H]], { accessLog: true });
    await loud.fetch("GET", "/");
    expect(loud.logger.messages("info")).toEqual([expect.stringMatching(/^200 GET \/ \(.*\) \d+\.\d\dms$/)]);
    const seen: string[] = [];
    const custom = serve([["/", H]], { logFunction: (h) => seen.push(`${h.getStatus()} ${h.request.uri}`) });
    await custom.fetch("GET", "/");
    await custom.fetch("GET", "/nope");
    expect(seen).toEqual(["200 /", "404 /nope"]);
    expect(custom.logger.lines).toEqual([]);
  });

  it("answers requests pipelined on one connection in order, async or not", async () => {
    // /sync answers at once; the others wait for their gates, opened in reverse order.
    const gates = new Map([["slow", deferred()], ["slower", deferred()]]);
    const started: string[] = [];
    const finished: string[] = [];
    class H extends RequestHandler {
      async get(name: string) {
        started.push(name);
        const gate = gates.get(name);
        if (gate !== undefined) await gate.promise;
        this.write(name);
        finished.push(name);
      }
    }
    const t = serve([["/(\\w+)", H]]);
    const pending = t.pipeline([["GET", "/slower"], ["GET", "/sync"], ["GET", "/slow"]]);
    await flushMemory();
    expect(started).toEqual(["slower", "sync", "slow"]);
    expect(finished).toEqual(["sync"]);
    gates.get("slow")!.resolve();
    await flushMemory();
    expect(finished).toEqual(["sync", "slow"]);
    gates.get("slower")!.resolve();
    const responses = await pending;
    expect(finished).toEqual(["sync", "slow", "slower"]);
    expect(responses.map((r) => r.text)).toEqual(["slower", "sync", "slow"]);
  });

  it("parses a whole request sent byte by byte", async () => {
    class Echo extends RequestHandler {
      post() {
        this.write(this.request.body);
      }
    }
    const t = serve([["/", Echo]]);
    const bytes = request("POST", "/", { body: "split body" });
    const [client, serverEnd] = createPipe({ split: 1 });
    t.server.handleConnection(serverEnd);
    const got: Buffer[] = [];
    const done = deferred();
    client.setHandler({ data: (c) => got.push(Buffer.from(c)), end: () => client.end(), drain() {}, close: () => done.resolve() });
    client.write(bytes);
    client.end();
    await done.promise;
    expect(parseResponses(Buffer.concat(got), ["POST"])[0]!.text).toBe("split body");
  });
});
