import { readFileSync } from "node:fs";
import path from "node:path";

/** The default `service.name` of spans and logs; `OTEL_SERVICE_NAME` overrides it for spans. */
export const SERVICE_NAME = "jetstream-sse-gateway";

let cached: string | undefined;

/**
 * The gateway's version from its package.json, for `service.version`. Found by walking up from
 * this file: it sits at a different depth in the source tree (tests) and in `dist/` (the image).
 */
export function serviceVersion(): string {
  if (cached !== undefined) return cached;
  cached = "unknown";
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")) as {
        name?: unknown;
        version?: unknown;
      };
      if (pkg.name === SERVICE_NAME && typeof pkg.version === "string") {
        cached = pkg.version;
        break;
      }
    } catch {
      // no package.json here: keep walking up
    }
    if (path.dirname(dir) === dir) break;
  }
  return cached;
}
