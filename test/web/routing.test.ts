import { describe, expect, it } from "vitest";
import { Application, RequestHandler, URLSpec, url, urlQuote, urlUnquote, type Route } from "../../src/web";
import { serve } from "./helpers";

/** Answers which handler ran, with its arguments. */
function named(label: string) {
  return class extends RequestHandler {
    get(...args: Array<string | undefined>) {
      this.write({ handler: label, args: args.map((a) => (a === undefined ? null : a)), kwargs: { ...this.pathKwargs } });
    }
  };
}

async function route(routes: readonly Route[], path: string) {
  const t = serve(routes);
  const res = await t.fetch("GET", path);
  return { status: res.status, json: res.status === 200 ? JSON.parse(res.text) : null };
}

describe("URLSpec", () => {
  it("treats patterns without metacharacters as literal paths, unescaping \\.", () => {
    const H = named("h");
    expect(new URLSpec("/", H).literal).toBe("/");
    expect(new URLSpec("/favicon\\.ico", H).literal).toBe("/favicon.ico");
    expect(new URLSpec("^/about$", H).literal).toBe("/about");
    expect(new URLSpec("/a/([0-9]+)", H).literal).toBeNull();
    expect(new URLSpec("/a.b", H).literal).toBeNull();
    expect(new URLSpec("/a\\d", H).literal).toBeNull();
    expect(new URLSpec(/\/x/i, H).literal).toBeNull();
  });

  it("anchors patterns at both ends", () => {
    const spec = new URLSpec("/a|/b", named("h"));
    expect(spec.regex.test("/a")).toBe(true);
    expect(spec.regex.test("/b")).toBe(true);
    expect(spec.regex.test("/a/c")).toBe(false);
    expect(spec.regex.test("x/b")).toBe(false);
    const fromRegExp = new URLSpec(/\/r\/(\d+)/g, named("h"));
    expect(fromRegExp.regex.test("/r/1")).toBe(true);
    expect(fromRegExp.regex.test("/r/1/x")).toBe(false);
    expect(fromRegExp.regex.flags).not.toContain("g");
  });

  it("counts groups and reads Python's (?P<name>...) as a named group", () => {
    const spec = new URLSpec("/(?P<year>[0-9]{4})/(?P<slug>[a-z-]+)", named("h"));
    expect(spec.groupCount).toBe(2);
    expect(spec.namedGroups).toBe(true);
    expect(spec.regex.exec("/2024/hello-world")!.groups).toEqual({ year: "2024", slug: "hello-world" });
  });

  it("rejects bad patterns and handlers with clear errors", () => {
    expect(() => new URLSpec("/(", named("h"))).toThrow(/Cannot compile the route pattern "\/\("/);
    expect(() => new URLSpec("/", "nope" as never)).toThrow(/its handler is not a class/);
    expect(() => new Application([["/"] as never])).toThrow(/Cannot add a route/);
    class NotAHandler {}
    expect(() => new Application([["/", NotAHandler as never]])).toThrow(
      'Cannot use NotAHandler for the route "/": it does not extend RequestHandler',
    );
    expect(() => new Application([], { defaultHandlerClass: NotAHandler as never })).toThrow(/for defaultHandlerClass/);
  });

  it("reverses patterns as Tornado: groups replaced by quoted arguments", () => {
    const H = named("h");
    expect(new URLSpec("/", H).reverse()).toBe("/");
    expect(new URLSpec("/favicon\\.ico", H).reverse()).toBe("/favicon.ico");
    const spec = new URLSpec("^/user/([^/]+)/post/([0-9]+)$", H);
    expect(spec.reverse("ann lee/x", 7)).toBe("/user/ann%20lee/x/post/7");
    expect(spec.reverse("é&?", 1)).toBe("/user/%C3%A9%26%3F/post/1");
    expect(() => spec.reverse("a")).toThrow(/needs 2 arguments, got 1/);
    expect(() => new URLSpec("/(?:a|b)/(\\d+)", H).reverse(1)).toThrow(/too complex/);
    expect(() => new URLSpec("/a\\d/(\\d+)", H).reverse(1)).toThrow(/too complex/);
    expect(new URLSpec("/(?<id>\\d+)\\.json", H).reverse(5)).toBe("/5.json");
  });
});

