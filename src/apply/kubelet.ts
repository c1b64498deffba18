/**
 * Kubelet steps that need more than one node or the API: a new client certificate for a node
 * issued on a control-plane node that holds the cluster CA (`kubeadm kubeconfig user`), the gate
 * that waits for the kubelet to use it, and the Node's Ready condition. The issued key lives in
 * memory for this node only, like the etcd client pair.
 */
import { X509Certificate } from 'node:crypto';
import { isMap, isSeq, parseDocument } from 'yaml';
import { commonName, inspectCertificate, type CertInfo } from '../certs/inspect.js';
import type { Inventory, InventoryNode } from '../inventory/types.js';
import { KubeClient, readKubeconfig } from '../kube/client.js';
import { nodeVars } from '../plan/compile.js';
import { kubeNodeName } from '../plan/node-names.js';
import type { PlanNode, PlanStep } from '../plan/types.js';
import type { ProfileSet } from '../profiles/profile.js';
import { renderScript } from '../runbook/template.js';
import type { EndpointRoute } from '../transport/endpoints.js';
import type { NodeSession } from '../transport/session.js';
import { errorMessage, outputTail } from '../util/errors.js';
import { shq } from '../util/shell.js';
import { GateError, poll, readCerts, type CertRead, type GateTimeouts } from './gates.js';

export interface KubeletContext {
  inventory: Inventory;
  profiles: ProfileSet;
  runId: string;
  node: PlanNode;
  session: NodeSession;
  /** A session to another node (the signer). */
  sessionTo(name: string): Promise<NodeSession>;
  /** This node's secrets: written by issue-kubelet-client, read by its later steps. */
  nodeSecrets: Record<string, string>;
  timeouts: GateTimeouts;
  now(): number;
  sleep(ms: number): Promise<void>;
  /** How the API is reached: through the jump host when it sits behind it. */
  route?: EndpointRoute;
}

const ORG = 'system:nodes';

/** The control-plane node that signs: the node itself when it is one, else the first. */
export function signerFor(inv: Inventory, node: PlanNode): InventoryNode {
  const self = inv.nodes.find((n) => n.name === node.name && n.role === 'control-plane');
  const first = inv.nodes.find((n) => n.role === 'control-plane');
  if (!self && !first) throw new GateError('no control-plane node in the inventory to issue a kubelet client certificate');
  return (self ?? first) as InventoryNode;
}

function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

/** The client certificate and key a generated kubeconfig embeds. */
function embeddedPair(kubeconfig: string): { cert: string; key: string } {
  const doc = parseDocument(kubeconfig);
  const users = doc.get('users');
  const first = isSeq(users) ? users.items[0] : undefined;
  const user = isMap(first) ? first.get('user') : undefined;
  const cert = isMap(user) ? user.get('client-certificate-data') : undefined;
  const key = isMap(user) ? user.get('client-key-data') : undefined;
  if (typeof cert !== 'string' || typeof key !== 'string') throw new GateError('kubeadm kubeconfig user printed no embedded client certificate and key');
  return { cert: Buffer.from(cert, 'base64').toString('utf8'), key: Buffer.from(key, 'base64').toString('utf8') };
}

/**
 * The node's kubelet kubeconfig with its user's credentials replaced by the embedded pair: cluster
 * name, server and CA stay the node's own (the runbook's "adjust the cluster name and server").
 * Falls back to the generated kubeconfig when the node has none that parses.
 */
export function kubeletKubeconfig(current: string | undefined, generated: string, pair: { cert: string; key: string }): string {
  if (current) {
    const doc = parseDocument(current);
    const users = doc.get('users');
    if (!doc.errors.length && isSeq(users) && users.items.length > 0) {
      for (const item of users.items) {
        if (!isMap(item)) continue;
        item.set('user', doc.createNode({ 'client-certificate-data': b64(pair.cert), 'client-key-data': b64(pair.key) }));
      }
      return doc.toString({ lineWidth: 0 });
    }
  }
  return generated;
}


