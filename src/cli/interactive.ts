/**
 * `rotate-certs --cluster NAME`: the guided run, for a person at a terminal. The inventory (saved,
 * or built from the EKS Anywhere folder), a summary of what expires when, the scope, the plan,
 * one confirmation, progress, the report. Unknown host keys and encrypted keys are asked about.
 * With --yes or without a terminal it asks nothing: every missing answer is an error naming the
 * flag or inventory field that gives it, and the scope is "everything that needs it".
 */
import type { CheckReport } from '../check/run.js';
import type { Inventory } from '../inventory/types.js';
import { planDigest } from '../plan/compile.js';
import { renderPlanText } from '../rotation/plan-text.js';
import type { Scope } from '../plan/types.js';
import { PooledConnector } from '../transport/pool.js';
import { SshConnector, type HostKeyQuestion } from '../transport/ssh.js';
import { ExitCode, RotateCertsError } from '../util/errors.js';
import { groupByMessage, plural } from '../util/wording.js';
import { inventorySpecFor } from '../eksa/cluster-inventory.js';
import type { CliIo } from './io.js';
import { isPromptExit, noPrompter, terminalPrompter, type Prompter } from '../util/prompter.js';
import { planFrom, readCluster, type ClusterReading } from '../rotation/plan.js';
import { runRotation } from '../rotation/run.js';
import { printRotation, rotationUi } from '../ui/rotation-ui.js';
import { rotationOptions, type ApplyFlags, type InventoryFlags, type RotateEnv } from './options.js';

export interface InteractiveFlags extends InventoryFlags, ApplyFlags {}

export async function interactiveCommand(flags: InteractiveFlags, io: CliIo, env: RotateEnv = {}): Promise<number> {
  const prompter = env.interactive && !flags.yes ? await terminalPrompter() : noPrompter;
  try {
    const spec = await inventorySpecFor(flags, io, { prompter });
    const connector = new PooledConnector(
      env.connector ??
      new SshConnector(
        prompter.interactive
          ? {
              passphrase: async (file) => process.env.ROTATE_CERTS_SSH_PASSPHRASE ?? (await prompter.password({ message: `Passphrase for ${file}:`, answeredBy: 'ROTATE_CERTS_SSH_PASSPHRASE' })),
              unknownHostKey: hostKeyQuestion(prompter, io),
            }
          : {},
      ),
    );
    try {
      // Passphrases, known_hosts and jump hosts before the first node: one answer or one error.
      await connector.prepare?.(spec);
      io.err(`Reading the certificates of ${plural(spec.nodes.length, 'node')} of ${spec.cluster} (read-only)...\n`);
      const reading = await readCluster(spec, connector, flags);
      io.out(renderSummary(reading.report, reading.inv, flags.warnDays));
      const unread = reading.report.errors.filter((e) => !isEndpointError(e));
      if (unread.length > 0) {
        // Printed here only: the summary marks these nodes and leaves their causes to this line.
        throw new RotateCertsError(`cannot read every node, nothing was changed; fix these first:\n  - ${groupByMessage(unread).join('\n  - ')}`, ExitCode.unavailable);
      }
      const scope = await chooseScope(prompter, reading);
      const plan = planFrom(reading, scope);
      if (plan.phases.length === 0) {
        io.out('\nNothing to do in this scope: nothing was changed.\n');
        return ExitCode.ok;
      }
      io.out(`\n${renderPlanText(plan, { full: false, inventory: reading.inv })}`);
      if (prompter.interactive) {
        const nodes = new Set(plan.phases.flatMap((p) => p.nodes.map((n) => n.name))).size;
        const go = await prompter.confirm({ message: `Rotate now? ${plural(nodes, 'node')}; every node is backed up first and restored if a step fails.`, default: false, answeredBy: '--yes' });
        if (!go) {
          io.out('Nothing was changed.\n');
          return ExitCode.ok;
        }
      }
      const answered = { ...flags, yes: true };
      const run = await runRotation({ ...plan, digest: planDigest(plan) }, reading.inv, rotationOptions(answered, io, { ...env, connector }), rotationUi({ ...answered, interactive: Boolean(env.interactive) }, io));
      return printRotation(run, io);
    } finally {
      await connector.close();
    }
  } catch (err) {
    if (isPromptExit(err)) {
      io.err('\nrotate-certs: stopped at a prompt; nothing was changed\n');
      return 130;
    }
    throw err;
  }
}

