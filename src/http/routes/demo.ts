import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Context } from "koa";

/** Finds `demo/index.html` above this file, whether it runs from `src/` or `dist/src/`. */
function findDemoPage(): string {
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    const page = join(dir, "demo", "index.html");
    if (existsSync(page)) return page;
  }
  throw new Error("demo/index.html not found");
}

/** `GET /` when DEMO=true: a page that subscribes to a subject and shows events arrive. */
export function demoRoute() {
  const html = readFileSync(findDemoPage());
  return (ctx: Context): void => {
    ctx.type = "text/html; charset=utf-8";
    ctx.body = html;
  };
}