/** issue-kubelet-client: runs kubeadm kubeconfig user on the signer; keeps the result in memory. */
export async function issueKubeletClient(ctx: KubeletContext): Promise<string> {
  const { node } = ctx;
  const signer = signerFor(ctx.inventory, node);
  const profile = ctx.profiles.get(signer.os);
  const template = profile.commands.kubeadmKubeconfigUser;
  if (!template) throw new GateError(`${profile.file} has no command kubeadmKubeconfigUser, so ${signer.name} cannot issue kubelet certificates`);
  const clientName = `system:node:${kubeNodeName(node)}`;
  const session = signer.name === node.name ? ctx.session : await ctx.sessionTo(signer.name);
  const res = await session.exec(profile.rootShell, { stdin: renderScript(template, { ...nodeVars(signer, profile, ctx.runId), clientName }, {}) });
  if (res.code !== 0) throw new GateError(`kubeadm kubeconfig user on ${signer.name} exited ${res.code}: ${outputTail(res.stderr, 3, '(no error output)')}`);
  // The output holds a private key: parsed here, never logged or returned.
  const pair = embeddedPair(res.stdout.slice(res.stdout.indexOf('apiVersion:')));
  const info = inspectCertificate(pair.cert);
  if (commonName(info.subject) !== clientName || !info.subject.includes(`O=${ORG}`)) throw new GateError(`the issued certificate is for ${info.subject}, not CN=${clientName}, O=${ORG}`);
  let current: string | undefined;
  const conf = node.vars.kubeletConf;
  if (conf) {
    const read = await ctx.session.exec(node.rootShell, { stdin: `set -euo pipefail\nif [ -f ${shq(conf)} ]; then cat ${shq(conf)}; fi\n` });
    if (read.code === 0 && read.stdout.trim()) current = read.stdout;
  }
  ctx.nodeSecrets.kubeletClientCert = pair.cert.trim();
  ctx.nodeSecrets.kubeletClientKey = pair.key.trim();
  ctx.nodeSecrets.kubeletKubeconfig = kubeletKubeconfig(current, res.stdout, pair).trim();
  ctx.nodeSecrets.kubeletClientFingerprint = info.fingerprint;
  ctx.nodeSecrets.kubeletClientName = clientName;
  return `issued CN=${clientName} on ${signer.name}, serial ${info.serial}, expires ${info.notAfter.toISOString().slice(0, 10)} (kept in memory)`;
}

/**
 * Why a kubelet client certificate is not one the API accepts for this node now, or undefined:
 * CN system:node:NAME in O system:nodes, signed by the cluster CA, valid now, and newer than the
 * one the node had before. Any such certificate, not only the one issued: a kubelet that wrote its
 * store from an embedded pair rotates it through a CSR at once (client-go certificate manager,
 * forceRotation), so within seconds it holds a newer one than the one issued here. Pure.
 */
export function clientCertProblem(c: CertRead, expect: { clientName: string; ca: string; before?: CertInfo; now: number }): string | undefined {
  if (commonName(c.subject) !== expect.clientName || !c.subject.includes(`O=${ORG}`)) return `it is for ${c.subject}, not CN=${expect.clientName}, O=${ORG}`;
  const cert = new X509Certificate(c.pem);
  const ca = new X509Certificate(expect.ca);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return `it is not signed by the cluster CA (${c.issuer})`;
  if (c.notAfter.getTime() <= expect.now || c.notBefore.getTime() > expect.now) return `it is not valid now (${c.notBefore.toISOString()} to ${c.notAfter.toISOString()})`;
  if (expect.before && (c.fingerprint === expect.before.fingerprint || c.notBefore.getTime() < expect.before.notBefore.getTime())) return `it is still the certificate from before (serial ${c.serial})`;
  return undefined;
}

/**
 * kubelet-renewed: waits until the kubelet's current client certificate is a new one for this node
 * signed by the cluster CA (clientCertProblem), its key file 0600, and, when the node had a
 * self-signed serving certificate, that it was made anew.
 */
