// The demo's chat server: plain ws, no tracing code. Rooms by URL (/rooms/:room),
// JSON messages {type, text}, a heartbeat that terminates sockets that miss a pong.
require('./lifeline');
const { WebSocketServer } = require('ws');

const CRASH = 'handler bug: crash requested';

const HEARTBEAT_MS = Number(process.env.HEARTBEAT_MS || 2000);
const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.env.PORT || 0) });
const alive = new WeakMap();

wss.on('connection', (ws, req) => {
  const room = req.url.split('?')[0];
  alive.set(ws, true);
  ws.on('pong', () => alive.set(ws, true));
  ws.on('message', (data) => {
    const msg = JSON.parse(data);
    if (msg.type === 'chat') {
      for (const peer of wss.clients) if (peer.room === room && peer.readyState === 1) peer.send(JSON.stringify({ type: 'chat', text: msg.text }));
    } else if (msg.type === 'join') {
      ws.room = room;
      ws.send(JSON.stringify({ type: 'welcome', room }));
    } else if (msg.type === 'crash') {
      throw new Error(CRASH);
    }
  });
});

const heartbeat = setInterval(() => {
  for (const ws of wss.clients) {
    if (!alive.get(ws)) {
      ws.terminate();
      continue;
    }
    alive.set(ws, false);
    ws.ping();
  }
}, HEARTBEAT_MS);

// The demo's one deliberate handler bug is reported and survived; anything else ends the process.
process.on('uncaughtException', (err) => {
  if (err.message !== CRASH) throw err;
  console.log(`server: caught "${err.message}" (the app's own error, re-thrown by ws-apm unchanged)`);
});
process.on('SIGTERM', () => {
  clearInterval(heartbeat);
  for (const ws of wss.clients) ws.close(1001, 'server going away');
  wss.close();
});
wss.on('listening', () => console.log(`PORT ${wss.address().port}`));
