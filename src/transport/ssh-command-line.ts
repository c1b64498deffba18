/**
 * The OpenSSH command line that reaches a node the way rotate-certs does (user, port, key,
 * known_hosts, host key policy, jump host), for every command printed for a person to run: check's
 * and the plan's dry runs, and the by-hand fallbacks. Pure.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { InventoryNode } from '../inventory/types.js';
import { shq } from '../util/shell.js';

export function sshCommandLine(node: Pick<InventoryNode, 'host' | 'ssh'>, home: string = homedir()): string {
  const s = node.ssh;
  const opts = [
    ...(s.identityFile ? [`-i ${shq(s.identityFile)}`] : []),
    ...(s.port !== 22 ? [`-p ${s.port}`] : []),
    // ssh's own default needs no option; any other file must be named, or ssh would not use it.
    ...(s.knownHostsFile !== join(home, '.ssh', 'known_hosts') ? [`-o UserKnownHostsFile=${shq(s.knownHostsFile)}`] : []),
    ...(s.hostKeyPolicy === 'accept-new' ? ['-o StrictHostKeyChecking=accept-new'] : []),
    ...(s.jumpHost ? [`-J ${shq(`${s.jumpHost.user}@${s.jumpHost.host}${s.jumpHost.port === 22 ? '' : `:${s.jumpHost.port}`}`)}`] : []),
  ];
  return ['ssh', ...opts, shq(`${s.user}@${node.host}`)].join(' ');
}
