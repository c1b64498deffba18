/** The lab's kubelet (test/lab): Node Ready from each kubelet's state, the restart failure mode, expireKubelet. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startLab, type Lab } from '../lab/lab.js';

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}
interface Node {
  metadata: { name: string };
  status: { conditions: Condition[] };
}

const PKI = '/var/lib/kubelet/pki';

describe('lab kubelet: 1 control plane (stacked etcd), an Ubuntu and a Bottlerocket worker', () => {
  let lab: Lab;
  let get: <T>(path: string) => Promise<T>;
  const ready = async (name: string) => (await get<Node>(`/api/v1/nodes/${name}`)).status.conditions.find((c) => c.type === 'Ready');

  beforeAll(async () => {
    lab = await startLab({
      nodes: [
        { name: 'lab-cp-1', role: 'control-plane' },
        { name: 'lab-md-1', role: 'worker' },
        { name: 'lab-md-2', role: 'worker', os: 'bottlerocket' },
      ],
    });
    // The admin client certificate of admin.conf, as rotate-certs reads it from a control-plane node.
    const cp = lab.node('lab-cp-1');
    const kc = parse((await cp.readFile('/etc/kubernetes/admin.conf')).toString()) as { users: { user: Record<string, string> }[] };
    const b64 = (k: string) => Buffer.from(kc.users[0]!.user[k]!, 'base64');
    const ca = readFileSync(join(lab.caDir, 'ca.crt'));
    get = (path) =>
      new Promise((resolve, reject) => {
        const req = request({ host: cp.host, port: 6443, path, ca, cert: b64('client-certificate-data'), key: b64('client-key-data'), timeout: 5000 }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(`GET ${path}: ${res.statusCode} ${body}`))));
        });
        req.on('error', reject);
        req.end();
      });
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('every kubelet node is Ready while its kubelet runs on a valid client certificate', async () => {
    const list = await get<{ items: Node[] }>('/api/v1/nodes');
    expect(list.items.map((n) => n.metadata.name).sort()).toEqual(['lab-cp-1', 'lab-md-1', 'lab-md-2']);
    for (const n of list.items) expect(n.status.conditions.find((c) => c.type === 'Ready'), n.metadata.name).toMatchObject({ status: 'True', reason: 'KubeletReady' });
    // Each OS's kubelet kubeconfig, pointing at the rotating pem; Bottlerocket's is its own, not kubeadm's.
    for (const [node, conf] of [['lab-md-1', '/etc/kubernetes/kubelet.conf'], ['lab-md-2', '/etc/kubernetes/kubelet/kubeconfig']] as const) {
      const r = await lab.node(node).exec(`stat -c %a ${conf} && grep -c 'client-certificate: ${PKI}/kubelet-client-current.pem' ${conf}`);
      expect(r.stdout, node).toBe('600\n1\n');
    }
    expect((await lab.node('lab-md-2').exec('test -e /var/lib/kubeadm/kubelet.conf')).code).toBe(1);
  });

  it('expireKubelet: NotReady on an expired client certificate, still after a restart; the runbook fix makes it Ready', async () => {
    const w = lab.node('lab-md-1');
    const before = (await w.exec(`readlink ${PKI}/kubelet-client-current.pem`)).stdout.trim();
    await lab.expireKubelet('lab-md-1', { client: 'expired', serving: 'expiring' });
    const target = (await w.exec(`readlink ${PKI}/kubelet-client-current.pem`)).stdout.trim();
    expect(target).toMatch(/^\/var\/lib\/kubelet\/pki\/kubelet-client-\d{4}(-\d\d){5}\.pem$/);
    expect(target).not.toBe(before);
    expect((await w.exec(`stat -c %a ${target} ${PKI}/kubelet.crt ${PKI}/kubelet.key`)).stdout).toBe('600\n644\n600\n');
    const client = new X509Certificate(await w.readFile(target));
    expect(client.subject).toBe('O=system:nodes\nCN=system:node:lab-md-1');
    expect(client.verify(new X509Certificate(readFileSync(join(lab.caDir, 'ca.crt'))).publicKey)).toBe(true);
    expect(Date.parse(client.validTo)).toBeLessThan(Date.now());
    // As the kubelet writes it (client-go util/cert GenerateSelfSignedCertKey): the leaf
    // "HOST@UNIX", then the one-off CA "HOST-ca@UNIX" that signed it, with the same dates.
    const [serving, servingCa] = (await w.readFile(`${PKI}/kubelet.crt`)).toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!.map((p) => new X509Certificate(p));
    expect(Date.parse(serving!.validTo) - Date.now()).toBeGreaterThan(36 * 3600_000);
    expect(Date.parse(serving!.validTo) - Date.now()).toBeLessThan(49 * 3600_000);
    expect(serving!.subject).toMatch(/^CN=lab-md-1@\d+$/);
    expect(serving!.subjectAltName).toBe('DNS:lab-md-1');
    expect(servingCa!.subject).toMatch(/^CN=lab-md-1-ca@\d+$/);
    expect(servingCa!.ca).toBe(true);
    expect(serving!.checkIssued(servingCa!) && serving!.verify(servingCa!.publicKey)).toBe(true);
    expect(servingCa!.verify(servingCa!.publicKey)).toBe(true);
    expect(servingCa!.validTo).toBe(serving!.validTo);

    expect(await ready('lab-md-1')).toMatchObject({ status: 'False', reason: 'KubeletNotReady', message: expect.stringContaining('x509: certificate has expired or is not yet valid') });
    expect(await ready('lab-md-2')).toMatchObject({ status: 'True' });
    // It still starts on an expired pem (the Node stays NotReady).
    expect((await w.exec('systemctl restart kubelet && systemctl is-active kubelet')).stdout).toBe('active\n');
    expect((await ready('lab-md-1'))?.status).toBe('False');

    // The runbook's worker fix: kubelet.conf with an embedded certificate from kubeadm, pem removed, restart.
    const user = await lab.node('lab-cp-1').exec('kubeadm kubeconfig user --org system:nodes --client-name system:node:lab-md-1');
    expect(user.code, user.stderr).toBe(0);
    await w.writeFile('/etc/kubernetes/kubelet.conf', user.stdout, 0o600);
    const r = await w.exec(`rm -f ${PKI}/kubelet-client-* && systemctl restart kubelet && readlink ${PKI}/kubelet-client-current.pem`);
    expect(r.code, r.stderr).toBe(0);
    const fresh = new X509Certificate(await w.readFile(r.stdout.trim()));
    const embedded = (parse(user.stdout) as { users: { user: Record<string, string> }[] }).users[0]!.user['client-certificate-data']!;
    expect(fresh.fingerprint256).toBe(new X509Certificate(Buffer.from(embedded, 'base64')).fingerprint256);
    expect((await w.exec(`stat -c %a ${r.stdout.trim()}`)).stdout).toBe('600\n');
    expect(await ready('lab-md-1')).toMatchObject({ status: 'True', reason: 'KubeletReady' });
  });

  it('a stopped kubelet makes its Node NotReady until it starts again', async () => {
    const w = lab.node('lab-md-2');
    expect((await w.exec('systemctl stop kubelet; systemctl is-active kubelet')).code).toBe(3);
    expect(await ready('lab-md-2')).toMatchObject({ status: 'False', message: expect.stringMatching(/Kubelet stopped posting node status/) });
    expect((await w.exec('systemctl start kubelet')).code).toBe(0);
    expect((await ready('lab-md-2'))?.status).toBe('True');
  });

  it('restart fails when the kubeconfig names a client certificate file that is gone (Bottlerocket kubeconfig)', async () => {
    const w = lab.node('lab-md-2');
    const r = await w.exec(`rm -f ${PKI}/kubelet-client-*; systemctl restart kubelet`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('failed to run Kubelet: unable to load bootstrap kubeconfig: stat /etc/kubernetes/bootstrap-kubelet.conf: no such file or directory');
    expect(r.stderr).toContain(`unable to read client-cert ${PKI}/kubelet-client-current.pem`);
    expect((await w.exec('systemctl is-active kubelet')).code).toBe(3);
    expect((await w.readFile('/var/log/kubelet.log')).toString()).toMatch(/unable to load bootstrap kubeconfig/);
    expect(await ready('lab-md-2')).toMatchObject({ status: 'False', message: expect.stringMatching(/Kubelet stopped posting node status/) });
    // Nothing was made up: no pem appeared.
    expect((await w.exec(`ls ${PKI}`)).stdout).not.toMatch(/kubelet-client/);
  });
});
