/** A rotation plan: per phase, per node, in order, each step with the exact command it runs. */
import type { OsName, Role } from '../inventory/types.js';
import type { Action, Capture, WithValue } from '../runbook/runbook.js';

export interface PlanStep {
  id: string;
  title: string;
  why?: string;
  effect: 'read' | 'mutate';
  /** Command key and its rendered script, secrets shown as <redacted:name>. */
  run?: string;
  command?: string;
  action?: Action;
  /** The profile commands a built-in action runs on the node, by key, rendered for display. */
  commands?: Record<string, string>;
  with: Record<string, WithValue>;
  capture?: Capture;
  /** Not run, and why: a cluster-health gate that etcd members' expired certificates hold back. */
  deferred?: string;
  /** Run again until it passes or the pod start timeout (--pod-timeout) ends, and why (etcd recovery). */
  retried?: string;
  /** A restore step that runs even after an earlier restore step failed. */
  always?: true;
}

export interface PlanNode {
  name: string;
  host: string;
  role: Role;
  os: OsName;
  rootShell: string;
  /** Variables the commands were rendered with (paths, runId, runbook vars); no secrets. */
  vars: Record<string, string>;
  steps: PlanStep[];
  /** Run when a step after `after` fails, then the run stops. */
  restore?: { after: string; steps: PlanStep[] };
  /** Backup paths this node's steps create, for the report and `restore`. */
  backups: string[];
  /**
   * --dry-run only, which reads nothing: the node gets this phase only if, when a real run reads
   * it, its kubelet client or serving certificate is expired or within --warn-days.
   */
  onlyIf?: 'kubelet-due';
}

export interface PlanPhase {
  phase: string;
  title: string;
  serial: boolean;
  /** Nodes that go in bounded parallel (--parallel) after the others; a failing one does not stop them. */
  parallel?: string[];
  nodes: PlanNode[];
}

/** What was true when the plan was made; apply refuses when it no longer holds. */
export interface PlanFacts {
  gatheredAt: string;
  /** node -> path -> certificate serial and expiry, as read at planning time. */
  certificates: Record<string, Record<string, { serial: string; notAfter: string }>>;
}

export const ONLY_SCOPES = ['etcd', 'control-plane', 'kubelet', 'workers'] as const;

export interface Scope {
  only?: (typeof ONLY_SCOPES)[number];
  nodes?: string[];
}

/**
 * What a plan is made for beyond its inventory, found by reading the cluster (absent on --dry-run,
 * which reads nothing). Declared once: compilePlan takes them, and the plan records them.
 */
export interface PlanReadings {
  /** Nodes whose inventory says os: auto, with the OS found on them when the plan was made. */
  detected?: Record<string, OsName>;
  /**
   * Nodes whose kubelet client or serving certificate was expired or inside the warn window when
   * the plan was made; absent when nothing was read (--dry-run).
   */
  kubeletDue?: string[];
  /**
   * External etcd members whose server or peer certificate was expired or not yet valid when the plan was made:
   * etcd cannot be healthy until all are renewed (etcd recovery). Absent when there were none.
   */
  etcdExpired?: string[];
  /**
   * Inventory name -> Kubernetes Node name, for the nodes whose kubelet client certificate (CN
   * system:node:NAME) names another Node than the inventory does; those nodes carry the Node name
   * as the var kubeNodeName. Absent when all agree or nothing was read.
   */
  nodeNames?: Record<string, string>;
}

/** The readings alone, whatever else `from` carries (a plan read back, a compile input). */
export function readingsOf(from: PlanReadings): PlanReadings {
  return {
    ...(from.detected ? { detected: from.detected } : {}),
    ...(from.kubeletDue ? { kubeletDue: from.kubeletDue } : {}),
    ...(from.etcdExpired ? { etcdExpired: from.etcdExpired } : {}),
    ...(from.nodeNames ? { nodeNames: from.nodeNames } : {}),
  };
}

export interface Plan extends PlanReadings {
  kind: 'rotate-certs/plan';
  version: 1;
  cluster: string;
  /** Absolute path of the inventory the plan was made from, and its SHA-256. */
  inventory: string;
  inventoryDigest: string;
  /**
   * The inventory itself, when it was never saved at `inventory` (built from the EKS Anywhere
   * folder and not saved): apply, --resume and restore read it from here.
   */
  inventoryText?: string;
  runId: string;
  createdAt: string;
  scope: Scope;
  phases: PlanPhase[];
  facts?: PlanFacts;
  /** SHA-256 of everything above; a plan edited by hand no longer matches. */
  digest?: string;
}
