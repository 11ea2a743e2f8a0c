import type { JsMsg } from "@nats-io/jetstream";
import { encodeEvent } from "../sse/encoder";
import type { Frame } from "../sse/session";

/** Frames a JetStream message; the SSE `event:` comes from the `eventHeader` message header. */
export function frameOf(m: JsMsg, eventHeader: string): Frame {
  return { seq: m.seq, buf: encodeEvent(m.seq, m.data, eventType(m, eventHeader)) };
}

/**
 * The message's event type, if it has a usable one. nats.js decodes headers lazily and throws
 * when a value holds a bare CR or LF, which any other client can publish. Such a message still
 * goes out (without a type): a throw here would stop the feed's consumer, or fail every replay
 * that reaches the message, for every client of the subject.
 */
function eventType(m: JsMsg, eventHeader: string): string | undefined {
  try {
    return m.headers?.get(eventHeader) || undefined;
  } catch {
    return undefined;
  }
}
