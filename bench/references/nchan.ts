/**
 * nginx + Nchan as a reference server for the benchmarks: a generated nginx.conf in a temp dir
 * (no daemon, no master process: one process to measure, pid and logs in the temp dir), the
 * Debian `libnginx-mod-nchan` module loaded, listening on 127.0.0.1:<port>:
 *
 * - `GET /events/<channel>`: an EventSource subscriber (Nchan numbers its own ids,
 *   `<time>:<tag>`; the load clients only read the payloads here);
 * - `POST /pub/<channel>`: the publisher, fed by nchanBridge.ts from JetStream;
 * - `GET /readyz`: 200, for startProcess.
 *
 * Channels keep a buffer of 10,000 messages for an hour (what a resume would need).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startProcess, type ServerProc } from "../lib/procs";

const MODULE_DIRS = ["/usr/lib/nginx/modules", "/usr/share/nginx/modules"];

/** nginx and the Nchan module, or why they cannot be used (`make bench` installs them). */
export function findNchan(): { nginx: string; module: string } | { missing: string } {
  const nginx =
    process.env.NGINX_BIN ??
    ["/usr/sbin/nginx", "/usr/bin/nginx"].find((p) => existsSync(p)) ??
    (spawnSync("sh", ["-c", "command -v nginx"], { encoding: "utf8" }).stdout.trim() || undefined);
  if (!nginx) return { missing: "nginx not found (apt-get install nginx)" };
  const module =
    process.env.NCHAN_MODULE ??
    MODULE_DIRS.map((d) => path.join(d, "ngx_nchan_module.so")).find((p) => existsSync(p));
  if (!module)
    return { missing: "ngx_nchan_module.so not found (apt-get install libnginx-mod-nchan)" };
  return { nginx, module };
}

export function nchanConf(dir: string, module: string, port: number): string {
  return `load_module ${module};
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;

events {
  worker_connections 19000;
  multi_accept on;
}

http {
  access_log ${dir}/access.log combined buffer=64k flush=1s;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 3600s;

  nchan_message_buffer_length 10000;
  nchan_message_timeout 1h;

  server {
    listen 127.0.0.1:${port} backlog=4096;

    location = /readyz {
      return 200 "ok\\n";
    }

    location ~ ^/events/([^/]+)$ {
      nchan_subscriber eventsource;
      nchan_channel_id $1;
    }

    location ~ ^/pub/([^/]+)$ {
      allow 127.0.0.1;
      deny all;
      nchan_publisher http;
      nchan_channel_id $1;
    }
  }
}
`;
}

/** Starts nginx + Nchan on `port`; its temp dir is removed once it has exited. */
export async function startNchan(port: number): Promise<ServerProc> {
  const found = findNchan();
  if ("missing" in found) throw new Error(`nchan: ${found.missing}`);
  const dir = mkdtempSync(path.join(os.tmpdir(), "bench-nchan-"));
  const conf = path.join(dir, "nginx.conf");
  writeFileSync(conf, nchanConf(dir, found.module, port));
  // nginx 1.22 with Nchan 1.3.6 reports a double free on its way out: its stderr goes to the
  // temp dir (quoted if it fails to start), not to the bench's output.
  return startProcess(found.nginx, ["-p", dir, "-c", conf], port, {
    stderrFile: path.join(dir, "stderr.log"),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  });
}
