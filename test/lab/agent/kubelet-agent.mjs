// The kubelet's static pods on one control-plane node, and what the container runtime shows of them.
// After kubernetes pkg/kubelet (config/file.go watches staticPodPath; a removed manifest's pod is
// killed, its containers get SIGTERM and take their time to go; a returned manifest's pod is started
// anew; a container that exits is restarted with a back-off) and containerd's CRI view: one record per
// container in /var/lib/rotate-certs-lab/containers/<id>.json, in the shape `crictl ps -o json` prints
// (cri-api ListContainersResponse.containers[]), which the crictl and ctr emulations read and change.
//
// A container stays RUNNING for STOP_MS after its pod is removed (etcd and kube-vip longer), then is
// EXITED until garbage-collected. A pod that comes back before its old container has gone gets a new
// container and the old one is left running beside it: the duplicate kube-apiserver, etcd and kube-vip
// containers AWS saw in production after a 10 s gap (aws/eks-anywhere PR 10360). Each is logged to
// <lab dir>/events.log as a duplicate-container event.
//
// The kube-apiserver container serves the API of api.mjs on :6443 with the files it read when it
// started: it exits (crash loop) when its etcd client certificate or key cannot be loaded or do not
// match, and is ready only while etcd answers it through that pair. The etcd container (stacked etcd)
// runs the real etcd (/usr/bin/etcd, 3.4) with the flags of its manifest, stopped with SIGTERM as the
// kubelet stops a container. The other containers are placeholders.
// Two field failures can be brought about by files in /var/lib/rotate-certs-lab (lab.ts writes them):
// - `forget`: the kubelet loses track of the containers it runs (kubernetes#112814: pod cleanup
//   skipped while the API is down; what an earlier too-quick restart leaves, aws/eks-anywhere PR
//   10360): they run on, unmanaged, until a runtime client stops them, and every static pod is
//   started anew beside them; a new kube-apiserver then crash-loops, its port held by the old one.
// - `stuck/<pod>`: that pod's container never finishes stopping (a hung task), until a runtime
//   client removes it.
// A container is labelled as the kubelet labels it (kuberuntime labels.go): container name, pod
// name `<pod>-<node>` (config/common.go generatePodName), namespace kube-system, and a pod UID
// derived from the manifest and the node, so a manifest put back unchanged keeps its UID.
// Plain ESM, node: builtins only. Env: LAB_NODE_NAME, LAB_NODE_IP, LAB_DIR, LAB_MANIFEST_DIR,
// LAB_MANIFEST_EXT (".yaml", or "" on Bottlerocket), LAB_POLL_MS.
import { X509Certificate, createHash, createPrivateKey, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { join } from 'node:path';
import { handle, send, status } from './api.mjs';

const NODE = process.env.LAB_NODE_NAME ?? 'node';
const IP = process.env.LAB_NODE_IP ?? '127.0.0.1';
const LAB_DIR = process.env.LAB_DIR ?? '/tmp';
const MANIFESTS = process.env.LAB_MANIFEST_DIR ?? '/etc/kubernetes/manifests';
const EXT = process.env.LAB_MANIFEST_EXT ?? '.yaml';
const POLL_MS = Number(process.env.LAB_POLL_MS ?? 250);
const EVENTS = join(LAB_DIR, 'events.log');
const CONTAINERS = '/var/lib/rotate-certs-lab/containers';
const FORGET = '/var/lib/rotate-certs-lab/forget';
const STUCK_DIR = '/var/lib/rotate-certs-lab/stuck';
/** How long a container takes to go after its pod is removed. */
const STOP_MS = { etcd: 4000, 'kube-vip': 4000, 'kube-apiserver': 2000 };
const DEFAULT_STOP_MS = 1500;
/** Exited containers of removed pods linger until the kubelet's container GC. */
const GC_MS = 10_000;
/** CrashLoopBackOff, shortened for the lab. */
const BACKOFF_MS = 2000;

const log = (...a) => console.log(new Date().toISOString(), ...a);
const event = (name, extra = {}) =>
  appendFileSync(EVENTS, JSON.stringify({ t: Date.now(), time: new Date().toISOString(), node: NODE, event: name, ...extra }) + '\n');
const hex = (n) => randomBytes(n).toString('hex');

// ---------------------------------------------------------------- container records

function recordPath(id) {
  return join(CONTAINERS, `${id}.json`);
}
function readRecord(id) {
  try {
    return JSON.parse(readFileSync(recordPath(id), 'utf8'));
  } catch {
    return undefined;
  }
}
function writeRecord(rec) {
  const tmp = join(CONTAINERS, `.${rec.id}.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify(rec) + '\n');
  renameSync(tmp, recordPath(rec.id));
}
function setState(id, state) {
  const rec = readRecord(id);
  if (rec && rec.state !== state) writeRecord({ ...rec, state });
}
function removeRecord(id) {
  rmSync(recordPath(id), { force: true });
}

// ---------------------------------------------------------------- runtimes

function flag(text, name) {
  const m = new RegExp(`--${name}=(\\S+)`).exec(text);
  return m ? m[1].replace(/^["']|["']$/g, '') : undefined;
}

/**
 * What the kube-apiserver reads at start (never again while it runs). Like the real one it exits when
 * it cannot build its etcd client: a file missing, or a key that is not the certificate's
 * ("tls: private key does not match public key"). An expired certificate only fails /readyz.
 */
function loadApiserver(text) {
  const need = (n) => {
    const v = flag(text, n);
    if (!v) throw new Error(`manifest has no --${n}`);
    return v;
  };
  const tls = { cert: readFileSync(need('tls-cert-file')), key: readFileSync(need('tls-private-key-file')), ca: readFileSync(need('client-ca-file')) };
  const certPem = readFileSync(need('etcd-certfile'));
  const keyPem = readFileSync(need('etcd-keyfile'));
  const caPem = readFileSync(need('etcd-cafile'));
  const etcdCert = new X509Certificate(certPem);
  if (!etcdCert.checkPrivateKey(createPrivateKey(keyPem))) throw new Error(`error creating storage factory: tls: private key does not match public key (${need('etcd-certfile')}, ${need('etcd-keyfile')})`);
  // The pair in memory, as the real one's etcd client holds it: what it reads later changes nothing.
  const etcd = { cert: etcdCert, ca: new X509Certificate(caPem), client: { servers: need('etcd-servers').split(','), cert: certPem, key: keyPem, ca: caPem } };
  return { tls, etcd, clientCa: new X509Certificate(tls.ca) };
}

/** The etcd flags of a static pod manifest's command (`- --name=value` lines), in order. */
function commandFlags(text) {
  return [...text.matchAll(/^\s*- (--[a-z0-9-]+=\S*)\s*$/gm)].map((m) => m[1].replace(/^(--[a-z0-9-]+=)(["'])(.*)\2$/, '$1$3'));
}

/**
 * etcd 3.5 defaults the manifest's image has and the lab's etcd 3.4 does not: pre-vote keeps a
 * member that comes back from disrupting the leader with a higher term (etcd server/embed config.go).
 */
const ETCD_35_DEFAULTS = ['--pre-vote=true'];
/** How long etcd may take to stop on SIGTERM (it hands leadership over first) before SIGKILL. */
const ETCD_STOP_MS = 10_000;

const RUNTIMES = {
  'kube-apiserver': {
    async start(text) {
      const pod = loadApiserver(text);
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
      event('apiserver-start');
      log('apiserver started');
      return {
        // SIGTERM: it stops serving at once; the container itself goes later (STOP_MS).
        async stop() {
          await new Promise((resolve) => {
            server.close(() => resolve(undefined));
            server.closeAllConnections?.();
            for (const s of sockets) s.destroy();
          });
          event('apiserver-stop');
          log('apiserver stopped');
        },
      };
    },
  },
};
RUNTIMES.etcd = {
  /** Spawns etcd with the manifest's flags; `onExit` hears when it exits by itself. */
  async start(text, { onExit }) {
    const log = openSync('/var/log/etcd.log', 'a');
    const child = spawn('/usr/bin/etcd', [...commandFlags(text), ...ETCD_35_DEFAULTS], { cwd: '/', stdio: ['ignore', log, log], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    closeSync(log);
    let stopping = false;
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    void exited.then(({ code, signal }) => {
      event('etcd-exit', { code, signal: signal ?? undefined, stopping });
      if (!stopping) onExit(`etcd exited ${signal ?? code}`);
    });
    await new Promise((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    event('etcd-start', { pid: child.pid });
    return {
      // The kubelet's SIGTERM: etcd transfers leadership, then exits; SIGKILL after a grace period.
      async stop() {
        if (child.exitCode !== null || child.signalCode !== null) return;
        stopping = true;
        event('etcd-stop', { pid: child.pid });
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), ETCD_STOP_MS);
        await exited;
        clearTimeout(timer);
      },
    };
  },
};
const placeholder = { async start() { return { async stop() {} }; } };

// ---------------------------------------------------------------- the kubelet

/** name -> { hash, text, image, sandbox, attempt, container?: {id, runtime}, nextTry } */
const pods = new Map();
/** id -> { name, until }: containers of removed pods, still running until `until`. */
const terminating = new Map();
/** id -> when the container GC removes the exited container. */
const exited = new Map();
/** Containers whose process exited by itself (not stopped by the kubelet or a runtime client). */
const crashed = new Set();
/** id -> { name, runtime }: containers the kubelet forgot; they run until a runtime client stops them. */
const orphans = new Map();
let busy = false;

function readManifests() {
  const out = new Map();
  let names = [];
  try {
    names = readdirSync(MANIFESTS);
  } catch {
    return out;
  }
  for (const f of names) {
    if (f.startsWith('.') || (EXT && !f.endsWith(EXT))) continue;
    const path = join(MANIFESTS, f);
    try {
      if (!statSync(path).isFile()) continue;
      const text = readFileSync(path, 'utf8');
      const name = /^metadata:\n(?:[ ]+.*\n)*?[ ]+name: (\S+)/m.exec(text)?.[1] ?? (EXT ? f.slice(0, -EXT.length) : f);
      out.set(name, { text, hash: createHash('sha256').update(text).digest('hex'), image: /^\s+image: (\S+)/m.exec(text)?.[1] ?? 'unknown' });
    } catch {
      /* being written: next tick */
    }
  }
  return out;
}

async function beginStop(name, p) {
  if (!p.container) return;
  const { id, runtime } = p.container;
  p.container = undefined;
  await runtime.stop();
  const stuck = existsSync(join(STUCK_DIR, name));
  terminating.set(id, { name, until: stuck ? Infinity : Date.now() + (STOP_MS[name] ?? DEFAULT_STOP_MS) });
  if (stuck) event('container-stuck', { pod: name, id });
  event('container-stopping', { pod: name, id });
}

async function startContainer(name, p) {
  const now = Date.now();
  const rec = {
    id: hex(32),
    podSandboxId: p.sandbox,
    metadata: { name, attempt: p.attempt },
    image: { image: p.image, annotations: {} },
    imageRef: p.image,
    state: 'CONTAINER_RUNNING',
    createdAt: String(BigInt(now) * 1_000_000n + BigInt(Math.floor(Math.random() * 1e6))),
    labels: { 'io.kubernetes.container.name': name, 'io.kubernetes.pod.name': `${name}-${NODE}`, 'io.kubernetes.pod.namespace': 'kube-system', 'io.kubernetes.pod.uid': p.uid },
    annotations: {},
  };
  try {
    // A process that exits by itself: its container is EXITED, and the kubelet restarts it after a back-off.
    const onExit = (why) => {
      if (readRecord(rec.id)?.state !== 'CONTAINER_RUNNING') return;
      log(`${name} container ${rec.id.slice(0, 13)}: ${why}`);
      crashed.add(rec.id);
      setState(rec.id, 'CONTAINER_EXITED');
    };
    const runtime = await (RUNTIMES[name] ?? placeholder).start(p.text, { onExit });
    writeRecord(rec);
    p.container = { id: rec.id, runtime };
    event('container-start', { pod: name, id: rec.id });
  } catch (e) {
    // It ran and exited: the kubelet keeps the dead container and restarts with a back-off.
    writeRecord({ ...rec, state: 'CONTAINER_EXITED' });
    exited.set(rec.id, now + GC_MS);
    p.attempt++;
    p.nextTry = now + BACKOFF_MS;
    log(`${name} exited (restarting in ${BACKOFF_MS} ms):`, String(e.message ?? e));
  }
}

async function tick() {
  if (busy) return;
  busy = true;
  try {
    const now = Date.now();
    if (existsSync(FORGET)) {
      rmSync(FORGET, { force: true });
      for (const [name, p] of pods) {
        if (p.container) orphans.set(p.container.id, { name, runtime: p.container.runtime });
        pods.delete(name);
      }
      event('kubelet-forgot', { containers: [...orphans.keys()] });
    }
    for (const [id, o] of orphans) {
      if (readRecord(id)?.state === 'CONTAINER_RUNNING') continue;
      orphans.delete(id);
      await o.runtime.stop();
      event('orphan-stopped', { pod: o.name, id });
    }
    const desired = readManifests();
    // Removed or changed manifests: the kubelet kills those pods.
    for (const [name, p] of pods) {
      const d = desired.get(name);
      if (!d || d.hash !== p.hash) {
        await beginStop(name, p);
        pods.delete(name);
      }
    }
    for (const [id, t] of terminating) {
      // Stopped or removed meanwhile by a runtime client (crictl stop/rm, ctr t kill/rm).
      if (readRecord(id)?.state !== 'CONTAINER_RUNNING') {
        terminating.delete(id);
        continue;
      }
      if (now < t.until) continue;
      terminating.delete(id);
      setState(id, 'CONTAINER_EXITED');
      exited.set(id, now + GC_MS);
      event('container-gone', { pod: t.name, id });
    }
    for (const [id, at] of exited) {
      if (now < at) continue;
      exited.delete(id);
      removeRecord(id);
    }
    // New pods. A container of the same pod that is still going is left behind, running.
    for (const [name, d] of desired) {
      if (pods.has(name)) continue;
      for (const [id, t] of terminating) {
        if (t.name !== name) continue;
        terminating.delete(id);
        event('duplicate-container', { pod: name, id });
        log(`${name} started again before its container ${id.slice(0, 13)} had gone: now there are two`);
      }
      // The kubelet's UID of a static pod: a hash of the pod, its node and its file (config/common.go).
      const uid = createHash('md5').update(`${d.hash}host:${NODE}file:${name}`).digest('hex');
      pods.set(name, { hash: d.hash, text: d.text, image: d.image, sandbox: hex(32), uid, attempt: 0, nextTry: 0 });
    }
    // Every pod's container runs; one stopped or removed behind the kubelet's back is restarted.
    for (const [name, p] of pods) {
      if (p.container) {
        const rec = readRecord(p.container.id);
        if (rec?.state === 'CONTAINER_RUNNING') continue;
        await p.container.runtime.stop();
        if (rec) exited.set(p.container.id, now + GC_MS);
        event('container-died', { pod: name, id: p.container.id });
        // A crash waits out the back-off; one stopped from outside is started again at once.
        p.nextTry = crashed.delete(p.container.id) ? now + BACKOFF_MS : now;
        p.container = undefined;
        p.attempt++;
      }
      if (now >= p.nextTry) await startContainer(name, p);
    }
  } catch (e) {
    log('kubelet sync failed:', String(e.stack ?? e));
  } finally {
    busy = false;
  }
}

// A fresh runtime: whatever an earlier agent left is gone.
rmSync(CONTAINERS, { recursive: true, force: true });
mkdirSync(CONTAINERS, { recursive: true });
const timer = setInterval(() => void tick(), POLL_MS);
void tick();
const shutdown = async () => {
  clearInterval(timer);
  for (const p of pods.values()) await p.container?.runtime.stop();
  for (const o of orphans.values()) await o.runtime.stop();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
log(`kubelet-agent for ${NODE} watching ${MANIFESTS}/*${EXT} every ${POLL_MS} ms`);
