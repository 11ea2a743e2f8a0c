/**
 * Pure SSE framing per the WHATWG HTML spec, "Server-sent events"
 * (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation).
 *
 * Works on bytes so a message is framed once and the same Buffer is written to every client.
 * Payloads are passed through byte for byte, except that line breaks start a new `data:` line
 * and NUL becomes U+FFFD: no payload can end an event early or inject a field.
 */

const LF = 0x0a;
const CR = 0x0d;
const NUL = 0x00;
const DATA = Buffer.from("data: ");
const REPLACEMENT = Buffer.from("\ufffd"); // 3 bytes: EF BF BD
const NEWLINE = Buffer.from("\n");

/** Strips what may not appear inside a field value: CR, LF and NUL. Trims the ends. */
export function sanitizeField(value: string): string {
  // eslint-disable-next-line no-control-regex
  return value.replace(/[\r\n\u0000]/g, "").trim();
}

/**
 * Frames one message as an SSE event:
 * `id: <seq>`, an optional `event: <type>`, then one `data:` line per payload line.
 *
 * The spec splits lines on CR, LF and CRLF alike, so each becomes its own `data:` line and a
 * client rebuilds the payload with LF between lines (CRLF and lone CR arrive as LF).
 */
export function encodeEvent(seq: number, payload: Uint8Array, event?: string): Buffer {
  const type = event === undefined ? "" : sanitizeField(event);
  const head = Buffer.from(type ? `id: ${seq}\nevent: ${type}\n` : `id: ${seq}\n`);
  return Buffer.concat([head, encodeData(payload), NEWLINE]);
}

/** The `data:` lines of a payload, each ended by LF (no trailing blank line). */
export function encodeData(payload: Uint8Array): Buffer {
  // First pass sizes the output exactly, so the frame is built in one allocation.
  let lines = 1;
  let breakBytes = 0;
  let nuls = 0;
  for (let i = 0; i < payload.length; i++) {
    const b = payload[i];
    if (b === LF || b === CR) {
      lines++;
      breakBytes++;
      if (b === CR && payload[i + 1] === LF) {
        breakBytes++;
        i++; // CRLF is one break
      }
    } else if (b === NUL) nuls++;
  }
  const size =
    lines * (DATA.length + 1) + payload.length - breakBytes + nuls * (REPLACEMENT.length - 1);
  const out = Buffer.allocUnsafe(size);
  let o = DATA.copy(out, 0);
  if (lines === 1 && nuls === 0) {
    o += Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).copy(out, o);
  } else {
    for (let i = 0; i < payload.length; i++) {
      const b = payload[i] as number;
      if (b === LF || b === CR) {
        if (b === CR && payload[i + 1] === LF) i++;
        out[o++] = LF;
        o += DATA.copy(out, o);
      } else if (b === NUL) {
        o += REPLACEMENT.copy(out, o);
      } else {
        out[o++] = b;
      }
    }
  }
  out[o] = LF;
  return out;
}

/**
 * A gateway notice: an event of a documented type whose data is one JSON line. `id` moves the
 * client's Last-Event-ID to where delivery now continues, so a reconnect resumes from there.
 */
export function encodeNotice(type: string, id: number, body: Record<string, unknown>): Buffer {
  // JSON.stringify never emits raw CR/LF (they are escaped inside strings).
  return Buffer.from(`id: ${id}\nevent: ${sanitizeField(type)}\ndata: ${JSON.stringify(body)}\n\n`);
}

/** A gateway notice without `id:`: the client's Last-Event-ID stays what it was. */
export function encodeUnnumberedNotice(type: string, body: Record<string, unknown>): Buffer {
  return Buffer.from(`event: ${sanitizeField(type)}\ndata: ${JSON.stringify(body)}\n\n`);
}

/** `retry:` tells the client how long to wait before reconnecting, in milliseconds. */
export function encodeRetry(ms: number): Buffer {
  return Buffer.from(`retry: ${Math.max(0, Math.floor(ms))}\n\n`);
}

/** A comment line: ignored by clients, keeps proxies and load balancers from timing out. */
export function encodeComment(text: string): Buffer {
  return Buffer.from(`: ${sanitizeField(text)}\n\n`);
}