describe("urlQuote and urlUnquote", () => {
  it("quote like Python's quote(safe='/')", () => {
    expect(urlQuote("a b/c!'()*~._-")).toBe("a%20b/c%21%27%28%29%2A~._-");
  });

  it("unquote percent escapes as UTF-8, keep + and bad escapes, reject bad UTF-8", () => {
    expect(urlUnquote("plain")).toBe("plain");
    expect(urlUnquote("caf%C3%A9")).toBe("café");
    expect(urlUnquote("a+b")).toBe("a+b");
    expect(urlUnquote("100%")).toBe("100%");
    expect(urlUnquote("%zz%41")).toBe("%zzA");
    expect(urlUnquote("%FF")).toBeNull();
    expect(urlUnquote("%C3")).toBeNull();
    // A raw byte 0xC3 0xA9 arrives as latin1 characters: they are bytes again.
    expect(urlUnquote("caf\u00c3\u00a9%21")).toBe("café!");
  });
});

describe("Application routing", () => {
  it("passes positional groups, decoded, to the handler method", async () => {
    const { status, json } = await route([["/user/([^/]+)/([0-9]+)", named("user")]], "/user/caf%C3%A9%20x+y/42");
    expect(status).toBe(200);
    expect(json).toEqual({ handler: "user", args: ["café x+y", "42"], kwargs: {} });
  });

  it("passes named groups in order and also by name in pathKwargs", async () => {
    const { json } = await route([["/(?P<year>[0-9]{4})/(?<slug>[^/]+)", named("post")]], "/2024/a%2Fb");
    expect(json).toEqual({ handler: "post", args: ["2024", "a/b"], kwargs: { year: "2024", slug: "a/b" } });
  });

  it("passes undefined for a group that did not match", async () => {
    const { json } = await route([["/opt(/[a-z]+)?", named("opt")]], "/opt");
    expect(json).toEqual({ handler: "opt", args: [null], kwargs: {} });
  });

  it("answers 400 for a path argument that is not UTF-8", async () => {
    const t = serve([["/x/(.*)", named("x")]]);
    const res = await t.fetch("GET", "/x/%FF");
    expect(res.status).toBe(400);
    expect(res.text).toBe("<html><title>400: Bad Request</title><body>400: Bad Request</body></html>");
  });

  it("matches the whole path, not the query", async () => {
    const routes: Route[] = [["/a", named("a")], ["/a/([0-9]+)", named("n")]];
    expect((await route(routes, "/a?x=1")).json.handler).toBe("a");
    expect((await route(routes, "/a/5?x=/a")).json.args).toEqual(["5"]);
    expect((await route(routes, "/a/5/6")).status).toBe(404);
    expect((await route(routes, "/ab")).status).toBe(404);
  });

  it("takes the first matching rule, whether literal or regex", async () => {
    const regexFirst: Route[] = [["/(.*)", named("regex")], ["/about", named("literal")]];
    expect((await route(regexFirst, "/about")).json.handler).toBe("regex");
    const literalFirst: Route[] = [["/about", named("literal")], ["/(.*)", named("regex")]];
    expect((await route(literalFirst, "/about")).json.handler).toBe("literal");
    expect((await route(literalFirst, "/other")).json.handler).toBe("regex");
    const twice: Route[] = [["/same", named("one")], ["/same", named("two")]];
    expect((await route(twice, "/same")).json.handler).toBe("one");
  });

  it("accepts url() specs with initArgs and names, and RegExp patterns", async () => {
    class Greeter extends RequestHandler {
      greeting = "";
      override initialize(args: { greeting: string }) {
        this.greeting = args.greeting;
      }
      get(name: string) {
        this.write(`${this.greeting}, ${name}`);
      }
    }
    const t = serve([
      url("/hi/([a-z]+)", Greeter, { initArgs: { greeting: "Hi" }, name: "hi" }),
      [/\/hello\/([a-z]+)/, Greeter, { greeting: "Hello" }, "hello"],
    ]);
    expect((await t.fetch("GET", "/hi/ann")).text).toBe("Hi, ann");
    expect((await t.fetch("GET", "/hello/bob")).text).toBe("Hello, bob");
    expect(t.app.reverseUrl("hi", "zoé")).toBe("/hi/zo%C3%A9");
    expect(t.app.reverseUrl("hello", "x")).toBe("/hello/x");
  });

  it("reverseUrl throws for an unknown name and warns about duplicate names", () => {
    const t = serve([url("/a", named("a"), { name: "n" }), url("/b", named("b"), { name: "n" })]);
    expect(t.app.reverseUrl("n")).toBe("/b");
    expect(t.logger.messages("warn")).toContain("Multiple handlers named n; replacing previous value");
    expect(() => t.app.reverseUrl("missing")).toThrow('Cannot reverse the url "missing": no route has this name');
  });

  it("addRules appends routes after the existing ones", async () => {
    const t = serve([["/(a)", named("first")]]);
    t.app.addRules([["/a", named("second")], ["/b", named("b")]]);
    expect(JSON.parse((await t.fetch("GET", "/a")).text).handler).toBe("first");
    expect(JSON.parse((await t.fetch("GET", "/b")).text).handler).toBe("b");
  });
});
