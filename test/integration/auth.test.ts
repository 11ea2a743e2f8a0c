/**
 * Authorization end to end: a real nats-server, the gateway in this process over real HTTP,
 * tokens minted with jose, and the `eventsource` client (SseRecorder). Where the token comes
 * from, what every refusal looks like, each key kind (secret, PEM, JWKS and its outages), the
 * subject allowlist, a token expiring mid-stream, the query token kept out of logs, who counts
 * as one client, and admission slots that always come back. Every rule is checked both ways:
 * what it refuses and what it lets through.
 */
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import type * as Jose from "jose" with { "resolution-mode": "import" };
import { createLogger } from "../../src/telemetry/logger";
import { startTestGateway, type TestGateway } from "../support/inProcessGateway";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import { startNats, type NatsHandle } from "../support/nats";
import { RawSseClient } from "../support/rawSse";
import { rawGet } from "../support/sse-client";
import {
  errorBody,
  messageIds,
  metricValue,
  openRecorder,
  sleep,
  Tracker,
  unique,
  waitForId,
  waitUntil,
} from "./contract-helpers";

let jose: typeof Jose;
let nats: NatsHandle;
let js: TestJetStream;
/** Subjects under `${P}.` are captured by one stream; nothing captures `${NS}.`. */
let P: string;
let NS: string;
const tracker = new Tracker();
const gateways: TestGateway[] = [];
const closers: (() => Promise<void>)[] = [];

const SECRET = "an-integration-test-secret-of-more-than-32-bytes";
const secretKey = new TextEncoder().encode(SECRET);
const ISS = "https://issuer.test";
const AUD = "sse-gateway";
const REALM = 'Bearer realm="jetstream-sse-gateway"';
/** What a browser's EventSource sends. */
const EVENT_STREAM = { Accept: "text/event-stream" };

beforeAll(async () => {
  jose = await import("jose");
  nats = await startNats();
  js = await connectJetStream(nats.url);
  const s = unique("auth");
  P = s.prefix;
  await js.addStream(s.stream, [`${P}.>`]);
  NS = unique("nostream").prefix;
});

afterEach(() => tracker.closeAll());

afterAll(async () => {
  await tracker.closeAll();
  for (const g of gateways.splice(0)) await g.close();
  for (const close of closers.splice(0)) await close();
  await js?.close();
  await nats?.close();
});

async function gateway(
  env: Record<string, string>,
  opts?: Parameters<typeof startTestGateway>[2],
): Promise<TestGateway> {
  const g = await startTestGateway(nats.url, env, opts);
  gateways.push(g);
  return g;
}

const now = () => Math.floor(Date.now() / 1000);
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

interface Signer {
  alg?: string;
  key?: Jose.CryptoKey | Uint8Array;
  kid?: string;
}

/**
 * A token granting `grants` to `alice`, issued by ISS for AUD, valid for 10 minutes, signed
 * HS256 with SECRET; `claims` override or (with undefined) remove any of that.
 */
async function mint(
  grants: unknown,
  claims: Record<string, unknown> = {},
  signer: Signer = {},
): Promise<string> {
  const payload: Record<string, unknown> = {
    subscribe: grants,
    sub: "alice",
    iss: ISS,
    aud: AUD,
    exp: now() + 600,
    jti: randomUUID(),
    ...claims,
  };
  for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
  return new jose.SignJWT(payload as Jose.JWTPayload)
    .setProtectedHeader({ alg: signer.alg ?? "HS256", ...(signer.kid ? { kid: signer.kid } : {}) })
    .sign(signer.key ?? secretKey);
}

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

interface Answer {
  status: number;
  headers: Headers;
  body: string;
}

/**
 * One request, returned once its head has arrived: a 200 stream is cut there (its body never
 * ends; the gateway sees the client leave), any other answer is read in full.
 */
async function probe(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(5_000) });
  if (res.status === 200 && /^text\/event-stream/.test(res.headers.get("content-type") ?? "")) {
    await res.body?.cancel();
    return { status: 200, headers: res.headers, body: "" };
  }
  return { status: res.status, headers: res.headers, body: await res.text() };
}

interface Held {
  status: number;
  body: string;
  close(): void;
}

/** A stream held open (its body read and dropped) until closed; other answers read in full. */
async function hold(url: string, headers: Record<string, string> = {}): Promise<Held> {
  const controller = new AbortController();
  const res = await fetch(url, { headers, signal: controller.signal });
  if (res.status !== 200) return { status: res.status, body: await res.text(), close: () => {} };
  const body = res.body;
  void (async () => {
    try {
      if (body) for await (const _chunk of body) void _chunk;
    } catch {
      // Our own abort ends the read.
    }
  })();
  return tracker.add({ status: 200, body: "", close: () => controller.abort() });
}

/** Neither the whole token nor any sizeable part of it appears in `text`. */
function expectNoToken(text: string, token: string): void {
  expect(text).not.toContain(token);
  for (const part of token.split(".")) if (part.length >= 6) expect(text).not.toContain(part);
}

/** A refusal: its status, its code, a JSON body `{error, message}`, never the token quoted. */
function expectRefused(a: Answer, status: number, code: string, token?: string): string {
  const body = errorBody(a.body);
  expect({ status: a.status, error: body.error }).toEqual({ status, error: code });
  expect(a.headers.get("content-type")).toMatch(/^application\/json/);
  if (token !== undefined) {
    expectNoToken(a.body, token);
    expectNoToken(a.headers.get("www-authenticate") ?? "", token);
  }
  return body.message;
}

/** The retry stream a shed EventSource gets: 200, `retry:`, a comment naming the reason, end. */
async function expectShedStream(url: string, reason: string, headers = {}): Promise<void> {
  const res = await rawGet(url, { ...EVENT_STREAM, ...headers });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
  expect(res.body).toMatch(/^retry: \d+\n/);
  expect(res.body).toContain(`: ${reason}\n`);
  expect(res.body).not.toMatch(/^(id|data):/m);
}

