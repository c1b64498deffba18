/**
 * The inventory for --inventory FILE or --cluster NAME. For --cluster, ./NAME/rotate-certs.yaml
 * when it exists; otherwise it is built from what `eksctl anywhere create cluster` left in ./NAME
 * (src/eksa): the cluster spec for roles, OS and SSH users, eks-a-id_rsa, the kubeconfig, and node
 * addresses from the management cluster's Machines. Every command that takes --cluster resolves
 * it here, so it means one thing everywhere. Addresses the API cannot give are asked for; without
 * a terminal that is one error saying what gives them. A person is offered to save the result.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { specFileName, kubeconfigFileName, readClusterFolder } from './cluster-spec.js';
import { buildInventory, type NodeInput } from './build-inventory.js';
import { listMachineNodes } from './machines.js';
import { DNS_LABEL, inventoryPathForCluster, loadInventory, parseInventory } from '../inventory/load.js';
import type { InventorySpec, Role } from '../inventory/types.js';
import { KubeClient, readKubeconfig } from '../kube/client.js';
import { errorMessage, UsageError } from '../util/errors.js';
import { plural } from '../util/wording.js';
import type { Io as CliIo } from '../util/io.js';
import { inventoryFromFlags, type InventoryFlags } from '../inventory/select.js';
import { noPrompter, type Prompter } from '../util/prompter.js';

export interface ClusterInventoryEnv {
  prompter?: Prompter;
}

/** Where --cluster NAME's inventory comes from. */
export type ClusterInventorySource =
  /** ./NAME/rotate-certs.yaml, which exists. */
  | { kind: 'saved'; file: string }
  /** The EKS Anywhere folder ./NAME/ (its NAME-eks-a-cluster.yaml exists); `saved` is where the inventory would be saved. */
  | { kind: 'eksa'; folder: string; saved: string };

/**
 * The resolution order of --cluster NAME, run in `cwd`: the saved inventory, else the EKS Anywhere
 * folder, else a usage error naming both files. Reads nothing but whether the files exist.
 */
export function clusterInventorySource(name: string, cwd: string): ClusterInventorySource {
  if (!DNS_LABEL.test(name)) throw new UsageError(`--cluster ${JSON.stringify(name)} is not a cluster name (a DNS label)`);
  const saved = inventoryPathForCluster(name, cwd);
  if (existsSync(saved)) return { kind: 'saved', file: saved };
  const folder = join(cwd, name);
  if (existsSync(join(folder, specFileName(name)))) return { kind: 'eksa', folder, saved };
  // Worded for every command that takes --cluster: the guided run has no --inventory to point to.
  throw new UsageError(`neither ${saved} nor ${join(folder, specFileName(name))} exists: run in the folder where you ran eksctl anywhere create cluster, or write ${saved} by hand (see docs/inventory.md)`);
}

export async function inventorySpecFor(flags: InventoryFlags, io: CliIo, env: ClusterInventoryEnv = {}): Promise<InventorySpec> {
  if (flags.inventory || !flags.cluster) return inventoryFromFlags(flags, io.cwd);
  const source = clusterInventorySource(flags.cluster, io.cwd);
  if (source.kind === 'saved') return loadInventory(source.file);
  const prompter = env.prompter ?? noPrompter;
  const managementKubeconfig = flags.managementKubeconfig === undefined ? undefined : resolve(io.cwd, flags.managementKubeconfig);
  const built = await buildClusterInventory(flags.cluster, source.folder, source.saved, { managementKubeconfig, io, prompter });
  io.err(`Built the inventory of ${flags.cluster} from ${source.folder}/ (${built.nodesFrom})${prompter.interactive ? '' : `; not saved: rotate-certs inventory --cluster ${flags.cluster} --write saves it`}\n`);
  if (prompter.interactive && (await prompter.confirm({ message: `Save this inventory as ${source.saved} for the next run?`, default: true, answeredBy: '--inventory' }))) {
    writeFileSync(source.saved, built.text, { mode: 0o644 });
    io.err(`Saved ${source.saved}\n`);
    return built.spec;
  }
  return { ...built.spec, unsaved: true };
}

