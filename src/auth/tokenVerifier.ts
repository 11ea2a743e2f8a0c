/**
 * Verification of the JWTs that authorize subscriptions: signature, algorithm, time and
 * audience checks by `jose`, then the grants (NATS subject patterns) the token carries.
 * Every refusal is a typed {@link TokenError} whose message can go to the client as is.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { loadJose, type Jose } from "./jose";

/** How tokens are verified; the names in parentheses are the environment variables. */
export interface TokenVerifierOptions {
  /**
   * HS256/384/512 shared secret (AUTH_JWT_SECRET), at least 32 bytes of UTF-8: anyone holding
   * a token can guess a shorter secret offline. No default. Exactly one of `secret`,
   * `publicKeyPem` and `jwksUrl` must be set; an empty string counts as unset.
   */
  secret?: string;
  /**
   * PEM public key, SPKI "-----BEGIN PUBLIC KEY-----" (AUTH_JWT_PUBLIC_KEY): RSA (at least
   * 2048 bits) for RS256/384/512 and PS256/384/512, EC P-256/P-384/P-521 for ES256/384/512,
   * Ed25519 for EdDSA. No default.
   */
  publicKeyPem?: string;
  /**
   * JWKS URL (AUTH_JWKS_URL), http or https, fetched with jose's `createRemoteJWKSet` on first
   * use: cached, refetched when older than `jwksCacheMaxAgeMs`, and on an unknown `kid` at
   * most once per `jwksCooldownMs`. No default. Plain http only inside a trusted network: who
   * can change the key set can mint tokens.
   */
  jwksUrl?: string;
  /**
   * Accepted `alg` values (AUTH_JWT_ALGORITHMS). Default (also for an empty list): the key's
   * own family: HS256/384/512 for a secret; for a PEM, RS256/384/512 + PS256/384/512 (RSA),
   * ES256 (P-256), ES384 (P-384), ES512 (P-521) or EdDSA (Ed25519); for a JWKS, all of
   * RS*, PS*, ES* and EdDSA. "none" is never accepted, nor HS* with a public key or a JWKS
   * (algorithm confusion: the public key would become the HMAC secret).
   */
  algorithms?: string[];
  /** Required `iss` (AUTH_JWT_ISSUER). Default: `iss` is not checked. */
  issuer?: string;
  /**
   * Accepted audiences (AUTH_JWT_AUDIENCE): `aud` (a string or an array) must contain one of
   * them. Default (also for an empty list): `aud` is not checked.
   */
  audience?: string[];
  /** Leeway for `exp` and `nbf`, in seconds (AUTH_JWT_LEEWAY_S); at least 0. */
  clockToleranceSec: number;
  /**
   * The claim holding the grants (AUTH_JWT_SUBSCRIBE_CLAIM, "subscribe" in the config): one
   * NATS subject pattern as a string, or a non-empty array of them.
   */
  subscribeClaim: string;
  /** Longest token accepted, in bytes (AUTH_JWT_MAX_BYTES); longer ones are refused unparsed. */
  maxTokenBytes: number;
  /** Least time between two JWKS fetches caused by an unknown `kid`, in ms. Default 30000. */
  jwksCooldownMs?: number;
  /** Bound on one JWKS fetch, in ms. Default 5000. */
  jwksTimeoutMs?: number;
  /** Age after which the cached JWKS is fetched again before use, in ms. Default 600000. */
  jwksCacheMaxAgeMs?: number;
}

/** Why a token was refused. Messages never repeat the token, nor any internal detail. */
export type TokenError =
  | { type: "too-large"; message: string }
  | { type: "malformed"; message: string }
  | { type: "bad-signature"; message: string }
  /** `alg` is "none" or not among the accepted algorithms. */
  | { type: "algorithm"; message: string }
  /** `expiredAt`: the `exp` claim in ms since the epoch. */
  | { type: "expired"; message: string; expiredAt: number }
  | { type: "not-yet-valid"; message: string }
  | { type: "issuer"; message: string }
  | { type: "audience"; message: string }
  /** The grants claim is missing or invalid, or `exp`/`nbf`/`iat`/`sub` has the wrong type. */
  | { type: "claims"; message: string }
  /** The JWKS could not be fetched: not the client's fault, so shed it with a retry hint. */
  | { type: "keys-unavailable"; message: string };

