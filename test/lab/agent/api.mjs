// The small kube-apiserver of the lab: a Kubernetes-shaped API over a shared JSON state file
// (secrets, KubeadmControlPlanes, Machines, Nodes, the etcdadm-controller Deployment and its
// ReplicaSets, the EtcdadmCluster), each Node's Ready condition computed per request from that node's kubelet files,
// and a Deployment rollout that completes as the Deployment controller reports it. Served by the
// kube-apiserver static pod of kubelet-agent.mjs; plain ESM, node: builtins only.
import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import { appendFileSync, existsSync, lstatSync, readFileSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join, posix } from 'node:path';

const IP = process.env.LAB_NODE_IP ?? '127.0.0.1';
const LAB_DIR = process.env.LAB_DIR ?? '/tmp';
const STATE = join(LAB_DIR, 'apiserver-state.json');
const ANONYMOUS = /^\/(livez|healthz|readyz|version)(\/|$)/;
const LAB_JSON = join(LAB_DIR, 'lab.json');
const CLUSTER_CA = join(LAB_DIR, 'ca', 'ca.crt');
const KUBELET_ACTIVE = '/var/lib/rotate-certs-lab/kubelet.active'; // the systemctl shim's marker
const KUBELET_CLIENT = '/var/lib/kubelet/pki/kubelet-client-current.pem';

/** Why the kube-apiserver's etcd client pair cannot work as it is, or null (the dates, the issuer). */
export function etcdProblem(etcd) {
  if ('error' in etcd) return etcd.error;
  const now = Date.now();
  if (Date.parse(etcd.cert.validTo) < now) return 'etcd client certificate has expired';
  if (Date.parse(etcd.cert.validFrom) > now) return 'etcd client certificate is not yet valid';
  if (!etcd.cert.checkIssued(etcd.ca) || !etcd.cert.verify(etcd.ca.publicKey)) return 'etcd client certificate is not signed by the etcd CA';
  return null;
}

/** How long one etcd endpoint may take to answer; etcd's own /health waits up to 1 s for a quorum read. */
const ETCD_HEALTH_MS = 2000;
/** A health answer is reused this long, so a burst of requests makes one round of etcd calls. */
const ETCD_HEALTH_CACHE_MS = 250;

