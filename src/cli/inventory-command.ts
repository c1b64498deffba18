/**
 * `rotate-certs inventory --cluster NAME`: the inventory built from the EKS Anywhere folder ./NAME/,
 * printed as it would be saved, and with --write saved as ./NAME/rotate-certs.yaml. Contacts the
 * management cluster's API to list the Machines (as every --cluster command does without a saved
 * inventory) and no node.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { specFileName } from '../eksa/cluster-spec.js';
import { DNS_LABEL, inventoryPathForCluster } from '../inventory/load.js';
import { ExitCode, UsageError } from '../util/errors.js';
import { buildClusterInventory } from '../eksa/cluster-inventory.js';
import { ApplyExit } from '../util/exit-codes.js';
import type { CliIo } from './io.js';
import { isPromptExit, noPrompter, terminalPrompter } from '../util/prompter.js';

export interface InventoryCommandFlags {
  cluster?: string;
  managementKubeconfig?: string;
  write?: boolean;
  force?: boolean;
}

export interface InventoryEnv {
  interactive?: boolean;
}

export async function inventoryCommand(flags: InventoryCommandFlags, io: CliIo, env: InventoryEnv = {}): Promise<number> {
  const name = flags.cluster;
  if (!name) throw new UsageError('no cluster: give --cluster NAME, run in the folder that holds the EKS Anywhere folder ./NAME/');
  if (!DNS_LABEL.test(name)) throw new UsageError(`--cluster ${JSON.stringify(name)} is not a cluster name (a DNS label)`);
  if (flags.force && !flags.write) throw new UsageError('--force replaces the file --write writes: give both, or neither to only print the inventory');
  const folder = join(io.cwd, name);
  const spec = join(folder, specFileName(name));
  if (!existsSync(spec)) throw new UsageError(`no EKS Anywhere folder ./${name}/: ${spec} does not exist: run in the folder where you ran eksctl anywhere create cluster`);
  const saved = inventoryPathForCluster(name, io.cwd);
  // Refused before the API is asked anything: a hand-edited inventory is not replaced by accident.
  if (flags.write && !flags.force && existsSync(saved)) {
    throw new UsageError(`${saved} already exists and --write does not replace it: add --force to replace it, or leave out --write to print the inventory it would be`);
  }
  const prompter = env.interactive ? await terminalPrompter() : noPrompter;
  try {
    const managementKubeconfig = flags.managementKubeconfig === undefined ? undefined : resolve(io.cwd, flags.managementKubeconfig);
    const built = await buildClusterInventory(name, folder, saved, { managementKubeconfig, io, prompter });
    io.out(built.text);
    if (flags.write) {
      writeFileSync(saved, built.text, { mode: 0o644, flag: flags.force ? 'w' : 'wx' });
      io.err(`Wrote ${saved} (${built.nodesFrom}). Next, check and record the nodes' host keys: rotate-certs trust --cluster ${name}\n`);
    } else {
      io.err(`Built from ${folder}/ (${built.nodesFrom}); not written: add --write to save it as ${saved}\n`);
    }
    return ExitCode.ok;
  } catch (err) {
    if (isPromptExit(err)) {
      io.err('\nrotate-certs: stopped at a prompt; nothing was written\n');
      return ApplyExit.stopped;
    }
    throw err;
  }
}
