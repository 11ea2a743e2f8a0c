import { generateKeyPairSync, randomBytes, type KeyObject } from "node:crypto";

/** How the gateway checks tokens in a benchmark run, and the key the load clients sign with. */
export interface BenchTokenKey {
  alg: "HS256" | "ES256";
  /** The gateway's settings for this key (AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY). */
  env: Record<string, string>;
  signWith: Uint8Array | KeyObject;
}

/** A fresh random HS256 secret (48 bytes, hex: well above the gateway's 32-byte least). */
export function hs256Key(): BenchTokenKey {
  const secret = randomBytes(48).toString("hex");
  return { alg: "HS256", env: { AUTH_JWT_SECRET: secret }, signWith: Buffer.from(secret) };
}

/** A fresh P-256 key pair: the gateway gets the public half as PEM (SPKI). */
export function es256Key(): BenchTokenKey {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const pem = publicKey.export({ type: "spki", format: "pem" }).toString();
  return { alg: "ES256", env: { AUTH_JWT_PUBLIC_KEY: pem }, signWith: privateKey };
}

/**
 * `count` tokens minted in advance, one per client: distinct `sub` (`bench-client-<i>`), the
 * `subscribe` claim `grants`, expiring in an hour. jose is ESM only; this compiles to CommonJS,
 * so it is loaded with a dynamic import (as the gateway does).
 */
export async function mintTokens(
  key: BenchTokenKey,
  count: number,
  grants: string[],
): Promise<string[]> {
  const { SignJWT } = await import("jose");
  const exp = Math.floor(Date.now() / 1000) + 3_600;
  const tokens: string[] = [];
  for (let i = 0; i < count; i++)
    tokens.push(
      await new SignJWT({ subscribe: grants })
        .setProtectedHeader({ alg: key.alg })
        .setSubject(`bench-client-${i}`)
        .setIssuedAt()
        .setExpirationTime(exp)
        .sign(key.signWith),
    );
  return tokens;
}
