/**
 * What etcdctl says about an etcd cluster, judged: the output of `etcdctl member list` followed by
 * `etcdctl endpoint health --cluster` (simple output, etcd 3.4 and 3.5: etcdctl/ctlv3/command/
 * printer_simple.go prints "ID, STATUS, NAME, PEER ADDRS, CLIENT ADDRS, IS LEARNER" per member and
 * "URL is healthy: ..." per endpoint on stdout, unhealthy ones on stderr). Pure.
 */

export interface EtcdMemberLine {
  id: string;
  name: string;
  started: boolean;
  clientUrls: string[];
  learner: boolean;
}

export interface EtcdHealthView {
  members: EtcdMemberLine[];
  /** Client URLs `endpoint health` called healthy. */
  healthy: string[];
  /** Client URLs it called unhealthy, with etcdctl's reason. */
  unhealthy: Array<{ url: string; why: string }>;
}

const HEALTHY = /^(\S+) is healthy: /;
const UNHEALTHY = /^(\S+) is unhealthy: (.*)$/;

export function parseEtcdHealth(stdout: string, stderr = ''): EtcdHealthView {
  const view: EtcdHealthView = { members: [], healthy: [], unhealthy: [] };
  for (const line of `${stdout}\n${stderr}`.split('\n').map((l) => l.trim())) {
    // ID, STATUS, NAME, PEER ADDRS, CLIENT ADDRS[, IS LEARNER]: fields joined by ", ", URLs by ",".
    const f = line.split(', ');
    if (f.length >= 5 && /^[0-9a-f]{1,16}$/.test(f[0] as string) && (f[1] === 'started' || f[1] === 'unstarted')) {
      view.members.push({ id: f[0] as string, started: f[1] === 'started', name: f[2] as string, clientUrls: (f[4] as string).split(',').filter(Boolean), learner: f[5] === 'true' });
      continue;
    }
    let m: RegExpExecArray | null;
    if ((m = HEALTHY.exec(line))) view.healthy.push(m[1] as string);
    else if ((m = UNHEALTHY.exec(line))) view.unhealthy.push({ url: m[1] as string, why: m[2] as string });
  }
  return view;
}

/**
 * Why the cluster is not fully healthy, or undefined: every member listed, started (an unstarted
 * member has no client URL, so `endpoint health --cluster` would not even ask it) and not a
 * learner, and every member's client URL called healthy.
 */
export function etcdHealthProblem(view: EtcdHealthView): string | undefined {
  if (view.members.length === 0) return 'etcdctl listed no members';
  const problems: string[] = [];
  for (const m of view.members) {
    const label = m.name || m.id;
    if (!m.started) problems.push(`member ${label} is not started`);
    else if (m.learner) problems.push(`member ${label} is still a learner`);
    else if (!m.clientUrls.some((u) => view.healthy.includes(u))) {
      const bad = view.unhealthy.find((u) => m.clientUrls.includes(u.url));
      problems.push(`member ${label} is not healthy${bad ? ` (${bad.why})` : ''}`);
    }
  }
  return problems.length > 0 ? problems.join('; ') : undefined;
}
