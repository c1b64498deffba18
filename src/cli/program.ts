/** The commander wiring: flags, help text, and which function each command runs. */
import { Command, CommanderError, Option } from 'commander';
import { OUTPUT_FORMATS } from '../report/check-output.js';
import { ExitCode, UsageError } from '../util/errors.js';
import { checkCommand, type CheckEnv, type CheckFlags } from './check-command.js';
import type { CliIo } from './io.js';
import { choiceFlag, intFlag } from './options.js';

const VERSION = '0.1.0';

export function buildProgram(io: CliIo, env: CheckEnv, setExit: (code: number) => void): Command {
  const program = new Command('rotate-certs')
    .description('Check and rotate the certificates of EKS Anywhere / kubeadm clusters over SSH, without needing the cluster API.')
    .version(VERSION, '-V, --version')
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
    .option('-i, --inventory <file>', 'inventory YAML (see docs/inventory.md)')
    .option('-c, --cluster <name>', 'read ./<name>/rotate-certs.yaml')
    .addOption(new Option('-o, --output <format>', 'table, json or prometheus').default('table').argParser(choiceFlag('--output', OUTPUT_FORMATS)))
    .addOption(new Option('-w, --warn-days <days>', 'report certificates with this many days left or fewer as expiring').default(30).argParser(intFlag('--warn-days', 0, 3650)))
    .addOption(new Option('--concurrency <n>', 'nodes contacted at once').default(16).argParser(intFlag('--concurrency', 1, 256)))
    .option('--dry-run', 'print what would run on each node and contact nothing')
    .addHelpText(
      'after',
      '\nExit codes:\n  0  every certificate ok\n  1  something expires within --warn-days\n  2  something expired or not yet valid\n  3  some node or endpoint could not be checked (the rest are still reported)\n 64  bad usage or a bad inventory (nothing contacted)\n\nExamples:\n  rotate-certs check --inventory examples/lab/inventory.yaml --dry-run\n  rotate-certs check --cluster mycluster --output json\n  rotate-certs check -i inventory.yaml -o prometheus > /var/lib/node_exporter/textfile/certs.prom',
    )
    .action(async (flags: CheckFlags) => {
      setExit(await checkCommand(flags, io, env));
    });

  return program;
}

/** Runs the CLI and returns the exit code; user mistakes become one line on stderr. */
export async function runCli(argv: string[], io: CliIo, env: CheckEnv = {}): Promise<number> {
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
    if (err instanceof UsageError || (err as { exitCode?: unknown }).exitCode !== undefined) {
      const e = err as Error & { exitCode: number };
      io.err(`rotate-certs: ${e.message}\n`);
      return e.exitCode;
    }
    io.err(`rotate-certs: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    return ExitCode.software;
  }
}
