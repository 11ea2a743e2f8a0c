import http from "node:http";
import type { AddressInfo } from "node:net";
import { generateKeyPairSync } from "node:crypto";
import type * as Jose from "jose" with { "resolution-mode": "import" };
import {
  TokenVerifier,
  type TokenError,
  type TokenVerifierOptions,
  type VerifyResult,
} from "../../src/auth/tokenVerifier";
import { freePort } from "../support/ports";

// jose is ESM only; the project compiles to CommonJS, so it is loaded the way the verifier does.
let jose: typeof Jose;
beforeAll(async () => {
  jose = await import("jose");
});

const SECRET = "a-test-secret-of-more-than-32-bytes!";
const BASE: TokenVerifierOptions = {
  clockToleranceSec: 0,
  subscribeClaim: "subscribe",
  maxTokenBytes: 8192,
};
const GRANTS = { subscribe: ["orders.>", "prices.*.eur"] };
const now = () => Math.floor(Date.now() / 1000);
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const secretKey = (s = SECRET) => new TextEncoder().encode(s);

type SigningKey = Jose.CryptoKey | Uint8Array;

function sign(
  claims: Jose.JWTPayload,
  alg: string,
  key: SigningKey,
  header: Omit<Jose.JWTHeaderParameters, "alg"> = {},
): Promise<string> {
  return new jose.SignJWT(claims).setProtectedHeader({ ...header, alg }).sign(key);
}

const verifier = (
  opts: Partial<TokenVerifierOptions>,
  hooks?: Parameters<typeof TokenVerifier.create>[1],
) => TokenVerifier.create({ ...BASE, ...opts }, hooks);

/** The message says nothing of the token (whole or any part), the key server or a stack. */
function expectClean(message: string, token: string): void {
  if (token.length > 0) expect(message).not.toContain(token);
  for (const part of token.split(".")) if (part.length >= 6) expect(message).not.toContain(part);
  expect(message).not.toMatch(/https?:|127\.0\.0\.1|jwks\.json|\n\s+at /);
  expect(message.length).toBeGreaterThan(0);
}

function expectRefused(r: VerifyResult, type: TokenError["type"], token: string): TokenError {
  if (r.ok) throw new Error(`accepted, expected ${type}`);
  expect(r.error.type).toBe(type);
  expectClean(r.error.message, token);
  return r.error;
}

function expectGrants(r: VerifyResult, grants: string[]): void {
  if (!r.ok) throw new Error(`refused (${r.error.type}): ${r.error.message}`);
  expect(r.token.grants).toEqual(grants);
}

