// The demo's clients: three chatters in two rooms, one that stops answering pings
// (and is terminated by the server's heartbeat), one rejected by a bad path... all plain ws.
require('./lifeline');
const WebSocket = require('ws');

const base = process.argv[2];
const sockets = [];

function chatter(name, room, every) {
  const ws = new WebSocket(`${base}/rooms/${room}?token=demo-secret-${name}`);
  sockets.push(ws);
  ws.on('open', () => {
    ws.send(JSON.stringify({ type: 'join', user: name }));
    const timer = setInterval(() => ws.readyState === 1 && ws.send(JSON.stringify({ type: 'chat', text: `hi from ${name}` })), every);
    ws.on('close', () => clearInterval(timer));
  });
  ws.on('error', () => undefined);
  return ws;
}

chatter('ada', 'lobby', 1500);
chatter('bob', 'lobby', 2500);
chatter('cy', 'games', 2000);

// A client whose network "hangs": it stops reading, so it never answers pings.
const stuck = chatter('dee', 'games', 100000);
stuck.on('open', () => setTimeout(() => stuck.pause(), 500));

// One handler bug, to show an error recorded on WS RECEIVE.
setTimeout(() => sockets[0].readyState === 1 && sockets[0].send(JSON.stringify({ type: 'crash' })), 3000);

setTimeout(() => {
  for (const ws of sockets) {
    if (ws === stuck) ws.terminate();
    else if (ws.readyState === 1) ws.close(1000, 'bye');
  }
}, Number(process.env.DURATION_MS || 9000));
