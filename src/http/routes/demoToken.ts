import type { Context } from "koa";
import { loadJose } from "../../auth/jose";
import { sendError } from "../errors";

/** Shortest and longest lifetime the demo page may ask for, in seconds. */
const TTL_S = { min: 3, max: 3_600, default: 30 };

/**
 * `GET /demo/token?subject=a&subject=b&ttl=30` when DEMO=true and AUTH_JWT_SECRET is set: a
 * short-lived HS256 token granting exactly the subjects asked for, so the demo page can show
 * authorization and a token expiring mid-stream. It grants anything to anyone: it exists only
 * with DEMO, which is for local development (`make dev`), never for a deployment.
 */
export function demoTokenRoute(secret: string, subscribeClaim: string) {
  const key = new TextEncoder().encode(secret);
  return async (ctx: Context): Promise<void> => {
    const raw = ctx.query.subject;
    const subjects = (Array.isArray(raw) ? raw : raw ? [raw] : []).filter(Boolean);
    if (subjects.length === 0)
      return sendError(ctx, 400, "no_subject", "ask for at least one ?subject=");
    const ttl = Number(ctx.query.ttl ?? TTL_S.default);
    if (!Number.isInteger(ttl) || ttl < TTL_S.min || ttl > TTL_S.max)
      return sendError(ctx, 400, "malformed_request", `ttl: ${TTL_S.min} to ${TTL_S.max} seconds`);
    const { SignJWT } = await loadJose();
    const token = await new SignJWT({ [subscribeClaim]: subjects })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("demo-page")
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + ttl)
      .sign(key);
    ctx.set("Cache-Control", "no-store");
    ctx.body = { token, expiresIn: ttl };
  };
}