/** The plain-client shed answer: a status, the code, and Retry-After in whole seconds. */
function expectRetryAfter(a: Answer, status: number, code: string): void {
  expectRefused(a, status, code);
  expect(Number(a.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
}

const metric = async (g: TestGateway, name: string, labels?: Record<string, string>) =>
  metricValue(await g.metrics(), name, labels);

async function waitForNoSessions(g: TestGateway): Promise<void> {
  await waitUntil(async () => (await metric(g, "sse_sessions")) === 0, "sse_sessions to be 0");
}

interface NatsGate {
  url: string;
  /** Holds everything the gateway sends to NATS (its JetStream calls wait) until release(). */
  hold(): void;
  release(): void;
}

/** A TCP proxy between a gateway and nats-server, to hold the gateway's requests. */
async function natsGate(): Promise<NatsGate> {
  const target = new URL(nats.url);
  const pairs: { client: net.Socket; upstream: net.Socket }[] = [];
  let held = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    pairs.push({ client, upstream });
    upstream.pipe(client);
    if (!held) client.pipe(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) s.on("error", end).on("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        for (const p of pairs) p.client.destroy();
        server.close(() => resolve());
      }),
  );
  return {
    url: `nats://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hold: () => {
      held = true;
      for (const p of pairs) p.client.unpipe(p.upstream);
    },
    release: () => {
      held = false;
      for (const p of pairs) p.client.pipe(p.upstream);
    },
  };
}

/** The main gateway: a shared secret, an issuer and an audience, a cookie, public subjects. */
let gw: TestGateway;
const mainEnv = () => ({
  AUTH_JWT_SECRET: SECRET,
  AUTH_JWT_ISSUER: ISS,
  AUTH_JWT_AUDIENCE: AUD,
  AUTH_COOKIE: "sse_token",
  AUTH_PUBLIC_SUBJECTS: `${P}.public.>`,
});
beforeAll(async () => {
  gw = await gateway(mainEnv());
});

describe("where the token comes from", () => {
  const ev = () => `${gw.url}/events/${P}.orders.eu.42`;
  const grant = () => [`${P}.orders.eu.>`];

  it("a token in the Authorization header opens a stream that delivers what is published afterwards", async () => {
    const token = await mint(grant());
    expectRefused(await probe(ev()), 401, "missing_token");
    const rec = await openRecorder(tracker, ev(), { headers: bearer(token) });
    const seq = await js.publish(`${P}.orders.eu.42`, "via header");
    await waitForId(rec, seq);
    expect(rec.events.map((e) => e.data)).toEqual(["via header"]);
  });

  it("a token in the AUTH_COOKIE cookie opens a stream; another cookie's token is not read", async () => {
    const token = await mint(grant());
    expectRefused(
      await probe(ev(), { Cookie: `session=${token}; theme=dark` }),
      401,
      "missing_token",
    );
    const rec = await openRecorder(tracker, ev(), {
      headers: { Cookie: `theme=dark; sse_token=${token}` },
    });
    const seq = await js.publish(`${P}.orders.eu.42`, "via cookie");
    await waitForId(rec, seq);
    expect(rec.events.map((e) => e.data)).toEqual(["via cookie"]);
  });

  it("a token in ?access_token= opens a stream", async () => {
    const token = await mint(grant());
    const rec = await openRecorder(tracker, `${ev()}?access_token=${token}`);
    const seq = await js.publish(`${P}.orders.eu.42`, "via query");
    await waitForId(rec, seq);
    expect(rec.events.map((e) => e.data)).toEqual(["via query"]);
  });

  it("with AUTH_QUERY_TOKEN=false the query token is not read (401 missing_token), the header and cookie still are", async () => {
    const g = await gateway({ ...mainEnv(), AUTH_QUERY_TOKEN: "false" });
    const token = await mint(grant());
    const url = `${g.url}/events/${P}.orders.eu.42`;
    const message = expectRefused(
      await probe(`${url}?access_token=${token}`),
      401,
      "missing_token",
      token,
    );
    // The answer does not suggest a way this gateway refuses.
    expect(message).not.toContain("access_token");
    expect(expectRefused(await probe(ev()), 401, "missing_token")).toContain("access_token");
    expect((await probe(url, bearer(token))).status).toBe(200);
    expect((await probe(url, { Cookie: `sse_token=${token}` })).status).toBe(200);
  });

  it("a malformed Bearer header is refused with 401 invalid_token; another scheme is not ours and the cookie or query still counts; the scheme is case-insensitive", async () => {
    const token = await mint(grant());
    for (const value of [`Bearer`, `Bearer ${token} x`, "Bearer a,b"]) {
      const a = await probe(ev(), { Authorization: value });
      expectRefused(a, 401, "invalid_token", token);
      expect(a.headers.get("www-authenticate")).toMatch(/^Bearer realm="jetstream-sse-gateway"/);
    }
    // A page behind HTTP Basic auth: its Authorization header is for someone else.
    for (const value of ["Basic dXNlcjpwYXNz", `Token ${token}`]) {
      expectRefused(await probe(ev(), { Authorization: value }), 401, "missing_token", token);
      expect((await probe(`${ev()}?access_token=${token}`, { Authorization: value })).status).toBe(
        200,
      );
    }
    expect((await probe(ev(), { Authorization: `bearer ${token}` })).status).toBe(200);
    expect((await probe(ev(), { Authorization: `BEARER  ${token}` })).status).toBe(200);
  });

  it("the header is read before the cookie and the query: its token decides", async () => {
    const good = await mint(grant());
    const bad = await mint(grant(), { iss: "https://someone.else" });
    const withQuery = (t: string) => `${ev()}?access_token=${t}`;
    expect((await probe(withQuery(bad), bearer(good))).status).toBe(200);
    expectRefused(await probe(withQuery(good), bearer(bad)), 401, "invalid_token", good);
    expect((await probe(ev(), { ...bearer(good), Cookie: `sse_token=${bad}` })).status).toBe(200);
    expectRefused(
      await probe(ev(), { ...bearer(bad), Cookie: `sse_token=${good}` }),
      401,
      "invalid_token",
    );
    // The cookie before the query.
    expectRefused(
      await probe(withQuery(good), { Cookie: `sse_token=${bad}` }),
      401,
      "invalid_token",
    );
  });
});

describe("tokens from pages on another origin (CORS_ORIGINS)", () => {
  const ORIGIN = "https://app.example";

  it("the preflight of an allowed origin allows the Authorization header, and every answer carries the CORS headers", async () => {
    const g = await gateway({ ...mainEnv(), CORS_ORIGINS: ORIGIN });
    const url = `${g.url}/events/${P}.orders.eu.42`;
    const preflight = await fetch(url, {
      method: "OPTIONS",
      headers: {
        Origin: ORIGIN,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization,last-event-id",
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe(ORIGIN);
    const allowed = (preflight.headers.get("access-control-allow-headers") ?? "")
      .toLowerCase()
      .split(/\s*,\s*/);
    // A fetch-based SSE client on the page sends the token in this header: without it in
    // the preflight answer the browser never sends the request.
    expect(allowed).toEqual(expect.arrayContaining(["authorization", "last-event-id"]));

    const token = await mint([`${P}.orders.eu.>`]);
    for (const headers of [bearer(token), { Cookie: `sse_token=${token}` }]) {
      const a = await probe(url, { Origin: ORIGIN, ...headers });
      expect(a.status).toBe(200);
      expect(a.headers.get("access-control-allow-origin")).toBe(ORIGIN);
      expect(a.headers.get("access-control-allow-credentials")).toBe("true");
    }
    // The refusal too, or the page could not read why.
    const refused = await probe(url, { Origin: ORIGIN });
    expectRefused(refused, 401, "missing_token");
    expect(refused.headers.get("access-control-allow-origin")).toBe(ORIGIN);
    // Another origin gets no CORS headers at all.
    const other = await probe(url, { Origin: "https://evil.example", ...bearer(token) });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("answers", () => {
  const url = (subject: string) => `${gw.url}/events/${encodeURIComponent(subject)}`;

  it("no token: 401 missing_token with a bare Bearer challenge and a JSON body", async () => {
    const a = await probe(url(`${P}.orders.eu.42`));
    const message = expectRefused(a, 401, "missing_token");
    expect(a.headers.get("www-authenticate")).toBe(REALM);
    expect(message).toMatch(/Authorization: Bearer/);
    expect((await probe(url(`${P}.orders.eu.42`), bearer(await mint(`${P}.>`)))).status).toBe(200);
  });

  it("a token made like the refused ones below, but right in every claim, is accepted", async () => {
    const a = await probe(url(`${P}.orders.eu.42`), bearer(await mint([`${P}.orders.eu.>`])));
    expect(a.status).toBe(200);
  });

  const alice = () => ({ subscribe: [`${P}.>`], sub: "alice", iss: ISS, aud: AUD });
  const badTokens: [string, string, () => Promise<string>][] = [
    [
      "signed with another secret",
      "invalid_token",
      () =>
        mint(
          `${P}.>`,
          {},
          { key: new TextEncoder().encode("another-secret-of-more-than-32-bytes") },
        ),
    ],
    ["of another issuer", "invalid_token", () => mint(`${P}.>`, { iss: "https://evil.test" })],
    ["without an issuer", "invalid_token", () => mint(`${P}.>`, { iss: undefined })],
    ["for another audience", "invalid_token", () => mint(`${P}.>`, { aud: "another-service" })],
    ["expired", "token_expired", () => mint(`${P}.>`, { exp: now() - 300 })],
    ["not valid yet (nbf ahead)", "invalid_token", () => mint(`${P}.>`, { nbf: now() + 300 })],
    [
      "unsigned (alg none)",
      "invalid_token",
      async () => `${b64({ alg: "none", typ: "JWT" })}.${b64({ ...alice(), exp: now() + 600 })}.`,
    ],
    [
      "with its payload changed after signing",
      "invalid_token",
      async () => {
        const [h, , s] = (await mint(`${P}.orders.eu.>`)).split(".");
        return `${h}.${b64({ ...alice(), exp: now() + 600 })}.${s}`;
      },
    ],
    ["without a subscribe claim", "invalid_token", () => mint(undefined)],
    ["with an empty subscribe claim", "invalid_token", () => mint([])],
    ["with a malformed grant", "invalid_token", () => mint([`${P}.>.x`])],
    ["with a non-numeric exp", "invalid_token", () => mint(`${P}.>`, { exp: "tomorrow" })],
    ["with a non-string sub", "invalid_token", () => mint(`${P}.>`, { sub: 42 })],
    [
      "longer than AUTH_JWT_MAX_BYTES",
      "invalid_token",
      () => mint(`${P}.>`, { pad: "x".repeat(5000) }),
    ],
    ["not a JWT at all", "invalid_token", async () => "not-a-jwt"],
    ["three segments of garbage", "invalid_token", async () => "abcdefgh.ijklmnop.qrstuvwx"],
  ];

  it.each(badTokens)(
    'a token %s is refused with 401 %s, error="invalid_token" in the challenge, never a 5xx, never quoted',
    async (_what, code, make) => {
      const token = await make();
      for (const a of [
        await probe(url(`${P}.orders.eu.42`), bearer(token)),
        await probe(`${url(`${P}.orders.eu.42`)}?access_token=${encodeURIComponent(token)}`),
      ]) {
        expectRefused(a, 401, code, token);
        expect(a.headers.get("www-authenticate")).toMatch(
          /^Bearer realm="jetstream-sse-gateway", error="invalid_token"/,
        );
      }
    },
  );

  it('a valid token without the grant: 403 subject_not_granted with error="insufficient_scope"', async () => {
    const token = await mint([`${P}.orders.eu.>`]);
    const a = await probe(url(`${P}.orders.us.42`), bearer(token));
    const message = expectRefused(a, 403, "subject_not_granted", token);
    expect(message).toContain(`${P}.orders.us.42`);
    expect(a.headers.get("www-authenticate")).toMatch(
      /^Bearer realm="jetstream-sse-gateway", error="insufficient_scope"/,
    );
    expect(
      (await probe(url(`${P}.orders.us.42`), bearer(await mint(`${P}.orders.*.42`)))).status,
    ).toBe(200);
  });

  it("a request for several subjects is refused when any one of them is not granted", async () => {
    const eu = `${P}.orders.eu.1`;
    const us = `${P}.orders.us.1`;
    const onlyEu = await mint([`${P}.orders.eu.>`]);
    const both = await mint([`${P}.orders.eu.>`, `${P}.orders.us.>`]);
    const multi = `${gw.url}/events?subject=${eu}&subject=${us}`;
    expect(expectRefused(await probe(multi, bearer(onlyEu)), 403, "subject_not_granted")).toContain(
      us,
    );
    // A path subject and ?subject= together: the path one counts as well.
    expectRefused(
      await probe(`${gw.url}/events/${us}?subject=${eu}`, bearer(onlyEu)),
      403,
      "subject_not_granted",
    );
    const rec = await openRecorder(tracker, multi, { headers: bearer(both) });
    const a = await js.publish(eu, "eu");
    const b = await js.publish(us, "us");
    await waitForId(rec, b);
    expect(messageIds(rec.events)).toEqual([a, b]);
  });

  it("a wildcard grant covers exactly the subjects NATS would deliver through it", async () => {
    const wide = await mint([`${P}.orders.eu.>`]);
    for (const s of ["eu.42", "eu.*", "eu.a.b", "eu.>", "eu.*.b"])
      expect([s, (await probe(url(`${P}.orders.${s}`), bearer(wide))).status]).toEqual([s, 200]);
    for (const s of [">", "*.42", "*.*", "eu", "us.42"])
      expect([s, (await probe(url(`${P}.orders.${s}`), bearer(wide))).status]).toEqual([s, 403]);
    const star = await mint([`${P}.orders.*.42`]);
    for (const s of ["eu.42", "us.42", "*.42"])
      expect([s, (await probe(url(`${P}.orders.${s}`), bearer(star))).status]).toEqual([s, 200]);
    for (const s of ["eu.*", "eu.>", "eu.43", "eu.42.x", ">"])
      expect([s, (await probe(url(`${P}.orders.${s}`), bearer(star))).status]).toEqual([s, 403]);
  });

  it("AUTH_PUBLIC_SUBJECTS are readable without a token, nothing beyond them is; a token's grants add to them", async () => {
    const pub = `${P}.public.news`;
    const rec = await openRecorder(tracker, url(pub));
    const seq = await js.publish(pub, "for everyone");
    await waitForId(rec, seq);
    expect(rec.events.map((e) => e.data)).toEqual(["for everyone"]);
    expect((await probe(url(`${P}.public.>`))).status).toBe(200);

    expectRefused(await probe(url(`${P}.public`)), 401, "missing_token");
    expectRefused(await probe(url(`${P}.>`)), 401, "missing_token");
    expectRefused(await probe(url(`${P}.orders.eu.42`)), 401, "missing_token");
    const mixed = `${gw.url}/events?subject=${pub}&subject=${P}.orders.eu.42`;
    expectRefused(await probe(mixed), 401, "missing_token");

    const token = await mint([`${P}.orders.eu.>`]);
    expect((await probe(mixed, bearer(token))).status).toBe(200);
    expect((await probe(url(pub), bearer(token))).status).toBe(200);
    expectRefused(await probe(url(`${P}.private.x`), bearer(token)), 403, "subject_not_granted");
  });

  it("refusals are counted in sse_auth_refused_total by code; accepted requests are not", async () => {
    const codes = ["missing_token", "invalid_token", "token_expired", "subject_not_granted"];
    const count = async () => {
      const text = await gw.metrics();
      return codes.map((code) => metricValue(text, "sse_auth_refused_total", { code }));
    };
    const before = await count();
    const s = url(`${P}.orders.eu.42`);
    await probe(s);
    await probe(s);
    await probe(s, { Authorization: "Bearer x y" });
    await probe(s, bearer(await mint(`${P}.>`, { exp: now() - 300 })));
    await probe(s, bearer(await mint(`${P}.orders.us.>`)));
    await probe(s, bearer(await mint(`${P}.orders.eu.>`)));
    await probe(url(`${P}.public.news`));
    const after = await count();
    expect(after.map((n, i) => n - (before[i] as number))).toEqual([2, 1, 1, 1]);
  });
});

describe("key kinds", () => {
  it("a shared secret accepts HS256, HS384 and HS512 tokens signed with it, and no asymmetric token", async () => {
    const s = `${gw.url}/events/${P}.orders.eu.42`;
    for (const alg of ["HS256", "HS384", "HS512"])
      expect([alg, (await probe(s, bearer(await mint(`${P}.>`, {}, { alg })))).status]).toEqual([
        alg,
        200,
      ]);
    const ec = await jose.generateKeyPair("ES256");
    const es = await mint(`${P}.>`, {}, { alg: "ES256", key: ec.privateKey });
    expectRefused(await probe(s, bearer(es)), 401, "invalid_token", es);
  });

  it.each(["RS256", "ES256"])(
    "%s with AUTH_JWT_PUBLIC_KEY (PEM): the private half's tokens stream; another key's and HMAC tokens keyed with the PEM are refused",
    async (alg) => {
      const pair = await jose.generateKeyPair(alg);
      const pem = await jose.exportSPKI(pair.publicKey);
      const g = await gateway({ AUTH_JWT_PUBLIC_KEY: pem });
      const subject = `${P}.pem.${alg.toLowerCase()}`;
      const s = `${g.url}/events/${subject}`;

      const good = await mint(subject, {}, { alg, key: pair.privateKey });
      const rec = await openRecorder(tracker, s, { headers: bearer(good) });
      const seq = await js.publish(subject, alg);
      await waitForId(rec, seq);
      expect(rec.events.map((e) => e.data)).toEqual([alg]);

      const other = await jose.generateKeyPair(alg);
      const forged = await mint(subject, {}, { alg, key: other.privateKey });
      expectRefused(await probe(s, bearer(forged)), 401, "invalid_token", forged);
      // Algorithm confusion: the public key, which anyone may know, used as an HMAC secret.
      const confused = await mint(
        subject,
        {},
        { alg: "HS256", key: new TextEncoder().encode(pem) },
      );
      expectRefused(await probe(s, bearer(confused)), 401, "invalid_token", confused);
      const none = `${b64({ alg: "none" })}.${b64({ subscribe: subject, exp: now() + 60 })}.`;
      expectRefused(await probe(s, bearer(none)), 401, "invalid_token", none);
    },
  );

  describe("a JWKS (AUTH_JWKS_URL)", () => {
    interface Jwks {
      url: string;
      keys: Jose.JWK[];
      /** ok: the set; hang: never answers; error: a 500. */
      mode: "ok" | "hang" | "error";
      /** Requests received, and when the set was last served. */
      fetches: number;
      servedAt: number;
      stop(): Promise<void>;
      start(): Promise<void>;
    }

    /** A key server on node:http; stop() closes its port (connections refused), start() reopens it. */
    async function startJwks(): Promise<Jwks> {
      const hanging = new Set<http.ServerResponse>();
      const server = http.createServer((_req, res) => {
        jwks.fetches++;
        if (jwks.mode === "hang") {
          hanging.add(res);
          res.on("close", () => hanging.delete(res));
          return;
        }
        if (jwks.mode === "error") return void res.writeHead(500).end("down");
        jwks.servedAt = Date.now();
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ keys: jwks.keys }));
      });
      let port = 0;
      let listening = false;
      const jwks: Jwks = {
        url: "",
        keys: [],
        mode: "ok",
        fetches: 0,
        servedAt: 0,
        start: () =>
          new Promise<void>((resolve) => {
            server.listen(port, "127.0.0.1", () => {
              port = (server.address() as AddressInfo).port;
              listening = true;
              resolve();
            });
          }),
        stop: () =>
          new Promise<void>((resolve) => {
            if (!listening) return resolve();
            listening = false;
            for (const res of hanging) res.destroy();
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      };
      await jwks.start();
      jwks.url = `http://127.0.0.1:${port}/.well-known/jwks.json`;
      closers.push(() => jwks.stop());
      return jwks;
    }

    async function jwk(kid: string) {
      const pair = await jose.generateKeyPair("ES256");
      const pub = { ...(await jose.exportJWK(pair.publicKey)), kid, alg: "ES256", use: "sig" };
      const sign = (grants: unknown) =>
        mint(grants, {}, { alg: "ES256", key: pair.privateKey, kid });
      return { pub, sign };
    }

    const jwksEnv = (url: string) => ({
      AUTH_JWKS_URL: url,
      AUTH_JWKS_TIMEOUT_MS: "300",
      AUTH_JWKS_COOLDOWN_MS: "1000",
    });

    it("a token signed by a key of the set streams; a rotated key (new kid) is accepted once the set is refetched, after the cooldown", async () => {
      const jwks = await startJwks();
      const k1 = await jwk("k1");
      const k2 = await jwk("k2");
      const stranger = await jwk("k3");
      jwks.keys = [k1.pub];
      const g = await gateway(jwksEnv(jwks.url));
      const subject = `${P}.jwks.rotate`;
      const s = `${g.url}/events/${subject}`;

      const rec = await openRecorder(tracker, s, { headers: bearer(await k1.sign(subject)) });
      const seq = await js.publish(subject, "k1");
      await waitForId(rec, seq);
      expect(jwks.fetches).toBe(1);

      // A key the set does not hold: refused as a bad token (not shed); within the cooldown,
      // no refetch.
      const t3 = await stranger.sign(subject);
      expectRefused(await probe(s, bearer(t3)), 401, "invalid_token", t3);
      expect(jwks.fetches).toBe(1);

      // Rotation: the identity provider publishes k2 next to k1.
      jwks.keys = [k1.pub, k2.pub];
      const wait = jwks.servedAt + 1_100 - Date.now();
      if (wait > 0) await sleep(wait);
      const t2 = await k2.sign(subject);
      expect((await probe(s, bearer(t2))).status).toBe(200);
      expect(jwks.fetches).toBe(2);
      // Both keys verify from the cache now; the unknown one still does not.
      expect((await probe(s, bearer(await k1.sign(subject)))).status).toBe(200);
      expect((await probe(s, bearer(await k2.sign(subject)))).status).toBe(200);
      expectRefused(await probe(s, bearer(t3)), 401, "invalid_token", t3);
      expect(jwks.fetches).toBe(2);
      expect(await metric(g, "sse_auth_jwks_fetch_failures_total")).toBe(0);
      expect(await metric(g, "sse_auth_keys_unavailable_total")).toBe(0);
    });

    it("while the set cannot be fetched (server stopped, hanging, failing) requests are shed, never another 5xx; counted; served again once it is back", async () => {
      const jwks = await startJwks();
      const k1 = await jwk("k1");
      jwks.keys = [k1.pub];
      await jwks.stop();
      const g = await gateway(jwksEnv(jwks.url));
      const subject = `${P}.jwks.down`;
      const s = `${g.url}/events/${subject}`;
      const token = await k1.sign(subject);

      // Stopped: connection refused.
      await expectShedStream(s, "auth-unavailable", bearer(token));
      expectRetryAfter(await probe(s, bearer(token)), 503, "auth_unavailable");

      // Hanging: the fetch is bounded by AUTH_JWKS_TIMEOUT_MS.
      jwks.mode = "hang";
      await jwks.start();
      const t0 = Date.now();
      expectRetryAfter(await probe(s, bearer(token)), 503, "auth_unavailable");
      expect(Date.now() - t0).toBeLessThan(3_000);
      await expectShedStream(s, "auth-unavailable", bearer(token));

      // Failing: a 500 from the key server.
      jwks.mode = "error";
      expectRetryAfter(await probe(s, bearer(token)), 503, "auth_unavailable");

      expect(await metric(g, "sse_auth_keys_unavailable_total")).toBe(5);
      expect(await metric(g, "sse_auth_jwks_fetch_failures_total")).toBe(5);
      expect(await metric(g, "sse_requests_shed_total", { reason: "auth-unavailable" })).toBe(5);
      // Not the client's fault: not an authorization refusal either.
      expect(await metric(g, "sse_auth_refused_total")).toBe(0);
      // A request without a token needs no keys: still a plain 401.
      expectRefused(await probe(s), 401, "missing_token");

      // Back: served, and from then on from the cache even if the server goes away again.
      jwks.mode = "ok";
      const rec = await openRecorder(tracker, s, { headers: bearer(token) });
      const seq = await js.publish(subject, "keys are back");
      await waitForId(rec, seq);
      await jwks.stop();
      expect((await probe(s, bearer(await k1.sign(subject)))).status).toBe(200);
      expect(await metric(g, "sse_auth_keys_unavailable_total")).toBe(5);
      expect(await metric(g, "sse_http_errors_total", { code: "internal" })).toBe(0);
    });
  });
});

