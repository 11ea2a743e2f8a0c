import type { JsMsg } from "@nats-io/jetstream";
import { Match } from "@nats-io/transport-node";
import {
  ROOT_CONTEXT,
  SpanKind,
  propagation,
  trace,
  type Attributes,
  type Link,
  type TextMapGetter,
} from "@opentelemetry/api";
import { tracer } from "../telemetry/tracing";

type Headers = NonNullable<JsMsg["headers"]>;

/** Reads the publisher's W3C trace context from NATS message headers. */
const NATS_HEADERS: TextMapGetter<Headers> = {
  keys: (h) => h.keys(),
  // Header names are compared as the publisher may have spelled them (`traceparent`,
  // `Traceparent`): NATS headers are case-sensitive, W3C trace context is not.
  get: (h, key) => h.get(key) || h.get(key, Match.IgnoreCase) || undefined,
};

/**
 * Links per span: the SDK's default link limit (OTEL_SPAN_LINK_COUNT_LIMIT, 128). A batch with
 * more traced messages is recorded as several spans, so no publisher loses its link.
 */
export const MAX_LINKS_PER_SPAN = 128;

/** What a feed tells {@link BatchTrace} about a batch it wrote. */
export interface DeliveredBatch {
  stream: string;
  filters: readonly string[];
  /** The first and last stream sequence of the batch, and how many messages it holds. */
  firstSeq: number;
  lastSeq: number;
  messages: number;
  bytes: number;
  /** Sessions it was written to live (not held for a catch-up). */
  sessions: number;
  /** When its first message arrived, `performance.now()` ms. */
  arrivedAt: number;
}

/**
 * The trace of a feed's deliveries: one CONSUMER span per batch written to the feed's sessions
 * (`process <subject>`), **linked** to each message's creation context (the `traceparent` its
 * publisher put in the NATS headers). Links, not parents: one batch carries many producers'
 * messages. A trace search for a publish finds where and when the gateway delivered it, and to
 * how many sessions. The cost is per message and per batch, never per session.
 */
export class BatchTrace {
  private links: Link[] = [];

  /** Notes a message of the pending batch; its publisher's context becomes a link. */
  note(m: JsMsg): void {
    let headers: Headers | undefined;
    try {
      headers = m.headers; // nats.js throws on a malformed header block; such a message has no link
    } catch {
      return;
    }
    if (!headers) return;
    const parent = trace.getSpanContext(propagation.extract(ROOT_CONTEXT, headers, NATS_HEADERS));
    if (parent && trace.isSpanContextValid(parent))
      this.links.push({ context: parent, attributes: { "sse.seq": m.seq } });
  }

  /** Forgets the pending batch's links (a batch that is not recorded). */
  discard(): void {
    this.links = [];
  }

  /** Records the batch's span(s) and forgets its links. */
  record(b: DeliveredBatch): void {
    const links = this.links;
    this.links = [];
    const destination = b.filters.length === 1 ? (b.filters[0] as string) : b.stream;
    const attributes: Attributes = {
      "messaging.system": "nats",
      "messaging.operation.type": "process",
      "messaging.operation.name": "process",
      "messaging.destination.name": b.filters.length === 1 ? destination : [...b.filters],
      "messaging.batch.message_count": b.messages,
      "sse.stream": b.stream,
      "sse.first_seq": b.firstSeq,
      "sse.last_seq": b.lastSeq,
      "sse.sessions": b.sessions,
      "sse.bytes": b.bytes,
    };
    const now = performance.now();
    // At least one span, even for a batch without traced messages: "delivered, to N sessions".
    for (let i = 0; i === 0 || i < links.length; i += MAX_LINKS_PER_SPAN) {
      const span = tracer().startSpan(
        `process ${destination}`,
        {
          kind: SpanKind.CONSUMER,
          startTime: b.arrivedAt,
          links: links.slice(i, i + MAX_LINKS_PER_SPAN),
          attributes,
        },
        // Never the context of whichever request started the feed: a batch is no one's child.
        ROOT_CONTEXT,
      );
      span.end(now);
    }
  }
}
