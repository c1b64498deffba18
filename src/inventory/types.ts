/** The validated inventory: every node with its role, OS and resolved SSH settings. */

export const ROLES = ['etcd', 'control-plane', 'worker'] as const;
export type Role = (typeof ROLES)[number];

export const OS_NAMES = ['ubuntu', 'rhel', 'bottlerocket'] as const;
export type OsName = (typeof OS_NAMES)[number];

/** What an inventory may say: an OS, or `auto` to detect it on connect. */
export const OS_CHOICES = [...OS_NAMES, 'auto'] as const;
export type OsChoice = (typeof OS_CHOICES)[number];

export type HostKeyPolicy = 'strict' | 'accept-new';

export interface JumpHost {
  user: string;
  host: string;
  port: number;
}

export interface SshSettings {
  user: string;
  port: number;
  /** Absolute path; absent means use the ssh-agent at SSH_AUTH_SOCK. */
  identityFile?: string;
  /** The inventory field identityFile came from ("ssh.identityFile", "workers[1].ssh.identityFile"), for errors. */
  identityFileField?: string;
  /** False when knownHostsFile is the default (~/.ssh/known_hosts), not named by ssh.knownHostsFile. */
  knownHostsFileSet?: boolean;
  /** Absolute path. */
  knownHostsFile: string;
  hostKeyPolicy: HostKeyPolicy;
  jumpHost?: JumpHost;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
}

/** A node whose OS is known: named in the inventory or detected. */
export interface InventoryNode {
  name: string;
  host: string;
  role: Role;
  os: OsName;
  ssh: SshSettings;
}

/** A node as the inventory file gives it; `auto` is resolved by inventory/detect-os.ts. */
export interface InventoryNodeSpec extends Omit<InventoryNode, 'os'> {
  os: OsChoice;
}

/** The inventory file as loaded, before any `os: auto` is detected. */
export interface InventorySpec extends Omit<Inventory, 'nodes'> {
  nodes: InventoryNodeSpec[];
}

/** An inventory whose every node has a known OS: what plans, checks and rotations use. */
export interface Inventory {
  cluster: string;
  /** The inventory file, absolute. Relative paths in it resolve from its folder. */
  file: string;
  /** The YAML it was read from: what plans record the digest of. */
  text: string;
  /**
   * Built from the EKS Anywhere folder and not saved (the user said no, or nobody was asked):
   * `file` does not exist, so plans carry `text` themselves.
   */
  unsaved?: true;
  /** Absolute path of the management cluster's kubeconfig, when given. */
  kubeconfig?: string;
  /** True when the inventory lists etcd nodes (etcd outside the control plane). */
  externalEtcd: boolean;
  /** In runbook order: etcd, then control plane, then workers. */
  nodes: InventoryNode[];
}
