/** `rotate-certs check`: wiring only; the work is in check/run.ts. */
import { systemClock, type Clock } from '../certs/expiry.js';
import { loadCisRunbook } from '../check/cis.js';
import { checkExitCode, planCheck, runCheck, type NodeCheckPlan } from '../check/run.js';
import { detectInventoryOs, requireKnownOs } from '../inventory/detect-os.js';
import type { InventoryNode } from '../inventory/types.js';
import { ProfileSet } from '../profiles/profile.js';
import { renderCheck, type OutputFormat } from '../report/check-output.js';
import { loadCheckRunbook } from '../runbook/check-sources.js';
import { SshConnector } from '../transport/ssh.js';
import type { Connector } from '../transport/session.js';
import { shq } from '../util/shell.js';
import type { CliIo } from './io.js';
import { inventoryFromFlags, type InventoryFlags } from './options.js';

export interface CheckFlags extends InventoryFlags {
  output: OutputFormat;
  warnDays: number;
  concurrency: number;
  dryRun?: boolean;
  /** Also report file modes and owners that deviate from the CIS Kubernetes Benchmark. */
  cis?: boolean;
}

export interface CheckEnv {
  connector?: Connector;
  clock?: Clock;
}

export async function checkCommand(flags: CheckFlags, io: CliIo, env: CheckEnv = {}): Promise<number> {
  const spec = inventoryFromFlags(flags, io.cwd);
  // Loaded (and validated) before anything is contacted.
  const cisRunbook = flags.cis ? loadCisRunbook() : undefined;
  if (flags.dryRun) {
    const inv = requireKnownOs(spec, '--dry-run connects to nothing');
    io.out(renderCheckDryRun(planCheck(inv, new ProfileSet(), loadCheckRunbook(), cisRunbook)));
    return 0;
  }
  const connector = env.connector ?? new SshConnector();
  // A problem every node would share (key, known_hosts, jump host) is one error before any contact.
  await connector.prepare?.(spec).catch(async (err: unknown) => {
    await connector.close?.();
    throw err;
  });
  // A node whose OS cannot be told is reported like an unreachable one; the rest are checked.
  const { inventory: inv, errors } = await detectInventoryOs(spec, connector, flags.concurrency);
  const report = await runCheck(inv, planCheck(inv, new ProfileSet(), loadCheckRunbook(), cisRunbook), {
    connector,
    clock: env.clock ?? systemClock,
    concurrency: flags.concurrency,
    warnDays: flags.warnDays,
  });
  report.errors.unshift(...errors);
  io.out(renderCheck(report, flags.output, io.color));
  return checkExitCode(report);
}

export function sshCommandLine(node: InventoryNode): string {
  const s = node.ssh;
  const parts = ['ssh'];
  if (s.port !== 22) parts.push('-p', String(s.port));
  if (s.identityFile) parts.push('-i', shq(s.identityFile));
  if (s.jumpHost) parts.push('-J', `${s.jumpHost.user}@${s.jumpHost.host}${s.jumpHost.port === 22 ? '' : `:${s.jumpHost.port}`}`);
  parts.push(`${s.user}@${node.host}`);
  return parts.join(' ');
}

/** Every command `check` would run, per node; reads and connects to nothing. */
export function renderCheckDryRun(plans: NodeCheckPlan[]): string {
  const cis = plans.some((p) => p.cis);
  const out: string[] = [
    cis
      ? '# rotate-certs check --cis --dry-run: nothing was contacted. Each node gets two root scripts on standard input, over one SSH connection: certificates, then file modes and owners (CIS).'
      : '# rotate-certs check --dry-run: nothing was contacted. Each node gets one root script on standard input.',
  ];
  for (const p of plans) {
    out.push('', `## ${p.node.name} (${p.node.role}, ${p.node.os})`);
    out.push(`${sshCommandLine(p.node)} ${p.rootShell} <<'ROTATE_CERTS'`);
    out.push(p.script.trimEnd(), 'ROTATE_CERTS');
    if (p.cis) out.push('# then file modes and owners (--cis); rotate-certs sends this over the same SSH connection', `${sshCommandLine(p.node)} ${p.rootShell} <<'ROTATE_CERTS'`, p.cis.script.trimEnd(), 'ROTATE_CERTS');
    for (const e of p.endpoints) out.push(`# then read the certificate served at ${e.host}:${e.port} (TLS handshake only)`);
  }
  return `${out.join('\n')}\n`;
}