export interface BuiltClusterInventory {
  /** The YAML, as it would be saved at `spec.file`. */
  text: string;
  /** The text, parsed as if it were saved at ./NAME/rotate-certs.yaml. */
  spec: InventorySpec;
  /** Where the nodes came from, for the line that says the inventory was built. */
  nodesFrom: string;
}

export interface BuildOptions {
  managementKubeconfig?: string | undefined;
  io: CliIo;
  prompter: Prompter;
}

/**
 * Builds the inventory of cluster `name` from its EKS Anywhere folder. Contacts the management
 * cluster's API (to list the Machines) and no node; writes nothing.
 */
export async function buildClusterInventory(name: string, folder: string, saved: string, opts: BuildOptions): Promise<BuiltClusterInventory> {
  const { io, prompter, managementKubeconfig } = opts;
  const spec = readClusterFolder(folder, name);

  // Node names and addresses: the Cluster API Machines of the management cluster.
  const kubeconfig = managementKubeconfig ?? spec.managementKubeconfig ?? spec.kubeconfig;
  let nodes: NodeInput[] = [];
  let unlisted: string;
  let nodesFrom = '';
  if (kubeconfig) {
    try {
      const client = new KubeClient(readKubeconfig(kubeconfig), 10_000);
      // vSphere reports the control-plane virtual IP on whichever node holds it: never a node's address.
      nodes = await listMachineNodes(client, name, 'eksa-system', spec.controlPlaneEndpoint ? { skipAddresses: [spec.controlPlaneEndpoint] } : {});
      nodesFrom = `${plural(nodes.length, 'machine')} listed through ${kubeconfig}`;
      unlisted = `the management cluster lists no Machines of ${name} in eksa-system through ${kubeconfig}`;
    } catch (err) {
      unlisted = `the management cluster did not list the Machines of ${name} through ${kubeconfig} (${errorMessage(err)})`;
    }
  } else {
    unlisted = `${folder} has no ${kubeconfigFileName(name)} to list the Machines of ${name} with`;
  }
  if (nodes.length === 0) {
    // One line saying what gives the nodes, rather than a question nobody can answer.
    if (!prompter.interactive) throw new UsageError(`cannot list the nodes of ${name}: ${unlisted}; ${howToGiveNodes(name, saved)}`);
    io.err(`${unlisted[0]!.toUpperCase()}${unlisted.slice(1)}.\n`);
    nodes = await askNodes(spec.groups.map((g) => g.role), prompter, saved);
    nodesFrom = 'typed in';
  }
  // Without a terminal, buildInventory's error names every host field still to fill in.
  if (prompter.interactive) {
    for (const n of nodes.filter((x) => !x.host)) {
      n.host = await prompter.input({
        message: `Address of ${n.name} (${n.role}):`,
        answeredBy: `the host of ${n.name} in ${saved}`,
        validate: (v) => (HOST.test(v.trim()) ? true : 'an IP address or a host name'),
      });
      n.host = n.host.trim();
    }
  }
  const built = buildInventory(spec, nodes, managementKubeconfig ? { kubeconfig: managementKubeconfig } : {});
  // After the nodes: an error above is then the one line printed, not the last of several.
  for (const w of [...spec.warnings, ...built.warnings]) io.err(`warning: ${w}\n`);
  return { text: built.yaml, spec: parseInventory(built.yaml, saved), nodesFrom };
}

function howToGiveNodes(name: string, saved: string): string {
  return `give --management-kubeconfig FILE (a kubeconfig whose API lists them), run rotate-certs inventory --cluster ${name} --write on a terminal to type their addresses, or write ${saved} by hand (see docs/inventory.md)`;
}

const HOST = /^(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f:]+|[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*)$/;
const NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

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
