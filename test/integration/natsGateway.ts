// Jest-only (beforeAll/afterAll): kept beside the tests, out of the compiled test/support.
import { startTestGateway, type TestGateway } from "../support/inProcessGateway";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import { startNats, type NatsHandle } from "../support/nats";

/** What a describe block gets from {@link useNatsAndGateway}; set once its beforeAll ran. */
export interface NatsAndGateway {
  nats: NatsHandle;
  js: TestJetStream;
  gw: TestGateway;
}

/**
 * A real nats-server, a publisher's JetStream client and an in-process gateway with `env`, for
 * the describe block it is called in: started in beforeAll, closed in afterAll.
 */
export function useNatsAndGateway(env: Record<string, string> = {}): NatsAndGateway {
  const f = {} as NatsAndGateway;
  beforeAll(async () => {
    f.nats = await startNats();
    f.js = await connectJetStream(f.nats.url);
    f.gw = await startTestGateway(f.nats.url, env);
  });
  afterAll(async () => {
    await f.gw?.close();
    await f.js?.close().catch(() => undefined);
    await f.nats?.close();
  });
  return f;
}
