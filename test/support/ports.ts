import net from "node:net";

/**
 * A TCP port that was free a moment ago on 127.0.0.1. The OS picks it (port 0), so parallel Jest
 * workers do not collide the way fixed or random-in-range ports would. There is a small window
 * before the caller binds it; acceptable for tests.
 */
export async function freePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close();
        reject(new Error("freePort: server has no TCP address"));
        return;
      }
      const { port } = address;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}
