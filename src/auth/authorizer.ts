import type { IncomingHttpHeaders } from "node:http";
import type { ErrorCode } from "../http/errors";
import { firstUncovered } from "./subjectGrants";
import { findToken, type TokenSources } from "./tokenSource";
import type { TokenVerifier, VerifiedToken } from "./tokenVerifier";

/** The answer to "may this request read these subjects?". */
export type AuthDecision =
  | { type: "allowed"; token: VerifiedToken | undefined; source?: "header" | "cookie" | "query" }
  | {
      type: "refused";
      status: 401 | 403;
      code: ErrorCode;
      message: string;
      /** The `WWW-Authenticate` header (RFC 6750). */
      challenge: string;
    }
  // The keys could not be fetched (JWKS down): the request is shed, the browser retries.
  | { type: "unavailable"; message: string };

const REALM = 'Bearer realm="jetstream-sse-gateway"';

/** `WWW-Authenticate` value; the description is ours (it never quotes the token). */
function challenge(error: string, description: string): string {
  return `${REALM}, error="${error}", error_description="${description.replace(/["\\]/g, "'")}"`;
}

/**
 * Authorization of one stream request: finds its token, verifies it, and checks that its grants
 * (with the public subjects) cover every subject asked for. Without a token only public subjects
 * (AUTH_PUBLIC_SUBJECTS) may be read.
 */
export class Authorizer {
  constructor(
    private readonly verifier: TokenVerifier,
    private readonly sources: TokenSources,
    private readonly publicSubjects: readonly string[],
  ) {}

  async authorize(
    headers: IncomingHttpHeaders,
    query: Readonly<Record<string, string | string[]>>,
    filters: readonly string[],
  ): Promise<AuthDecision> {
    const found = findToken(headers, query, this.sources);
    if (found.type === "malformed")
      return {
        type: "refused",
        status: 401,
        code: "invalid_token",
        message: found.message,
        challenge: challenge("invalid_request", found.message),
      };
    if (found.type === "none") {
      if (this.publicSubjects.length > 0 && !firstUncovered(this.publicSubjects, filters))
        return { type: "allowed", token: undefined };
      const message =
        "a token is required: send `Authorization: Bearer <token>`" +
        (this.sources.cookie ? `, the \`${this.sources.cookie}\` cookie` : "") +
        (this.sources.query ? ", or `?access_token=`" : "");
      return { type: "refused", status: 401, code: "missing_token", message, challenge: REALM };
    }
    const verified = await this.verifier.verify(found.token);
    if (!verified.ok) {
      const e = verified.error;
      if (e.type === "keys-unavailable") return { type: "unavailable", message: e.message };
      const code: ErrorCode = e.type === "expired" ? "token_expired" : "invalid_token";
      return {
        type: "refused",
        status: 401,
        code,
        message: e.message,
        challenge: challenge("invalid_token", e.message),
      };
    }
    const missing = firstUncovered([...verified.token.grants, ...this.publicSubjects], filters);
    if (missing !== undefined) {
      const message = `the token does not grant subject "${missing}"`;
      return {
        type: "refused",
        status: 403,
        code: "subject_not_granted",
        message,
        challenge: challenge("insufficient_scope", message),
      };
    }
    return { type: "allowed", token: verified.token, source: found.source };
  }
}
