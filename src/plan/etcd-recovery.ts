/**
 * etcd recovery, the pure parts: which etcd members cannot be healthy as they stand, and whether
 * an unhealthy etcd is explained by them alone. Only then may a rotation renew members of an
 * unhealthy cluster; any other trouble must be fixed first.
 */
import type { CheckReport } from '../check/run.js';

/**
 * A member whose own server or peer certificate has expired or is not yet valid cannot serve or
 * join: an external etcd node's pki/server.crt and pki/peer.crt, or on a control plane with stacked
 * etcd (kubeadm's local etcd) pki/etcd/server.crt and pki/etcd/peer.crt.
 */
const MEMBER_CERT = { etcd: /\/pki\/(server|peer)\.crt$/, 'control-plane': /\/pki\/etcd\/(server|peer)\.crt$/ } as const;

export function etcdExpiredFrom(report: Pick<CheckReport, 'certificates'>): string[] {
  const expired = new Set<string>();
  for (const c of report.certificates) {
    const member = c.role === 'etcd' || c.role === 'control-plane' ? MEMBER_CERT[c.role] : undefined;
    if (member && c.source === 'file' && c.path && member.test(c.path) && (c.status === 'expired' || c.status === 'not-yet-valid')) expired.add(c.node);
  }
  return [...expired];
}

export interface EtcdMember {
  name: string;
  host: string;
}

/**
 * Why an unhealthy etcd is NOT explained by its expired members alone, or undefined when it is:
 * they are too many for the others to hold a quorum (then no member answers), or every endpoint
 * `etcdctl endpoint health --cluster` called unhealthy is one of them.
 */
export function unexplainedEtcdTrouble(members: EtcdMember[], expired: string[], healthOutput: string): string | undefined {
  const quorum = Math.floor(members.length / 2) + 1;
  if (members.length - expired.length < quorum) return undefined;
  const byHost = new Map(members.map((m) => [m.host, m.name]));
  const unhealthy = [...healthOutput.matchAll(/^\s*(?:https?:\/\/)?(\[[^\]]+\]|[^\s/]+?):\d+ is unhealthy/gm)].map((m) => {
    const host = (m[1] as string).replace(/^\[(.*)\]$/, '$1');
    return byHost.get(host) ?? host;
  });
  if (unhealthy.length === 0) return 'the members whose certificates are valid should hold a quorum, but etcdctl could not check them';
  const others = [...new Set(unhealthy.filter((n) => !expired.includes(n)))];
  if (others.length > 0) return `${others.join(', ')} ${others.length > 1 ? 'are' : 'is'} unhealthy too, and ${others.length > 1 ? 'their' : 'its'} certificates have not expired`;
  return undefined;
}
