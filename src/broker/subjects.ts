/**
 * Pure NATS subject handling: validation of client-supplied subjects and filter sets.
 * Knows nothing of NATS connections or HTTP; every function is tested with strings alone.
 */

import { grantCovers } from "../auth/subjectGrants";

/** Why a subject was refused; the HTTP layer maps each kind to a status and a message. */
export type SubjectError =
  | { type: "malformed"; subject: string; reason: string }
  | { type: "forbidden"; subject: string; reason: string }
  | { type: "overlap"; subjects: [string, string] }
  | { type: "too-many"; count: number; max: number }
  | { type: "empty" };

export type SubjectResult<T> = { ok: true; value: T } | { ok: false; error: SubjectError };

/** Limits applied to client-supplied subjects. */
export interface SubjectRules {
  /** Whether `*` and `>` tokens are accepted. Default true. */
  allowWildcards: boolean;
  /** Whether `$KV.` subjects may be served. Default false. */
  allowKv: boolean;
  /** Most subjects one connection may ask for. Default 16. */
  maxSubjects: number;
  /** Longest subject accepted, in characters. Default 256. */
  maxLength: number;
}

/**
 * Prefixes of subjects that belong to the NATS system, the JetStream API or client inboxes.
 * Serving them would leak internals (or let a browser watch other clients' replies).
 */
const SYSTEM_PREFIXES = ["$JS.", "$SYS.", "$JSC.", "$NRG.", "$MQTT.", "$G.", "_INBOX.", "_R_."];

// NATS forbids whitespace in subjects; we also refuse controls so no subject can smuggle
// bytes into logs or headers. Anything else printable (including UTF-8) NATS accepts.
// eslint-disable-next-line no-control-regex
const BAD_CHARS = /[\s\u0000-\u001f\u007f]/;

/** Validates one subject: NATS syntax, wildcard placement, system prefixes, length. */
export function parseSubject(subject: string, rules: SubjectRules): SubjectResult<string> {
  const malformed = (reason: string): SubjectResult<string> => ({
    ok: false,
    error: { type: "malformed", subject, reason },
  });
  if (subject.length === 0) return malformed("subject is empty");
  if (subject.length > rules.maxLength)
    return malformed(`subject is longer than ${rules.maxLength} characters`);
  if (BAD_CHARS.test(subject))
    return malformed("subject contains whitespace or control characters");
  const tokens = subject.split(".");
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as string;
    if (token.length === 0)
      return malformed("subject has an empty token (leading, trailing or double dot)");
    const isWildcard = token === "*" || token === ">";
    if (!isWildcard && (token.includes("*") || token.includes(">")))
      return malformed(`wildcards must be whole tokens, got "${token}"`);
    if (token === ">" && i !== tokens.length - 1)
      return malformed('">" may only be the last token');
    if (isWildcard && !rules.allowWildcards)
      return { ok: false, error: { type: "forbidden", subject, reason: "wildcards are disabled" } };
  }
  const probe = subject + ".";
  if (SYSTEM_PREFIXES.some((p) => probe.startsWith(p)))
    return {
      ok: false,
      error: { type: "forbidden", subject, reason: "system subjects are never served" },
    };
  if (probe.startsWith("$KV.") && !rules.allowKv)
    return {
      ok: false,
      error: { type: "forbidden", subject, reason: "KV subjects are not served" },
    };
  return { ok: true, value: subject };
}

/**
 * True when some subject could match both filters. JetStream refuses a consumer whose
 * filters overlap, so we refuse the request first with a clear answer.
 */
export function subjectsOverlap(a: string, b: string): boolean {
  const ta = a.split(".");
  const tb = b.split(".");
  for (let i = 0; ; i++) {
    const x = ta[i];
    const y = tb[i];
    if (x === ">" || y === ">") return x !== undefined && y !== undefined;
    if (x === undefined || y === undefined) return x === y;
    if (x !== "*" && y !== "*" && x !== y) return false;
  }
}

/** True when `subject` (a concrete or wildcard subject) is matched by `filter`. */
export function subjectMatches(filter: string, subject: string): boolean {
  const tf = filter.split(".");
  const ts = subject.split(".");
  for (let i = 0; i < tf.length; i++) {
    const f = tf[i];
    if (f === ">") return ts.length > i;
    const s = ts[i];
    if (s === undefined) return false;
    if (f !== "*" && f !== s) return false;
  }
  return tf.length === ts.length;
}

/**
 * Validates the subjects of one connection and returns them as a filter set: deduplicated,
 * sorted (so equal sets share one feed), and free of overlaps.
 */
export function parseFilterSet(
  subjects: readonly string[],
  rules: SubjectRules,
): SubjectResult<string[]> {
  if (subjects.length === 0) return { ok: false, error: { type: "empty" } };
  const unique = [...new Set(subjects)].sort();
  if (unique.length > rules.maxSubjects)
    return { ok: false, error: { type: "too-many", count: unique.length, max: rules.maxSubjects } };
  for (const s of unique) {
    const r = parseSubject(s, rules);
    if (!r.ok) return r;
  }
  for (let i = 0; i < unique.length; i++)
    for (let j = i + 1; j < unique.length; j++)
      if (subjectsOverlap(unique[i] as string, unique[j] as string))
        return {
          ok: false,
          error: { type: "overlap", subjects: [unique[i] as string, unique[j] as string] },
        };
  return { ok: true, value: unique };
}

/** Describes a subject error as one sentence for a JSON error body. */
export function describeSubjectError(e: SubjectError): string {
  switch (e.type) {
    case "malformed":
      return `malformed subject "${e.subject}": ${e.reason}`;
    case "forbidden":
      return `subject "${e.subject}" is not served: ${e.reason}`;
    case "overlap":
      return `subjects "${e.subjects[0]}" and "${e.subjects[1]}" overlap; ask for each message once`;
    case "too-many":
      return `${e.count} subjects asked for; at most ${e.max} per connection`;
    case "empty":
      return "no subject given: use /events/<subject> or /events?subject=<subject>";
  }
}

/**
 * True when every subject matched by `filter` is also matched by `pattern` (a stream's subject).
 * A consumer filter must be such a subset of its stream's subjects. The same relation decides
 * whether a token's grant covers a subject (`grantCovers`): one implementation for both.
 */
export function subjectIsSubset(filter: string, pattern: string): boolean {
  return grantCovers(pattern, filter);
}