describe("TokenVerifier: key kinds", () => {
  it.each(["HS256", "HS384", "HS512"])(
    "accepts %s with the secret, refuses another secret",
    async (alg) => {
      const v = await verifier({ secret: SECRET });
      const good = await sign({ ...GRANTS, sub: "alice" }, alg, secretKey());
      const r = await v.verify(good);
      expectGrants(r, GRANTS.subscribe);
      if (r.ok) expect(r.token.subject).toBe("alice");
      const other = await sign(GRANTS, alg, secretKey("another-secret-of-more-than-32-bytes"));
      expectRefused(await v.verify(other), "bad-signature", other);
    },
  );

  it("refuses HMAC algorithms left out of AUTH_JWT_ALGORITHMS", async () => {
    const v = await verifier({ secret: SECRET, algorithms: ["HS256"] });
    expectGrants(await v.verify(await sign(GRANTS, "HS256", secretKey())), GRANTS.subscribe);
    const hs512 = await sign(GRANTS, "HS512", secretKey());
    expectRefused(await v.verify(hs512), "algorithm", hs512);
  });

  // The PEM's key type decides the default algorithms: each row signs with `alg`.
  it.each([
    ["RS256", "RS256"],
    ["RS512", "RS512"],
    ["PS256", "PS256"],
    ["ES256", "ES256"],
    ["ES384", "ES384"],
    ["ES512", "ES512"],
    ["EdDSA", "EdDSA"],
  ])("accepts %s with the PEM public key, refuses another key", async (alg, genAlg) => {
    const { publicKey, privateKey } = await jose.generateKeyPair(genAlg);
    const v = await verifier({ publicKeyPem: await jose.exportSPKI(publicKey) });
    expectGrants(await v.verify(await sign(GRANTS, alg, privateKey)), GRANTS.subscribe);
    const stranger = await jose.generateKeyPair(genAlg);
    const forged = await sign(GRANTS, alg, stranger.privateKey);
    expectRefused(await v.verify(forged), "bad-signature", forged);
  });

  it("an RSA key accepts RS* and PS* by default, and only the configured ones when set", async () => {
    const { publicKey, privateKey } = await jose.generateKeyPair("RS256", { extractable: true });
    const publicKeyPem = await jose.exportSPKI(publicKey);
    const pss = await jose.generateKeyPair("PS384");
    const pssPem = await jose.exportSPKI(pss.publicKey);
    const byDefault = await verifier({ publicKeyPem: pssPem });
    expectGrants(
      await byDefault.verify(await sign(GRANTS, "PS384", pss.privateKey)),
      GRANTS.subscribe,
    );
    const only = await verifier({ publicKeyPem, algorithms: ["RS256"] });
    expectGrants(await only.verify(await sign(GRANTS, "RS256", privateKey)), GRANTS.subscribe);
    // Same RSA key, other algorithm (Web Crypto binds a key to one hash, hence the import).
    const pkcs8 = await jose.exportPKCS8(privateKey);
    const rs512 = await sign(GRANTS, "RS512", await jose.importPKCS8(pkcs8, "RS512"));
    expectRefused(await only.verify(rs512), "algorithm", rs512);
  });

  it("refuses a token of another key family as an algorithm error", async () => {
    const rsa = await jose.generateKeyPair("RS256");
    const ec = await jose.generateKeyPair("ES256");
    const ed = await jose.generateKeyPair("EdDSA");
    const rsaV = await verifier({ publicKeyPem: await jose.exportSPKI(rsa.publicKey) });
    const ecV = await verifier({ publicKeyPem: await jose.exportSPKI(ec.publicKey) });
    const es256 = await sign(GRANTS, "ES256", ec.privateKey);
    const eddsa = await sign(GRANTS, "EdDSA", ed.privateKey);
    expectRefused(await rsaV.verify(es256), "algorithm", es256);
    expectRefused(await ecV.verify(eddsa), "algorithm", eddsa);
  });
});

