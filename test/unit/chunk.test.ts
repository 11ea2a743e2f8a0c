import fc from "fast-check";
import { chunkOf, frameChunk } from "../../src/sse/chunk";

/** Decodes one HTTP/1.1 chunk (RFC 9112 §7.1) and checks nothing follows it. */
function decodeChunk(bytes: Buffer): Buffer {
  const eol = bytes.indexOf("\r\n");
  expect(eol).toBeGreaterThan(0);
  const size = Number.parseInt(bytes.subarray(0, eol).toString("latin1"), 16);
  expect(bytes.subarray(0, eol).toString("latin1")).toMatch(/^[0-9a-f]+$/);
  const data = bytes.subarray(eol + 2, eol + 2 + size);
  expect(bytes.subarray(eol + 2 + size).toString("latin1")).toBe("\r\n");
  return data;
}

describe("frameChunk", () => {
  it("frames the buffers, in order, as one chunk whose size line is their length in hex", () => {
    const out = frameChunk([Buffer.from("id: 1\n\n"), Buffer.from("id: 2\ndata: é\n\n")]);
    expect(out.toString("latin1").slice(0, 4)).toBe("17\r\n"); // 7 + 16 bytes (é is two);
    expect(decodeChunk(out).toString()).toBe("id: 1\n\nid: 2\ndata: é\n\n");
  });

  it("takes a given total instead of summing", () => {
    const bufs = [Buffer.from("ab"), Buffer.from("cde")];
    expect(frameChunk(bufs, 5)).toEqual(frameChunk(bufs));
  });

  it("round-trips any buffers", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 1 }),
        (arrs) => {
          const bufs = arrs.map((a) => Buffer.from(a));
          expect(decodeChunk(frameChunk(bufs))).toEqual(Buffer.concat(bufs));
        },
      ),
    );
  });
});

describe("chunkOf", () => {
  it("frames a buffer as one chunk", () => {
    const buf = Buffer.from(": ping\n\n");
    expect(decodeChunk(chunkOf(buf))).toEqual(buf);
  });

  it("returns the same chunk while the same buffer is written again", () => {
    const buf = Buffer.from("id: 7\ndata: x\n\n");
    const first = chunkOf(buf);
    expect(chunkOf(buf)).toBe(first);
  });

  it("frames anew for another buffer, even with the same bytes", () => {
    const a = Buffer.from("id: 8\ndata: y\n\n");
    const b = Buffer.from(a);
    const ca = chunkOf(a);
    const cb = chunkOf(b);
    expect(cb).not.toBe(ca);
    expect(cb).toEqual(ca);
    // and back: the cache holds one entry only, never a stale chunk for another buffer
    const c = Buffer.from("id: 9\ndata: z\n\n");
    expect(decodeChunk(chunkOf(c)).toString()).toBe("id: 9\ndata: z\n\n");
  });
});