describe("subject allowlist", () => {
  const env = () => ({ SUBJECT_ALLOWLIST: `${P}.orders.>,${NS}.inside.>` });

  it("a subject outside SUBJECT_ALLOWLIST is refused with 403 subject_not_allowed before any NATS call; inside, it is served", async () => {
    const g = await gateway(env());
    const url = (s: string) => `${g.url}/events/${encodeURIComponent(s)}`;
    // No stream captures either subject: only the one inside the allowlist reaches NATS (404).
    expect(
      expectRefused(await probe(url(`${NS}.outside.x`)), 403, "subject_not_allowed"),
    ).toContain(`${NS}.outside.x`);
    expectRefused(await probe(url(`${NS}.inside.x`)), 404, "stream_not_found");
    // A stream captures these, but the allowlist does not.
    expectRefused(await probe(url(`${P}.public.news`)), 403, "subject_not_allowed");
    expectRefused(await probe(url(`${P}.>`)), 403, "subject_not_allowed");
    expectRefused(await probe(url(`${P}.orders`)), 403, "subject_not_allowed");
    expectRefused(
      await probe(`${g.url}/events?subject=${P}.orders.eu.1&subject=${P}.public.news`),
      403,
      "subject_not_allowed",
    );
    const rec = await openRecorder(tracker, url(`${P}.orders.eu.1`));
    const seq = await js.publish(`${P}.orders.eu.1`, "allowed");
    await waitForId(rec, seq);
    expect((await probe(url(`${P}.orders.*.1`))).status).toBe(200);
  });

  it("with authorization on, the allowlist is checked before the token: no token and a token granting everything get the same 403", async () => {
    const g = await gateway({ ...env(), AUTH_JWT_SECRET: SECRET });
    const url = (s: string) => `${g.url}/events/${encodeURIComponent(s)}`;
    const all = await mint(">");
    expectRefused(await probe(url(`${NS}.outside.x`)), 403, "subject_not_allowed");
    expectRefused(
      await probe(url(`${NS}.outside.x`), bearer(all)),
      403,
      "subject_not_allowed",
      all,
    );
    expectRefused(await probe(url(`${P}.public.news`), bearer(all)), 403, "subject_not_allowed");
    expect(await metric(g, "sse_auth_refused_total")).toBe(0);
    // Inside the allowlist the token decides.
    expectRefused(await probe(url(`${P}.orders.eu.1`)), 401, "missing_token");
    expectRefused(await probe(url(`${NS}.inside.x`), bearer(all)), 404, "stream_not_found");
    const rec = await openRecorder(tracker, url(`${P}.orders.eu.1`), { headers: bearer(all) });
    const seq = await js.publish(`${P}.orders.eu.1`, "allowed and granted");
    await waitForId(rec, seq);
  });
});