export async function kubeletRenewed(step: PlanStep, ctx: KubeletContext, snapshot: Map<string, CertInfo | undefined>): Promise<string> {
  const dir = String(step.with.dir);
  const client = `${dir}/kubelet-client-current.pem`;
  const serving = `${dir}/kubelet.crt`;
  const clientName = ctx.nodeSecrets.kubeletClientName;
  if (!clientName) throw new GateError('no kubelet client certificate was issued for this node in this run');
  const signer = signerFor(ctx.inventory, ctx.node);
  const caPath = `${ctx.profiles.get(signer.os).vars.kubePki}/ca.crt`;
  const ca = (await readCerts(signer.name === ctx.node.name ? ctx.session : await ctx.sessionTo(signer.name), ctx.profiles.get(signer.os).rootShell, [caPath])).get(caPath);
  if (!ca) throw new GateError(`${caPath} on ${signer.name} is missing: cannot tell which CA the kubelet's certificate must come from`);
  const before = snapshot.get(client);
  const hadServing = snapshot.get(serving);
  const found = await poll(ctx, ctx.timeouts.podStartMs, `${client} to hold a new certificate for ${clientName}${hadServing ? ` and ${serving} to be made anew` : ''}`, async () => {
    const now = await readCerts(ctx.session, ctx.node.rootShell, hadServing ? [client, serving] : [client]);
    const c = now.get(client);
    if (!c) throw new Error(`${client} is missing`);
    const problem = clientCertProblem(c, { clientName, ca: ca.pem, ...(before ? { before } : {}), now: ctx.now() });
    if (problem) throw new Error(`${client}: ${problem}`);
    const mode = await ctx.session.exec(ctx.node.rootShell, { stdin: `stat -L -c %a ${shq(client)}\n` });
    if (mode.stdout.trim() !== '600') throw new Error(`${client} has mode ${mode.stdout.trim() || '?'}, not 600: it holds the private key`);
    if (hadServing) {
      const s = now.get(serving);
      if (!s) throw new Error(`${serving} is missing`);
      if (s.fingerprint === hadServing.fingerprint) throw new Error(`${serving} is unchanged`);
      if (s.notAfter.getTime() <= ctx.now()) throw new Error(`${serving} is already expired`);
    }
    return c;
  });
  const rotated = found.fingerprint !== ctx.nodeSecrets.kubeletClientFingerprint ? ' (the kubelet already rotated the issued one through a CSR)' : '';
  return `client certificate serial ${found.serial} in use${rotated}, expires ${found.notAfter.toISOString().slice(0, 10)}${hadServing ? '; serving certificate made anew' : ''}`;
}

interface NodeCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

/**
 * node-ready: when the inventory's kubeconfig reaches the API, waits for the Node's Ready
 * condition. An API that does not answer makes this a note, not a failure: the certificate
 * itself was verified by kubelet-renewed.
 */
export async function nodeReady(ctx: KubeletContext): Promise<string> {
  const inv = ctx.inventory;
  if (!inv.kubeconfig) return 'Node Ready not checked: the inventory names no kubeconfig';
  const name = kubeNodeName(ctx.node);
  let client: KubeClient;
  try {
    client = new KubeClient(readKubeconfig(inv.kubeconfig), 5000, ctx.route);
    await client.request('GET', `/api/v1/nodes/${encodeURIComponent(name)}`);
  } catch (err) {
    return `Node Ready not checked: ${errorMessage(err)}`;
  }
  let last: NodeCondition | undefined;
  await poll(ctx, ctx.timeouts.podStartMs, `Node ${name} to be Ready`, async () => {
    const n = await client.request<{ status?: { conditions?: NodeCondition[] } }>('GET', `/api/v1/nodes/${encodeURIComponent(name)}`);
    last = n.status?.conditions?.find((c) => c.type === 'Ready');
    if (last?.status === 'True') return true;
    throw new Error(`Ready=${last?.status ?? 'unknown'}${last?.message ? `: ${last.message}` : ''}`);
  });
  return name === ctx.node.name ? 'Node Ready' : `Node ${name} Ready`;
}
