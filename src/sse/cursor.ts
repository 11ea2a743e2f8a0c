/**
 * Pure parsing of where a connection starts: a resume cursor (`Last-Event-ID` header or the
 * `lastEventId` query parameter) or, for a fresh connection, an opt-in start position.
 */

/** Where a session's delivery begins. Sequences are JetStream stream sequences. */
export type StartPosition =
  /** Only messages published after the connection opens (the default). */
  | { kind: "new" }
  /** Resume: every matching message with a sequence greater than `seq`. */
  | { kind: "after"; seq: number }
  /** The last `count` matching messages, then live. */
  | { kind: "last"; count: number }
  /** Matching messages stored at or after `time`, then live. */
  | { kind: "since"; time: Date }
  /** Matching messages from sequence `seq` (inclusive), then live. */
  | { kind: "from"; seq: number };

export type CursorError = { type: "invalid-cursor" | "invalid-start"; message: string };

export type CursorResult = { ok: true; value: StartPosition } | { ok: false; error: CursorError };

/** The query parameters a client may use to choose its start. */
export const START_PARAMS = ["lastEventId", "last", "since", "from"] as const;

/** Inputs to {@link parseStart}, already pulled out of the request. */
export interface StartInput {
  /** The `Last-Event-ID` header, if sent. */
  header?: string | undefined;
  /** Query parameters by name; repeated parameters are refused. */
  query: Readonly<Record<string, string | string[] | undefined>>;
  /** Largest `last` accepted, in messages. */
  maxLast: number;
}

// Stream sequences are uint64 on the server; we accept what a JS number holds exactly.
const SEQ = /^(0|[1-9][0-9]{0,15})$/;

function parseSeq(raw: string): number | undefined {
  if (!SEQ.test(raw)) return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : undefined;
}

function one(query: StartInput["query"], name: string): string | undefined | Error {
  const v = query[name];
  if (Array.isArray(v)) return new Error(`query parameter "${name}" given more than once`);
  return v;
}

function fail(type: CursorError["type"], message: string): CursorResult {
  return { ok: false, error: { type, message } };
}

/**
 * Decides where a connection starts. A resume cursor always wins over a start position,
 * because a browser reconnecting to a URL that carried `?last=10` must continue from its
 * `Last-Event-ID`, not replay the last ten again. The header wins over the query cursor for
 * the same reason: it is the newer of the two.
 */
export function parseStart(input: StartInput): CursorResult {
  const values: Partial<Record<(typeof START_PARAMS)[number], string>> = {};
  for (const name of START_PARAMS) {
    const v = one(input.query, name);
    if (v instanceof Error)
      return fail(name === "lastEventId" ? "invalid-cursor" : "invalid-start", v.message);
    if (v !== undefined) values[name] = v;
  }

  // EventSource sends no header until it has seen an id; an empty one means "none".
  const header = input.header?.trim();
  const cursor = header ? header : values.lastEventId;
  if (cursor !== undefined && cursor !== "") {
    const seq = parseSeq(cursor);
    if (seq === undefined)
      return fail(
        "invalid-cursor",
        `malformed cursor "${cursor.slice(0, 64)}": expected a stream sequence (a non-negative integer)`,
      );
    return { ok: true, value: { kind: "after", seq } };
  }

  const given = (["last", "since", "from"] as const).filter((k) => values[k] !== undefined);
  if (given.length > 1)
    return fail(
      "invalid-start",
      `choose one start position; got ${given.map((k) => `"${k}"`).join(" and ")}`,
    );

  if (values.last !== undefined) {
    const n = parseSeq(values.last);
    if (n === undefined || n < 1 || n > input.maxLast)
      return fail("invalid-start", `"last" must be an integer from 1 to ${input.maxLast}`);
    return { ok: true, value: { kind: "last", count: n } };
  }
  if (values.from !== undefined) {
    const seq = parseSeq(values.from);
    if (seq === undefined || seq < 1)
      return fail("invalid-start", `"from" must be a stream sequence of 1 or more`);
    return { ok: true, value: { kind: "from", seq } };
  }
  if (values.since !== undefined) {
    const time = parseTime(values.since);
    if (typeof time === "string") return fail("invalid-start", time);
    return { ok: true, value: { kind: "since", time } };
  }
  return { ok: true, value: { kind: "new" } };
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(?:[Zz]|[+-](\d{2}):(\d{2}))$/;

/**
 * The times JetStream can start a consumer at: it keeps time as int64 nanoseconds since the
 * epoch, 1677-09-21T00:12:43.145224192Z to 2262-04-11T23:47:16.854775807Z. Outside, its answer
 * is meaningless, so such times are refused; these are the whole milliseconds inside.
 */
export const SINCE_MIN_MS = -9_223_372_036_854;
export const SINCE_MAX_MS = 9_223_372_036_854;

const SINCE_FORMS = `"since" must be an RFC 3339 time (2026-01-31T12:00:00Z) or milliseconds since the epoch`;

/** A valid time, or why not. `Date.parse` alone rolls 2026-02-30 over to March 2: not here. */
function parseTime(raw: string): Date | string {
  let ms: number;
  if (/^[0-9]{1,15}$/.test(raw)) ms = Number(raw);
  else {
    const m = RFC3339.exec(raw);
    if (!m) return SINCE_FORMS;
    const field = (i: number) => Number(m[i] ?? 0);
    const [year, month, day] = [field(1), field(2), field(3)];
    const valid =
      month >= 1 &&
      month <= 12 &&
      day >= 1 &&
      day <= daysInMonth(year, month) &&
      field(4) <= 23 &&
      field(5) <= 59 &&
      // RFC 3339 allows a leap second (60); Go's time parser, and so JetStream, does not.
      field(6) <= 59 &&
      field(8) <= 23 &&
      field(9) <= 59;
    if (!valid) return `"since" is not a valid date and time: "${raw.slice(0, 64)}"`;
    ms = Date.parse(raw);
  }
  if (!(ms >= SINCE_MIN_MS && ms <= SINCE_MAX_MS))
    return (
      `"since" must lie within JetStream's time range, ${new Date(SINCE_MIN_MS).toISOString()} ` +
      `to ${new Date(SINCE_MAX_MS).toISOString()}`
    );
  return new Date(ms);
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}
