/**
 * Test helper: a "node" that is a folder on this machine. The OS profiles are copied with their
 * paths moved under the folder (ubuntu under one root, rhel under another, so an inventory can
 * hold two nodes), and a connector runs every root script with the local bash. The scripts are
 * the shipped ones: only where they look differs.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Inventory, InventoryNode, OsName } from '../../src/inventory/types.js';
import { PROFILES_DIR, ProfileSet } from '../../src/profiles/profile.js';
import type { Connector, ExecResult } from '../../src/transport/session.js';

const PATH_LINE = /^( {2}(?:etcdPki|kubePki|kubeconfigDir|manifestsDir|kubeletPki|kubeletConf): )\//gm;

/** Profiles whose paths live under roots[os] (ubuntu, rhel); returns the set and the profiles folder. */
export function localProfiles(dir: string, roots: Partial<Record<OsName, string>>): ProfileSet {
  const out = join(dir, 'profiles');
  mkdirSync(out, { recursive: true });
  for (const f of readdirSync(PROFILES_DIR)) {
    let text = readFileSync(join(PROFILES_DIR, f), 'utf8');
    const os = f.replace(/\.yaml$/, '') as OsName;
    const root = roots[os];
    if (root) text = text.replace(PATH_LINE, `$1${root}/`);
    writeFileSync(join(out, f), text);
  }
  return new ProfileSet(out);
}

/** Runs a script as the node's root shell would: bash reading it on standard input. */
export function runLocal(script: string): ExecResult {
  const r = spawnSync('bash', ['-s'], { input: script, encoding: 'utf8' });
  return { code: r.status, ...(r.signal ? { signal: r.signal } : {}), stdout: r.stdout, stderr: r.stderr };
}

/** A connector whose every node is this machine; `down` nodes refuse the connection. */
export function localConnector(down: ReadonlySet<string> = new Set()): Connector & { scripts: string[] } {
  const scripts: string[] = [];
  return {
    scripts,
    connect: async (node) => {
      if (down.has(node.name)) throw new Error(`${node.name}: connection refused by ${node.host}:22 (is sshd running?)`);
      return {
        node,
        exec: async (_command, opts) => {
          scripts.push(opts?.stdin ?? '');
          return runLocal(opts?.stdin ?? '');
        },
        close: async () => {},
      };
    },
  };
}

export function localNode(name: string, role: InventoryNode['role'], os: OsName): InventoryNode {
  return { name, host: `127.0.0.${role === 'etcd' ? 11 : 21}`, role, os, ssh: { user: 'capv', port: 22 } } as InventoryNode;
}

export function localInventory(file: string, nodes: InventoryNode[]): Inventory {
  return { cluster: 'lab', file, nodes, externalEtcd: nodes.some((n) => n.role === 'etcd'), text: '' } as unknown as Inventory;
}