describe("a token that expires mid-stream", () => {
  it("ends the stream at exp with gateway.token_expired naming the last delivered id; a fresh token from there gets exactly what was published meanwhile", async () => {
    const g = await gateway({ AUTH_JWT_SECRET: SECRET, AUTH_JWT_LEEWAY_S: "0" });
    const subject = `${P}.expiry.1`;
    const url = `${g.url}/events/${subject}`;
    const exp = now() + 3;
    const token = await mint(subject, { exp });

    const rec = await openRecorder(tracker, url, {
      headers: bearer(token),
      types: ["gateway.token_expired"],
    });
    // The same kind of stream on a raw socket: the bytes, and the end of the body.
    const raw = tracker.add(
      await RawSseClient.open({
        port: g.gateway.port,
        localAddress: "127.0.0.1",
        path: `/events/${subject}`,
        // The socket closes when the response ends, so its end is visible.
        headers: { ...bearer(token), Connection: "close" },
      }),
    );
    raw.startReading();
    await raw.waitFor(
      () => raw.status === 200 && raw.retries.length === 1,
      "the raw stream",
      5_000,
    );

    const before = [
      await js.publish(subject, "one"),
      await js.publish(subject, "two"),
      await js.publish(subject, "three"),
    ];
    const last = before[2] as number;
    await waitForId(rec, last);
    await rec.waitFor((evs) => evs.some((e) => e.type === "gateway.token_expired"), 8_000);
    rec.close(); // as the page does, before EventSource retries with the old token
    expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000);

    const notice = rec.events.find((e) => e.type === "gateway.token_expired");
    expect(notice?.id).toBe(String(last));
    expect(JSON.parse(notice?.data ?? "{}")).toEqual({
      lastEventId: last,
      message: expect.stringContaining("expired") as unknown,
    });
    expect(messageIds(rec.events)).toEqual(before);
    expect(rec.events[rec.events.length - 1]).toBe(notice);

    // The raw stream: the messages, the notice with the same id, a retry:, and the end.
    await raw.waitFor(() => raw.ended, "the raw stream to end", 5_000);
    expect(raw.ids).toEqual([...before, last]);
    expect(raw.retries).toHaveLength(2);

    // The old token is no use any more.
    expectRefused(await probe(url, bearer(token)), 401, "token_expired", token);

    // Published while no stream was open.
    const gap = [
      await js.publish(subject, "four"),
      await js.publish(subject, "five"),
      await js.publish(subject, "six"),
    ];
    const fresh = await mint(subject);
    const rec2 = await openRecorder(
      tracker,
      `${url}?access_token=${fresh}&lastEventId=${notice?.id ?? ""}`,
    );
    await waitForId(rec2, gap[2] as number);
    const live = await js.publish(subject, "seven");
    await waitForId(rec2, live);
    expect(messageIds(rec2.events)).toEqual([...gap, live]);
    expect(rec2.events.map((e) => e.data)).toEqual(["four", "five", "six", "seven"]);

    expect(await metric(g, "sse_auth_tokens_expired_total")).toBe(2);
    expect(await metric(g, "sse_sessions_closed_total", { reason: "token-expired" })).toBe(2);
    rec2.close();
    await waitForNoSessions(g);
  });

  it("a token without exp does not end its stream", async () => {
    const g = await gateway({ AUTH_JWT_SECRET: SECRET, AUTH_JWT_LEEWAY_S: "0" });
    const subject = `${P}.expiry.never`;
    const rec = await openRecorder(tracker, `${g.url}/events/${subject}`, {
      headers: bearer(await mint(subject, { exp: undefined })),
      types: ["gateway.token_expired"],
    });
    await sleep(1_500);
    const seq = await js.publish(subject, "still here");
    await waitForId(rec, seq);
    expect(rec.events.map((e) => e.type)).toEqual(["message"]);
    expect(await metric(g, "sse_auth_tokens_expired_total")).toBe(0);
  });

  it("a token that expires while a resume still waits for JetStream names the client's own cursor, so resuming from there repeats nothing", async () => {
    const gate = await natsGate();
    const g = await gateway({
      NATS_URL: gate.url,
      AUTH_JWT_SECRET: SECRET,
      // No skew: the token below ends at its exp, a second or two after it connects.
      AUTH_JWT_LEEWAY_S: "0",
      // No window: a resume asks JetStream for the stream's state before it is positioned.
      WINDOW_MESSAGES: "0",
      FEED_WARMUP_BYTES: "0",
    });
    const subject = `${P}.expiry.resume`;
    const url = `${g.url}/events/${subject}`;
    const seqs: number[] = [];
    for (const m of ["one", "two", "three", "four", "five"])
      seqs.push(await js.publish(subject, m));
    const cursor = seqs[2] as number;
    // Keeps the feed running, so the resume below joins it without a NATS call.
    expect((await hold(url, bearer(await mint(subject)))).status).toBe(200);

    gate.hold();
    let noticeId: string | undefined;
    try {
      // Expires within a second or two: accepted, ended while its resume's JetStream call is
      // held.
      const rec = await openRecorder(tracker, url, {
        headers: {
          ...bearer(await mint(subject, { exp: now() + 1 })),
          "Last-Event-ID": String(cursor),
        },
        types: ["gateway.token_expired"],
      });
      await rec.waitFor((evs) => evs.some((e) => e.type === "gateway.token_expired"), 5_000);
      rec.close();
      const notice = rec.events.find((e) => e.type === "gateway.token_expired");
      noticeId = notice?.id;
      expect(rec.events.filter((e) => e.type === "message")).toEqual([]);
      // Not 0: an EventSource would then resume from the stream's start, and a page from
      // lastEventId 0, getting one to three again.
      expect(noticeId).toBe(String(cursor));
      expect(JSON.parse(notice?.data ?? "{}")).toMatchObject({ lastEventId: cursor });
    } finally {
      gate.release();
    }

    const rec2 = await openRecorder(tracker, `${url}?lastEventId=${noticeId ?? ""}`, {
      headers: bearer(await mint(subject)),
    });
    await waitForId(rec2, seqs[4] as number);
    const live = await js.publish(subject, "six");
    await waitForId(rec2, live);
    expect(messageIds(rec2.events)).toEqual([seqs[3], seqs[4], live]);
  });
});