describe("TokenVerifier: claims", () => {
  let v: TokenVerifier;
  beforeAll(async () => {
    v = await verifier({ secret: SECRET });
  });
  const hs = (claims: Jose.JWTPayload) => sign(claims, "HS256", secretKey());

  it("reports exp as expiresAt, and accepts a token without exp (it never expires)", async () => {
    const exp = now() + 60;
    const r = await v.verify(await hs({ ...GRANTS, exp }));
    expectGrants(r, GRANTS.subscribe);
    if (r.ok) expect(r.token.expiresAt).toBe(exp * 1000);
    const forever = await v.verify(await hs(GRANTS));
    expectGrants(forever, GRANTS.subscribe);
    if (forever.ok) {
      expect(forever.token.expiresAt).toBeUndefined();
      expect(forever.token.subject).toBeUndefined();
    }
  });

  it("refuses an expired token and says when it expired", async () => {
    const exp = now() - 5;
    const token = await hs({ ...GRANTS, exp });
    const e = expectRefused(await v.verify(token), "expired", token);
    if (e.type === "expired") expect(e.expiredAt).toBe(exp * 1000);
  });

  it("refuses a token whose nbf is in the future", async () => {
    const token = await hs({ ...GRANTS, nbf: now() + 60 });
    expectRefused(await v.verify(token), "not-yet-valid", token);
  });

  it("honours the leeway both ways, and no further", async () => {
    const lenient = await verifier({ secret: SECRET, clockToleranceSec: 30 });
    expectGrants(await lenient.verify(await hs({ ...GRANTS, exp: now() - 10 })), GRANTS.subscribe);
    expectGrants(await lenient.verify(await hs({ ...GRANTS, nbf: now() + 10 })), GRANTS.subscribe);
    const late = await hs({ ...GRANTS, exp: now() - 60 });
    expectRefused(await lenient.verify(late), "expired", late);
    const early = await hs({ ...GRANTS, nbf: now() + 60 });
    expectRefused(await lenient.verify(early), "not-yet-valid", early);
  });

  it("refuses exp, nbf or iat that are not numbers, and a sub that is not a string", async () => {
    for (const bad of [{ exp: "tomorrow" }, { nbf: "1" }, { iat: true }, { sub: 42 }]) {
      const token = await hs({ ...GRANTS, ...bad } as unknown as Jose.JWTPayload);
      expectRefused(await v.verify(token), "claims", token);
    }
  });

  it("checks the issuer when one is configured", async () => {
    const strict = await verifier({ secret: SECRET, issuer: "https://idp.example" });
    expectGrants(
      await strict.verify(await hs({ ...GRANTS, iss: "https://idp.example" })),
      GRANTS.subscribe,
    );
    for (const claims of [{ ...GRANTS, iss: "https://evil.example" }, GRANTS]) {
      const token = await hs(claims);
      expectRefused(await strict.verify(token), "issuer", token);
    }
  });

  it("checks that aud holds one of the configured audiences", async () => {
    const strict = await verifier({ secret: SECRET, audience: ["sse", "gateway"] });
    expectGrants(await strict.verify(await hs({ ...GRANTS, aud: "gateway" })), GRANTS.subscribe);
    expectGrants(
      await strict.verify(await hs({ ...GRANTS, aud: ["billing", "sse"] })),
      GRANTS.subscribe,
    );
    for (const claims of [{ ...GRANTS, aud: "billing" }, { ...GRANTS, aud: ["a", "b"] }, GRANTS]) {
      const token = await hs(claims);
      expectRefused(await strict.verify(token), "audience", token);
    }
    // An empty audience list (an unset list variable) checks nothing.
    const open = await verifier({ secret: SECRET, audience: [] });
    expectGrants(await open.verify(await hs({ ...GRANTS, aud: "billing" })), GRANTS.subscribe);
  });

  it("reads the grants from a string or an array, deduplicated", async () => {
    expectGrants(await v.verify(await hs({ subscribe: "orders.eu.>" })), ["orders.eu.>"]);
    expectGrants(await v.verify(await hs({ subscribe: ["a.*", "b", "a.*", ">"] })), [
      "a.*",
      "b",
      ">",
    ]);
  });

  it("refuses a token without the grants claim", async () => {
    const token = await hs({ sub: "alice" });
    const e = expectRefused(await v.verify(token), "claims", token);
    expect(e.message).toContain('"subscribe"');
  });

  it.each<[string, unknown]>([
    ["a double dot", "a..b"],
    ["> before the end", "a.>.b"],
    ["a partial wildcard", "a.b*"],
    ["a partial >", "a.>b"],
    ["a leading dot", ".a"],
    ["a trailing dot", "a."],
    ["an empty string", ""],
    ["whitespace", "a. b"],
    ["a control character", "a.\u0001"],
    ["an empty array", []],
    ["a number", 42],
    ["an object", { a: 1 }],
    ["an array holding a number", ["a.b", 1]],
    ["an array holding a bad pattern", ["a.b", "c..d"]],
  ])("refuses grants with %s", async (_what, subscribe) => {
    const token = await hs({ subscribe } as Jose.JWTPayload);
    expectRefused(await v.verify(token), "claims", token);
  });

  it("reads the grants from a custom claim, and that claim only", async () => {
    const custom = await verifier({ secret: SECRET, subscribeClaim: "nats_sub" });
    expectGrants(await custom.verify(await hs({ nats_sub: ["x.>"], subscribe: ["y"] })), ["x.>"]);
    const token = await hs({ subscribe: ["y"] });
    const e = expectRefused(await custom.verify(token), "claims", token);
    expect(e.message).toContain('"nats_sub"');
  });
});

