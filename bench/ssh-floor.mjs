/**
 * The floor of the benchmark: what any SSH-based check pays per node in the lab, with none of
 * rotate-certs' work. One ssh2 connection per node (host key checked against known_hosts, key
 * auth), `sudo -n true`, disconnect; CONCURRENCY nodes at a time, as `check` does by default.
 * Nothing is read or parsed. Plain JavaScript, so it starts as fast as node can.
 *
 *   node bench/ssh-floor.mjs IDENTITY KNOWN_HOSTS CONCURRENCY USER@HOST...
 *
 * Exits 0 when every node answered with exit status 0, else 1 naming the node.
 */
import { readFileSync } from 'node:fs';
import ssh2 from 'ssh2';

const [identity, knownHostsFile, concurrencyArg, ...targets] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
if (!identity || !knownHostsFile || !(concurrency >= 1) || targets.length === 0) {
  process.stderr.write('usage: node bench/ssh-floor.mjs IDENTITY KNOWN_HOSTS CONCURRENCY USER@HOST...\n');
  process.exit(64);
}
const privateKey = readFileSync(identity);
// The lab writes plain "host type base64" lines.
const known = new Map();
for (const line of readFileSync(knownHostsFile, 'utf8').split('\n')) {
  const [host, , key] = line.trim().split(/\s+/);
  if (host && key) known.set(host, key);
}

function checkNode(target) {
  const at = target.lastIndexOf('@');
  const username = target.slice(0, at);
  const host = target.slice(at + 1);
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    client.on('error', (err) => reject(new Error(`${target}: ${err.message}`)));
    client.on('ready', () => {
      client.exec('sudo -n true', (err, stream) => {
        if (err) return reject(new Error(`${target}: ${err.message}`));
        stream.resume();
        stream.stderr.resume();
        stream.on('close', (code) => {
          client.end();
          if (code === 0) resolve();
          else reject(new Error(`${target}: sudo -n true exited ${code}`));
        });
      });
    });
    client.connect({
      host,
      port: 22,
      username,
      privateKey,
      readyTimeout: 30_000,
      hostVerifier: (key) => known.get(host) === key.toString('base64'),
    });
  });
}

let next = 0;
async function worker() {
  while (next < targets.length) await checkNode(targets[next++]);
}
try {
  await Promise.all(Array.from({ length: Math.min(concurrency, targets.length) }, worker));
} catch (err) {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
}