describe("the query token in logs", () => {
  it("no log line, at LOG_LEVEL=debug, holds a token given as ?access_token=, valid or not", async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
        done();
      },
    });
    const g = await gateway(
      { AUTH_JWT_SECRET: SECRET, LOG_LEVEL: "debug" },
      { log: createLogger("debug", sink) },
    );
    const subject = `${P}.logs.1`;
    const valid = await mint([`${P}.>`, `${NS}.>`]);
    const invalid = await mint(`${P}.>`, { exp: now() - 300 });
    const secrets = [valid, invalid];
    const u = (path: string, q: string) => `${g.url}/events/${path}?${q}`;

    const rec = await openRecorder(tracker, u(subject, `access_token=${valid}`));
    const seq = await js.publish(subject, "logged");
    await waitForId(rec, seq);
    rec.close();
    expectRefused(
      await probe(u(subject, `access_token=${invalid}`)),
      401,
      "token_expired",
      invalid,
    );
    expectRefused(
      await probe(u(subject, `access_token=${valid}&access_token=${invalid}`)),
      401,
      "invalid_token",
      valid,
    );
    expectRefused(
      await probe(u(`${NS}.x`, `access_token=${valid}`)),
      404,
      "stream_not_found",
      valid,
    );
    expectRefused(
      await probe(u(subject, `access_token=${valid}&lastEventId=nope`)),
      400,
      "malformed_cursor",
      valid,
    );
    expectRefused(
      await probe(u(`${P}.private.x`, `access_token=${await mint(`${P}.a`)}`)),
      403,
      "subject_not_granted",
    );
    await waitForNoSessions(g);

    // Debug lines were written (the session's and the refused lookup's)...
    expect(lines.some((l) => l.includes("session opened"))).toBe(true);
    expect(lines.some((l) => l.includes("session closed"))).toBe(true);
    expect(lines.some((l) => l.includes("stream lookup refused"))).toBe(true);
    // ...and none of them holds a token or a piece of one.
    for (const line of lines) for (const t of secrets) expectNoToken(line, t);
  });
});

