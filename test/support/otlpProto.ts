/**
 * Test support: a dependency-free reader for the protobuf wire format and a decoder for OTLP/HTTP
 * trace requests, so end-to-end tests can check the spans a process really put on the wire (as a
 * collector would read them) without a protobuf library or generated code.
 *
 * Field numbers follow opentelemetry-proto: collector/trace/v1/trace_service.proto,
 * trace/v1/trace.proto, common/v1/common.proto and resource/v1/resource.proto.
 *
 * Number choices: times are `bigint` nanoseconds, because a Unix time in nanoseconds (~1.7e18) is
 * far beyond 2^53 and a `number` would drop the low digits. Attribute `int64` values are read as
 * 64-bit two's complement with BigInt and then turned into a `number`: exact up to ±2^53, and
 * exact beyond it for JavaScript senders (whose integers are doubles in the first place); other
 * senders' larger values round to the nearest double.
 */

/** A malformed protobuf message: truncated, an impossible tag, or a field of the wrong wire type. */
export class ProtoError extends Error {
  override readonly name = "ProtoError";
}

// Wire types: the low three bits of a tag.
const VARINT = 0;
const I64 = 1;
const LEN = 2;
const SGROUP = 3;
const EGROUP = 4;
const I32 = 5;

/** A position in a message's bytes, with bounds-checked primitive reads. */
class Cursor {
  pos = 0;
  private readonly view: DataView;

  constructor(readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  /** Moves past `n` bytes, refusing to run off the end (the usual sign of a truncated body). */
  take(n: number): number {
    if (n > this.buf.length - this.pos)
      throw new ProtoError(
        `truncated: ${n} byte(s) needed at offset ${this.pos} of ${this.buf.length}`,
      );
    const at = this.pos;
    this.pos += n;
    return at;
  }

  /** A base-128 varint as the raw unsigned 64 bits (callers choose the signed or narrow view). */
  varint(): bigint {
    let result = 0n;
    for (let i = 0; i < 10; i++) {
      const b = this.buf[this.take(1)] ?? 0;
      result |= BigInt(b & 0x7f) << BigInt(7 * i);
      if (b < 0x80) return BigInt.asUintN(64, result);
    }
    throw new ProtoError(`varint longer than 10 bytes ending at offset ${this.pos}`);
  }

  fixed32(): number {
    return this.view.getUint32(this.take(4), true);
  }

  fixed64(): bigint {
    return this.view.getBigUint64(this.take(8), true);
  }

  double(): number {
    return this.view.getFloat64(this.take(8), true);
  }

  /** A length-delimited payload, as a view into the message (no copy). */
  lengthDelimited(): Uint8Array {
    const len = this.varint();
    if (len > BigInt(this.buf.length - this.pos))
      throw new ProtoError(`truncated: length ${len} at offset ${this.pos} of ${this.buf.length}`);
    const at = this.take(Number(len));
    return this.buf.subarray(at, this.pos);
  }
}

/**
 * One field of a message. Read its value with the accessor of the field's declared type (each
 * checks the wire type, so a schema mismatch fails loudly); a value left unread is skipped.
 */
export class ProtoField {
  /** True once an accessor has read the value. */
  consumed = false;

  constructor(
    private readonly cursor: Cursor,
    /** The field number. */
    readonly field: number,
    /** The wire type from the tag. */
    readonly wireType: number,
  ) {}

  private expect(wireType: number, what: string): Cursor {
    if (this.wireType !== wireType)
      throw new ProtoError(
        `field ${this.field}: ${what} needs wire type ${wireType}, got ${this.wireType}`,
      );
    if (this.consumed) throw new ProtoError(`field ${this.field}: value read twice`);
    this.consumed = true;
    return this.cursor;
  }

  /** uint32 (counts): the low 32 bits, as protobuf parsers truncate. */
  uint32(): number {
    return Number(BigInt.asUintN(32, this.expect(VARINT, "uint32").varint()));
  }

  /** int32 and enums: the low 32 bits, signed. */
  int32(): number {
    return Number(BigInt.asIntN(32, this.expect(VARINT, "int32").varint()));
  }