/** GET /health of one etcd client URL with the apiserver's pair: null when it says {"health":"true"}. */
function etcdEndpointProblem(url, client) {
  return new Promise((resolve) => {
    const u = new URL(url);
    const req = request(
      { host: u.hostname, port: u.port || 2379, path: '/health', method: 'GET', cert: client.cert, key: client.key, ca: client.ca, timeout: ETCD_HEALTH_MS },
      (res) => {
        let body = '';
        res.on('data', (d) => (body += d.toString()));
        res.on('end', () => {
          let health;
          try {
            health = JSON.parse(body).health;
          } catch {
            /* not etcd's JSON */
          }
          resolve(health === 'true' ? null : `${url}: /health answered ${res.statusCode} ${body.trim().slice(0, 120)}`);
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('context deadline exceeded')));
    req.on('error', (e) => resolve(`${url}: ${e.code ?? ''} ${e.message}`.replace(/: +/, ': ')));
    req.end();
  });
}

/**
 * Why etcd does not serve this kube-apiserver now, or null: a real TLS request with the client pair it
 * read at start to each of its --etcd-servers, as its etcd readiness check depends on (k8s.io/apiserver
 * storage/storagebackend/factory etcd3.go: an etcd client of those endpoints with that pair). One
 * endpoint that answers healthy is enough (the client balances over them). Without quorum no member
 * does, and the API is not ready.
 */
export function etcdProblemNow(pod) {
  const etcd = pod.etcd;
  const fixed = etcdProblem(etcd);
  if (fixed) return Promise.resolve(fixed);
  const now = Date.now();
  if (etcd.health && now - etcd.health.at < ETCD_HEALTH_CACHE_MS) return etcd.health.result;
  const result = Promise.all(etcd.client.servers.map((u) => etcdEndpointProblem(u, etcd.client))).then((problems) =>
    problems.some((p) => p === null) ? null : problems.join('; '),
  );
  etcd.health = { at: now, result };
  return result;
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
  kubeadmcontrolplanes: { coll: 'kubeadmcontrolplanes', kind: 'KubeadmControlPlane', list: 'KubeadmControlPlaneList', apiGroup: 'controlplane.cluster.x-k8s.io', group: 'kubeadmcontrolplanes.controlplane.cluster.x-k8s.io' },
  machines: { coll: 'machines', kind: 'Machine', list: 'MachineList', apiGroup: 'cluster.x-k8s.io', group: 'machines.cluster.x-k8s.io' },
  nodes: { coll: 'nodes', kind: 'Node', list: 'NodeList', apiVersion: 'v1', group: '' },
  deployments: { coll: 'deployments', kind: 'Deployment', list: 'DeploymentList', apiVersion: 'apps/v1', group: 'deployments.apps' },
  replicasets: { coll: 'replicasets', kind: 'ReplicaSet', list: 'ReplicaSetList', apiVersion: 'apps/v1', group: 'replicasets.apps' },
  // aws/etcdadm-controller api/v1beta1: EtcdadmCluster <cluster>-etcd in eksa-system.
  etcdadmclusters: { coll: 'etcdadmclusters', kind: 'EtcdadmCluster', list: 'EtcdadmClusterList', apiVersion: 'etcdcluster.cluster.x-k8s.io/v1beta1', group: 'etcdadmclusters.etcdcluster.cluster.x-k8s.io' },
};

// ---------------------------------------------------------------- Cluster API versions

/**
 * Cluster API serves v1beta2 (its storage version) from v1.11 and v1beta1 beside it until it is
 * unserved. The state's `servedCapiVersions` says which this lab serves (default both); an
 * unserved group/version answers 404 with the plain-text body released kube-apiservers give.
 */
export const CAPI_VERSIONS = ['v1beta2', 'v1beta1'];

/**
 * A stored (v1beta2) Cluster API object as the given version shows it. Only the fields that differ
 * between the two and that a client of this lab reads are converted (cluster-api
 * api/core/v1beta1 and controlplane/kubeadm/api/v1beta1 conversion): Machine status.nodeRef
 * ({name} in v1beta2, an ObjectReference in v1beta1) and initialization flags; KCP status
 * initialization and replica counters.
 */
function capiView(obj, version) {
  const group = obj.apiVersion.split('/')[0];
  if (version === 'v1beta2') return { ...obj, apiVersion: `${group}/v1beta2` };
  const st = obj.status ?? {};
  let status = st;
  if (obj.kind === 'Machine') {
    const { initialization, nodeRef, ...rest } = st;
    status = {
      ...rest,
      ...(nodeRef ? { nodeRef: { apiVersion: 'v1', kind: 'Node', name: nodeRef.name } } : {}),
      ...(initialization ? { bootstrapReady: !!initialization.bootstrapDataSecretCreated, infrastructureReady: !!initialization.infrastructureProvisioned } : {}),
    };
  } else if (obj.kind === 'KubeadmControlPlane') {
    const { initialization, upToDateReplicas, availableReplicas, ...rest } = st;
    status = { ...rest, initialized: !!initialization?.controlPlaneInitialized, ready: (st.readyReplicas ?? 0) > 0, ...(upToDateReplicas !== undefined ? { updatedReplicas: upToDateReplicas } : {}) };
  }
  return { ...obj, apiVersion: `${group}/v1beta1`, status };
}

// ---------------------------------------------------------------- Deployments

/** How long the emulated Deployment controller takes to observe a new template, then to have the new pod available. */
const OBSERVE_MS = 200;
const ROLLOUT_MS = 1500;

/** The pod-template-hash of a template (the Deployment controller hashes it with FNV; any stable hash shows the same). */
const templateHash = (template) => createHash('sha256').update(JSON.stringify(template ?? {})).digest('hex').slice(0, 10);

/**
 * The Deployment as its controller would report it now (kubernetes pkg/controller/deployment,
 * RollingUpdate with maxSurge 25% -> 1 and maxUnavailable 25% -> 0 for one replica): until the
 * controller observed the new generation, the old status; then the new ReplicaSet's pod is surged
 * beside the old one (replicas 2, updated 1, available 1, Progressing=ReplicaSetUpdated); after
 * ROLLOUT_MS the old pod is gone (replicas 1, updated 1, available 1, NewReplicaSetAvailable).
 * `rollout` is the lab's bookkeeping of the last template change: {at, generation, newRs, oldRs}.
 */
function deploymentView(d, rollout, now = Date.now()) {
  const want = d.spec?.replicas ?? 1;
  if (!rollout || now - rollout.at < OBSERVE_MS) return d;
  const done = now - rollout.at >= OBSERVE_MS + ROLLOUT_MS;
  const t = goTime(rollout.at + (done ? OBSERVE_MS + ROLLOUT_MS : OBSERVE_MS));
  const status = {
    observedGeneration: rollout.generation,
    replicas: done ? want : want + 1,
    updatedReplicas: want,
    readyReplicas: want,
    availableReplicas: want,
    ...(done ? {} : { unavailableReplicas: 1 }),
    conditions: [
      { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'Deployment has minimum availability.', lastUpdateTime: t, lastTransitionTime: t },
      done
        ? { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable', message: `ReplicaSet "${rollout.newRs}" has successfully progressed.`, lastUpdateTime: t, lastTransitionTime: t }
        : { type: 'Progressing', status: 'True', reason: 'ReplicaSetUpdated', message: `ReplicaSet "${rollout.newRs}" is progressing.`, lastUpdateTime: t, lastTransitionTime: t },
    ],
  };
  return { ...d, status };
}

/** A ReplicaSet of a Deployment under rollout: the new one gets its pod, the old one loses its own at the end. */
function replicaSetView(rs, rollout, now = Date.now()) {
  if (!rollout || now - rollout.at < OBSERVE_MS) return rs;
  const done = now - rollout.at >= OBSERVE_MS + ROLLOUT_MS;
  const name = rs.metadata?.name;
  let n = rs.spec?.replicas ?? 0;
  if (name === rollout.newRs) n = 1;
  else if (name === rollout.oldRs) n = done ? 0 : 1;
  else return rs;
  return { ...rs, spec: { ...rs.spec, replicas: n }, status: { replicas: n, fullyLabeledReplicas: n, readyReplicas: n, availableReplicas: n, observedGeneration: rs.metadata?.generation ?? 1 } };
}

/**
 * After a PATCH of a Deployment: a changed spec bumps metadata.generation (the apps strategy
 * does); a changed pod template makes a new ReplicaSet (revision + 1) and starts a rollout.
 */
function afterDeploymentPatch(s, key, before, after) {
  if (JSON.stringify(before.spec) === JSON.stringify(after.spec)) return;
  after.metadata.generation = (before.metadata?.generation ?? 1) + 1;
  if (JSON.stringify(before.spec?.template) === JSON.stringify(after.spec?.template)) return;
  const [ns, name] = key.split('/');
  const rsColl = (s.replicasets ??= {});
  const owned = Object.values(rsColl).filter((rs) => rs.metadata?.namespace === ns && rs.metadata?.ownerReferences?.some((o) => o.kind === 'Deployment' && o.name === name));
  const revisionOf = (rs) => Number(rs.metadata?.annotations?.['deployment.kubernetes.io/revision'] ?? 0);
  const old = owned.sort((a, b) => revisionOf(b) - revisionOf(a))[0];
  // What the last rollout left: the newest ReplicaSet holds the pods, the older ones none.
  const want = after.spec?.replicas ?? 1;
  for (const rs of owned) {
    const n = rs === old ? want : 0;
    rsColl[`${ns}/${rs.metadata.name}`] = { ...rs, spec: { ...rs.spec, replicas: n }, status: { replicas: n, fullyLabeledReplicas: n, readyReplicas: n, availableReplicas: n, observedGeneration: rs.metadata?.generation ?? 1 } };
  }
  const revision = (old ? revisionOf(old) : 0) + 1;
  const hash = templateHash(after.spec.template);
  const rsName = `${name}-${hash}`;
  s.resourceVersion = (s.resourceVersion ?? 100) + 1;
  const labels = { ...(after.spec.template.metadata?.labels ?? {}), 'pod-template-hash': hash };
  rsColl[`${ns}/${rsName}`] = {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: {
      name: rsName,
      namespace: ns,
      uid: createHash('sha256').update(`${rsName}-${Date.now()}`).digest('hex').slice(0, 16),
      resourceVersion: String(s.resourceVersion),
      generation: 1,
      creationTimestamp: goTime(Date.now()),
      labels,
      annotations: { 'deployment.kubernetes.io/revision': String(revision) },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name, uid: after.metadata.uid, controller: true }],
    },
    spec: { replicas: 0, selector: { matchLabels: labels }, template: { ...after.spec.template, metadata: { ...(after.spec.template.metadata ?? {}), labels } } },
    status: { replicas: 0 },
  };
  after.metadata.annotations = { ...(after.metadata.annotations ?? {}), 'deployment.kubernetes.io/revision': String(revision) };
  (s.rollouts ??= {})[key] = { at: Date.now(), generation: after.metadata.generation, newRs: rsName, ...(old ? { oldRs: old.metadata.name } : {}) };
}

// ---------------------------------------------------------------- Secrets

/** A Secret update that changes its type: the real API refuses it (ValidateSecretUpdate, ValidateImmutableField). */
function secretTypeChange(existing, updated) {
  const was = existing.type || 'Opaque';
  const is = updated.type || 'Opaque'; // SetDefaults_Secret: an empty type is Opaque
  if (was === is) return null;
  const name = existing.metadata?.name;
  return {
    ...status(422, 'Invalid', `Secret "${name}" is invalid: type: Invalid value: "${is}": field is immutable`),
    details: { name, kind: 'Secret', causes: [{ reason: 'FieldValueInvalid', message: `Invalid value: "${is}": field is immutable`, field: 'type' }] },
  };
}

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
  m = /^\/apis\/(controlplane\.cluster\.x-k8s\.io|cluster\.x-k8s\.io)\/([^/]+)\/namespaces\/([^/]+)\/(kubeadmcontrolplanes|machines)(?:\/([^/]+))?$/.exec(path);
  if (m && KINDS[m[4]].apiGroup === m[1]) return { k: KINDS[m[4]], version: m[2], ns: m[3], name: m[5] };
  m = /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/(deployments|replicasets)(?:\/([^/]+))?$/.exec(path);
  if (m) return { k: KINDS[m[2]], ns: m[1], name: m[3] };
  m = /^\/apis\/etcdcluster\.cluster\.x-k8s\.io\/v1beta1\/namespaces\/([^/]+)\/etcdadmclusters(?:\/([^/]+))?$/.exec(path);
  if (m) return { k: KINDS.etcdadmclusters, ns: m[1], name: m[2] };
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
      const p = await etcdProblemNow(pod);
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

  // Without etcd answering (its client pair refused, no quorum) the apiserver cannot serve any object.
  const p = await etcdProblemNow(pod);
  if (p) return send(res, 503, status(503, 'ServiceUnavailable', `etcdserver: request timed out (${p})`));

  const r = route(path);
  if (!r) return send(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
  const s = readState();
  if (r.version !== undefined && !(s.servedCapiVersions ?? CAPI_VERSIONS).includes(r.version)) return send(res, 404, '404 page not found\n', 'text/plain; charset=utf-8');
  const method = req.method ?? 'GET';
  const input = method === 'GET' ? undefined : await body(req).catch((e) => e);
  if (input instanceof Error) return send(res, 400, status(400, 'BadRequest', input.message));
  const coll = (s[r.k.coll] ??= {});
  const key = r.ns ? `${r.ns}/${r.name}` : r.name;
  const notFound = () => send(res, 404, { ...status(404, 'NotFound', `${r.k.group || r.k.coll} "${r.name}" not found`), details: { name: r.name, kind: r.k.coll, ...(r.k.group.includes('.') ? { group: r.k.group.slice(r.k.coll.length + 1) } : {}) } });
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
  if (r.version !== undefined) view = (obj) => capiView(obj, r.version);
  const rollouts = s.rollouts ?? {};
  if (r.k === KINDS.deployments) view = (obj) => deploymentView(obj, rollouts[`${obj.metadata?.namespace}/${obj.metadata?.name}`]);
  if (r.k === KINDS.replicasets) {
    view = (obj) => {
      const owner = obj.metadata?.ownerReferences?.find((o) => o.kind === 'Deployment')?.name;
      return replicaSetView(obj, owner ? rollouts[`${obj.metadata?.namespace}/${owner}`] : undefined);
    };
  }
  const listApiVersion = r.version !== undefined ? `${r.k.apiGroup}/${r.version}` : r.k.apiVersion;
  if (!r.name) {
    if (method === 'GET') {
      const selector = parseLabelSelector(url.searchParams.get('labelSelector') ?? '');
      if (typeof selector === 'string') return send(res, 400, status(400, 'BadRequest', `unable to parse requirement: ${selector}`));
      const items = Object.entries(coll)
        .filter(([k]) => !r.ns || k.startsWith(`${r.ns}/`))
        .filter(([, v]) => selector(v?.metadata?.labels ?? {}))
        .map(([, v]) => view(v));
      return send(res, 200, { kind: r.k.list, apiVersion: listApiVersion, metadata: { resourceVersion: String(s.resourceVersion ?? 100) }, items });
    }
    if (method === 'POST' && r.k === KINDS.secrets) {
      const name = input?.metadata?.name;
      if (!name) return send(res, 422, status(422, 'Invalid', 'metadata.name: Required value'));
      if (coll[`${r.ns}/${name}`]) return send(res, 409, status(409, 'AlreadyExists', `secrets "${name}" already exists`));
      const obj = bump({ apiVersion: 'v1', kind: 'Secret', ...input, type: input.type || 'Opaque', metadata: { ...input.metadata, namespace: r.ns } });
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
    const invalid = secretTypeChange(existing, input);
    if (invalid) return send(res, 422, invalid);
    const obj = bump({ ...input, type: input.type || 'Opaque', apiVersion: 'v1', kind: 'Secret', metadata: { ...existing.metadata, ...(input.metadata ?? {}), name: r.name, namespace: r.ns } });
    coll[key] = obj;
    writeState(s);
    return send(res, 200, obj);
  }
  if (method === 'PATCH' && [KINDS.secrets, KINDS.kubeadmcontrolplanes, KINDS.deployments, KINDS.etcdadmclusters].includes(r.k)) {
    if (!existing) return notFound();
    const ct = String(req.headers['content-type'] ?? '');
    if (!/merge-patch\+json|strategic-merge-patch\+json/.test(ct)) return send(res, 415, status(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json`));
    // A strategic merge patch merges maps as a merge patch does; lists (merged by key in a real
    // strategic merge) are replaced here: nothing this lab is sent patches a list.
    const current = r.k === KINDS.deployments ? view(existing) : existing; // the status the controller reports now
    const obj = bump(mergePatch(current, input ?? {}));
    obj.metadata.name = existing.metadata.name;
    obj.apiVersion = existing.apiVersion; // stored as the storage version, whichever version was patched
    if (r.k === KINDS.secrets) {
      const invalid = secretTypeChange(existing, obj);
      if (invalid) return send(res, 422, invalid);
    }
    if (r.k === KINDS.deployments) afterDeploymentPatch(s, key, existing, obj);
    coll[key] = obj;
    writeState(s);
    // What etcdadm-controller's periodic health check reads (cluster.x-k8s.io/paused), in order, for the tests.
    if (r.k === KINDS.etcdadmclusters) {
      appendFileSync(join(LAB_DIR, 'events.log'), JSON.stringify({ t: Date.now(), event: 'etcdadmcluster-annotations', name: key, annotations: obj.metadata.annotations ?? {} }) + '\n');
    }
    return send(res, 200, view(obj));
  }
  return send(res, 405, status(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'));
}

// ---------------------------------------------------------------- main loop