describe("who counts as one client", () => {
  const stream = (g: TestGateway, suffix = "1") => `${g.url}/events/${P}.limits.${suffix}`;

  it("auto, without proxy settings or authorization: no per-client bound, only MAX_CONNECTIONS", async () => {
    const g = await gateway({ MAX_CONNECTIONS: "4", MAX_CONNECTIONS_PER_CLIENT: "2" });
    for (let i = 0; i < 4; i++) expect((await hold(stream(g))).status).toBe(200);
    // The fifth is refused because the pod is full, not because of its address.
    expectRetryAfter(await probe(stream(g)), 503, "full");
  });

  it("TRUST_PROXY=true: the X-Forwarded-For client is the key, each with a quota of its own", async () => {
    const g = await gateway({
      TRUST_PROXY: "true",
      MAX_CONNECTIONS: "20",
      MAX_CONNECTIONS_PER_CLIENT: "2",
    });
    const xff = (v: string) => ({ "X-Forwarded-For": v });
    expect((await hold(stream(g), xff("203.0.113.1"))).status).toBe(200);
    expect((await hold(stream(g), xff("203.0.113.1"))).status).toBe(200);
    expectRetryAfter(await probe(stream(g), xff("203.0.113.1")), 429, "client_limit");
    await expectShedStream(stream(g), "client-limit", xff("203.0.113.1"));
    // Another client through the same peer (127.0.0.1) has its own quota.
    expect((await hold(stream(g), xff("203.0.113.2"))).status).toBe(200);
    expect((await hold(stream(g), xff("203.0.113.2"))).status).toBe(200);
    expectRetryAfter(await probe(stream(g), xff("203.0.113.2")), 429, "client_limit");
    // With TRUSTED_HOPS=1 the entry the proxy added decides, not one the client wrote.
    expectRetryAfter(await probe(stream(g), xff("198.51.100.9, 203.0.113.1")), 429, "client_limit");
  });

  it("TRUSTED_HOPS=2: the second entry from the right is the client", async () => {
    const g = await gateway({
      TRUST_PROXY: "true",
      TRUSTED_HOPS: "2",
      MAX_CONNECTIONS: "20",
      MAX_CONNECTIONS_PER_CLIENT: "2",
    });
    const xff = (v: string) => ({ "X-Forwarded-For": v });
    // Same client behind two different inner proxies: one quota.
    expect((await hold(stream(g), xff("203.0.113.9, 10.0.0.1"))).status).toBe(200);
    expect((await hold(stream(g), xff("6.6.6.6, 203.0.113.9, 10.0.0.2"))).status).toBe(200);
    expectRetryAfter(await probe(stream(g), xff("203.0.113.9, 10.0.0.3")), 429, "client_limit");
    // Another client behind the same inner proxy: a quota of its own.
    expect((await hold(stream(g), xff("203.0.113.8, 10.0.0.1"))).status).toBe(200);
    expect((await hold(stream(g), xff("203.0.113.8, 10.0.0.1"))).status).toBe(200);
  });

  it("TRUSTED_PROXIES=127.0.0.0/8: the rightmost entry outside the range is the client; a forged leftmost entry changes nothing", async () => {
    const g = await gateway({
      TRUSTED_PROXIES: "127.0.0.0/8",
      MAX_CONNECTIONS: "20",
      MAX_CONNECTIONS_PER_CLIENT: "2",
    });
    const xff = (v: string) => ({ "X-Forwarded-For": v });
    expect((await hold(stream(g), xff("198.51.100.7"))).status).toBe(200);
    expect((await hold(stream(g), xff("6.6.6.6, 198.51.100.7, 127.0.0.9"))).status).toBe(200);
    expectRetryAfter(await probe(stream(g), xff("7.7.7.7, 198.51.100.7")), 429, "client_limit");
    expect((await hold(stream(g), xff("198.51.100.8"))).status).toBe(200);
  });

  it("auto with authorization: the token's sub is the key, from wherever its connections come", async () => {
    const g = await gateway({
      AUTH_JWT_SECRET: SECRET,
      MAX_CONNECTIONS: "20",
      MAX_CONNECTIONS_PER_CLIENT: "2",
    });
    const subject = `${P}.limits.sub`;
    const open = async (from: string, sub: string, accept = "text/event-stream") => {
      const c = tracker.add(
        await RawSseClient.open({
          port: g.gateway.port,
          localAddress: from,
          path: `/events/${subject}`,
          headers: { ...bearer(await mint(subject, { sub })), Accept: accept },
        }),
      );
      c.startReading();
      await c.waitFor(() => c.status !== 0, `an answer for ${sub} from ${from}`, 5_000);
      return c.status;
    };
    // Two different tokens of alice, from two addresses: one quota.
    expect(await open("127.0.0.2", "alice")).toBe(200);
    expect(await open("127.0.0.3", "alice")).toBe(200);
    expect(await open("127.0.0.4", "alice", "application/json")).toBe(429);
    // bob, from an address alice already used: his own quota.
    expect(await open("127.0.0.2", "bob")).toBe(200);
    expect(await open("127.0.0.2", "bob")).toBe(200);
    expect(await open("127.0.0.2", "bob", "application/json")).toBe(429);
    expect(await open("127.0.0.2", "carol")).toBe(200);
  });

  it("CLIENT_LIMIT_BY=address: the peer address is the key, with or without tokens", async () => {
    const g = await gateway({
      CLIENT_LIMIT_BY: "address",
      MAX_CONNECTIONS: "20",
      MAX_CONNECTIONS_PER_CLIENT: "2",
    });
    expect((await hold(stream(g))).status).toBe(200);
    expect((await hold(stream(g))).status).toBe(200);
    expectRetryAfter(await probe(stream(g)), 429, "client_limit");
    const other = tracker.add(
      await RawSseClient.open({
        port: g.gateway.port,
        localAddress: "127.0.0.5",
        path: `/events/${P}.limits.1`,
      }),
    );
    other.startReading();
    await other.waitFor(() => other.status !== 0, "an answer from 127.0.0.5", 5_000);
    expect(other.status).toBe(200);

    const ga = await gateway({
      AUTH_JWT_SECRET: SECRET,
      CLIENT_LIMIT_BY: "address",
      MAX_CONNECTIONS: "20",
      MAX_CONNECTIONS_PER_CLIENT: "2",
    });
    const withSub = async (sub: string) => bearer(await mint(`${P}.>`, { sub }));
    expect((await hold(stream(ga), await withSub("alice"))).status).toBe(200);
    expect((await hold(stream(ga), await withSub("bob"))).status).toBe(200);
    expectRetryAfter(await probe(stream(ga), await withSub("carol")), 429, "client_limit");
  });
});