/** What a valid token grants. */
export interface VerifiedToken {
  /** NATS subject patterns the holder may subscribe to, deduplicated, in token order. */
  grants: string[];
  /** The `sub` claim, when present. */
  subject?: string;
  /** The `exp` claim in ms since the epoch; absent when the token has none (it never expires). */
  expiresAt?: number;
}

export type VerifyResult = { ok: true; token: VerifiedToken } | { ok: false; error: TokenError };

/** Called when the JWKS could not be fetched: once per failed fetch, for logs and metrics. */
export interface TokenVerifierHooks {
  onJwksFailure?: (err: unknown) => void;
}

const HMAC = ["HS256", "HS384", "HS512"];
const RSA = ["RS256", "RS384", "RS512"];
const PSS = ["PS256", "PS384", "PS512"];
const EC = ["ES256", "ES384", "ES512"];
const ASYMMETRIC = [...RSA, ...PSS, ...EC, "EdDSA"];
const KNOWN = new Set([...HMAC, ...ASYMMETRIC]);
const CURVE_ALG: Record<string, string> = {
  prime256v1: "ES256",
  secp384r1: "ES384",
  secp521r1: "ES512",
};
const MIN_SECRET_BYTES = 32;
const MIN_RSA_BITS = 2048;

/** Wraps whatever a JWKS fetch threw, so `verify` can tell it from a client's bad token. */
class KeysUnavailable extends Error {}

type Key = Uint8Array | Jose.JWTVerifyGetKey;

const fail = (type: Exclude<TokenError["type"], "expired">, message: string): VerifyResult => ({
  ok: false,
  error: { type, message },
});

/**
 * Verifies tokens against one key source: a shared secret, a public key or a JWKS. A token
 * without `exp` is accepted and never expires: issuers that want expiry set it (and should).
 */
export class TokenVerifier {
  private constructor(
    private readonly jose: typeof Jose,
    private readonly key: Key,
    private readonly verifyOptions: Jose.JWTVerifyOptions,
    private readonly subscribeClaim: string,
    private readonly maxTokenBytes: number,
  ) {}

  /**
   * Checks the options and prepares the keys (a JWKS is fetched on first use, not here).
   * Throws a plain Error naming the setting when the options are inconsistent.
   */
  static async create(
    opts: TokenVerifierOptions,
    hooks?: TokenVerifierHooks,
  ): Promise<TokenVerifier> {
    checkNumbers(opts);
    const jose = await loadJose();
    const sources = [opts.secret, opts.publicKeyPem, opts.jwksUrl].filter((s) => s);
    if (sources.length !== 1)
      throw new Error(
        sources.length === 0
          ? "no token key configured: set one of AUTH_JWT_SECRET, AUTH_JWT_PUBLIC_KEY or AUTH_JWKS_URL"
          : "more than one token key configured: set only one of AUTH_JWT_SECRET, AUTH_JWT_PUBLIC_KEY and AUTH_JWKS_URL",
      );
    const chosen = opts.algorithms?.length ? opts.algorithms : undefined;
    let algorithms: string[];
    let key: Key;
    if (opts.secret) {
      if (Buffer.byteLength(opts.secret) < MIN_SECRET_BYTES)
        throw new Error(`AUTH_JWT_SECRET must be at least ${MIN_SECRET_BYTES} bytes long`);
      algorithms = pickAlgorithms(chosen, HMAC, "AUTH_JWT_SECRET");
      key = new TextEncoder().encode(opts.secret);
    } else if (opts.publicKeyPem) {
      const { family, keyObject } = pemFamily(opts.publicKeyPem);
      algorithms = pickAlgorithms(chosen, family, "this AUTH_JWT_PUBLIC_KEY");
      key = await pemKeys(jose, keyObject, algorithms);
    } else {
      algorithms = pickAlgorithms(chosen, ASYMMETRIC, "AUTH_JWKS_URL");
      key = jwksKeys(jose, opts, hooks);
    }
    const verifyOptions: Jose.JWTVerifyOptions = {
      algorithms,
      clockTolerance: opts.clockToleranceSec,
      ...(opts.issuer !== undefined ? { issuer: opts.issuer } : {}),
      ...(opts.audience?.length ? { audience: opts.audience } : {}),
    };
    return new TokenVerifier(jose, key, verifyOptions, opts.subscribeClaim, opts.maxTokenBytes);
  }

