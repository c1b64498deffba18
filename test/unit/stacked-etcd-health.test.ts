/**
 * The stacked-etcd health command of each OS profile, run with bash against the lab's crictl and ctr
 * emulations (test/lab/shims, which follow cri-tools and containerd: labels, filters, exec), their
 * paths moved under a temporary folder, and an etcdctl that answers like a healthy cluster. The
 * container asked is the one the kubelet runs for this node's etcd static pod
 * (kube-system/etcd-<Node name, lower-cased>), found by its labels: a newer container named etcd in
 * another pod is never asked (etcdctl there cannot open the node's certificates). And the gate and
 * pre-flight give the command the Node name.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { stackedEtcdHealthy, DEFAULT_TIMEOUTS, type GateContext } from '../../src/apply/gates.js';
import type { PlanNode } from '../../src/plan/types.js';
import { loadProfile } from '../../src/profiles/profile.js';
import { renderDisplay, renderScript } from '../../src/runbook/template.js';
import type { ExecResult } from '../../src/transport/session.js';

const SHIMS = fileURLToPath(new URL('../lab/shims', import.meta.url));
const MEMBERS = [
  '3893cc3b890eb1c, started, lab-cp-1, https://10.0.0.21:2380, https://10.0.0.21:2379, false',
  '7e4d8cd152d57928, started, lab-cp-2, https://10.0.0.22:2380, https://10.0.0.22:2379, false',
];
const HEALTH = ['https://10.0.0.21:2379 is healthy: successfully committed proposal: took = 2ms', 'https://10.0.0.22:2379 is healthy: successfully committed proposal: took = 3ms'];

let dir: string;
let node: string;

/** A node: the shims with their paths under `node`, an etcdctl that answers, apiclient's `exec admin`. */
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rc-stacked-etcd-'));
  node = join(dir, 'node');
  const bin = join(node, 'bin');
  mkdirSync(bin, { recursive: true });
  const moved = (text: string) =>
    text
      .replaceAll('/usr/local/bin/rc-lab-lib.sh', join(bin, 'rc-lab-lib.sh'))
      .replaceAll('/etc/rotate-certs-lab/node.env', join(node, 'node.env'))
      .replaceAll('/var/lib/rotate-certs-lab', join(node, 'state'))
      .replaceAll('/var/log/ctr.log', join(node, 'ctr.log'))
      .replaceAll('/etc/crictl.yaml', join(node, 'crictl.yaml'));
  for (const f of ['crictl', 'ctr', 'rc-lab-lib.sh']) writeFileSync(join(bin, f), moved(readFileSync(join(SHIMS, f), 'utf8')), { mode: 0o755 });
  writeFileSync(join(node, 'node.env'), 'NODE_NAME=lab-cp-1\n');
  writeFileSync(join(node, 'crictl.yaml'), 'runtime-endpoint: unix:///run/containerd/containerd.sock\n');
  writeFileSync(
    join(bin, 'etcdctl'),
    `#!/bin/bash\ncase " $* " in *" member list "*) printf '%s\\n' ${MEMBERS.map((l) => `'${l}'`).join(' ')} ;; *" endpoint health "*) printf '%s\\n' ${HEALTH.map((l) => `'${l}'`).join(' ')} ;; *) exit 1 ;; esac\n`,
  );
  writeFileSync(join(bin, 'apiclient'), '#!/bin/bash\n[ "$1 $2" = "exec admin" ] || exit 2\nshift 2\nexec "$@"\n');
  for (const f of ['etcdctl', 'apiclient']) chmodSync(join(bin, f), 0o755);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sh(script: string): ExecResult {
  const r = spawnSync('bash', ['-s'], { input: `export PATH=${join(node, 'bin')}:$PATH\n${script}`, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Containers as the lab's kubelet (or a workload) left them: name, pod, namespace, age in seconds, state. */
function containers(list: Array<{ pod: string; ns?: string; age: number; exited?: boolean }>): string[] {
  rmSync(join(node, 'state'), { recursive: true, force: true });
  const script = list
    .map((c) => {
      const created = `$(( $(date +%s%N) - ${c.age} * 1000000000 ))`;
      const make = `id=$(rc_container_new etcd ${c.pod} public.ecr.aws/eks-distro/etcd-io/etcd:v3.5.9-eks-1-28-9 "${created}" ${c.ns ?? 'kube-system'}); echo "$id"`;
      return c.exited ? `${make}; rc_container_set "$id" '.state = "CONTAINER_EXITED"'` : make;
    })
    .join('\n');
  const r = sh(`. ${join(node, 'bin', 'rc-lab-lib.sh')}\n${script}`);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim().split('\n');
}

/** The profile's stackedEtcdHealth as the gate sends it, run on the node; and what etcdctl ran in. */
function health(os: 'ubuntu' | 'bottlerocket', kubeNodeName = 'lab-cp-1'): ExecResult {
  const p = loadProfile(os);
  return sh(renderScript(p.commands.stackedEtcdHealth as string, { ...p.vars, nodeName: 'cp-1', host: '10.0.0.21', runId: 'r', kubeNodeName }, {}));
}

describe.each(['ubuntu', 'bottlerocket'] as const)('%s: stackedEtcdHealth asks the etcd container of the node\'s static pod', (os) => {
  it('not a newer running container named etcd of another pod, which the old name or image match would have taken', () => {
    containers([
      { pod: 'etcd-lab-cp-1', age: 600 },
      { pod: 'etcd-0', ns: 'default', age: 5 },
    ]);
    // The listing by name alone (what the command used to do) puts the workload's first.
    const byName = sh('crictl exec "$(crictl ps --name "^etcd$" --state running -q | head -n 1)" etcdctl --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key member list');
    expect(byName.code).toBe(1);
    expect(byName.stderr).toContain('Error: open /etc/kubernetes/pki/etcd/healthcheck-client.crt: no such file or directory');
    const r = health(os);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${[...MEMBERS, ...HEALTH].join('\n')}\n`);
  });

  it('the pod is named after the Node lower-cased, as the kubelet names it', () => {
    containers([{ pod: 'etcd-lab-cp-1', age: 60 }]);
    expect(health(os, 'LAB-CP-1').code).toBe(0);
  });

  it('none of this node\'s: a clear line on stderr, exit 1, and etcdctl is not run', () => {
    containers([
      { pod: 'etcd-0', ns: 'default', age: 5 },
      { pod: 'etcd-lab-cp-2', age: 60 }, // another Node's, say a renamed node
    ]);
    const r = health(os);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^no (running )?etcd container of this node's static pod kube-system\/etcd-lab-cp-1 \(/);
  });

  it('several of the static pod: the newest that runs is asked, with a warning', () => {
    const [, , exited] = containers([
      { pod: 'etcd-lab-cp-1', age: 600 },
      { pod: 'etcd-lab-cp-1', age: 60 },
      { pod: 'etcd-lab-cp-1', age: 1, exited: true },
    ]);
    const r = health(os);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(os === 'ubuntu' ? /^warning: 2 running etcd containers of kube-system\/etcd-lab-cp-1; asking the newest$/m : /^warning: 3 etcd containers of kube-system\/etcd-lab-cp-1; asking the newest that runs$/m);
    expect(exited).toMatch(/^[0-9a-f]{64}$/);
    expect(r.stdout).toContain(MEMBERS[0]);
  });

  it('the Node name reaches the shell quoted, as every variable does', () => {
    const p = loadProfile(os);
    expect(renderDisplay(p.commands.stackedEtcdHealth as string, { ...p.vars, kubeNodeName: 'lab-cp-1' })).toContain('node=lab-cp-1\n');
    // Validated as a Node name before it gets here; quoted all the same.
    expect(renderDisplay(p.commands.stackedEtcdHealth as string, { ...p.vars, kubeNodeName: "x'; reboot" })).toContain(`node='x'\\''; reboot'\n`);
  });
});

describe('the lab emulations refuse what the real programs refuse', () => {
  it('crictl --label: each KEY=VALUE, repeated or comma-separated; anything else is fatal', () => {
    const [mine] = containers([{ pod: 'etcd-lab-cp-1', age: 60 }, { pod: 'etcd-0', ns: 'default', age: 5 }]);
    expect(sh('crictl ps -q --label "io.kubernetes.pod.namespace=kube-system, io.kubernetes.pod.name=etcd-lab-cp-1"').stdout.trim()).toBe(mine);
    const bad = sh('crictl ps -q --label io.kubernetes.pod.name');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/level=fatal msg="incorrectly specified label: io.kubernetes.pod.name"/);
  });

  it('ctr c ls: a key with a dash must be quoted; a trailing comma or a flag after a filter is a parse error', () => {
    containers([{ pod: 'etcd-lab-cp-1', age: 60 }]);
    expect(sh('ctr -n k8s.io c ls -q \'labels."io.cri-containerd.kind"==container\'').stdout.trim().split('\n')).toHaveLength(1);
    for (const args of ["'labels.io.cri-containerd.kind==container'", "'labels.io.kubernetes.pod.name==etcd-lab-cp-1,'", "'labels.io.kubernetes.pod.name==etcd-lab-cp-1' -q"]) {
      const r = sh(`ctr -n k8s.io c ls ${args}`);
      expect(r.code, args).toBe(1);
      expect(r.stderr, args).toMatch(/^ctr: filters: parse error: \[.*\]: .*: invalid argument$/m);
    }
  });
});

describe('the Node name the command is given', () => {
  it('the gate passes its kubelet\'s Node name, or the inventory name when they agree', async () => {
    const seen: Array<Record<string, string> | undefined> = [];
    const ctx = (vars: Record<string, string>) =>
      ({
        node: { name: 'worker-a', vars } as unknown as PlanNode,
        timeouts: DEFAULT_TIMEOUTS,
        run: async (_c: string, v?: Record<string, string>) => {
          seen.push(v);
          return { code: 0, stdout: [...MEMBERS, ...HEALTH].join('\n'), stderr: '' };
        },
        now: () => 0,
        sleep: async () => undefined,
      }) as unknown as GateContext;
    await stackedEtcdHealthy({} as never, ctx({ kubeNodeName: 'ip-10-0-0-31.ec2.internal' }));
    await stackedEtcdHealthy({} as never, ctx({}));
    expect(seen).toEqual([{ kubeNodeName: 'ip-10-0-0-31.ec2.internal' }, { kubeNodeName: 'worker-a' }]);
  });
});
