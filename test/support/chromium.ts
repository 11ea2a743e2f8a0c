import { chromium, type Browser } from "playwright-core";

/**
 * Debian's Chromium (or CHROMIUM_PATH), headless, with nothing of its own on the network
 * (no QUIC, no background fetches or updates), so a browser test sees only its page's traffic.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