  /** Verifies one token; never throws. */
  async verify(token: string): Promise<VerifyResult> {
    // Bounded before jose sees it: parsing and signature work grow with the token. The length
    // test first, so a huge string is refused without even counting its bytes.
    if (token.length > this.maxTokenBytes || Buffer.byteLength(token) > this.maxTokenBytes)
      return fail("too-large", `the token is longer than ${this.maxTokenBytes} bytes`);
    let payload: Jose.JWTPayload;
    try {
      ({ payload } = await this.jose.jwtVerify(token, this.key, this.verifyOptions));
    } catch (err) {
      return { ok: false, error: describe(err) };
    }
    return this.grants(payload);
  }

  private grants(payload: Jose.JWTPayload): VerifyResult {
    const name = this.subscribeClaim;
    if (payload.sub !== undefined && typeof payload.sub !== "string")
      return fail("claims", 'the "sub" claim must be a string');
    if (!Object.hasOwn(payload, name))
      return fail("claims", `the token has no "${name}" claim: it grants no subject`);
    const raw = payload[name];
    const list: unknown[] = typeof raw === "string" ? [raw] : Array.isArray(raw) ? raw : [];
    if (list.length === 0)
      return fail(
        "claims",
        `the "${name}" claim must be a subject pattern or a non-empty array of them`,
      );
    for (let i = 0; i < list.length; i++) {
      const reason = patternError(list[i]);
      if (reason)
        return fail("claims", `entry ${i + 1} of the "${name}" claim is invalid: ${reason}`);
    }
    const token: VerifiedToken = { grants: [...new Set(list as string[])] };
    if (payload.sub !== undefined) token.subject = payload.sub;
    if (payload.exp !== undefined) token.expiresAt = payload.exp * 1000;
    return { ok: true, token };
  }
}

function checkNumbers(opts: TokenVerifierOptions): void {
  const check = (ok: boolean, what: string) => {
    if (!ok) throw new Error(what);
  };
  const ms = (v: number | undefined) => v === undefined || (Number.isSafeInteger(v) && v >= 0);
  check(
    Number.isFinite(opts.clockToleranceSec) && opts.clockToleranceSec >= 0,
    "AUTH_JWT_LEEWAY_S must be a number of seconds, at least 0",
  );
  check(
    Number.isSafeInteger(opts.maxTokenBytes) && opts.maxTokenBytes > 0,
    "AUTH_JWT_MAX_BYTES must be a positive integer",
  );
  check(opts.subscribeClaim.length > 0, "AUTH_JWT_SUBSCRIBE_CLAIM must not be empty");
  check(opts.issuer !== "", "AUTH_JWT_ISSUER must not be empty when set");
  check(
    (opts.audience ?? []).every((a) => a.length > 0),
    "AUTH_JWT_AUDIENCE must not hold an empty audience",
  );
  check(
    ms(opts.jwksCooldownMs) && ms(opts.jwksTimeoutMs) && ms(opts.jwksCacheMaxAgeMs),
    "the JWKS cooldown, timeout and cache age must be whole milliseconds, at least 0",
  );
}