/** One question per unknown host key, one at a time; "all" trusts the rest of this inventory. */
function hostKeyQuestion(prompter: Prompter, io: CliIo): HostKeyQuestion {
  let queue: Promise<unknown> = Promise.resolve();
  let trustAll = false;
  return (key) => {
    const answer = queue.then(async () => {
      // "all" is for new hosts: a new key type of a known host is always asked about.
      if (trustAll && !key.otherTypes) return true;
      const held = key.otherTypes ? `, a new type: ${key.knownHostsFile} holds only ${key.otherTypes.join(', ')} for it (a rebuilt node, or something else answering in its place)` : `, which ${key.knownHostsFile} does not hold`;
      io.err(
        `\n${key.node} (${key.host}:${key.port}) presents host key ${key.fingerprint}${held}.\n` +
          `Compare it with the node's own: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub (on the node's console).\n`,
      );
      const a = await prompter.select({
        message: `Trust ${key.node}'s host key and record it in ${key.knownHostsFile}?`,
        choices: [
          { name: 'Yes, this node', value: 'one' as const },
          { name: 'Yes, and every other new host key of this inventory', value: 'all' as const },
          { name: 'No', value: 'no' as const },
        ],
        answeredBy: 'known_hosts entries for every node (ssh.knownHostsFile) or ssh.hostKeyPolicy: accept-new',
      });
      if (a === 'all') trustAll = true;
      return a !== 'no';
    });
    queue = answer.catch(() => undefined);
    return answer;
  };
}

type ScopeChoice = 'all' | 'etcd' | 'control-plane' | 'kubelet' | 'pick';

async function chooseScope(prompter: Prompter, reading: ClusterReading): Promise<Scope> {
  if (!prompter.interactive) return {};
  const external = reading.inv.externalEtcd;
  const choice = await prompter.select<ScopeChoice>({
    message: 'What should be rotated?',
    choices: [
      { name: `Everything that needs it: ${external ? 'etcd, ' : ''}control plane, and the kubelets that are due`, value: 'all' },
      ...(external ? [{ name: 'Only the external etcd nodes (and the etcd client pair)', value: 'etcd' as const }] : []),
      { name: 'Only the control plane', value: 'control-plane' },
      { name: 'Only kubelets and workers whose certificates are due', value: 'kubelet' },
      { name: 'Pick nodes', value: 'pick' },
    ],
    answeredBy: '--only or --nodes with rotate-certs rotate',
  });
  if (choice === 'all') return {};
  if (choice !== 'pick') return { only: choice };
  const nodes = await prompter.checkbox<string>({
    message: 'Which nodes?',
    choices: reading.inv.nodes.map((n) => ({ name: `${n.name} (${n.role}, ${n.os})`, value: n.name })),
    required: true,
    answeredBy: '--nodes with rotate-certs rotate',
  });
  return { nodes };
}

const isEndpointError = (e: { message: string }) => e.message.startsWith('endpoint ');

/**
 * Per node: how many certificates, the soonest leaf expiry, and what is expired or close. A node
 * that could not be read is marked; its cause is the run's error, printed once, after this.
 */
export function renderSummary(report: CheckReport, inv: Inventory, warnDays: number): string {
  const out: string[] = ['', `Certificates of ${inv.cluster} (expiring = within ${plural(warnDays, 'day')}):`];
  const unread = new Set(report.errors.filter((e) => !isEndpointError(e)).map((e) => e.node));
  for (const node of inv.nodes) {
    const mine = report.certificates.filter((c) => c.node === node.name && c.source !== 'endpoint');
    // The kubelet's self-signed serving CA counts with its serving certificate, not as a cluster CA.
    const leaves = mine.filter((c) => c.kind !== 'ca');
    const soonest = leaves.reduce<(typeof leaves)[number] | undefined>((a, c) => (!a || c.notAfter < a.notAfter ? c : a), undefined);
    const count = (s: string) => leaves.filter((c) => c.status === s).length;
    const bad = [count('expired') && `${count('expired')} expired`, count('expiring') && `${count('expiring')} expiring`, count('not-yet-valid') && `${count('not-yet-valid')} not yet valid`].filter(Boolean);
    const head = `  ${node.name.padEnd(20)} ${`${node.role}, ${node.os}`.padEnd(26)}   `;
    if (unread.has(node.name) && leaves.length === 0) {
      out.push(`${head}not read (the cause is below)`);
      continue;
    }
    out.push(
      `${head}${plural(leaves.length, 'certificate')}` +
        (soonest ? `, soonest ${soonest.notAfter.slice(0, 10)} (${plural(soonest.daysLeft, 'day')})` : '') +
        (bad.length > 0 ? `: ${bad.join(', ')}` : '') +
        (unread.has(node.name) ? '; not fully read (the cause is below)' : ''),
    );
    for (const ca of mine.filter((c) => c.kind === 'ca' && c.status !== 'ok')) out.push(`      CA ${ca.path} is ${ca.status} (${ca.notAfter.slice(0, 10)}): rotate-certs cannot renew a CA`);
  }
  const endpoints = report.errors.filter(isEndpointError);
  for (const line of groupByMessage(endpoints.map((e) => ({ node: e.node, message: `could not be read: ${e.message}` })))) out.push(`  ${line}`);
  return `${out.join('\n')}\n`;
}
