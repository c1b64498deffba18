/**
 * How each built-in action runs. The names, effects and OS profile commands are declared once in
 * runbook/actions.ts (the loader and the plan compiler read them there: runbook/ and plan/ do not
 * import apply/); RUNNERS is typed `Record<Action, ActionRunner>`, so a declared action without a
 * runner does not compile. The engine looks the action up here and knows none by name.
 *
 * A new action: declare it in runbook/actions.ts, write its runner (a function of the step and one
 * ActionContext) and add it to RUNNERS.
 */
import { pemCertificates } from '../certs/inspect.js';
import type { PlanNode, PlanStep } from '../plan/types.js';
import type { Action } from '../runbook/actions.js';
import type { Capture } from '../runbook/runbook.js';
import { restartEtcdadmController } from './etcdadm-controller.js';
import { pairMatches } from './gate-judgements.js';
import {
  apiserverReady,
  certsRenewed,
  endpointDown,
  endpointServes,
  etcdClientInstalled,
  removeDuplicateContainers,
  snapshotCerts,
  stackedEtcdHealthy,
  staticPodsLabelled,
  staticPodsRunning,
  staticPodsStopped,
  type GateContext,
} from './gates.js';
import { issueKubeletClient, kubeletRenewed, nodeReady, type KubeletContext } from './kubelet.js';
import { kcpNotPaused, updateEtcdClientSecret, type ManagementContext } from './management.js';

/**
 * What any action may use: the gates' context (one object per node and pass, so what one step
 * leaves, the snapshot or endpoint-down's downSince, the next one reads), and what the kubelet and
 * management-cluster steps need, each declared where those steps live.
 */
export type ActionContext = GateContext & KubeletContext & ManagementContext;

/** Runs one step of an action; resolves with a one-line summary, or throws with the node's own words. */
export type ActionRunner = (step: PlanStep, ctx: ActionContext) => Promise<string>;

export const RUNNERS: Record<Action, ActionRunner> = {
  'snapshot-certs': snapshotCerts,
  'certs-renewed': certsRenewed,
  'endpoint-down': endpointDown,
  'endpoint-serves': endpointServes,
  'apiserver-ready': apiserverReady,
  'update-etcd-client-secret': updateEtcdClientSecret,
  'restart-etcdadm-controller': restartEtcdadmController,
  'kcp-not-paused': kcpNotPaused,
  'issue-kubelet-client': (_step, ctx) => issueKubeletClient(ctx),
  'kubelet-renewed': (step, ctx) => kubeletRenewed(step, ctx, ctx.snapshot),
  'node-ready': (_step, ctx) => nodeReady(ctx),
  'static-pods-labelled': staticPodsLabelled,
  'static-pods-stopped': staticPodsStopped,
  'static-pods-running': staticPodsRunning,
  'remove-duplicate-containers': removeDuplicateContainers,
  'etcd-client-installed': etcdClientInstalled,
  'stacked-etcd-healthy': stackedEtcdHealthy,
};

/** What a run step's captured output becomes: secrets for later steps, and the step's summary. Never the output itself. */
export type CaptureReader = (stdout: string, node: PlanNode) => { secrets: Record<string, string>; summary: string };

export const CAPTURE_READERS: Record<Capture, CaptureReader> = {
  etcdClientPair: (stdout, node) => {
    // Output holds a private key: parsed here, kept in memory, never returned or logged.
    const cert = pemCertificates(stdout)[0];
    const key = /-----BEGIN (?:EC |RSA )?PRIVATE KEY-----[\s\S]*?-----END (?:EC |RSA )?PRIVATE KEY-----/.exec(stdout)?.[0];
    if (!cert || !key) throw new Error('the etcd client pair could not be read (certificate or key missing)');
    if (!pairMatches(cert, key)) throw new Error(`the etcd client key on ${node.name} does not belong to its certificate: installing them would keep every kube-apiserver from starting`);
    return { secrets: { etcdClientCert: cert, etcdClientKey: key }, summary: 'pair read into memory' };
  },
};
