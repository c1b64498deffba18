// Emulates, inside one control-plane node's namespaces, what the kubelet does with the
// kube-apiserver static pod manifest; the kube-apiserver it starts serves the API of api.mjs.
// Plain ESM, node: builtins only. Env: LAB_NODE_NAME, LAB_NODE_IP, LAB_DIR, LAB_MANIFEST_DIR, LAB_POLL_MS.
import { X509Certificate, createHash } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { join } from 'node:path';
import { handle, send, status } from './api.mjs';

const NODE = process.env.LAB_NODE_NAME ?? 'node';
const IP = process.env.LAB_NODE_IP ?? '127.0.0.1';
const LAB_DIR = process.env.LAB_DIR ?? '/tmp';
const MANIFESTS = process.env.LAB_MANIFEST_DIR ?? '/etc/kubernetes/manifests';
const POLL_MS = Number(process.env.LAB_POLL_MS ?? 250);
const EVENTS = join(LAB_DIR, 'events.log');

const log = (...a) => console.log(new Date().toISOString(), ...a);
const event = (name) => appendFileSync(EVENTS, JSON.stringify({ t: Date.now(), time: new Date().toISOString(), node: NODE, event: name }) + '\n');

/** @type {null | {server: import('node:https').Server, sockets: Set<import('node:net').Socket>, hash: string, etcd: {cert: X509Certificate, ca: X509Certificate} | {error: string}}} */
let current = null;
let busy = false;

function flag(text, name) {
  const m = new RegExp(`--${name}=(\\S+)`).exec(text);
  return m ? m[1].replace(/^["']|["']$/g, '') : undefined;
}

/** Reads everything the pod needs at start, like a container does (never again while it runs). */
function loadPod(text) {
  const need = (n) => {
    const v = flag(text, n);
    if (!v) throw new Error(`manifest has no --${n}`);
    return v;
  };
  const tls = { cert: readFileSync(need('tls-cert-file')), key: readFileSync(need('tls-private-key-file')), ca: readFileSync(need('client-ca-file')) };
  let etcd;
  try {
    etcd = { cert: new X509Certificate(readFileSync(need('etcd-certfile'))), ca: new X509Certificate(readFileSync(need('etcd-cafile'))) };
    readFileSync(need('etcd-keyfile'));
  } catch (e) {
    etcd = { error: String(e.message ?? e) };
  }
  return { tls, etcd, clientCa: new X509Certificate(tls.ca) };
}


async function startPod(text, hash) {
  const pod = loadPod(text);
  const sockets = new Set();
  const server = createServer({ cert: pod.tls.cert, key: pod.tls.key, ca: pod.tls.ca, requestCert: true, rejectUnauthorized: false }, (req, res) =>
    handle(req, res, pod).catch((e) => send(res, 500, status(500, 'InternalError', String(e)))),
  );
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => undefined);
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(6443, IP, () => resolve(undefined));
  });
  current = { server, sockets, hash, etcd: pod.etcd };
  event('apiserver-start');
  log('apiserver started');
}

async function stopPod() {
  const c = current;
  if (!c) return;
  current = null;
  await new Promise((resolve) => {
    c.server.close(() => resolve(undefined));
    c.server.closeAllConnections?.();
    for (const s of c.sockets) s.destroy();
  });
  event('apiserver-stop');
  log('apiserver stopped');
}

async function tick() {
  if (busy) return;
  busy = true;
  try {
    let text = null;
    try {
      text = readFileSync(join(MANIFESTS, 'kube-apiserver.yaml'), 'utf8');
    } catch {
      text = null;
    }
    if (text === null) {
      if (current) await stopPod();
      return;
    }
    const hash = createHash('sha256').update(text).digest('hex');
    if (current && current.hash !== hash) await stopPod(); // the kubelet restarts a pod whose manifest changed
    if (!current) {
      try {
        await startPod(text, hash);
      } catch (e) {
        log('apiserver failed to start (will retry):', String(e.message ?? e)); // like a crash-looping pod
      }
    }
  } finally {
    busy = false;
  }
}


const timer = setInterval(() => void tick(), POLL_MS);
void tick();
const shutdown = async () => {
  clearInterval(timer);
  await stopPod();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
log(`kubelet-agent for ${NODE} watching ${MANIFESTS} every ${POLL_MS} ms`);
