/** Which inventory a command reads: `--inventory FILE` or `--cluster NAME`'s saved file. */
import { isAbsolute, join } from 'node:path';
import { inventoryPathForCluster, DNS_LABEL, loadInventory } from './load.js';
import type { InventorySpec } from './types.js';
import { UsageError } from '../util/errors.js';

export interface InventoryFlags {
  inventory?: string;
  cluster?: string;
  /** For a workload cluster built from its EKS Anywhere folder: the management cluster's kubeconfig. */
  managementKubeconfig?: string;
}

/**
 * `--inventory FILE` or `--cluster NAME`'s saved ./NAME/rotate-certs.yaml; exactly one. Commands
 * resolve --cluster with eksa/cluster-inventory.ts's inventorySpecFor, which also builds the inventory
 * from the EKS Anywhere folder; this is for what needs only a saved file.
 */
export function inventoryFromFlags(flags: InventoryFlags, cwd: string): InventorySpec {
  if (flags.inventory && flags.cluster) throw new UsageError('give --inventory or --cluster, not both');
  if (flags.cluster) {
    if (!DNS_LABEL.test(flags.cluster)) throw new UsageError(`--cluster ${JSON.stringify(flags.cluster)} is not a cluster name (a DNS label)`);
    return loadInventory(inventoryPathForCluster(flags.cluster, cwd));
  }
  if (!flags.inventory) throw new UsageError('no inventory: give --inventory FILE or --cluster NAME (reads ./NAME/rotate-certs.yaml)');
  return loadInventory(isAbsolute(flags.inventory) ? flags.inventory : join(cwd, flags.inventory));
}
