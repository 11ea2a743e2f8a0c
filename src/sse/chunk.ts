/**
 * HTTP/1.1 chunked framing (RFC 9112 §7.1), done by the gateway itself so that a batch is
 * framed once and the same bytes go to every session's socket. Node's response would frame
 * each write again, per session: a length line, the data and a CRLF as three queued writes,
 * a cork and a `process.nextTick` each time (the bench's profiles showed it as the largest
 * cost of a small write).
 */

const CRLF = Buffer.from("\r\n");

/** One chunk holding `bufs` in order (`total` = their length, computed when omitted). */
export function frameChunk(bufs: readonly Buffer[], total?: number): Buffer {
  let size = total ?? 0;
  if (total === undefined) for (const b of bufs) size += b.length;
  const head = `${size.toString(16)}\r\n`;
  const out = Buffer.allocUnsafe(head.length + size + 2);
  let o = out.write(head, 0, "latin1");
  for (const b of bufs) o += b.copy(out, o);
  CRLF.copy(out, o);
  return out;
}

// The last buffer framed and its chunk. A live batch, a heartbeat or a notice is written to
// many sessions one after the other: they share one chunk, and only the latest is kept.
let lastIn: Buffer | undefined;
let lastOut: Buffer | undefined;

/** `buf` as one chunk; the same Buffer for the same input written many times in a row. */
export function chunkOf(buf: Buffer): Buffer {
  if (buf !== lastIn) {
    lastOut = frameChunk([buf], buf.length);
    lastIn = buf;
  }
  return lastOut as Buffer;
}