  /** int64: two's complement over 64 bits. */
  int64(): bigint {
    return BigInt.asIntN(64, this.expect(VARINT, "int64").varint());
  }

  bool(): boolean {
    return this.expect(VARINT, "bool").varint() !== 0n;
  }

  fixed32(): number {
    return this.expect(I32, "fixed32").fixed32();
  }

  fixed64(): bigint {
    return this.expect(I64, "fixed64").fixed64();
  }

  double(): number {
    return this.expect(I64, "double").double();
  }

  /** bytes and embedded messages: a view into the request, valid while it is. */
  bytes(): Uint8Array {
    return this.expect(LEN, "bytes").lengthDelimited();
  }

  /** string: UTF-8, refusing invalid sequences as a conforming parser does. */
  string(): string {
    const bytes = this.expect(LEN, "string").lengthDelimited();
    try {
      return utf8.decode(bytes);
    } catch {
      throw new ProtoError(`field ${this.field}: invalid UTF-8`);
    }
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Calls `onField` for each field of the message in `buf`, in wire order (repeated fields once per
 * element). Fields the callback does not read are skipped, as unknown fields must be.
 * @throws {@link ProtoError} when the message is malformed.
 */
export function readFields(buf: Uint8Array, onField: (f: ProtoField) => void): void {
  const cursor = new Cursor(buf);
  while (!cursor.done) {
    const { field, wireType } = readTag(cursor);
    if (wireType === EGROUP) throw new ProtoError(`field ${field}: end-group without a start`);
    const f = new ProtoField(cursor, field, wireType);
    onField(f);
    if (!f.consumed) skip(cursor, field, wireType);
  }
}

function readTag(cursor: Cursor): { field: number; wireType: number } {
  const tag = cursor.varint();
  const field = tag >> 3n;
  // Field numbers are 1..2^29-1; anything else means we are not reading protobuf.
  if (field < 1n || field > 0x1fffffffn) throw new ProtoError(`invalid field number ${field}`);
  return { field: Number(field), wireType: Number(tag & 7n) };
}

/** Moves past one value of `wireType` (a group: up to its matching end-group tag). */
function skip(cursor: Cursor, field: number, wireType: number): void {
  switch (wireType) {
    case VARINT:
      cursor.varint();
      return;
    case I64:
      cursor.take(8);
      return;
    case LEN:
      cursor.lengthDelimited();
      return;
    case I32:
      cursor.take(4);
      return;
    case SGROUP:
      for (;;) {
        const inner = readTag(cursor);
        if (inner.wireType === EGROUP) {
          if (inner.field !== field)
            throw new ProtoError(`group ${field} closed by end-group ${inner.field}`);
          return;
        }
        skip(cursor, inner.field, inner.wireType);
      }
    default:
      throw new ProtoError(`field ${field}: invalid wire type ${wireType}`);
  }
}

/**
 * An attribute value as OTLP's AnyValue carries it. `null` is an empty AnyValue (none of its
 * oneof set), which is how the SDK sends a `null` element of an array attribute.
 */
export type AttrValue =
  string | number | boolean | null | Uint8Array | AttrValue[] | { [key: string]: AttrValue };

/** Attributes by key (a repeated KeyValue; a repeated key keeps the last value). */
export type Attributes = Record<string, AttrValue>;

/** Span.SpanKind by name, indexed by its enum number. */
const SPAN_KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"] as const;
/** Status.StatusCode by name, indexed by its enum number. */
const STATUS_CODES = ["unset", "ok", "error"] as const;

/** A span's kind, named as in the proto's SpanKind without the SPAN_KIND_ prefix. */
export type DecodedSpanKind = (typeof SPAN_KINDS)[number];
/** A span's status code, named as in the proto's StatusCode without the prefix. */
export type DecodedStatusCode = (typeof STATUS_CODES)[number];

/** A Span.Event. */
export interface DecodedEvent {
  name: string;
  timeUnixNano: bigint;
  attributes: Attributes;
}

/** A Span.Link: a reference to another span, ids as lowercase hex. */
export interface DecodedLink {
  traceId: string;
  spanId: string;
  traceState: string;
  attributes: Attributes;
  /** Span flags (fixed32): W3C trace flags in bits 0-7, the is-remote bits in 8-9. */
  flags: number;
}

/**
 * One span of an ExportTraceServiceRequest, with its ResourceSpans' resource and its ScopeSpans'
 * scope copied in. Ids are lowercase hex (as `SpanContext` has them); absent fields have their
 * proto3 defaults ("" for a root span's `parentSpanId`).
 */
export interface DecodedSpan {
  resource: Attributes;
  scope: { name: string; version: string };
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  /** Span flags (fixed32): W3C trace flags in bits 0-7, the is-remote bits in 8-9. */
  flags: number;
  name: string;
  kind: DecodedSpanKind;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  attributes: Attributes;
  droppedAttributesCount: number;
  events: DecodedEvent[];
  droppedEventsCount: number;
  links: DecodedLink[];
  droppedLinksCount: number;
  status: { code: DecodedStatusCode; message: string };
}

/**
 * Decodes an `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest` (the body of an
 * OTLP/HTTP protobuf POST to /v1/traces) into its spans, in wire order.
 * @throws {@link ProtoError} when the body is not such a message.
 */
export function decodeTraceRequest(buf: Uint8Array): DecodedSpan[] {
  const spans: DecodedSpan[] = [];
  readFields(buf, (f) => {
    if (f.field === 1) spans.push(...decodeResourceSpans(f.bytes()));
  });
  return spans;
}

function decodeResourceSpans(buf: Uint8Array): DecodedSpan[] {
  let resource: Attributes = {};
  const scopeSpans: Uint8Array[] = [];
  // The resource may follow the scope spans on the wire, so those are decoded afterwards.
  readFields(buf, (f) => {
    if (f.field === 1) resource = decodeResource(f.bytes());
    else if (f.field === 2) scopeSpans.push(f.bytes());
  });
  return scopeSpans.flatMap((b) => decodeScopeSpans(b, resource));
}

function decodeResource(buf: Uint8Array): Attributes {
  const attributes: Attributes = {};
  readFields(buf, (f) => {
    if (f.field === 1) addKeyValue(attributes, f.bytes());
  });
  return attributes;
}

function decodeScopeSpans(buf: Uint8Array, resource: Attributes): DecodedSpan[] {
  const scope = { name: "", version: "" };
  const spans: Uint8Array[] = [];
  readFields(buf, (f) => {
    if (f.field === 1)
      readFields(f.bytes(), (s) => {
        if (s.field === 1) scope.name = s.string();
        else if (s.field === 2) scope.version = s.string();
      });
    else if (f.field === 2) spans.push(f.bytes());
  });
  return spans.map((b) => decodeSpan(b, resource, scope));
}

/** How each Span field lands in a DecodedSpan; fields not listed are skipped. */
const SPAN_FIELDS: Record<number, (span: DecodedSpan, f: ProtoField) => void> = {
  1: (s, f) => (s.traceId = hex(f.bytes())),
  2: (s, f) => (s.spanId = hex(f.bytes())),
  3: (s, f) => (s.traceState = f.string()),
  4: (s, f) => (s.parentSpanId = hex(f.bytes())),
  5: (s, f) => (s.name = f.string()),
  6: (s, f) => (s.kind = enumName(SPAN_KINDS, f.int32(), "SpanKind")),
  7: (s, f) => (s.startTimeUnixNano = f.fixed64()),
  8: (s, f) => (s.endTimeUnixNano = f.fixed64()),
  9: (s, f) => addKeyValue(s.attributes, f.bytes()),
  10: (s, f) => (s.droppedAttributesCount = f.uint32()),
  11: (s, f) => s.events.push(decodeEvent(f.bytes())),
  12: (s, f) => (s.droppedEventsCount = f.uint32()),
  13: (s, f) => s.links.push(decodeLink(f.bytes())),
  14: (s, f) => (s.droppedLinksCount = f.uint32()),
  15: (s, f) => (s.status = decodeStatus(f.bytes())),
  16: (s, f) => (s.flags = f.fixed32()),
};

function decodeSpan(
  buf: Uint8Array,
  resource: Attributes,
  scope: DecodedSpan["scope"],
): DecodedSpan {
  const span: DecodedSpan = {
    resource,
    scope: { ...scope },
    traceId: "",
    spanId: "",
    parentSpanId: "",
    traceState: "",
    flags: 0,
    name: "",
    kind: "unspecified",
    startTimeUnixNano: 0n,
    endTimeUnixNano: 0n,
    attributes: {},
    droppedAttributesCount: 0,
    events: [],
    droppedEventsCount: 0,
    links: [],
    droppedLinksCount: 0,
    status: { code: "unset", message: "" },
  };
  readFields(buf, (f) => SPAN_FIELDS[f.field]?.(span, f));
  return span;
}

function decodeEvent(buf: Uint8Array): DecodedEvent {
  const event: DecodedEvent = { name: "", timeUnixNano: 0n, attributes: {} };
  readFields(buf, (f) => {
    if (f.field === 1) event.timeUnixNano = f.fixed64();
    else if (f.field === 2) event.name = f.string();
    else if (f.field === 3) addKeyValue(event.attributes, f.bytes());
  });
  return event;
}

function decodeLink(buf: Uint8Array): DecodedLink {
  const link: DecodedLink = { traceId: "", spanId: "", traceState: "", attributes: {}, flags: 0 };
  readFields(buf, (f) => {
    if (f.field === 1) link.traceId = hex(f.bytes());
    else if (f.field === 2) link.spanId = hex(f.bytes());
    else if (f.field === 3) link.traceState = f.string();
    else if (f.field === 4) addKeyValue(link.attributes, f.bytes());
    else if (f.field === 6) link.flags = f.fixed32();
  });
  return link;
}

function decodeStatus(buf: Uint8Array): DecodedSpan["status"] {
  const status: DecodedSpan["status"] = { code: "unset", message: "" };
  readFields(buf, (f) => {
    if (f.field === 2) status.message = f.string();
    else if (f.field === 3) status.code = enumName(STATUS_CODES, f.int32(), "StatusCode");
  });
  return status;
}

/** Adds one KeyValue message to `into`. */
function addKeyValue(into: Attributes, buf: Uint8Array): void {
  let key = "";
  let value: AttrValue = null;
  readFields(buf, (f) => {
    if (f.field === 1) key = f.string();
    else if (f.field === 2) value = decodeAnyValue(f.bytes());
  });
  // defineProperty, not assignment: a "__proto__" key must become data, not a prototype.
  Object.defineProperty(into, key, { value, enumerable: true, writable: true, configurable: true });
}

/** AnyValue's oneof members by field number. */
const ANY_VALUE_FIELDS: Record<number, (f: ProtoField) => AttrValue> = {
  1: (f) => f.string(),
  2: (f) => f.bool(),
  3: (f) => Number(f.int64()),
  4: (f) => f.double(),
  5: (f) => decodeArrayValue(f.bytes()),
  6: (f) => decodeKeyValueList(f.bytes()),
  // A copy, so a stored span does not keep the whole request body alive.
  7: (f) => f.bytes().slice(),
};

function decodeAnyValue(buf: Uint8Array): AttrValue {
  let value: AttrValue = null;
  // A oneof: should a sender repeat it, the last one wins, as in any protobuf parser.
  readFields(buf, (f) => {
    const read = ANY_VALUE_FIELDS[f.field];
    if (read) value = read(f);
  });
  return value;
}

function decodeArrayValue(buf: Uint8Array): AttrValue[] {
  const values: AttrValue[] = [];
  readFields(buf, (f) => {
    if (f.field === 1) values.push(decodeAnyValue(f.bytes()));
  });
  return values;
}

function decodeKeyValueList(buf: Uint8Array): Attributes {
  const values: Attributes = {};
  readFields(buf, (f) => {
    if (f.field === 1) addKeyValue(values, f.bytes());
  });
  return values;
}

/** An enum's name; a number the schema does not know is an error here, to surface sender bugs. */
function enumName<T extends string>(names: readonly T[], n: number, enumType: string): T {
  const name = names[n];
  if (name === undefined) throw new ProtoError(`unknown ${enumType} ${n}`);
  return name;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}
