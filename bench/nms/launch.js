// Launches node-media-server for the relay fan-out benchmark (relay/benches/fanout.rs).
// Loopback only, RTMP in and HTTP / WS-FLV out, no TLS, no web console, no recording,
// logging at "warn" (NMS forces "debug" in its constructor; per-viewer join lines would
// otherwise be part of what is measured).
//
// Usage: node launch.js [--rtmp-port 19350] [--http-port 18000] [--data DIR]
// Play:  ws://127.0.0.1:HTTP_PORT/live/NAME.flv   Publish: rtmp://127.0.0.1:RTMP_PORT/live/NAME
"use strict";
const os = require("os");
const path = require("path");
const { parseArgs } = require("util");

const { values: cli } = parseArgs({
  options: {
    "rtmp-port": { type: "string", default: "19350" },
    "http-port": { type: "string", default: "18000" },
    data: { type: "string", default: path.join(os.tmpdir(), "lockstep-bench-nms") },
  },
});

const NodeMediaServer = require("node-media-server");
const logger = require("node-media-server/src/core/logger.js");

const config = {
  bind: "127.0.0.1",
  notify: { url: "" },
  store: { path: cli.data, maxHistory: 100 },
  auth: { play: false, publish: false, secret: "bench" },
  rtmp: { port: Number(cli["rtmp-port"]) },
  http: { port: Number(cli["http-port"]) },
  webadmin: { enable: false },
  record: { auto: false, path: "" },
};

const nms = new NodeMediaServer(config, path.join(cli.data, "config.json"));
logger.level = "warn";
nms.run();
console.log(`nms: pid ${process.pid} rtmp ${config.rtmp.port} http ${config.http.port}`);

const stop = () => {
  Promise.resolve(typeof nms.stop === "function" ? nms.stop() : undefined)
    .catch(() => {})
    .finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 3000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
