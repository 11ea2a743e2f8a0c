import { Registry } from "prom-client";
import { createMetrics } from "../../src/telemetry/metrics";

describe("Node's process metrics on /metrics", () => {
  it("leave out the metrics that walk every handle at each scrape, and count open descriptors", async () => {
    const { registry } = createMetrics(new Registry());
    const text = await registry.metrics();
    expect(text).not.toMatch(/^nodejs_active_(handles|resources)/m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes \d/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_p99_seconds /m);
    if (process.platform === "linux") {
      const fds = Number(/^process_open_fds (\d+)$/m.exec(text)?.[1]);
      expect(fds).toBeGreaterThan(2); // stdin, stdout, stderr at least
    }
  });
});
