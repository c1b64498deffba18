/**
 * `os: auto`: which OS profile a node needs, found over its SSH session without root. On
 * Bottlerocket the SSH user lands in the admin container, whose os-release names Amazon Linux;
 * sheltie (or /.bottlerocket) is what gives the host away there.
 */
import type { Connector, NodeSession } from '../transport/session.js';
import { ExitCode, nodeErrorDetail, RotateCertsError, UsageError } from '../util/errors.js';
import { limiter, type Limiter } from '../util/limit.js';
import { groupByMessage } from '../util/wording.js';
import type { Inventory, InventoryNode, InventoryNodeSpec, InventorySpec, OsName } from '../inventory/types.js';

/** Read-only and root-free: prints key=value lines for parseOsProbe. */
export const OS_PROBE = [
  'if [ -d /.bottlerocket ] || command -v sheltie >/dev/null 2>&1 || [ -x /usr/sbin/sheltie ]; then echo bottlerocket=yes; fi',
  'if [ -r /etc/os-release ]; then . /etc/os-release; echo "id=${ID:-}"; echo "pretty=${PRETTY_NAME:-}"; fi',
].join('; ');

/** The profile for a probe's output, or the reason none fits. */
export function parseOsProbe(stdout: string): { os: OsName } | { unknown: string } {
  const kv = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) kv.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  if (kv.get('bottlerocket') === 'yes') return { os: 'bottlerocket' };
  const id = kv.get('id') ?? '';
  if (id === 'ubuntu') return { os: 'ubuntu' };
  if (id === 'rhel') return { os: 'rhel' };
  const pretty = kv.get('pretty');
  return { unknown: id ? `${pretty || id} (os-release ID=${id})` : 'no /etc/os-release and no Bottlerocket admin container' };
}

export async function detectOs(session: NodeSession): Promise<OsName> {
  const res = await session.exec(OS_PROBE);
  const found = parseOsProbe(res.stdout);
  if ('os' in found) return found.os;
  throw new UsageError(`${session.node.name}: os: auto found ${found.unknown}, which rotate-certs has no profile for; supported: ubuntu, rhel, bottlerocket. Set os: for this node in the inventory if it is one of them.`);
}

export function autoNodes(inv: InventorySpec): string[] {
  return inv.nodes.filter((n) => n.os === 'auto').map((n) => n.name);
}

/** The inventory with every OS known; for --dry-run, which connects to nothing. */
export function requireKnownOs(inv: InventorySpec, why: string): Inventory {
  const auto = autoNodes(inv);
  if (auto.length > 0) {
    throw new UsageError(`${auto.join(', ')} ${auto.length === 1 ? 'has' : 'have'} os: auto, which needs a connection to detect, and ${why}. Set os: for ${auto.length === 1 ? 'it' : 'them'} in ${inv.file}, or drop --dry-run (plan and check only read).`);
  }
  return inv as Inventory;
}

/** Applies OS choices already made (a plan's detected OS) to the inventory's auto nodes. */
export function withDetected(inv: InventorySpec, detected: Record<string, OsName>): Inventory {
  const nodes = inv.nodes.map((n): InventoryNode => {
    if (n.os !== 'auto') return { ...n, os: n.os };
    const os = detected[n.name];
    if (!os) throw new UsageError(`${n.name} has os: auto but the plan records no detected OS for it; make a new plan`);
    return { ...n, os };
  });
  return { ...inv, nodes };
}

export interface OsDetection {
  inventory: Inventory;
  /** Nodes whose OS was detected, with what was found. */
  detected: Record<string, OsName>;
  /** Nodes that could not be detected: left out of `inventory`. */
  errors: Array<{ node: string; message: string }>;
}

/**
 * Connects to every `os: auto` node (bounded parallel) and reads its OS. `concurrency` is a number,
 * or a limit shared with other runs (`check` of several clusters).
 */
export async function detectInventoryOs(inv: InventorySpec, connector: Connector, concurrency: number | Limiter): Promise<OsDetection> {
  const found = new Map<string, OsName>();
  const errors: OsDetection['errors'] = [];
  const auto = inv.nodes.filter((n) => n.os === 'auto');
  const limit = typeof concurrency === 'number' ? limiter(concurrency) : concurrency;
  const detect = async (node: InventoryNodeSpec) => {
    let session: NodeSession | undefined;
    try {
      session = await connector.connect(node);
      found.set(node.name, await detectOs(session));
    } catch (err) {
      errors.push({ node: node.name, message: `OS detection (os: auto) failed: ${nodeErrorDetail(err, node.name)}` });
    } finally {
      await session?.close().catch(() => {});
    }
  };
  await Promise.all(auto.map((node) => limit(() => detect(node))));
  // Inventory order, so plans and their digests do not depend on which node answered first.
  const detected: Record<string, OsName> = Object.fromEntries(auto.flatMap((n) => (found.has(n.name) ? [[n.name, found.get(n.name) as OsName]] : [])));
  const nodes = inv.nodes.flatMap((n): InventoryNode[] => {
    if (n.os !== 'auto') return [{ ...n, os: n.os }];
    const os = detected[n.name];
    return os ? [{ ...n, os }] : [];
  });
  return { inventory: { ...inv, nodes }, detected, errors };
}

/** Like detectInventoryOs, but any node left undetected stops the command: rotations need all. */
export async function resolveInventoryOs(inv: InventorySpec, connector: Connector, concurrency: number): Promise<{ inventory: Inventory; detected: Record<string, OsName> }> {
  const r = await detectInventoryOs(inv, connector, concurrency);
  if (r.errors.length > 0) {
    throw new RotateCertsError(`cannot tell the OS of every node, nothing was changed:\n  - ${groupByMessage(r.errors).join('\n  - ')}`, ExitCode.unavailable);
  }
  return { inventory: r.inventory, detected: r.detected };
}
