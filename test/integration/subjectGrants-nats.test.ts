/**
 * grantCovers checked against the authority on NATS subject matching: a real nats-server.
 * Each grant is subscribed on core NATS, concrete subjects are published, and for every
 * (grant, subject) pair the function must say "covered" exactly when the server delivered.
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { grantCovers } from "../../src/auth/subjectGrants";
import { startNats, type NatsHandle } from "../support/nats";
import { sleep } from "../support/process";

jest.setTimeout(60_000);

/** Literals, `*` in each position, `>` at the ends and alone. */
const GRANTS = [
  "orders",
  "orders.eu.42",
  "*",
  "*.eu.42",
  "orders.*.42",
  "orders.eu.*",
  "*.*",
  "*.*.*.*",
  "orders.>",
  "orders.eu.>",
  "orders.*.>",
  "orders.eu.42.>",
  "*.eu.>",
  "*.>",
  ">",
  "fleet.*",
];

/** 1–4 tokens: matches for each grant and near misses (one token off, one token short or long). */
const SUBJECTS = [
  "orders",
  "order",
  "orders42",
  "fleet",
  "orders.eu",
  "orders.us",
  "fleet.eu",
  "eu.42",
  "orders.orders",
  "orders.eu.42",
  "orders.eu.43",
  "orders.us.42",
  "fleet.eu.42",
  "eu.eu.42",
  "orders.eu.42.x",
  "orders.eu.43.x",
  "orders.us.42.x",
  "fleet.eu.42.x",
  "orders.eu.42.42",
  "x.eu.42.y",
];

const SETTLE_MS = 200;
const ARRIVAL_TIMEOUT_MS = 5_000;

let nats: NatsHandle;
let subscriber: NatsConnection;
let publisher: NatsConnection;
/** What each grant's subscription received, restricted to the subjects published here. */
const received = new Map<string, Set<string>>(GRANTS.map((g) => [g, new Set<string>()]));

beforeAll(async () => {
  nats = await startNats();
  subscriber = await connect({ servers: nats.url });
  publisher = await connect({ servers: nats.url });
  const published = new Set(SUBJECTS);
  for (const grant of GRANTS) {
    const seen = received.get(grant) as Set<string>;
    subscriber.subscribe(grant, {
      callback: (err, msg) => {
        // A `>` subscription may also see server traffic (advisories); only our subjects count.
        if (!err && published.has(msg.subject)) seen.add(msg.subject);
      },
    });
  }
  // The server answers PING after it has processed every SUB sent before it.
  await subscriber.flush();
  for (const subject of SUBJECTS) publisher.publish(subject, subject);
  // Barrier: the publisher's PONG means every PUB was routed; the subscriber's PONG comes after
  // the messages queued for it, so by then they have all been handed to the callbacks.
  await publisher.flush();
  await subscriber.flush();
  // Belt and braces: wait for the count grantCovers predicts (a shortfall is reported as a
  // mismatch below), then settle, so a late extra delivery would also be seen.
  const expected = GRANTS.reduce((n, g) => n + SUBJECTS.filter((s) => grantCovers(g, s)).length, 0);
  const total = (): number => [...received.values()].reduce((n, s) => n + s.size, 0);
  const deadline = Date.now() + ARRIVAL_TIMEOUT_MS;
  while (total() < expected && Date.now() < deadline) await sleep(20);
  await sleep(SETTLE_MS);
});

afterAll(async () => {
  await subscriber?.close();
  await publisher?.close();
  await nats?.close();
});

it("a grant allows a subject iff NATS would deliver it", () => {
  const mismatches: string[] = [];
  let delivered = 0;
  for (const grant of GRANTS) {
    const seen = received.get(grant) as Set<string>;
    for (const subject of SUBJECTS) {
      const natsDelivered = seen.has(subject);
      if (natsDelivered) delivered++;
      if (grantCovers(grant, subject) !== natsDelivered)
        mismatches.push(
          `grant ${grant} / subject ${subject}: NATS ${natsDelivered ? "delivered" : "did not deliver"}`,
        );
    }
  }
  expect(mismatches).toEqual([]);
  // The table must exercise both answers, or agreement would prove nothing.
  expect(delivered).toBeGreaterThan(0);
  expect(delivered).toBeLessThan(GRANTS.length * SUBJECTS.length);
});

it("every grant in the table both receives some subject and misses some other", () => {
  // Guards the table itself: a grant that matches all or nothing tests only one direction.
  for (const grant of GRANTS.filter((g) => g !== ">")) {
    const seen = received.get(grant) as Set<string>;
    expect({ grant, some: seen.size > 0 }).toEqual({ grant, some: true });
    expect({ grant, notAll: seen.size < SUBJECTS.length }).toEqual({ grant, notAll: true });
  }
});
