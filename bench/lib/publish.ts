/**
 * The bench's JetStream publishes: one payload format for every kind, so every system under
 * test gets the very same message from the very same stream.
 */
import { randomBytes } from "node:crypto";
import type { JetStreamClient } from "@nats-io/jetstream";
import { headers, type MsgHdrs } from "@nats-io/transport-node";
import { nowMs } from "./histogram";

const PAD = "x".repeat(48);

/**
 * The payload of message `i` of round `round`: a JSON string, `"t=<publish time ms>;r=<round>;
 * i=<i>;xxx…"`. The load clients read `t=` and `r=` from the bytes (no JSON parsing); it is JSON
 * because Centrifugo embeds publication data in its JSON protocol as is (see centrifugo.ts).
 */
export function payload(round: number, i: number): string {
  return `"t=${nowMs()};r=${round};i=${i};${PAD}"`;
}

/** Per-message options of a publish. */
export interface PublishOptions {
  /** A random W3C `traceparent` header on every message. Default false. */
  traceparent?: boolean;
  /**
   * The Centrifugo channel to publish to, as the `centrifugo-channels` header its JetStream
   * consumer routes by (publication data mode). Only the centrifugo kind's subject has it.
   */
  channel?: string;
}

/** A valid W3C trace context, random for every call: `00-<trace id>-<parent id>-01` (sampled). */
function randomTraceparent(): string {
  const hex = randomBytes(24).toString("hex");
  return `00-${hex.slice(0, 32)}-${hex.slice(32)}-01`;
}

function headersFor(o: PublishOptions): MsgHdrs | undefined {
  if (!o.traceparent && o.channel === undefined) return undefined;
  const h = headers();
  if (o.traceparent) h.set("traceparent", randomTraceparent());
  if (o.channel !== undefined) h.set("centrifugo-channels", o.channel);
  return h;
}

/** Publishes one message on `subject`; resolves with its stream sequence once acked. */
export async function publishOne(
  js: JetStreamClient,
  subject: string,
  data: string,
  o: PublishOptions = {},
): Promise<number> {
  const h = headersFor(o);
  return (await js.publish(subject, data, h ? { headers: h } : undefined)).seq;
}

/**
 * Publishes `count` messages as fast as JetStream takes them (pipelined), returns the last seq.
 */
export async function publishBurst(
  js: JetStreamClient,
  subject: string,
  count: number,
  round: number,
  o: PublishOptions = {},
): Promise<number> {
  const acks: Array<Promise<number>> = [];
  for (let i = 0; i < count; i++) acks.push(publishOne(js, subject, payload(round, i), o));
  return Math.max(...(await Promise.all(acks)));
}

/** Fills a subject with `count` messages in pipelined batches; returns the last sequence. */
export async function fill(js: JetStreamClient, subject: string, count: number): Promise<number> {
  let last = 0;
  for (let i = 0; i < count; i += 1000)
    last = await publishBurst(js, subject, Math.min(1000, count - i), -1);
  return last;
}