describe("admission is leak-proof", () => {
  it("after refusals, sheds, clients gone during setup, closed streams and expired tokens, every slot is back", async () => {
    const g = await gateway({
      AUTH_JWT_SECRET: SECRET,
      AUTH_JWT_LEEWAY_S: "0",
      MAX_CONNECTIONS: "2",
      MAX_CONNECTIONS_PER_CLIENT: "2",
    });
    const subject = `${P}.leak.main`;
    const url = (s = subject) => `${g.url}/events/${s}`;
    const alice = async (claims: Record<string, unknown> = {}) =>
      bearer(await mint([`${P}.>`, `${NS}.>`], claims));

    // Refused: 401, 401, 403, 404, 400.
    expectRefused(await probe(url()), 401, "missing_token");
    expectRefused(await probe(url(), { Authorization: "Bearer x.y.z" }), 401, "invalid_token");
    expectRefused(await probe(url(), bearer(await mint(`${P}.other`))), 403, "subject_not_granted");
    expectRefused(await probe(url(`${NS}.x`), await alice()), 404, "stream_not_found");
    expectRefused(
      await probe(url(), { ...(await alice()), "Last-Event-ID": "x" }),
      400,
      "malformed_cursor",
    );

    // Full: one stream whose token expires soon, one the client will close.
    const expiring = tracker.add(
      await RawSseClient.open({
        port: g.gateway.port,
        localAddress: "127.0.0.1",
        path: `/events/${subject}`,
        headers: { ...(await alice({ exp: now() + 2 })), Connection: "close" },
      }),
    );
    expiring.startReading();
    await expiring.waitFor(() => expiring.status === 200, "the expiring stream", 5_000);
    const closing = await hold(url(), await alice());
    expect(closing.status).toBe(200);
    expectRetryAfter(await probe(url(), await alice({ sub: "bob" })), 503, "full");
    await expectShedStream(url(), "full", await alice({ sub: "bob" }));
    closing.close();
    await expiring.waitFor(() => expiring.ended, "the token to expire", 5_000);
    expect(expiring.status).toBe(200);

    // Clients that leave while their request is being set up (at every moment up to ~20 ms).
    await waitForNoSessions(g);
    const headers = await alice();
    for (let i = 0; i < 20; i++) {
      const controller = new AbortController();
      const req = fetch(url(`${P}.leak.gone${i}`), { headers, signal: controller.signal })
        .then((res) => res.body?.cancel())
        .catch(() => undefined);
      setTimeout(() => controller.abort(), i);
      await req;
    }
    // And a replay the client leaves half-way.
    const replaying = new AbortController();
    await fetch(`${url()}?from=1`, { headers, signal: replaying.signal })
      .then(() => replaying.abort())
      .catch(() => undefined);

    await waitForNoSessions(g);
    expect(await metric(g, "sse_auth_tokens_expired_total")).toBe(1);
    const text = await g.metrics();
    expect(metricValue(text, "sse_sessions_opened_total")).toBe(
      metricValue(text, "sse_sessions_closed_total"),
    );

    // Both slots came back (and the per-client count of alice too): two new streams, no third.
    expect((await hold(url(), await alice())).status).toBe(200);
    expect((await hold(url(), await alice())).status).toBe(200);
    expectRetryAfter(await probe(url(), await alice({ sub: "bob" })), 503, "full");
  });
});

describe("after all that", () => {
  it("no request in this file got a 500 from any gateway", async () => {
    for (const g of gateways) {
      const text = await g.metrics();
      expect(metricValue(text, "sse_requests_rejected_total", { code: "internal" })).toBe(0);
      expect(metricValue(text, "sse_http_errors_total", { code: "internal" })).toBe(0);
    }
  });
});
