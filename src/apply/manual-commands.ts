/**
 * The commands printed when the management cluster's API cannot be used, for the user to run by
 * hand once it can: copy the renewed etcd client pair off an etcd node, store it in the secret
 * keeping its type, and restart etcdadm-controller as `kubectl rollout restart` does. Pure.
 */
import type { Inventory, InventoryNode } from '../inventory/types.js';
import { sshCommandLine } from '../transport/ssh-command-line.js';
import { shq } from '../util/shell.js';

export const SECRET_NAMESPACE = 'eksa-system';
/** Made by etcdadm-controller through Cluster API's util/secret; a Secret's type can never change. */
export const SECRET_TYPE = 'cluster.x-k8s.io/secret';

export const ETCDADM_CONTROLLER = { namespace: 'etcdadm-controller-system', deployment: 'etcdadm-controller-controller-manager' } as const;

/** What pauses etcdadm-controller's health checks and reconcile of an EtcdadmCluster (annotations.HasPaused). */
export const PAUSED = 'cluster.x-k8s.io/paused';
/** Says the paused annotation is rotate-certs' own; its value is the run that set it. */
export const PAUSED_BY = 'rotate-certs.eks-anywhere.io/paused-by-run';

/** EKS Anywhere names a cluster's EtcdadmCluster <cluster>-etcd (pkg/clusterapi/name.go EtcdClusterName). */
export const etcdadmClusterName = (cluster: string): string => `${cluster}-etcd`;

/** The kubectl line that takes rotate-certs' pause off by hand. */
export function unpauseByHand(inv: Pick<Inventory, 'cluster' | 'kubeconfig'>): string {
  return `${kubectl(inv)} -n ${SECRET_NAMESPACE} annotate etcdadmclusters.etcdcluster.cluster.x-k8s.io ${etcdadmClusterName(inv.cluster)} ${PAUSED}- ${PAUSED_BY}-`;
}

export function etcdClientSecretName(inv: Pick<Inventory, 'cluster'>): string {
  return `${inv.cluster}-apiserver-etcd-client`;
}

function kubectl(inv: Pick<Inventory, 'kubeconfig'>): string {
  return `kubectl${inv.kubeconfig ? ` --kubeconfig ${shq(inv.kubeconfig)}` : ''}`;
}


/** Copying the pair off `node`, where each OS keeps it: sudo on Ubuntu/RHEL, sudo sheltie (script on stdin) on Bottlerocket. */
function copyPair(node: InventoryNode): string[] {
  return (['crt', 'key'] as const).map((ext) => {
    const local = `apiserver-etcd-client.${ext}`;
    const umask = ext === 'key' ? '(umask 077; ' : '';
    const end = ext === 'key' ? ')' : '';
    return node.os === 'bottlerocket'
      ? `${umask}echo 'cat /var/lib/etcd/pki/${local}' | ${sshCommandLine(node)} sudo sheltie > ${local}${end}`
      : `${umask}${sshCommandLine(node)} sudo cat /etc/etcd/pki/${local} > ${local}${end}`;
  });
}

/** kubectl rollout restart, then rollout status, of etcdadm-controller. */
export function restartCommands(inv: Pick<Inventory, 'kubeconfig'>): string[] {
  const { namespace, deployment } = ETCDADM_CONTROLLER;
  return [
    `${kubectl(inv)} -n ${namespace} rollout restart deployment/${deployment}`,
    `${kubectl(inv)} -n ${namespace} rollout status deployment/${deployment} --timeout=5m`,
  ];
}

/** The secret by hand, from the first etcd node (the one whose pair the run read), then the controller restart. */
export function secretByHand(inv: Inventory): string[] {
  const etcd = inv.nodes.find((n) => n.role === 'etcd');
  const k = kubectl(inv);
  return [
    etcd
      ? `1. copy the renewed pair from ${etcd.name} (${etcd.os}: ${etcd.os === 'bottlerocket' ? '/var/lib/etcd/pki, through sudo sheltie' : '/etc/etcd/pki'}) to this machine:`
      : '1. copy apiserver-etcd-client.crt and .key from an etcd node to this machine:',
    ...(etcd ? copyPair(etcd).map((c) => `     ${c}`) : []),
    '   (Ubuntu/RHEL etcd nodes keep it in /etc/etcd/pki, read with sudo; Bottlerocket ones in /var/lib/etcd/pki, read through sudo sheltie)',
    `2. store it, keeping the secret's type ${SECRET_TYPE}:`,
    `     ${k} create secret generic ${etcdClientSecretName(inv)} --type=${SECRET_TYPE} --from-file=tls.crt=apiserver-etcd-client.crt --from-file=tls.key=apiserver-etcd-client.key -n ${SECRET_NAMESPACE} --dry-run=client -o yaml | ${k} apply -f -`,
    '3. restart etcdadm-controller, which reads the secret only when it starts:',
    ...restartCommands(inv).map((c) => `     ${c}`),
  ];
}
