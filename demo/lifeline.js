// Required first by each of the demo's processes (chat-server.js, chat-clients.js): it ends
// - with demo/run.js, which gives it an IPC channel: the channel closes when run.js ends, however
//   it ends (even SIGKILL), and does not itself keep the process alive;
// - when its stdout or stderr is a closed pipe (`npm run demo | head` closed it): it exits rather
//   than fail again on every later write.
if (process.channel) {
  process.channel.unref();
  process.on('disconnect', () => process.exit(0));
}
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => process.exit(err.code === 'EPIPE' ? 0 : 1));
}
