import { AckPolicy, DeliverPolicy, type JetStreamManager } from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { unlimited, type ApiCall } from "./apiLimiter";
import type { StreamState } from "./streams";

/**
 * Finds the cursor after which exactly the last `count` messages matching `filters` follow.
 *
 * JetStream has no "last N across a filter set" start, but it counts: a consumer created at
 * sequence s reports how many matching messages are pending from s. That count falls by at
 * most one per sequence, so we search for an s where it equals `count`: first just behind the
 * end (one probe when the filter matches densely), widening exponentially, then by bisection.
 *
 * Each probe is a JetStream API call (and a deletion), made through `api`: a request's probes
 * count against the pod's API limiter like every other call a client can cause.
 */
export async function cursorForLast(
  jsm: JetStreamManager,
  stream: string,
  filters: readonly string[],
  count: number,
  state: StreamState,
  api: ApiCall = unlimited,
): Promise<number> {
  const first = Math.max(1, state.first);
  const pendingFrom = async (seq: number): Promise<number> => {
    const ci = await api(() =>
      jsm.consumers.add(stream, {
        filter_subjects: [...filters],
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: seq,
        ack_policy: AckPolicy.None,
        mem_storage: true,
        num_replicas: 1,
        inactive_threshold: nanos(10_000),
      }),
    );
    // Not awaited: the search goes on while the probe is removed.
    void api(() => jsm.consumers.delete(stream, ci.name), { cleanup: true }).catch(() => undefined);
    return ci.num_pending;
  };
  if (state.last < first) return first - 1;
  // Invariant of the search: pending(lo) >= count and pending(hi) < count.
  let hi = state.last + 1;
  let step = count;
  let lo = Math.max(first, hi - step);
  for (;;) {
    const p = await pendingFrom(lo);
    if (p === count) return lo - 1;
    if (p > count) break;
    if (lo === first) return first - 1; // fewer than `count` in the whole stream
    hi = lo;
    step *= 2;
    lo = Math.max(first, state.last + 1 - step);
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    const p = await pendingFrom(mid);
    if (p === count) return mid - 1;
    if (p > count) lo = mid;
    else hi = mid;
  }
  return lo - 1;
}
