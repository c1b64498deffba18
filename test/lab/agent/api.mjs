// The small kube-apiserver of the lab: a Kubernetes-shaped API over a shared JSON state file
// (secrets, KubeadmControlPlanes, Machines, Nodes), and each Node's Ready condition computed per
// request from that node's kubelet files. Served by the kube-apiserver static pod of
// kubelet-agent.mjs; plain ESM, node: builtins only.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';

const IP = process.env.LAB_NODE_IP ?? '127.0.0.1';
const LAB_DIR = process.env.LAB_DIR ?? '/tmp';
const STATE = join(LAB_DIR, 'apiserver-state.json');
const ANONYMOUS = /^\/(livez|healthz|readyz|version)(\/|$)/;
const LAB_JSON = join(LAB_DIR, 'lab.json');
const CLUSTER_CA = join(LAB_DIR, 'ca', 'ca.crt');
const KUBELET_ACTIVE = '/var/lib/rotate-certs-lab/kubelet.active'; // the systemctl shim's marker
const KUBELET_CLIENT = '/var/lib/kubelet/pki/kubelet-client-current.pem';

/** Why the kube-apiserver cannot use etcd with the client pair it started with, or null. */
export function etcdProblem(etcd) {
  if ('error' in etcd) return etcd.error;
  const now = Date.now();
  if (Date.parse(etcd.cert.validTo) < now) return 'etcd client certificate has expired';
  if (Date.parse(etcd.cert.validFrom) > now) return 'etcd client certificate is not yet valid';
  if (!etcd.cert.checkIssued(etcd.ca) || !etcd.cert.verify(etcd.ca.publicKey)) return 'etcd client certificate is not signed by the etcd CA';
  return null;
}

// ---------------------------------------------------------------- Node Ready

let holders = new Map(); // node name -> pid holding its mount namespace (lab.json), last good read

function readHolders() {
  try {
    const s = JSON.parse(readFileSync(LAB_JSON, 'utf8'));
    holders = new Map(s.nodes.map((n) => [n.name, n.holderPid]));
  } catch {
    /* lab.json being rewritten: keep the last good read */
  }
  return holders;
}

/** A node's path seen through its mount namespace, following symlinks from the node's root as the node would. */
function inNode(root, path) {
  let p = path;
  for (let hops = 0; hops < 8; hops++) {
    let st;
    try {
      st = lstatSync(root + p);
    } catch {
      return root + p; // missing: the read reports it
    }
    if (!st.isSymbolicLink()) return root + p;
    const target = readlinkSync(root + p);
    p = target.startsWith('/') ? target : posix.join(posix.dirname(p), target);
  }
  throw new Error(`open ${path}: too many levels of symbolic links`);
}

const goTime = (ms) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
const pemBlock = (text, label) => new RegExp(`-----BEGIN ${label}-----[\\s\\S]+?-----END ${label}-----`).exec(text)?.[0];

