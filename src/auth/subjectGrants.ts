/**
 * Pure subject grants: whether the subject patterns a client was granted cover the filters it
 * asks for. Knows nothing of NATS connections, HTTP or tokens; every function works on strings.
 *
 * Semantics are those of NATS subscriptions: tokens are split on "."; `*` matches exactly one
 * token; `>` matches one or more tokens and may only be the last token. A grant covers a filter
 * when every concrete subject the filter can match is also matched by the grant, so a client
 * can never receive through a filter a message its grants would not have delivered.
 */

/** Result of parsing a setting; the error is one sentence for a startup message. */
export type PatternListResult = { ok: true; value: string[] } | { ok: false; error: string };

// NATS forbids whitespace in subjects; controls are refused too so no pattern can smuggle
// bytes into logs. Same rule as src/broker/subjects.ts, repeated to keep this module standalone.
// eslint-disable-next-line no-control-regex
const BAD_CHARS = /[\s\u0000-\u001f\u007f]/;

/**
 * Splits a pattern into tokens, or undefined when it has an empty token or a `>` before the
 * end. Such input is outside the contract, but an authorization check must fail closed on it
 * rather than guess: `a.>.b` read leniently as a grant would allow all of `a.>`.
 */
function tokensOf(pattern: string): string[] | undefined {
  const tokens = pattern.split(".");
  const last = tokens.length - 1;
  for (let i = 0; i <= last; i++) {
    const t = tokens[i] as string;
    if (t === "" || (t === ">" && i !== last)) return undefined;
  }
  return tokens;
}

/**
 * True iff every subject that the NATS filter `filter` can match is also matched by the NATS
 * pattern `grant`. Both may hold wildcards; an empty or malformed input covers, and is covered
 * by, nothing. Linear in the number of tokens, never enumerating subjects, never throwing.
 *
 * @example grantCovers("orders.eu.>", "orders.eu.*") === true
 * @example grantCovers("orders.eu.>", "orders.eu") === false // `>` needs at least one token
 * @example grantCovers("orders.*.42", "orders.>") === false
 */
export function grantCovers(grant: string, filter: string): boolean {
  const g = tokensOf(grant);
  const f = tokensOf(filter);
  if (g === undefined || f === undefined) return false;
  for (let i = 0; i < g.length; i++) {
    const gt = g[i] as string;
    const ft = f[i];
    // The filter has ended where the grant still asks for a token (even `>` asks for one).
    if (ft === undefined) return false;
    // `>` takes this token and any after it, whatever the filter holds there.
    if (gt === ">") return true;
    // The filter matches subjects of any length from here; only a `>` grant (above) allows that.
    if (ft === ">") return false;
    if (gt === "*") continue;
    // A literal grant token allows exactly that token; a filter `*` would admit others.
    if (ft !== gt) return false;
  }
  // The grant is exhausted without `>`: the filter must end exactly here.
  return f.length === g.length;
}

/** True when at least one of `grants` covers `filter` (see {@link grantCovers}). */
export function coveredByAny(grants: readonly string[], filter: string): boolean {
  return grants.some((grant) => grantCovers(grant, filter));
}

/**
 * The first of `filters` that no grant covers, to name in a 403 answer; undefined when every
 * filter is covered (and so for an empty list of filters).
 */
export function firstUncovered(
  grants: readonly string[],
  filters: readonly string[],
): string | undefined {
  return filters.find((filter) => !coveredByAny(grants, filter));
}

/** Why `pattern` is not a valid NATS subject pattern, or undefined when it is. */
function patternSyntaxError(pattern: string): string | undefined {
  if (BAD_CHARS.test(pattern)) return "it contains whitespace or control characters";
  const tokens = pattern.split(".");
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as string;
    if (token === "") return "it has an empty token (leading, trailing or double dot)";
    const isWildcard = token === "*" || token === ">";
    if (!isWildcard && (token.includes("*") || token.includes(">")))
      return `wildcards must be whole tokens, got "${token}"`;
    if (token === ">" && i !== tokens.length - 1) return '">" may only be the last token';
  }
  return undefined;
}

/**
 * Parses a comma-separated list of NATS subject patterns from a setting: each entry is trimmed,
 * empty entries are dropped (so a trailing comma is harmless, and a blank setting is an empty
 * list), and every remaining pattern must be valid NATS syntax. The first bad pattern is named
 * in the error, with the reason.
 *
 * @example parsePatternList(" orders.eu.>, fleet.*.pos ,") // { ok: true, value: ["orders.eu.>", "fleet.*.pos"] }
 */
export function parsePatternList(raw: string): PatternListResult {
  const value: string[] = [];
  for (const entry of raw.split(",")) {
    const pattern = entry.trim();
    if (pattern === "") continue;
    const why = patternSyntaxError(pattern);
    // JSON quoting escapes the control characters that may be the very reason for refusal.
    if (why !== undefined)
      return { ok: false, error: `invalid subject pattern ${JSON.stringify(pattern)}: ${why}` };
    value.push(pattern);
  }
  return { ok: true, value };
}
