/** The commander wiring: flags, help text, and which function each command runs. */
import { Command, CommanderError, Option } from 'commander';
import { ONLY_SCOPES } from '../plan/types.js';
import { OUTPUT_FORMATS } from '../report/check-output.js';
import { ExitCode, UsageError } from '../util/errors.js';
// Commands load their libraries (ssh2, x509, listr2, prompts) only when they run, so --help,
// --version and usage errors answer at once.
import type { CheckEnv, CheckFlags } from './check-command.js';
import type { CliIo } from './io.js';
import { ApplyExit, FlagDefault, PodTimeoutDefault, RotateExit } from '../util/exit-codes.js';
import { isPromptExit } from '../util/prompter.js';
import { helpEnd } from './help.js';
import { versionLine } from './version.js';
import { choiceFlag, intFlag } from './options.js';
import type { InteractiveFlags } from './interactive.js';
import type { BackupsFlags } from './backups-command.js';
import { BACKUPS_OUTPUT_FORMATS } from '../backups/render.js';
import type { InventoryCommandFlags } from './inventory-command.js';
import type { TrustFlags } from './trust-command.js';
import type { ApplyFlags, PlanFlags, RestoreFlags, RotateCliFlags, RotateEnv } from './rotate-commands.js';
import { parseDuration, repeatable } from '../routine/duration.js';

export type CliEnv = CheckEnv & RotateEnv;