/** Why the node's kubelet cannot post a Ready status (the error it would log), or null when it can. */
function kubeletProblem(name, ca) {
  const pid = holders.get(name);
  const root = `/proc/${pid}/root`;
  if (!pid || !existsSync(root + KUBELET_ACTIVE)) return { reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.' };
  const notReady = (err) => ({ reason: 'KubeletNotReady', message: `kubelet cannot post node status: ${err}` });
  let text;
  try {
    text = readFileSync(inNode(root, KUBELET_CLIENT), 'utf8');
  } catch (e) {
    return notReady(`open ${KUBELET_CLIENT}: ${e.code === 'ENOENT' ? 'no such file or directory' : String(e.message ?? e)}`);
  }
  const certPem = pemBlock(text, 'CERTIFICATE');
  const keyPem = pemBlock(text, '(?:EC |RSA )?PRIVATE KEY');
  if (!certPem) return notReady('tls: failed to find any PEM data in certificate input');
  if (!keyPem) return notReady('tls: failed to find any PEM data in key input');
  let cert;
  try {
    cert = new X509Certificate(certPem);
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return notReady('tls: private key does not match public key');
  } catch (e) {
    return notReady(`tls: failed to parse certificate or key: ${String(e.message ?? e)}`);
  }
  const now = Date.now();
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (now > to) return notReady(`x509: certificate has expired or is not yet valid: current time ${goTime(now)} is after ${goTime(to)}`);
  if (now < from) return notReady(`x509: certificate has expired or is not yet valid: current time ${goTime(now)} is before ${goTime(from)}`);
  if (!ca || !cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return notReady('x509: certificate signed by unknown authority');
  const rdn = cert.subject.split('\n');
  const cn = rdn.find((l) => l.startsWith('CN='))?.slice(3) ?? '';
  if (!rdn.includes('O=system:nodes') || !cn.startsWith('system:node:')) {
    return notReady(`nodes "${name}" is forbidden: User "${cn}" cannot patch resource "nodes/status" in API group "" at the cluster scope`);
  }
  if (cn !== `system:node:${name}`) return notReady(`nodes "${name}" is forbidden: node "${cn.slice(12)}" is not allowed to modify node "${name}"`);
  return null;
}

/**
 * The Node with its Ready condition as of now: True only while its kubelet is active (the systemctl
 * shim's marker) and kubelet-client-current.pem holds a key and a certificate valid now, for
 * CN system:node:NAME, O system:nodes, issued by the cluster CA. Files are read per request.
 */
function nodeReady(node, ca) {
  const name = node.metadata?.name ?? '';
  const problem = kubeletProblem(name, ca);
  const now = goTime(Date.now());
  const conditions = (node.status?.conditions ?? []).filter((c) => c.type !== 'Ready');
  const prev = (node.status?.conditions ?? []).find((c) => c.type === 'Ready');
  const ready = problem
    ? { type: 'Ready', status: 'False', lastHeartbeatTime: prev?.lastHeartbeatTime ?? now, lastTransitionTime: now, ...problem }
    : { type: 'Ready', status: 'True', lastHeartbeatTime: now, lastTransitionTime: prev?.lastTransitionTime ?? now, reason: 'KubeletReady', message: 'kubelet is posting ready status' };
  return { ...node, status: { ...node.status, conditions: [...conditions, ready] } };
}

function clusterCa() {
  try {
    return new X509Certificate(readFileSync(CLUSTER_CA));
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- API

export function status(code, reason, message) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

export function send(res, code, body, type = 'application/json') {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(code, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readState() {
  return JSON.parse(readFileSync(STATE, 'utf8'));
}

function writeState(s) {
  const tmp = `${STATE}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(s, null, 2));
  renameSync(tmp, STATE); // atomic: the other control-plane agents never read half a file
}

function mergePatch(target, patch) {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out = target && typeof target === 'object' && !Array.isArray(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function body(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const t = Buffer.concat(chunks).toString('utf8');
      if (!t) return resolve(undefined);
      try {
        resolve(JSON.parse(t));
      } catch {
        reject(Object.assign(new Error('request body is not JSON'), { http: 400 }));
      }
    });
    req.on('error', reject);
  });
}

const KINDS = {
  secrets: { coll: 'secrets', kind: 'Secret', list: 'SecretList', apiVersion: 'v1', group: '' },
  kubeadmcontrolplanes: { coll: 'kubeadmcontrolplanes', kind: 'KubeadmControlPlane', list: 'KubeadmControlPlaneList', apiVersion: 'controlplane.cluster.x-k8s.io/v1beta1', group: 'kubeadmcontrolplanes.controlplane.cluster.x-k8s.io' },
  machines: { coll: 'machines', kind: 'Machine', list: 'MachineList', apiVersion: 'cluster.x-k8s.io/v1beta1', group: 'machines.cluster.x-k8s.io' },
  nodes: { coll: 'nodes', kind: 'Node', list: 'NodeList', apiVersion: 'v1', group: '' },
};

/**
 * An equality-based label selector (`k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated) as a predicate
 * over labels; an empty selector matches everything. Set-based forms (in, notin) are not emulated:
 * returns the requirement it cannot parse, as a string.
 */
function parseLabelSelector(text) {
  const reqs = [];
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    let m;
    if ((m = /^([A-Za-z0-9._/-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)$/.exec(part))) {
      const [, key, op, value] = m;
      reqs.push(op === '!=' ? (l) => l[key] !== value : (l) => l[key] === value);
    } else if ((m = /^(!?)([A-Za-z0-9._/-]+)$/.exec(part))) {
      const [, not, key] = m;
      reqs.push(not ? (l) => !(key in l) : (l) => key in l);
    } else {
      return part;
    }
  }
  return (labels) => reqs.every((req) => req(labels));
}

function route(path) {
  let m = /^\/api\/v1\/namespaces\/([^/]+)\/(secrets)(?:\/([^/]+))?$/.exec(path);
  if (m) return { k: KINDS.secrets, ns: m[1], name: m[3] };
  m = /^\/apis\/controlplane\.cluster\.x-k8s\.io\/v1beta1\/namespaces\/([^/]+)\/(kubeadmcontrolplanes)(?:\/([^/]+))?$/.exec(path);
  if (m) return { k: KINDS.kubeadmcontrolplanes, ns: m[1], name: m[3] };
  m = /^\/apis\/cluster\.x-k8s\.io\/v1beta1\/namespaces\/([^/]+)\/(machines)(?:\/([^/]+))?$/.exec(path);
  if (m) return { k: KINDS.machines, ns: m[1], name: m[3] };
  m = /^\/api\/v1\/nodes(?:\/([^/]+))?$/.exec(path);
  if (m) return { k: KINDS.nodes, ns: undefined, name: m[1] };
  return null;
}

/** Serves one request of the API; `pod` is what the kube-apiserver read when it started. */
export async function handle(req, res, pod) {
  const url = new URL(req.url ?? '/', `https://${IP}:6443`);
  const path = url.pathname.replace(/\/+$/, '') || '/';
  if (ANONYMOUS.test(path)) {
    if (path.startsWith('/version')) return send(res, 200, { major: '1', minor: '28', gitVersion: 'v1.28.3-eks-1-28-9', platform: 'linux/amd64' });
    if (path.startsWith('/readyz')) {
      const p = etcdProblem(pod.etcd);
      if (p) return send(res, 500, `[+]ping ok\n[+]log ok\n[-]etcd failed: ${p}\nreadyz check failed\n`, 'text/plain');
    }
    return send(res, 200, 'ok', 'text/plain');
  }
  const sock = req.socket;
  const peer = sock.getPeerCertificate?.();
  if (!sock.authorized || !peer || !peer.raw) return send(res, 401, status(401, 'Unauthorized', 'Unauthorized'));
  // Node verified chain + dates against the client CA read at start; double-check validity dates now.
  const cert = new X509Certificate(peer.raw);
  if (Date.parse(cert.validTo) < Date.now()) return send(res, 401, status(401, 'Unauthorized', 'Unauthorized'));

  // Without a working etcd client cert the apiserver cannot serve any object.
  const p = etcdProblem(pod.etcd);
  if (p) return send(res, 503, status(503, 'ServiceUnavailable', `etcdserver: request timed out (${p})`));

  const r = route(path);
  if (!r) return send(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
  const method = req.method ?? 'GET';
  const input = method === 'GET' ? undefined : await body(req).catch((e) => e);
  if (input instanceof Error) return send(res, 400, status(400, 'BadRequest', input.message));
  const s = readState();
  const coll = (s[r.k.coll] ??= {});
  const key = r.ns ? `${r.ns}/${r.name}` : r.name;
  const notFound = () => send(res, 404, { ...status(404, 'NotFound', `${r.k.group || r.k.coll} "${r.name}" not found`), details: { name: r.name, kind: r.k.coll } });
  const bump = (obj) => {
    s.resourceVersion = (s.resourceVersion ?? 100) + 1;
    obj.metadata = { ...(obj.metadata ?? {}), resourceVersion: String(s.resourceVersion) };
    return obj;
  };

  let view = (obj) => obj;
  if (r.k === KINDS.nodes && method === 'GET') {
    readHolders();
    const ca = clusterCa();
    view = (obj) => nodeReady(obj, ca);
  }
  if (!r.name) {
    if (method === 'GET') {
      const selector = parseLabelSelector(url.searchParams.get('labelSelector') ?? '');
      if (typeof selector === 'string') return send(res, 400, status(400, 'BadRequest', `unable to parse requirement: ${selector}`));
      const items = Object.entries(coll)
        .filter(([k]) => !r.ns || k.startsWith(`${r.ns}/`))
        .filter(([, v]) => selector(v?.metadata?.labels ?? {}))
        .map(([, v]) => view(v));
      return send(res, 200, { kind: r.k.list, apiVersion: r.k.apiVersion, metadata: { resourceVersion: String(s.resourceVersion ?? 100) }, items });
    }
    if (method === 'POST' && r.k === KINDS.secrets) {
      const name = input?.metadata?.name;
      if (!name) return send(res, 422, status(422, 'Invalid', 'metadata.name: Required value'));
      if (coll[`${r.ns}/${name}`]) return send(res, 409, status(409, 'AlreadyExists', `secrets "${name}" already exists`));
      const obj = bump({ apiVersion: 'v1', kind: 'Secret', ...input, metadata: { ...input.metadata, namespace: r.ns } });
      coll[`${r.ns}/${name}`] = obj;
      writeState(s);
      return send(res, 201, obj);
    }
    return send(res, 405, status(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'));
  }

  const existing = coll[key];
  if (method === 'GET') return existing ? send(res, 200, view(existing)) : notFound();
  if (method === 'PUT' && r.k === KINDS.secrets) {
    if (!existing) return notFound();
    if (!input || typeof input !== 'object') return send(res, 400, status(400, 'BadRequest', 'empty body'));
    const rvIn = input.metadata?.resourceVersion;
    if (rvIn && rvIn !== existing.metadata?.resourceVersion) {
      return send(res, 409, status(409, 'Conflict', `Operation cannot be fulfilled on secrets "${r.name}": the object has been modified; please apply your changes to the latest version and try again`));
    }
    const obj = bump({ ...input, apiVersion: 'v1', kind: 'Secret', metadata: { ...existing.metadata, ...(input.metadata ?? {}), name: r.name, namespace: r.ns } });
    coll[key] = obj;
    writeState(s);
    return send(res, 200, obj);
  }
  if (method === 'PATCH' && (r.k === KINDS.secrets || r.k === KINDS.kubeadmcontrolplanes)) {
    if (!existing) return notFound();
    const ct = String(req.headers['content-type'] ?? '');
    if (!/merge-patch\+json|strategic-merge-patch\+json/.test(ct)) return send(res, 415, status(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json`));
    const obj = bump(mergePatch(existing, input ?? {}));
    obj.metadata.name = existing.metadata.name;
    coll[key] = obj;
    writeState(s);
    return send(res, 200, obj);
  }
  return send(res, 405, status(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'));
}

// ---------------------------------------------------------------- main loop
