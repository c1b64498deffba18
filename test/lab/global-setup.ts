/** vitest globalSetup for the e2e project: the lab needs root and a few binaries; clear leftovers of crashed runs. */
import { execFileSync } from 'node:child_process';
import { cleanupStaleLabs } from './lab.js';

const NEEDED = ['ip', 'nsenter', 'unshare', 'sshd', 'ssh', 'ssh-keygen', 'openssl', 'etcd', 'etcdctl', 'sudo', 'useradd', 'jq', 'base64'];

export default async function setup(): Promise<() => Promise<void>> {
  if (process.getuid?.() !== 0) throw new Error('the e2e lab needs root (network and mount namespaces, sshd per node): run the e2e tests as root');
  const missing = NEEDED.filter((b) => {
    try {
      execFileSync('bash', ['-c', `command -v ${b} || test -x /usr/sbin/${b}`], { stdio: 'ignore', env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' } });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length) throw new Error(`the e2e lab needs these programs: ${missing.join(', ')} (Debian: apt-get install openssh-server etcd-server etcd-client openssl sudo iproute2 jq)`);
  await cleanupStaleLabs();
  return async () => {
    await cleanupStaleLabs();
  };
}