export function buildProgram(io: CliIo, env: CliEnv, setExit: (code: number) => void): Command {
  const rotateEnv: RotateEnv = env;
  const program = new Command('rotate-certs')
    .description('Check and rotate the certificates of EKS Anywhere / kubeadm clusters over SSH, without needing the cluster API.')
    .version(versionLine(), '-V, --version', 'print the version and the runbook revision')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });

  program
    .command('check')
    .summary('report every certificate of every node and endpoint, with days left')
    .description(
      'Reads, over SSH with sudo, every certificate the runbook lists for each node (PKI files, kubeconfig-embedded\n' +
        'client certificates, kubelet PEMs), and the certificates served on :6443 (control plane) and :2379 (etcd).\n' +
        'Read-only: it changes nothing, and private keys never leave the nodes.',
    )
    .option('-i, --inventory <file...>', 'inventory YAML (see docs/inventory.md); several: one check of all their clusters')
    .option('-c, --cluster <name...>', 'read ./<name>/rotate-certs.yaml, or build it from the EKS Anywhere folder ./<name>/; several names (or with --inventory): one check of all')
    .option('--clusters-dir <dir>', 'check every cluster folder in <dir> (<name>/rotate-certs.yaml or an EKS Anywhere folder), as --cluster <name> run in <dir> reads it')
    .option('--management-kubeconfig <file>', "with --cluster and no rotate-certs.yaml: a workload cluster's management cluster kubeconfig, to list its Machines")
    .addOption(new Option('-o, --output <format>', 'table, json or prometheus').default(FlagDefault.output).argParser(choiceFlag('--output', OUTPUT_FORMATS)))
    .addOption(new Option('-w, --warn-days <days>', 'report certificates with this many days left or fewer as expiring').default(FlagDefault.warnDays).argParser(intFlag('--warn-days', 0, 3650)))
    .addOption(new Option('--concurrency <n>', 'nodes contacted at once, all clusters together').default(FlagDefault.concurrency).argParser(intFlag('--concurrency', 1, 256)))
    .option('--dry-run', 'print what would run on each node and contact nothing')
    .option('--cis', 'also report file modes and owners that deviate from the CIS Kubernetes Benchmark (runbooks/cis.yaml)')
    .addHelpText(
      'after',
      helpEnd(
        'check',
        [
          'rotate-certs check --inventory examples/lab/inventory.yaml --dry-run',
          'rotate-certs check --cluster mycluster -o json',
          'rotate-certs check -i inventory.yaml --cis',
          'rotate-certs check --clusters-dir ~/eksa-clusters -o prometheus   (see docs/check.md for node_exporter)',
        ],
        'Several clusters (several --inventory or --cluster, or --clusters-dir): one table per cluster, one JSON\n' +
          'document {"clusters": [...]}, or one Prometheus text with a cluster label on every series. A cluster\n' +
          'whose inventory cannot be loaded is reported as not checked; the others are still checked. The exit\n' +
          "code is then the highest of the clusters' codes.",
      ),
    )
    .action(async (flags: CheckFlags) => {
      setExit(await (await import('./check-command.js')).checkCommand(flags, io, env));
    });

  const scopeOptions = (cmd: Command) =>
    cmd
      .addOption(
        new Option('--only <part>', 'limit the run to one part: etcd, control-plane, kubelet (control-plane and worker kubelets that are due) or workers (worker kubelets that are due)').choices([
          ...ONLY_SCOPES,
        ]),
      )
      .option('--nodes <names>', 'limit the run to these nodes (comma-separated names from the inventory); named nodes get kubelet steps even when not due')
      .option('--management-kubeconfig <file>', "with --cluster and no rotate-certs.yaml: a workload cluster's management cluster kubeconfig, to list its Machines");
  const stateOptions = (cmd: Command) =>
    cmd
      .option('--state-dir <dir>', 'where journals, locks and plan copies live (default ${XDG_STATE_HOME:-~/.local/state}/rotate-certs)')
      .addOption(
        new Option('-w, --warn-days <days>', 'a kubelet certificate with this many days left or fewer is due for renewal; a CA this close is warned about')
          .default(FlagDefault.warnDays)
          .argParser(intFlag('--warn-days', 0, 3650)),
      )
      .addOption(new Option('--concurrency <n>', 'nodes read at once during pre-flight').default(FlagDefault.concurrency).argParser(intFlag('--concurrency', 1, 256)));
  const applyOptions = (cmd: Command) =>
    cmd
      .option('-y, --yes', 'do not ask before changing the cluster (needed without a terminal)')
      .option('--refresh-kubeconfig', "when the inventory's kubeconfig is refused, replace it with the renewed admin.conf (old one kept)")
      .addOption(podTimeoutOption())
      .addOption(new Option('--parallel <n>', 'worker nodes renewed at once (etcd and control-plane nodes always go one at a time)').default(FlagDefault.parallel).argParser(intFlag('--parallel', 1, 64)))
      .addOption(
        new Option('--keep-backups <n>', "after the run, on each node it verified, remove older runs' backups beyond the newest <n> (never an unfinished run's); the state folder keeps as many runs")
          .default(FlagDefault.keepBackups)
          .argParser(intFlag('--keep-backups', 1, 1000)),
      );

  const plan = program
    .command('plan')
    .summary('write the rotation plan: per node, in order, the exact commands')
    .description('Connects read-only, records the certificates it sees, and writes a plan that apply runs. With --dry-run it connects to nothing.')
    .option('-i, --inventory <file>', 'inventory YAML')
    .option('-c, --cluster <name>', 'read ./<name>/rotate-certs.yaml, or build it from the EKS Anywhere folder ./<name>/')
    .option('--out <file>', 'write the plan to this file (else print it); not written when some node cannot be read')
    // -o is the output format wherever it exists (check -o json); plan has none, so it only explains.
    .addOption(new Option('-o, --output <format>').hideHelp().argParser(noPlanOutput))
    .option('--dry-run', 'print the commands without connecting to anything');
  scopeOptions(plan);
  stateOptions(plan);
  plan.addHelpText('after', helpEnd('plan', ['rotate-certs plan -i inventory.yaml --out plan.yaml', 'rotate-certs plan -i inventory.yaml --only etcd --dry-run'])).action(async (flags: PlanFlags) => {
    setExit(await (await import('./rotate-commands.js')).planCommand(flags, io, rotateEnv));
  });

  const apply = program
    .command('apply')
    .summary('run a plan file: backups, renewals, health gates, restore on failure')
    .argument('<plan>', 'plan file written by rotate-certs plan --out')
    .option('--resume', 'continue a run that stopped or failed: finished nodes are skipped, a node left part-way is restored and redone');
  applyOptions(apply);
  stateOptions(apply);
  apply.addHelpText('after', helpEnd('apply', ['rotate-certs apply plan.yaml', 'rotate-certs apply plan.yaml --resume --yes   # after a stop or a failure'])).action(async (planFile: string, flags: ApplyFlags) => {
    setExit(await (await import('./rotate-commands.js')).applyCommand(planFile, flags, io, rotateEnv));
  });

  const rotate = program
    .command('rotate')
    .summary('plan and apply in one go')
    .option('-i, --inventory <file>', 'inventory YAML')
    .option('-c, --cluster <name>', 'read ./<name>/rotate-certs.yaml, or build it from the EKS Anywhere folder ./<name>/; with --due-within, repeat it for several clusters', repeatable)
    .option('--dry-run', 'print every command per node in execution order and connect to nothing')
    .option('--resume', "continue this cluster's last run if it did not finish, as apply PLAN --resume does with that run's plan (kept in --state-dir)")
    .addOption(
      new Option('--due-within <duration>', 'renew only when a certificate rotate-certs renews expires within this long: Nd (days) or Nh (hours), e.g. 30d; otherwise change nothing and say when the first one falls due').argParser(
        parseDuration('--due-within'),
      ),
    )
    .option('--clusters-dir <dir>', 'with --due-within: every cluster folder in <dir>, as check reads them; management clusters before their workload clusters, stopping at the first failed rotation')
    .option('--allow-recovery', 'with --due-within and no terminal: also start an etcd recovery (etcd certificates already expired), which is otherwise refused unattended')
    .option('--textfile <file>', "with --due-within: write each cluster's outcome, end time, duration and certificates renewed as Prometheus text to <file> (atomically), for node_exporter")
    .option('--report-json <file>', 'with --due-within: the same as JSON');
  scopeOptions(rotate);
  applyOptions(rotate);
  stateOptions(rotate);
  rotate
    .addHelpText(
      'after',
      helpEnd(
        'rotate',
        [
          'rotate-certs rotate -i inventory.yaml --dry-run',
          'rotate-certs rotate --cluster mycluster --yes',
          'rotate-certs rotate --cluster mycluster --resume   # after a stop or a failure',
          'rotate-certs rotate --clusters-dir /srv/eksa --due-within 30d --yes --textfile /var/lib/node_exporter/textfile/rotate-certs-run.prom   # from a timer: docs/routine.md',
        ],
        'Renew when due (--due-within 30d): read the cluster; if nothing rotate-certs renews (etcd and control-plane\n' +
          'leaves, their kubeconfigs, due kubelets) expires within 30 days, change nothing, print when the first one\n' +
          'falls due and exit 0; otherwise rotate as usual. CAs are never renewed: one inside the window is a warning.\n' +
          'Without a terminal it starts only when every node answered, etcd is healthy, the API is ready and no earlier\n' +
          `run of the cluster is unfinished; otherwise it changes nothing, says why in one line and exits ${RotateExit.refused}.`,
      ),
    )
    .action(async (flags: RotateCliFlags) => {
      setExit(await (await import('./rotate-commands.js')).rotateCli(flags, io, rotateEnv));
    });

  program
    .command('restore')
    .summary("put a node back from the last run's backups")
    .description('Restores the PKI folder (and kubeconfigs, with a static-pod restart observed until ready) of one node from the backups the last run that touched it made, as recorded in the journal.')
    .option('-i, --inventory <file>', 'inventory YAML')
    .option('-c, --cluster <name>', 'read ./<name>/rotate-certs.yaml')
    .requiredOption('--node <name>', 'the node to restore')
    .option('-y, --yes', 'do not ask first')
    .option('--state-dir <dir>', 'where journals live (default ${XDG_STATE_HOME:-~/.local/state}/rotate-certs)')
    .addHelpText('after', helpEnd('restore', ['rotate-certs restore --cluster mycluster --node mycluster-cp-1']))
    .action(async (flags: RestoreFlags) => {
      setExit(await (await import('./rotate-commands.js')).restoreCommand(flags, io, rotateEnv));
    });

  program
    .command('inventory')
    .summary('build the inventory from the EKS Anywhere folder and print it; --write saves it')
    .description(
      'Builds the inventory of cluster <name> from the folder `eksctl anywhere create cluster` left, ./<name>/: roles, OS and ' +
        'SSH users from <name>-eks-a-cluster.yaml, the key eks-a-id_rsa, and node names and addresses from the Cluster API ' +
        'Machines, listed through <name>-eks-a-cluster.kubeconfig (or --management-kubeconfig). It contacts that API and no ' +
        'node. Prints the YAML as it would be saved; with --write, saves it as ./<name>/rotate-certs.yaml, which every ' +
        '--cluster <name> then reads.',
    )
    .requiredOption('-c, --cluster <name>', 'the EKS Anywhere folder ./<name>/, in the folder where you ran eksctl anywhere create cluster')
    .option('--management-kubeconfig <file>', "a workload cluster's management cluster kubeconfig, to list its Machines")
    .option('--write', 'save it as ./<name>/rotate-certs.yaml; refused when that file exists')
    .option('--force', 'with --write: replace an existing ./<name>/rotate-certs.yaml')
    .addHelpText('after', helpEnd('inventory', ['rotate-certs inventory --cluster mycluster', 'rotate-certs inventory --cluster mycluster --write   # then: rotate-certs trust --cluster mycluster']))
    .action(async (flags: InventoryCommandFlags) => {
      setExit(await (await import('./inventory-command.js')).inventoryCommand(flags, io, env));
    });

  program
    .command('trust')
    .summary("show each node's SSH host key fingerprint and record it in known_hosts once confirmed")
    .description(
      "Reads each node's SSH host key (the jump host's first, when ssh.jumpHost is set), without logging in to the node " +
        "or running anything there, and prints its type and SHA256 fingerprint beside what the inventory's known_hosts " +
        '(ssh.knownHostsFile, default ~/.ssh/known_hosts) says of it: known, new, CHANGED or REVOKED. New keys are recorded ' +
        "once you confirm them: compare each with the node's own first (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on " +
        'its console). A changed or revoked key is never recorded.',
    )
    .option('-i, --inventory <file>', 'inventory YAML')
    .option('-c, --cluster <name>', 'read ./<name>/rotate-certs.yaml, or build it from the EKS Anywhere folder ./<name>/')
    .option('--management-kubeconfig <file>', "with --cluster and no rotate-certs.yaml: a workload cluster's management cluster kubeconfig, to list its Machines")
    .option('--accept-new', "record every key known_hosts has none of that type for, without asking, as OpenSSH's StrictHostKeyChecking=accept-new")
    .option('-y, --yes', 'record the new keys without asking (needed without a terminal; compare the fingerprints first)')
    .addOption(new Option('--concurrency <n>', 'nodes contacted at once').default(FlagDefault.concurrency).argParser(intFlag('--concurrency', 1, 256)))
    .addHelpText(
      'after',
      helpEnd('trust', ['rotate-certs trust --cluster mycluster', 'rotate-certs trust -i inventory.yaml --accept-new   # trust on first use, as ssh -o StrictHostKeyChecking=accept-new']),
    )
    .action(async (flags: TrustFlags) => {
      setExit(await (await import('./trust-command.js')).trustCommand(flags, io, env));
    });

  program
    .command('backups')
    .summary('list the backups rotate-certs left on each node; --prune removes older ones')
    .description(
      'Lists, per node, the backups rotate-certs runs left beside the folders they renew (run, age, size, mode, path): read-only, ' +
        "one SSH connection per node. With --prune, removes all but the newest --keep runs' backups on each node (never the newest, " +
        "never those of a run the journal says did not finish), and as many runs' plan copies and journal entries from the state folder.",
    )
    .option('-i, --inventory <file>', 'inventory YAML')
    .option('-c, --cluster <name>', 'read ./<name>/rotate-certs.yaml, or build it from the EKS Anywhere folder ./<name>/')
    .addOption(new Option('-o, --output <format>', 'table or json').default(FlagDefault.output).argParser(choiceFlag('--output', BACKUPS_OUTPUT_FORMATS)))
    .addOption(new Option('--concurrency <n>', 'nodes contacted at once').default(FlagDefault.concurrency).argParser(intFlag('--concurrency', 1, 256)))
    .option('--prune', "remove older runs' backups from the nodes (and their plan copies and journal entries from the state folder)")
    .addOption(new Option('--keep <n>', `with --prune: how many runs' backups stay on each node (default ${FlagDefault.keepBackups})`).argParser(intFlag('--keep', 1, 1000)))
    .option('-y, --yes', 'with --prune: do not ask first (needed without a terminal)')
    .option('--state-dir <dir>', 'where journals and plan copies live, which say what runs are unfinished (default ${XDG_STATE_HOME:-~/.local/state}/rotate-certs)')
    .addHelpText(
      'after',
      helpEnd('backups', ['rotate-certs backups --cluster mycluster', 'rotate-certs backups -i inventory.yaml -o json', 'rotate-certs backups --cluster mycluster --prune --keep 1 --yes']),
    )
    .action(async (flags: BackupsFlags) => {
      setExit(await (await import('./backups-command.js')).backupsCommand(flags, io, env));
    });

  // commander adds no help command to a program with an action of its own (the guided run).
  program
    .command('help')
    .summary("show a command's help: its flags, exit codes and examples")
    .argument('[command]', 'a command (check, plan, apply, rotate, restore, backups, inventory, trust); none: the guided run and the list of commands')
    .action((name: string | undefined) => {
      const sub = name === undefined ? program : program.commands.find((c) => c.name() === name && name !== 'help');
      if (!sub) return program.error(`error: unknown command '${name}'`, { code: 'commander.unknownCommand' });
      sub.outputHelp();
    });

  // The default command: the guided run from the folder eksctl anywhere left behind.
  program
    .enablePositionalOptions()
    .option('-c, --cluster <name>', 'the guided run: ./<name>/rotate-certs.yaml, or built from the EKS Anywhere folder ./<name>/')
    .option('--management-kubeconfig <file>', "a workload cluster's management cluster kubeconfig, to list its Machines")
    .option('-y, --yes', 'ask nothing: rotate everything that needs it (without a terminal this is the only way)')
    .option('--state-dir <dir>', 'where journals, locks and plan copies live')
    .addOption(new Option('-w, --warn-days <days>', 'a kubelet certificate with this many days left or fewer is due').default(FlagDefault.warnDays).argParser(intFlag('--warn-days', 0, 3650)))
    .addOption(new Option('--concurrency <n>', 'nodes read at once').default(FlagDefault.concurrency).argParser(intFlag('--concurrency', 1, 256)))
    .addOption(new Option('--parallel <n>', 'worker nodes renewed at once').default(FlagDefault.parallel).argParser(intFlag('--parallel', 1, 64)))
    .addOption(podTimeoutOption())
    .addHelpText(
      'after',
      helpEnd(
        'guided',
        ['rotate-certs --cluster mycluster', 'rotate-certs check --inventory examples/lab/inventory.yaml --dry-run', 'rotate-certs rotate -i inventory.yaml --dry-run', 'rotate-certs help check'],
        'Guided run (the default command): rotate-certs --cluster NAME, in the folder where you ran\n' +
          '`eksctl anywhere create cluster`. It reads every certificate, shows what expires when, asks what to\n' +
          'rotate, shows the plan, asks once, then rotates with progress. Ctrl-C stops at the next safe point.\n' +
          'The exit codes below are the guided run\'s; rotate-certs help COMMAND shows a command\'s own.',
      ),
    )
    // Set after the subcommands exist, so they keep refusing stray arguments.
    .allowExcessArguments(true)
    .action(async (flags: InteractiveFlags) => {
      if (program.args.length > 0) program.error(`error: unknown command '${program.args[0]}'`, { code: 'commander.unknownCommand' });
      if (!flags.cluster) {
        program.outputHelp();
        setExit(ExitCode.usage);
        return;
      }
      setExit(await (await import('./interactive.js')).interactiveCommand(flags, io, rotateEnv));
    });

  return program;
}