describe("TokenVerifier: attacks and garbage", () => {
  it("refuses alg none, whatever the key kind", async () => {
    const { publicKey } = await jose.generateKeyPair("RS256");
    const verifiers = [
      await verifier({ secret: SECRET }),
      await verifier({ publicKeyPem: await jose.exportSPKI(publicKey) }),
    ];
    const payload = b64({ ...GRANTS, exp: now() + 60 });
    const tokens = [
      `eyJhbGciOiJub25lIn0.${payload}.`,
      `${b64({ alg: "none", typ: "JWT" })}.${payload}.`,
      `${b64({ alg: "None" })}.${payload}.`,
      `${b64({ alg: "none" })}.${payload}.${Buffer.from("sig").toString("base64url")}`,
    ];
    for (const v of verifiers)
      for (const token of tokens) expectRefused(await v.verify(token), "algorithm", token);
  });

  it("refuses HS256 signed with the public key as its secret (algorithm confusion)", async () => {
    const { publicKey } = await jose.generateKeyPair("RS256");
    const pem = await jose.exportSPKI(publicKey);
    const v = await verifier({ publicKeyPem: pem });
    for (const secret of [pem, pem.trim(), `${pem.trim()}\n`]) {
      const token = await sign(GRANTS, "HS256", new TextEncoder().encode(secret));
      expectRefused(await v.verify(token), "algorithm", token);
    }
  });

  it("refuses truncated and garbage tokens as malformed", async () => {
    const v = await verifier({ secret: SECRET });
    const good = await sign(GRANTS, "HS256", secretKey());
    const garbage = [
      "",
      "abc",
      "a.b",
      "a.b.c.d",
      "!!!.???.###",
      good.slice(0, good.lastIndexOf(".")),
      good.slice(0, good.indexOf(".") + 5),
      `${Buffer.from("not json").toString("base64url")}.${b64(GRANTS)}.c2ln`,
      `${good}.extra`,
    ];
    for (const token of garbage) expectRefused(await v.verify(token), "malformed", token);
  });

  it("refuses a correctly signed payload that is not a JSON object as malformed", async () => {
    const v = await verifier({ secret: SECRET });
    for (const body of ["not json", "[1,2]", '"a string"']) {
      const token = await new jose.CompactSign(new TextEncoder().encode(body))
        .setProtectedHeader({ alg: "HS256" })
        .sign(secretKey());
      expectRefused(await v.verify(token), "malformed", token);
    }
  });

  it("refuses a token over maxTokenBytes before parsing it, and accepts one at the bound", async () => {
    const token = await sign({ ...GRANTS, pad: "x".repeat(500) }, "HS256", secretKey());
    const bytes = Buffer.byteLength(token);
    expectGrants(
      await (await verifier({ secret: SECRET, maxTokenBytes: bytes })).verify(token),
      GRANTS.subscribe,
    );
    const tight = await verifier({ secret: SECRET, maxTokenBytes: bytes - 1 });
    const e = expectRefused(await tight.verify(token), "too-large", token);
    expect(e.message).toContain(String(bytes - 1));
    // Counted in bytes, not characters.
    const wide = "é".repeat(bytes - 1);
    expectRefused(await tight.verify(wide), "too-large", wide);
  });
});

