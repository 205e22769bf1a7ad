// `npm run demo`: an instrumented chat server and its clients for about ten seconds,
// reporting on the console backend (one line per operation on stderr). No services needed.
// The children end with this process, however it ends (see lifeline.js); when its own output
// is closed (`npm run demo | head`), it ends.
const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');

const env = {
  ...process.env,
  WS_APM_BACKEND: 'console',
  WS_APM_MESSAGE_NAME: 'type',
  WS_APM_ROUTES: '/rooms/:room',
  WS_APM_TRACE_HEARTBEAT: 'true',
};
const register = path.join(__dirname, '..', 'dist', 'register.js');

function start(label, script, args = []) {
  const child = spawn(process.execPath, ['-r', register, path.join(__dirname, script), ...args], { env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  for (const stream of [child.stdout, child.stderr]) {
    readline.createInterface({ input: stream }).on('line', (line) => console.log(`${label} ${line}`));
  }
  return child;
}

process.stdout.on('error', (err) => process.exit(err.code === 'EPIPE' ? 0 : 1));

console.log(`ws-apm demo: a plain ws chat server and its clients, each started with -r ws-apm/register
(console backend), for about ten seconds. One line per operation:
  time  OPERATION route  duration  trace= span= parent= [link=]  ok|ERROR  attributes
What to look at:
  WS CONNECT        a handshake: the server's (status=101) is the child (parent=) of the client's, same trace=
  WS RECEIVE ... chat  a message: a trace of its own, linked (link=) to its connection's handshake;
                    the WS SEND lines whose parent= is its span= are the chat relayed to the room
  WS RECEIVE ... crash ERROR  the server's deliberate handler bug, with its exception (the app still gets it;
                    ws stops reading that socket, and the heartbeat later terminates it)
  WS PING           a heartbeat round trip, rtt_ms in milliseconds
  WS CLOSE          one summary per connection: close code, who closed it (by=), broken, messages in/out
  metrics           each process's counters and histograms; active_connections ends at 0
`);

const server = start('[server] ', 'chat-server.js');
readline.createInterface({ input: server.stdout }).once('line', (line) => {
  const port = line.replace('PORT ', '');
  const clients = start('[clients]', 'chat-clients.js', [`ws://127.0.0.1:${port}`]);
  clients.on('exit', () => server.kill('SIGTERM'));
});
server.on('exit', () => console.log('demo done'));