/** --pod-timeout: one value for both waits, whose defaults differ. */
function podTimeoutOption(): Option {
  const { stopSeconds, startSeconds } = PodTimeoutDefault;
  return new Option(
    '--pod-timeout <seconds>',
    `how long a static pod may take to stop (default ${stopSeconds}), or to become ready, and etcd to become healthy again in an etcd recovery (default ${startSeconds}); one value sets both`,
  ).argParser(intFlag('--pod-timeout', 5, 3600));
}

function noPlanOutput(): never {
  throw new UsageError('plan has no -o/--output: -o is the output format of check (-o json); plan prints the plan, or writes it to a file with --out FILE');
}

/** Runs the CLI and returns the exit code; user mistakes become one line on stderr. */
export async function runCli(argv: string[], io: CliIo, env: CliEnv = {}): Promise<number> {
  let code: number = ExitCode.ok;
  const program = buildProgram(io, env, (c) => {
    code = c;
  });
  try {
    if (argv.length === 0) {
      program.outputHelp();
      return ExitCode.usage;
    }
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.ok;
      // commander already printed its message; an argParser's UsageError arrives wrapped.
      return ExitCode.usage;
    }
    // Ctrl-C (or a closed terminal) at a question: every question out here comes before a change.
    if (isPromptExit(err)) {
      io.err('\nrotate-certs: stopped at a prompt; nothing was changed\n');
      return ApplyExit.stopped;
    }
    if (err instanceof UsageError || (err as { exitCode?: unknown }).exitCode !== undefined) {
      const e = err as Error & { exitCode: number };
      io.err(`rotate-certs: ${e.message}\n`);
      return e.exitCode;
    }
    io.err(`rotate-certs: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    return ExitCode.software;
  }
}