describe("TokenVerifier: JWKS", () => {
  type Mode = "ok" | "hang" | "garbage" | "error";
  interface JwksServer {
    url: string;
    requests: number;
    keys: Jose.JWK[];
    mode: Mode;
    close(): Promise<void>;
  }

  async function jwksServer(): Promise<JwksServer> {
    const state = { requests: 0, keys: [] as Jose.JWK[], mode: "ok" as Mode };
    const server = http.createServer((_req, res) => {
      state.requests++;
      if (state.mode === "hang") return; // never answers: the verifier's timeout must act
      if (state.mode === "error") return void res.writeHead(500).end("oops");
      res.writeHead(200, { "content-type": "application/json" });
      res.end(state.mode === "garbage" ? "{not json" : JSON.stringify({ keys: state.keys }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    return Object.assign(state, {
      url: `http://127.0.0.1:${port}/jwks.json`,
      close: () => {
        server.closeAllConnections();
        return new Promise<void>((resolve) => server.close(() => resolve()));
      },
    });
  }

  /** A key pair named `kid`: its public JWK for the server, and a signer for tokens. */
  async function keyPair(alg: string, kid: string) {
    const { publicKey, privateKey } = await jose.generateKeyPair(alg);
    const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg, use: "sig" };
    return {
      jwk,
      sign: (claims: Jose.JWTPayload = GRANTS) => sign(claims, alg, privateKey, { kid }),
    };
  }

  let srv: JwksServer;
  beforeEach(async () => {
    srv = await jwksServer();
  });
  afterEach(() => srv.close());

  it("accepts RS256, ES256 and EdDSA tokens from the key set, fetched once", async () => {
    const pairs = [
      await keyPair("RS256", "r1"),
      await keyPair("ES256", "e1"),
      await keyPair("EdDSA", "d1"),
    ];
    srv.keys = pairs.map((p) => p.jwk);
    const v = await verifier({ jwksUrl: srv.url });
    expect(srv.requests).toBe(0); // fetched on first use, not at creation
    for (const p of pairs) expectGrants(await v.verify(await p.sign()), GRANTS.subscribe);
    expect(srv.requests).toBe(1);
  });

  it("follows a key rotation: a new kid is accepted after the refetch, a retired one refused", async () => {
    const k1 = await keyPair("RS256", "k1");
    const k2 = await keyPair("RS256", "k2");
    srv.keys = [k1.jwk];
    const v = await verifier({ jwksUrl: srv.url, jwksCooldownMs: 100 });
    expectGrants(await v.verify(await k1.sign()), GRANTS.subscribe);
    srv.keys = [k2.jwk];
    await sleep(150);
    expectGrants(await v.verify(await k2.sign()), GRANTS.subscribe);
    expect(srv.requests).toBe(2);
    const retired = await k1.sign();
    expectRefused(await v.verify(retired), "bad-signature", retired);
  });

  it("refuses a token whose kid is in no key set, or that a listed kid did not sign", async () => {
    const known = await keyPair("ES256", "known");
    srv.keys = [known.jwk];
    const v = await verifier({ jwksUrl: srv.url });
    const unknown = await (await keyPair("ES256", "unknown")).sign();
    const e = expectRefused(await v.verify(unknown), "bad-signature", unknown);
    expect(e.message).toMatch(/unknown key/);
    const impostor = await (await keyPair("ES256", "known")).sign();
    expectRefused(await v.verify(impostor), "bad-signature", impostor);
  });

  it("bounds refetches by the cooldown during a burst of unknown kids", async () => {
    const known = await keyPair("RS256", "known");
    srv.keys = [known.jwk];
    const strangers = await Promise.all([1, 2, 3].map((i) => keyPair("RS256", `s${i}`)));
    const burst = await Promise.all(
      Array.from({ length: 50 }, (_, i) => strangers[i % 3]!.sign({ ...GRANTS, jti: `${i}` })),
    );

    // At once, on a verifier that has not fetched yet: one fetch serves them all.
    const fresh = await verifier({ jwksUrl: srv.url });
    const results = await Promise.all(burst.map((t) => fresh.verify(t)));
    results.forEach((r, i) => expectRefused(r, "bad-signature", burst[i]!));
    expect(srv.requests).toBeLessThanOrEqual(2);

    // One after another, once the cooldown since the last fetch is over: one refetch.
    srv.requests = 0;
    const v = await verifier({ jwksUrl: srv.url, jwksCooldownMs: 1000 });
    expectGrants(await v.verify(await known.sign()), GRANTS.subscribe);
    await sleep(1100);
    for (const t of burst) expectRefused(await v.verify(t), "bad-signature", t);
    expect(srv.requests).toBeLessThanOrEqual(2);
  });

  it("reports keys-unavailable, and calls the hook once per failed fetch, when the server is down", async () => {
    const port = await freePort(); // nothing listens there
    const failures: unknown[] = [];
    const v = await verifier(
      { jwksUrl: `http://127.0.0.1:${port}/jwks.json` },
      { onJwksFailure: (err) => failures.push(err) },
    );
    const token = await (await keyPair("RS256", "k")).sign();
    const results = await Promise.all(Array.from({ length: 10 }, () => v.verify(token)));
    for (const r of results) expectRefused(r, "keys-unavailable", token);
    expect(failures).toHaveLength(1);
    expectRefused(await v.verify(token), "keys-unavailable", token);
    expect(failures).toHaveLength(2);
  });

  it("reports keys-unavailable when the server hangs, after the fetch timeout", async () => {
    srv.mode = "hang";
    const failures: unknown[] = [];
    const v = await verifier(
      { jwksUrl: srv.url, jwksTimeoutMs: 200 },
      { onJwksFailure: (err) => failures.push(err) },
    );
    const token = await (await keyPair("ES256", "k")).sign();
    const started = Date.now();
    expectRefused(await v.verify(token), "keys-unavailable", token);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(failures).toHaveLength(1);
    expect((failures[0] as { code?: string }).code).toBe("ERR_JWKS_TIMEOUT");
  });

  it.each<Mode>(["garbage", "error"])(
    "reports keys-unavailable for a %s answer, and recovers once the server does",
    async (mode) => {
      const pair = await keyPair("EdDSA", "k");
      srv.keys = [pair.jwk];
      srv.mode = mode;
      let failures = 0;
      const v = await verifier({ jwksUrl: srv.url }, { onJwksFailure: () => failures++ });
      const token = await pair.sign();
      expectRefused(await v.verify(token), "keys-unavailable", token);
      expect(failures).toBe(1);
      srv.mode = "ok";
      expectGrants(await v.verify(token), GRANTS.subscribe);
    },
  );

  it("refuses alg none and HMAC tokens without fetching the key set", async () => {
    const v = await verifier({ jwksUrl: srv.url });
    const none = `eyJhbGciOiJub25lIn0.${b64(GRANTS)}.`;
    expectRefused(await v.verify(none), "algorithm", none);
    const hmac = await sign(GRANTS, "HS256", secretKey(), { kid: "k" });
    expectRefused(await v.verify(hmac), "algorithm", hmac);
    expect(srv.requests).toBe(0);
  });

  it("refuses a too-large token without fetching the key set", async () => {
    const v = await verifier({ jwksUrl: srv.url, maxTokenBytes: 100 });
    const token = await (await keyPair("RS256", "k")).sign();
    expectRefused(await v.verify(token), "too-large", token);
    expect(srv.requests).toBe(0);
  });
});

describe("TokenVerifier.create", () => {
  let rsaPem: string;
  let ecPem: string;
  beforeAll(async () => {
    rsaPem = await jose.exportSPKI((await jose.generateKeyPair("RS256")).publicKey);
    ecPem = await jose.exportSPKI((await jose.generateKeyPair("ES256")).publicKey);
  });

  it.each<[string, () => Partial<TokenVerifierOptions>, RegExp]>([
    ["no key", () => ({}), /no token key/],
    ["empty keys", () => ({ secret: "", publicKeyPem: "", jwksUrl: "" }), /no token key/],
    ["two key kinds", () => ({ secret: SECRET, publicKeyPem: rsaPem }), /more than one/],
    [
      "three key kinds",
      () => ({ secret: SECRET, publicKeyPem: rsaPem, jwksUrl: "https://x/j" }),
      /more than one/,
    ],
    ["a short secret", () => ({ secret: "short" }), /AUTH_JWT_SECRET.*32 bytes/],
    ["a non-PEM key", () => ({ publicKeyPem: "hello" }), /BEGIN PUBLIC KEY/],
    [
      "a broken PEM",
      () => ({ publicKeyPem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----" }),
      /not a valid PEM/,
    ],
    [
      "a PEM with escaped line breaks",
      () => ({ publicKeyPem: rsaPem.replace(/\n/g, "\\n") }),
      /not a valid PEM/,
    ],
    [
      "a private key",
      () => ({
        publicKeyPem: generateKeyPairSync("ec", { namedCurve: "P-256" })
          .privateKey.export({ type: "pkcs8", format: "pem" })
          .toString(),
      }),
      /BEGIN PUBLIC KEY/,
    ],
    [
      "a 1024-bit RSA key",
      () => ({
        publicKeyPem: generateKeyPairSync("rsa", { modulusLength: 1024 })
          .publicKey.export({ type: "spki", format: "pem" })
          .toString(),
      }),
      /2048 bits/,
    ],
    [
      "an unsupported curve",
      () => ({
        publicKeyPem: generateKeyPairSync("ec", { namedCurve: "secp256k1" })
          .publicKey.export({ type: "spki", format: "pem" })
          .toString(),
      }),
      /unsupported key type/,
    ],
    [
      "HS256 with a public key",
      () => ({ publicKeyPem: rsaPem, algorithms: ["HS256"] }),
      /HS256 needs AUTH_JWT_SECRET/,
    ],
    [
      "HS512 with a JWKS",
      () => ({ jwksUrl: "https://idp/jwks", algorithms: ["RS256", "HS512"] }),
      /HS512 needs AUTH_JWT_SECRET/,
    ],
    ["RS256 with a secret", () => ({ secret: SECRET, algorithms: ["RS256"] }), /RS256 cannot/],
    [
      "ES256 with an RSA key",
      () => ({ publicKeyPem: rsaPem, algorithms: ["ES256"] }),
      /ES256 cannot/,
    ],
    [
      "ES384 with a P-256 key",
      () => ({ publicKeyPem: ecPem, algorithms: ["ES384"] }),
      /ES384 cannot/,
    ],
    ["alg none", () => ({ secret: SECRET, algorithms: ["HS256", "none"] }), /"none"/],
    [
      "an unknown algorithm",
      () => ({ secret: SECRET, algorithms: ["HS1"] }),
      /unsupported algorithm/,
    ],
    ["a JWKS URL that is no URL", () => ({ jwksUrl: "not a url" }), /AUTH_JWKS_URL/],
    ["a JWKS URL that is not http", () => ({ jwksUrl: "file:///etc/jwks.json" }), /http or https/],
    ["a negative leeway", () => ({ secret: SECRET, clockToleranceSec: -1 }), /AUTH_JWT_LEEWAY_S/],
    ["a zero size bound", () => ({ secret: SECRET, maxTokenBytes: 0 }), /AUTH_JWT_MAX_BYTES/],
    [
      "an empty grants claim name",
      () => ({ secret: SECRET, subscribeClaim: "" }),
      /SUBSCRIBE_CLAIM/,
    ],
    ["an empty issuer", () => ({ secret: SECRET, issuer: "" }), /AUTH_JWT_ISSUER/],
    ["a negative JWKS timeout", () => ({ jwksUrl: "https://idp/jwks", jwksTimeoutMs: -1 }), /JWKS/],
  ])("refuses %s", async (_what, opts, message) => {
    await expect(verifier(opts())).rejects.toThrow(message);
  });

  it("takes an empty algorithm list as the key's default family", async () => {
    const v = await verifier({ secret: SECRET, algorithms: [] });
    expectGrants(await v.verify(await sign(GRANTS, "HS384", secretKey())), GRANTS.subscribe);
  });
});
