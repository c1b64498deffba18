/**
 * Reading the host keys a cluster's nodes and jump hosts present, through the SSH transport,
 * without logging in: `rotate-certs trust` judges them against known_hosts and records new ones.
 */
import { KnownHosts, hostKeyName, type HostKeyVerdict } from './known-hosts.js';
import { SshConnector, type PassphraseSource } from './ssh.js';
import type { InventoryNodeSpec, InventorySpec } from '../inventory/types.js';
import { nodeErrorDetail } from '../util/errors.js';
import { mapLimit } from '../util/limit.js';

/** A host whose key is read: a node, or a jump host. */
export interface TrustTarget {
  /** The node's name, or "jump host USER@HOST" (USER@[HOST]:PORT off port 22). */
  label: string;
  host: string;
  port: number;
  knownHostsFile: string;
  /** What the transport connects to. */
  node: InventoryNodeSpec;
  /** A node behind a jump host: that jump host's label. */
  via?: string;
}

/** What was found for one target. */
export interface TrustRow {
  target: TrustTarget;
  key?: Buffer;
  verdict?: HostKeyVerdict;
  /**
   * A key of a type known_hosts does not hold for this host, while it holds these other types: the
   * host no longer offers the recorded type (a rebuilt node), or something else answers in its place.
   */
  otherTypes?: string[];
  /** Why its key could not be read. */
  error?: string;
}

/** Each node as the transport reaches it. */
export function nodeTargets(spec: InventorySpec): TrustTarget[] {
  return spec.nodes.map((n) => ({
    label: n.name,
    host: n.host,
    port: n.ssh.port,
    knownHostsFile: n.ssh.knownHostsFile,
    node: n,
    ...(n.ssh.jumpHost ? { via: jumpLabel(n.ssh.jumpHost) } : {}),
  }));
}

/** Each jump host once, reached directly with the settings of the first node behind it. */
export function jumpTargets(spec: InventorySpec): TrustTarget[] {
  const out = new Map<string, TrustTarget>();
  for (const n of spec.nodes) {
    const jh = n.ssh.jumpHost;
    if (!jh || out.has(jumpLabel(jh))) continue;
    const label = jumpLabel(jh);
    const { jumpHost: _, ...ssh } = n.ssh;
    out.set(label, { label, host: jh.host, port: jh.port, knownHostsFile: n.ssh.knownHostsFile, node: { ...n, name: label, host: jh.host, ssh: { ...ssh, user: jh.user, port: jh.port } } });
  }
  return [...out.values()];
}

const jumpLabel = (jh: { user: string; host: string; port: number }) => `jump host ${jh.user}@${hostKeyName(jh.host, jh.port)}`;

export function withoutJumpHost(n: InventoryNodeSpec): InventoryNodeSpec {
  const { jumpHost: _, ...ssh } = n.ssh;
  return { ...n, ssh };
}

/**
 * Reads each target's host key, logging in nowhere: against `scanKnownHosts` (empty, or holding only trusted jump
 * hosts) every node key is unknown, so it reaches the question, which keeps it and refuses it.
 */
export async function scan(
  targets: TrustTarget[],
  scanKnownHosts: string,
  concurrency: number,
  passphrase: PassphraseSource | undefined,
  hostsFile: (file: string) => KnownHosts,
): Promise<TrustRow[]> {
  const presented = new Map<string, Buffer>();
  const fileOf = new Map(targets.map((t) => [hostKeyName(t.host, t.port), t.knownHostsFile]));
  const reader = new SshConnector({
    ...(passphrase ? { passphrase } : {}),
    // The type the real connection asks for first: the one known_hosts holds.
    preferKeyTypes: (host, port) => {
      const file = fileOf.get(hostKeyName(host, port));
      return file ? hostsFile(file).knownTypes(host, port) : [];
    },
    unknownHostKey: async (k) => {
      presented.set(k.node, k.key);
      return false;
    },
  });
  try {
    return await mapLimit(targets, concurrency, async (target): Promise<TrustRow> => {
      try {
        const session = await reader.connect({ ...target.node, ssh: { ...target.node.ssh, knownHostsFile: scanKnownHosts, hostKeyPolicy: 'strict' } });
        await session.close();
      } catch (err) {
        const key = presented.get(target.label);
        if (key) return { target, key };
        return { target, error: nodeErrorDetail(err, target.label) };
      }
      // No question, so the scan file held its key: a trusted jump host's, at this same address.
      const key = KnownHosts.load(scanKnownHosts).recorded(target.host, target.port)[0];
      return key ? { target, key } : { target, error: 'its host key could not be read' };
    });
  } finally {
    await reader.close();
  }
}

export function judge(rows: TrustRow[], hostsFile: (file: string) => KnownHosts): TrustRow[] {
  return rows.map((r) => {
    if (!r.key) return r;
    const kh = hostsFile(r.target.knownHostsFile);
    const verdict = kh.verify(r.target.host, r.target.port, r.key);
    const otherTypes = verdict === 'unknown' ? kh.knownTypes(r.target.host, r.target.port) : [];
    return { ...r, verdict, ...(otherTypes.length > 0 ? { otherTypes } : {}) };
  });
}