/** The configured algorithms, checked against what the key can verify; else the key's family. */
function pickAlgorithms(chosen: string[] | undefined, family: string[], keyName: string): string[] {
  if (!chosen) return family;
  for (const alg of chosen) {
    if (alg.toLowerCase() === "none")
      throw new Error(
        'AUTH_JWT_ALGORITHMS must not contain "none": unsigned tokens are never accepted',
      );
    if (!KNOWN.has(alg))
      throw new Error(
        `AUTH_JWT_ALGORITHMS: unsupported algorithm "${alg}"; supported: ${[...KNOWN].join(", ")}`,
      );
    if (!family.includes(alg))
      throw new Error(
        HMAC.includes(alg)
          ? `AUTH_JWT_ALGORITHMS: ${alg} needs AUTH_JWT_SECRET; with a public key or a JWKS it would let anyone who knows the public key sign tokens`
          : `AUTH_JWT_ALGORITHMS: ${alg} cannot be verified with ${keyName}; it accepts ${family.join(", ")}`,
      );
  }
  return [...new Set(chosen)];
}

/** The algorithms a PEM public key can verify, from its key type (and curve, for EC). */
function pemFamily(pem: string): { family: string[]; keyObject: KeyObject } {
  // Checked first: createPublicKey would also accept a private key or a certificate, and a
  // private key has no business in the gateway's configuration.
  if (!pem.includes("-----BEGIN PUBLIC KEY-----"))
    throw new Error(
      'AUTH_JWT_PUBLIC_KEY must be a PEM public key starting "-----BEGIN PUBLIC KEY-----" (SPKI)',
    );
  let keyObject: KeyObject;
  try {
    keyObject = createPublicKey({ key: pem, format: "pem" });
  } catch {
    throw new Error(
      "AUTH_JWT_PUBLIC_KEY is not a valid PEM public key (from an environment variable, check that its line breaks are real newlines)",
    );
  }
  const type = keyObject.asymmetricKeyType;
  const details = keyObject.asymmetricKeyDetails ?? {};
  if (type === "rsa" || type === "rsa-pss") {
    if ((details.modulusLength ?? 0) < MIN_RSA_BITS)
      throw new Error(`AUTH_JWT_PUBLIC_KEY: RSA keys must have at least ${MIN_RSA_BITS} bits`);
    return { family: type === "rsa" ? [...RSA, ...PSS] : PSS, keyObject };
  }
  const curveAlg = type === "ec" ? CURVE_ALG[details.namedCurve ?? ""] : undefined;
  if (curveAlg) return { family: [curveAlg], keyObject };
  if (type === "ed25519") return { family: ["EdDSA"], keyObject };
  throw new Error(
    "AUTH_JWT_PUBLIC_KEY: unsupported key type; use RSA, EC P-256/P-384/P-521 or Ed25519",
  );
}

/** One CryptoKey per algorithm: Web Crypto keys are bound to the algorithm they verify. */
async function pemKeys(
  jose: typeof Jose,
  keyObject: KeyObject,
  algorithms: string[],
): Promise<Jose.JWTVerifyGetKey> {
  // Re-exported from the parsed key, so jose reads a canonical SPKI PEM whatever the input's
  // surroundings (comments before the header, Windows line ends).
  const spki = keyObject.export({ type: "spki", format: "pem" }).toString();
  const keys = new Map<string, Jose.CryptoKey>();
  for (const alg of algorithms) {
    try {
      keys.set(alg, await jose.importSPKI(spki, alg));
    } catch {
      throw new Error(`AUTH_JWT_PUBLIC_KEY could not be imported for ${alg}`);
    }
  }
  return (header) => {
    const key = keys.get(header.alg ?? "");
    // jose checks the allowed algorithms before asking for the key; this is a second lock.
    if (!key) throw new jose.errors.JOSEAlgNotAllowed("algorithm not allowed");
    return key;
  };
}

