import type { JsMsg } from "@nats-io/jetstream";
import { encodeEvent } from "../sse/encoder";
import type { Frame } from "../sse/session";

/** Frames a JetStream message; the SSE `event:` comes from the `eventHeader` message header. */
export function frameOf(m: JsMsg, eventHeader: string): Frame {
  const type = m.headers?.get(eventHeader);
  return { seq: m.seq, buf: encodeEvent(m.seq, m.data, type ? type : undefined) };
}
