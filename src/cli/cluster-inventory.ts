/**
 * The inventory for --inventory FILE or --cluster NAME. For --cluster, ./NAME/rotate-certs.yaml
 * when it exists; otherwise it is built from what `eksctl anywhere create cluster` left in ./NAME
 * (src/eksa): the cluster spec for roles, OS and SSH users, eks-a-id_rsa, the kubeconfig, and node
 * addresses from the management cluster's Machines. Addresses the API cannot give are asked for;
 * without a terminal that is an error naming the inventory field. A person is offered to save it.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readClusterFolder } from '../eksa/cluster-spec.js';
import { buildInventory } from '../eksa/build-inventory.js';
import { listMachineNodes } from '../eksa/machines.js';
import { DNS_LABEL, inventoryPathForCluster, parseInventory } from '../inventory/load.js';
import type { InventorySpec, Role } from '../inventory/types.js';
import { KubeClient, readKubeconfig } from '../kube/client.js';
import { errorMessage, UsageError } from '../util/errors.js';
import { plural } from '../util/wording.js';
import type { CliIo } from './io.js';
import { inventoryFromFlags, type InventoryFlags } from './options.js';
import { noPrompter, type Prompter } from './prompter.js';

export interface ClusterInventoryEnv {
  prompter?: Prompter;
}

const HOST = /^(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f:]+|[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*)$/;
const NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

export async function inventorySpecFor(flags: InventoryFlags, io: CliIo, env: ClusterInventoryEnv = {}): Promise<InventorySpec> {
  if (flags.inventory || !flags.cluster) return inventoryFromFlags(flags, io.cwd);
  const saved = inventoryPathForCluster(flags.cluster, io.cwd);
  const folder = join(io.cwd, flags.cluster);
  const eksaSpec = join(folder, `${flags.cluster}-eks-a-cluster.yaml`);
  if (existsSync(saved) || !DNS_LABEL.test(flags.cluster)) return inventoryFromFlags(flags, io.cwd);
  if (!existsSync(eksaSpec)) {
    // Worded for every command that takes --cluster: the guided run has no --inventory to point to.
    throw new UsageError(`neither ${saved} nor ${eksaSpec} exists: run in the folder where you ran eksctl anywhere create cluster, or write ${saved} by hand (see docs/inventory.md)`);
  }
  return buildFromEksaFolder(flags.cluster, folder, saved, flags.managementKubeconfig, io, env.prompter ?? noPrompter);
}

async function buildFromEksaFolder(name: string, folder: string, saved: string, managementKubeconfig: string | undefined, io: CliIo, prompter: Prompter): Promise<InventorySpec> {
  const spec = readClusterFolder(folder, name);
  for (const w of spec.warnings) io.err(`warning: ${w}\n`);
  io.err(`No ${saved} yet: building the inventory from ${spec.specFile}\n`);

  // Node names and addresses: the Cluster API Machines of the management cluster.
  const kubeconfig = managementKubeconfig ?? spec.managementKubeconfig ?? spec.kubeconfig;
  let nodes: Array<{ name: string; host?: string; role: Role; deploymentName?: string }> = [];
  if (kubeconfig) {
    try {
      const client = new KubeClient(readKubeconfig(kubeconfig), 10_000);
      // vSphere reports the control-plane virtual IP on whichever node holds it: never a node's address.
      nodes = await listMachineNodes(client, name, 'eksa-system', spec.controlPlaneEndpoint ? { skipAddresses: [spec.controlPlaneEndpoint] } : {});
      io.err(`Found ${plural(nodes.length, 'machine')} of ${name} in eksa-system through ${kubeconfig}\n`);
    } catch (err) {
      io.err(`The management cluster did not list the machines (${errorMessage(err)}).\n`);
    }
  }
  if (nodes.length === 0) nodes = await askNodes(spec.groups.map((g) => g.role), prompter, saved);
  for (const n of nodes.filter((x) => !x.host)) {
    n.host = await prompter.input({
      message: `Address of ${n.name} (${n.role}):`,
      answeredBy: `the host of ${n.name} in ${saved}`,
      validate: (v) => (HOST.test(v.trim()) ? true : 'an IP address or a host name'),
    });
    n.host = n.host.trim();
  }
  const built = buildInventory(spec, nodes, managementKubeconfig ? { kubeconfig: managementKubeconfig } : {});
  for (const w of built.warnings) io.err(`warning: ${w}\n`);
  const text = built.yaml;
  const inv = parseInventory(text, saved);
  if (prompter.interactive && (await prompter.confirm({ message: `Save this inventory as ${saved} for the next run?`, default: true, answeredBy: '--inventory' }))) {
    writeFileSync(saved, text, { mode: 0o644 });
    io.err(`Saved ${saved}\n`);
    return inv;
  }
  return { ...inv, unsaved: true };
}

/** Without the API: the nodes of each role, as name=address lists. */
async function askNodes(roles: Role[], prompter: Prompter, saved: string): Promise<Array<{ name: string; host: string; role: Role }>> {
  const out: Array<{ name: string; host: string; role: Role }> = [];
  for (const role of [...new Set(roles)]) {
    const answer = await prompter.input({
      message: `${role} nodes, as name=address separated by commas:`,
      answeredBy: `--management-kubeconfig (a kubeconfig that lists the cluster's Machines) or the ${role} nodes in ${saved} (see docs/inventory.md)`,
      validate: (v) => {
        const items = v.split(',').map((s) => s.trim()).filter(Boolean);
        if (items.length === 0 && role !== 'worker' && role !== 'etcd') return 'at least one';
        const bad = items.find((i) => !/^[^=]+=[^=]+$/.test(i) || !NAME.test(i.split('=')[0]!) || !HOST.test(i.split('=')[1]!));
        return bad ? `"${bad}" is not name=address (names: lower-case letters, digits, "-", ".")` : true;
      },
    });
    for (const item of answer.split(',').map((s) => s.trim()).filter(Boolean)) {
      const [name, host] = item.split('=') as [string, string];
      out.push({ name, host, role });
    }
  }
  if (out.length === 0) throw new UsageError('no nodes given');
  return out;
}
