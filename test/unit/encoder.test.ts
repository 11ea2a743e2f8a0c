import fc from "fast-check";
import { createParser, type EventSourceMessage } from "eventsource-parser";
import {
  encodeComment,
  encodeEvent,
  encodeNotice,
  encodeRetry,
  encodeUnnumberedNotice,
  sanitizeField,
} from "../../src/sse/encoder";

/** Parses SSE bytes with eventsource-parser, a WHATWG-conformant parser, as the oracle. */
function parse(text: string): {
  events: EventSourceMessage[];
  retries: number[];
  comments: string[];
} {
  const events: EventSourceMessage[] = [];
  const retries: number[] = [];
  const comments: string[] = [];
  const p = createParser({
    onEvent: (e) => events.push(e),
    onRetry: (r) => retries.push(r),
    onComment: (c) => comments.push(c),
  });
  p.feed(text);
  return { events, retries, comments };
}

const utf8 = (s: string) => Buffer.from(s, "utf8");

describe("encodeEvent", () => {
  it("frames a one-line payload as id and one data line", () => {
    expect(encodeEvent(42, utf8("hello")).toString()).toBe("id: 42\ndata: hello\n\n");
  });

  it("splits LF, CR and CRLF into one data line each", () => {
    expect(encodeEvent(1, utf8("a\nb\rc\r\nd")).toString()).toBe(
      "id: 1\ndata: a\ndata: b\ndata: c\ndata: d\n\n",
    );
  });

  it("keeps empty lines, leading spaces and a trailing line break", () => {
    const text = encodeEvent(7, utf8(" x\n\ny\n")).toString();
    expect(text).toBe("id: 7\ndata:  x\ndata: \ndata: y\ndata: \n\n");
    expect(parse(text).events[0]?.data).toBe(" x\n\ny\n");
  });

  it("sends an empty payload as one empty data line, which still dispatches", () => {
    const text = encodeEvent(3, new Uint8Array()).toString();
    expect(text).toBe("id: 3\ndata: \n\n");
    expect(parse(text).events).toEqual([{ id: "3", data: "", event: undefined }]);
  });

  it("replaces NUL with U+FFFD so it never reaches the wire", () => {
    const buf = encodeEvent(1, utf8("a\u0000b"));
    expect(buf.includes(0)).toBe(false);
    expect(buf.toString()).toBe("id: 1\ndata: a\ufffdb\n\n");
  });

  it("adds the event type, sanitised of CR, LF and NUL", () => {
    expect(encodeEvent(5, utf8("x"), "order.created").toString()).toBe(
      "id: 5\nevent: order.created\ndata: x\n\n",
    );
    const hostile = encodeEvent(5, utf8("x"), "a\r\nid: 999\n\ndata: evil\u0000").toString();
    expect(parse(hostile).events).toEqual([{ id: "5", event: "aid: 999data: evil", data: "x" }]);
  });

  it("omits the event line when the type is empty after sanitising", () => {
    expect(encodeEvent(5, utf8("x"), "\r\n").toString()).toBe("id: 5\ndata: x\n\n");
  });

  it("cannot be broken by a hostile payload: fields inside it stay data", () => {
    const payload = "x\n\nid: 999\nevent: admin\nretry: 1\n: c\r\ndata: y";
    const { events, retries } = parse(encodeEvent(10, utf8(payload)).toString());
    expect(retries).toEqual([]);
    expect(events).toEqual([{ id: "10", event: undefined, data: payload.replace(/\r\n/g, "\n") }]);
  });

  it("round-trips any payload through a conformant parser (property)", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "binary" }),
        fc.integer({ min: 0, max: 2 ** 53 - 1 }),
        (s, seq) => {
          const { events } = parse(encodeEvent(seq, utf8(s)).toString("utf8"));
          const expected = s.replace(/\r\n|\r/g, "\n").replaceAll("\u0000", "\ufffd");
          expect(events).toHaveLength(1);
          expect(events[0]?.id).toBe(String(seq));
          // A lone surrogate cannot be encoded as UTF-8; it arrives as U+FFFD like in any client.
          expect(events[0]?.data).toBe(Buffer.from(expected, "utf8").toString("utf8"));
        },
      ),
      { numRuns: 500 },
    );
  });

  it("passes invalid UTF-8 through without letting it swallow a line break", () => {
    const bytes = Uint8Array.from([0xe2, 0x0a, 0x41]);
    const { events } = parse(encodeEvent(1, bytes).toString("utf8"));
    expect(events[0]?.data).toBe("\ufffd\nA");
  });
});

describe("control frames", () => {
  it("encodes retry in whole milliseconds", () => {
    expect(encodeRetry(2500.7).toString()).toBe("retry: 2500\n\n");
    expect(parse(encodeRetry(3000).toString()).retries).toEqual([3000]);
  });

  it("encodes comments on one line", () => {
    expect(encodeComment("ping\nid: 3").toString()).toBe(": pingid: 3\n\n");
    expect(parse(encodeComment("ping").toString()).events).toEqual([]);
  });

  it("encodes notices as a typed event with an id and one JSON data line", () => {
    const text = encodeNotice("gateway.gap", 9, { note: "a\nb" }).toString();
    expect(parse(text).events).toEqual([
      { id: "9", event: "gateway.gap", data: '{"note":"a\\nb"}' },
    ]);
  });

  it("sanitizeField strips CR, LF and NUL and trims", () => {
    expect(sanitizeField(" a\r\nb\u0000 ")).toBe("ab");
  });
});

describe("encodeUnnumberedNotice", () => {
  it("writes the event and its JSON without an id, so the client's Last-Event-ID stays", () => {
    expect(encodeUnnumberedNotice("gateway.token_expired", { lastEventId: null }).toString()).toBe(
      'event: gateway.token_expired\ndata: {"lastEventId":null}\n\n',
    );
  });
});