function jwksKeys(
  jose: typeof Jose,
  opts: TokenVerifierOptions,
  hooks: TokenVerifierHooks | undefined,
): Jose.JWTVerifyGetKey {
  let url: URL;
  try {
    url = new URL(opts.jwksUrl ?? "");
  } catch {
    throw new Error("AUTH_JWKS_URL is not a valid URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:")
    throw new Error("AUTH_JWKS_URL must be an http or https URL");
  const jwks = jose.createRemoteJWKSet(url, {
    cooldownDuration: opts.jwksCooldownMs ?? 30_000,
    timeoutDuration: opts.jwksTimeoutMs ?? 5_000,
    cacheMaxAge: opts.jwksCacheMaxAgeMs ?? 600_000,
  });
  // Concurrent verifications share one fetch and so one rejection: report each error once.
  let lastReported: unknown;
  return async (header, token) => {
    try {
      return await jwks(header, token);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      // Key selection: the set was fetched, the token's key is just not (uniquely) in it.
      if (code === "ERR_JWKS_NO_MATCHING_KEY" || code === "ERR_JWKS_MULTIPLE_MATCHING_KEYS")
        throw err;
      if (err !== lastReported) {
        lastReported = err;
        try {
          hooks?.onJwksFailure?.(err);
        } catch {
          // A failing hook must not turn an outage of the key server into a client error.
        }
      }
      throw new KeysUnavailable("JWKS unavailable", { cause: err });
    }
  };
}

/** NATS subject pattern syntax, without repeating the pattern (it comes from the token). */
function patternError(p: unknown): string | undefined {
  if (typeof p !== "string") return "not a string";
  if (p.length === 0) return "empty subject pattern";
  // eslint-disable-next-line no-control-regex
  if (/[\s\u0000-\u001f\u007f]/.test(p)) return "whitespace or control characters";
  const tokens = p.split(".");
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as string;
    if (t.length === 0) return "empty token (leading, trailing or double dot)";
    if (t !== "*" && t !== ">" && (t.includes("*") || t.includes(">")))
      return "wildcards must be whole tokens";
    if (t === ">" && i !== tokens.length - 1) return '">" may only be the last token';
  }
  return undefined;
}

/** Maps what jose (or the JWKS) threw to a client-facing error; unknown errors fail closed. */
function describe(err: unknown): TokenError {
  if (err instanceof KeysUnavailable)
    return {
      type: "keys-unavailable",
      message: "the keys that verify tokens cannot be fetched right now; retry later",
    };
  const e = err as { code?: unknown; claim?: unknown; reason?: unknown; payload?: Jose.JWTPayload };
  switch (e.code) {
    case "ERR_JWT_EXPIRED": {
      const exp = e.payload?.exp;
      return {
        type: "expired",
        message: "the token has expired",
        expiredAt: typeof exp === "number" ? exp * 1000 : 0,
      };
    }
    case "ERR_JWT_CLAIM_VALIDATION_FAILED":
      if (e.reason === "invalid")
        return { type: "claims", message: `the "${String(e.claim)}" claim must be a number` };
      if (e.claim === "nbf")
        return { type: "not-yet-valid", message: "the token is not valid yet" };
      if (e.claim === "iss")
        return { type: "issuer", message: "the token was not issued by the expected issuer" };
      if (e.claim === "aud")
        return { type: "audience", message: "the token is not meant for this service (audience)" };
      return { type: "claims", message: "the token's claims are invalid" };
    case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
      return { type: "bad-signature", message: "the token's signature is not valid" };
    case "ERR_JWKS_NO_MATCHING_KEY":
      return { type: "bad-signature", message: "the token was signed with an unknown key" };
    case "ERR_JWKS_MULTIPLE_MATCHING_KEYS":
      return {
        type: "bad-signature",
        message: "the token names no key id (kid) and several keys could have signed it",
      };
    case "ERR_JOSE_ALG_NOT_ALLOWED":
      return { type: "algorithm", message: "the token's signing algorithm is not accepted" };
    default:
      // JWSInvalid, JWTInvalid, JOSENotSupported, and anything unforeseen: refused all the same.
      return { type: "malformed", message: "the token is not a well-formed signed JWT" };
  }
}
