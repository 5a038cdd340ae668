// node-media-server (npm, pinned in package.json) on loopback for the latency benchmark:
//   node bench/latency/nms.cjs HTTP_PORT RTMP_PORT DATA_DIR
// Publish to rtmp://127.0.0.1:RTMP_PORT/live/NAME; play ws://127.0.0.1:HTTP_PORT/live/NAME.flv
// (WebSocket-FLV; http:// for HTTP-FLV). No HTTPS/RTMPS, no admin console, no auth.
const NodeMediaServer = require('node-media-server');

const [httpPort, rtmpPort, dataDir] = process.argv.slice(2);
if (!httpPort || !rtmpPort || !dataDir) {
  console.error('usage: node nms.cjs HTTP_PORT RTMP_PORT DATA_DIR');
  process.exit(2);
}
const nms = new NodeMediaServer({
  bind: '127.0.0.1',
  rtmp: { port: Number(rtmpPort) },
  http: { port: Number(httpPort) },
  store: { path: dataDir },
  webadmin: { enable: false },
  record: { auto: false, path: dataDir },
});
nms.run();
const quit = () => { Promise.resolve(nms.stop()).finally(() => process.exit(0)); };
process.on('SIGINT', quit);
process.on('SIGTERM', quit);
