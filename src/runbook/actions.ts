/**
 * The built-in actions a runbook step may name (`action:`), each declared once: what it changes and
 * which OS profile commands it runs on the node. How each one runs is apply/actions.ts's RUNNERS, a
 * `Record<Action, ActionRunner>` over these names, so the compiler refuses a declared action without
 * a runner and a runner without a declaration.
 *
 * Why the declarations live here and not beside the runners: the runbook loader (unknown names, the
 * default effect) and the plan compiler (an action's commands) need them, and runbook/ and plan/
 * must not import apply/. Passing a catalogue into the loader instead would make every caller of
 * loadRotationRunbooks and compilePlan carry one.
 */

export interface ActionDeclaration {
  /** read: only looks (a gate); mutate: changes a node or the management cluster. The step's default effect. */
  effect: 'read' | 'mutate';
  /**
   * node: about the node (its files, containers, endpoints, its Node object); management: the
   * management cluster's objects, through its API. The rotation picture (scripts/rotation-svg.ts)
   * draws the two apart.
   */
  runsOn: 'node' | 'management';
  /**
   * OS profile commands the action runs on the node (besides reading certificates): every profile
   * of a node it runs on must spell them, and plans show them.
   */
  commands?: readonly string[];
  /** Variables those commands get from the action itself, not from the plan: what plans show in their place. */
  vars?: Readonly<Record<string, string>>;
}

export const ACTION_DECLARATIONS = {
  // Gates: certificates read on the node, endpoints probed from the admin machine.
  'snapshot-certs': { runsOn: 'node', effect: 'read' },
  'certs-renewed': { runsOn: 'node', effect: 'read' },
  'endpoint-down': { runsOn: 'node', effect: 'read' },
  'endpoint-serves': { runsOn: 'node', effect: 'read' },
  'apiserver-ready': { runsOn: 'node', effect: 'read' },
  // The management cluster's API.
  'update-etcd-client-secret': { runsOn: 'management', effect: 'mutate' },
  'restart-etcdadm-controller': { runsOn: 'management', effect: 'mutate' },
  'kcp-not-paused': { runsOn: 'management', effect: 'read' },
  // Kubelets: a client certificate issued on a control-plane node, then watched in use.
  'issue-kubelet-client': { runsOn: 'node', effect: 'read' },
  'kubelet-renewed': { runsOn: 'node', effect: 'read' },
  'node-ready': { runsOn: 'node', effect: 'read' },
  // Static pods as the node's container runtime shows them.
  'static-pods-labelled': { runsOn: 'node', effect: 'read', commands: ['staticPods'] },
  'static-pods-stopped': { runsOn: 'node', effect: 'read', commands: ['staticPods'] },
  'static-pods-running': { runsOn: 'node', effect: 'read', commands: ['staticPods'] },
  'remove-duplicate-containers': { runsOn: 'node', effect: 'mutate', commands: ['staticPods', 'removeContainer'], vars: { containerId: '<container id>' } },
  'etcd-client-installed': { runsOn: 'node', effect: 'read', commands: ['etcdClientPairFiles'] },
  'stacked-etcd-healthy': { runsOn: 'node', effect: 'read', commands: ['stackedEtcdHealth'], vars: { kubeNodeName: '<Node name>' } },
} as const satisfies Record<string, ActionDeclaration>;

export type Action = keyof typeof ACTION_DECLARATIONS;

/** The names, in declaration order (the order error messages list them in). */
export const ACTIONS = Object.keys(ACTION_DECLARATIONS) as Action[];

export function actionDeclaration(action: Action): ActionDeclaration {
  return ACTION_DECLARATIONS[action];
}
