/**
 * `rotate-certs trust`: host keys on first contact. Connects to each node (and the jump host first,
 * when there is one) only as far as its host key, prints each key's SHA256 fingerprint beside what
 * known_hosts says of it, and records the new ones once the user confirms them (a prompt, --yes,
 * or --accept-new as OpenSSH's StrictHostKeyChecking=accept-new). A changed or revoked key is
 * never recorded.
 *
 * The keys are read through the SSH transport itself, against an empty known_hosts, so every key
 * reaches its unknown-host-key question, which refuses it: the handshake stops there, before any
 * authentication (transport/host-key-scan.ts). They are then judged against the real known_hosts by known-hosts.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeKey, forgetHostKeyCommand, hostKeyName, KnownHosts, knownHostsLine, trustAction, type HostKeyVerdict, type TrustAction } from '../transport/known-hosts.js';
import { SshConnector, type PassphraseSource } from '../transport/ssh.js';
import { ExitCode } from '../util/errors.js';
import { judge, jumpTargets, nodeTargets, scan, withoutJumpHost, type TrustRow, type TrustTarget } from '../transport/host-key-scan.js';
import { plural } from '../util/wording.js';
import { inventorySpecFor } from '../eksa/cluster-inventory.js';
import { TrustExit } from '../util/exit-codes.js';
import type { CliIo } from './io.js';
import type { InventoryFlags } from './options.js';
import { isPromptExit, noPrompter, terminalPrompter, type Prompter } from '../util/prompter.js';

export interface TrustFlags extends InventoryFlags {
  acceptNew?: boolean;
  yes?: boolean;
  concurrency: number;
}

export interface TrustEnv {
  interactive?: boolean;
}

export async function trustCommand(flags: TrustFlags, io: CliIo, env: TrustEnv = {}): Promise<number> {
  // --accept-new asks too, about what it does not take: a new key type of a known host.
  const asks = env.interactive && !flags.yes;
  const prompter = asks ? await terminalPrompter() : noPrompter;
  try {
    return await trust(flags, io, prompter);
  } catch (err) {
    if (isPromptExit(err)) {
      io.err('\nrotate-certs: stopped at a prompt; no host key recorded after it\n');
      return TrustExit.stopped;
    }
    throw err;
  }
}

async function trust(flags: TrustFlags, io: CliIo, prompter: Prompter): Promise<number> {
  const spec = await inventorySpecFor(flags, io, { prompter });
  const passphrase = passphraseSource(prompter);
  // The identity files and the known_hosts files, checked once as every command does; jump hosts are reached below.
  await new SshConnector({ passphrase, unknownHostKey: async () => false }).prepare({ file: spec.file, nodes: spec.nodes.map(withoutJumpHost) });

  const scanDir = mkdtempSync(join(tmpdir(), 'rotate-certs-trust-'));
  const known = new Map<string, KnownHosts>();
  const hostsFile = (file: string) => known.get(file) ?? known.set(file, KnownHosts.load(file)).get(file)!;
  const files = [...new Set(spec.nodes.map((n) => n.ssh.knownHostsFile))];
  io.out(`Host keys of cluster ${spec.cluster}, against ${files.join(', ')}:\n`);
  let exit: number = TrustExit.done;
  try {
    // The jump hosts first: a node's key is read through its jump host, whose key must be trusted.
    const jumps = jumpTargets(spec);
    const nodes = nodeTargets(spec);
    const all = [...jumps, ...nodes];
    const trustedJumps = new Set<string>();
    const seen: TrustRow[] = [];
    if (jumps.length > 0) {
      const rows = judge(await scan(jumps, join(scanDir, 'none'), flags.concurrency, passphrase, hostsFile), hostsFile);
      seen.push(...rows);
      exit = Math.max(exit, await settle(rows, all, flags, io, prompter, hostsFile));
      const lines: string[] = [];
      for (const r of rows) {
        if (r.key && hostsFile(r.target.knownHostsFile).verify(r.target.host, r.target.port, r.key) === 'match') {
          trustedJumps.add(r.target.label);
          lines.push(knownHostsLine(r.target.host, r.target.port, r.key));
        }
      }
      writeFileSync(join(scanDir, 'jump-hosts'), lines.map((l) => `${l}\n`).join(''), { mode: 0o600 });
    }
    const reachable = nodes.filter((t) => !t.via || trustedJumps.has(t.via));
    const scanned = judge(await scan(reachable, join(scanDir, 'jump-hosts'), flags.concurrency, passphrase, hostsFile), hostsFile);
    const rows = nodes.map((t) => scanned.find((r) => r.target === t) ?? { target: t, error: `not read: the host key of ${t.via} is not trusted` });
    seen.push(...rows);
    exit = Math.max(exit, await settle(rows, all, flags, io, prompter, hostsFile));
    if (seen.every((r) => r.verdict === 'match')) io.out('Every host key was already recorded.\n');
  } finally {
    rmSync(scanDir, { recursive: true, force: true });
  }
  return exit;
}

const STATUS: Record<HostKeyVerdict, string> = { match: 'known', unknown: 'new', mismatch: 'CHANGED', revoked: 'REVOKED' };

/**
 * One line per host: its name, the address known_hosts files it under, its key, and what known_hosts
 * says. `all` are every target of the run, so jump hosts and nodes, printed apart, line up.
 */
export function renderRows(rows: TrustRow[], all: TrustTarget[] = rows.map((r) => r.target)): string {
  const cells = rows.map((r) => [r.target.label, hostKeyName(r.target.host, r.target.port), r.key ? describeKey(r.key) : '-', r.otherTypes ? `new type (${r.otherTypes.join(', ')} recorded)` : r.verdict ? STATUS[r.verdict] : 'not read (the cause is below)']);
  const widths = [
    Math.max(...all.map((t) => t.label.length)),
    Math.max(...all.map((t) => hostKeyName(t.host, t.port).length)),
    // An ed25519 key's width: most are, and the others only push their own line out.
    Math.max('ssh-ed25519 SHA256:'.length + 43, ...cells.map((c) => c[2]!.length)),
  ];
  return cells.map((c) => `  ${c.map((v, i) => (i < 3 ? v.padEnd(widths[i]!) : v)).join('  ')}\n`).join('');
}

/** The line for a key that is refused: both keys, and what to do if the node was rebuilt. */
export function refusalLine(r: TrustRow, kh: KnownHosts): string {
  const { label, host, port } = r.target;
  const presented = r.key ? describeKey(r.key) : '';
  if (r.verdict === 'revoked') return `${label}: host key ${presented} of ${hostKeyName(host, port)} is marked @revoked in ${kh.file}; not recorded`;
  const type = presented.split(' ')[0];
  const old = kh.recorded(host, port).map(describeKey).filter((k) => k.startsWith(`${type} `));
  return (
    `${label}: HOST KEY CHANGED for ${hostKeyName(host, port)}: ${kh.file} holds ${old.join(', ')}, the node now presents ${presented}; not recorded. ` +
    `Possible man-in-the-middle; if the node was rebuilt, remove the old entry (${forgetHostKeyCommand(host, port, kh.file)}) and run trust again`
  );
}

/** Prints the rows, records what may be recorded, and returns the exit code of this group. */
async function settle(rows: TrustRow[], all: TrustTarget[], flags: TrustFlags, io: CliIo, prompter: Prompter, hostsFile: (file: string) => KnownHosts): Promise<number> {
  io.out(renderRows(rows, all));
  let exit: number = TrustExit.done;
  for (const r of rows) {
    if (r.error) {
      io.err(`rotate-certs: ${r.target.label}: ${r.error}\n`);
      exit = TrustExit.refused;
    } else if (r.verdict && trustAction(r.verdict, true) === 'refuse') {
      io.err(`rotate-certs: ${refusalLine(r, hostsFile(r.target.knownHostsFile))}\n`);
      exit = TrustExit.refused;
    }
  }
  for (const r of rows.filter((x) => x.otherTypes)) {
    io.err(
      `rotate-certs: ${r.target.label}: presents a ${describeKey(r.key!).split(' ')[0]} host key, while ${r.target.knownHostsFile} holds only ${r.otherTypes!.join(', ')} for ${hostKeyName(r.target.host, r.target.port)}: ` +
        `a rebuilt node, or something else answering in its place; compare it on the node's console before recording it${flags.acceptNew && !flags.yes ? ' (--accept-new does not record it)' : ''}\n`,
    );
  }
  // A key of a new type for a host already known is no new host: like a changed key, it is checked by a person.
  const withAction = (action: TrustAction) => rows.filter((r) => r.verdict && trustAction(r.verdict, Boolean(flags.acceptNew) && !r.otherTypes) === action);
  const record = withAction('record');
  const unconfirmed = withAction('confirm');
  if (unconfirmed.length > 0) {
    const keys = plural(unconfirmed.length, 'new host key');
    if (flags.yes) record.push(...unconfirmed);
    else if (!prompter.interactive) {
      const why = flags.acceptNew ? 'a host known_hosts already holds another type for is not new to --accept-new' : `no terminal to confirm ${unconfirmed.length === 1 ? 'it' : 'them'}`;
      io.err(
        `rotate-certs: ${keys} not recorded: ${why}; compare the fingerprints above with each node's own ` +
          `(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on its console), then run again with --yes${flags.acceptNew || unconfirmed.every((r) => r.otherTypes) ? '' : ' (or --accept-new to record new keys unchecked)'}\n`,
      );
      exit = Math.max(exit, ExitCode.usage);
    } else {
      io.out("Compare each new key with the node's own before recording it: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on its console.\n");
      if (await prompter.confirm({ message: `Record ${keys} in ${filesOf(unconfirmed)}?`, default: false, answeredBy: '--yes' })) record.push(...unconfirmed);
      else io.out('Nothing recorded.\n');
    }
  }
  for (const r of record) hostsFile(r.target.knownHostsFile).record(r.target.host, r.target.port, r.key!);
  if (record.length > 0) io.out(`Recorded ${plural(record.length, 'new host key')} in ${filesOf(record)}.\n`);
  return exit;
}

const filesOf = (rows: TrustRow[]) => [...new Set(rows.map((r) => r.target.knownHostsFile))].join(', ');

/** A passphrase asked once per key file on a terminal; without one, ROTATE_CERTS_SSH_PASSPHRASE (the transport's default). */
function passphraseSource(prompter: Prompter): PassphraseSource | undefined {
  if (!prompter.interactive) return undefined;
  const asked = new Map<string, Promise<string | undefined>>();
  return (file) => {
    let p = asked.get(file);
    if (!p) {
      p = process.env.ROTATE_CERTS_SSH_PASSPHRASE ? Promise.resolve(process.env.ROTATE_CERTS_SSH_PASSPHRASE) : prompter.password({ message: `Passphrase for ${file}:`, answeredBy: 'ROTATE_CERTS_SSH_PASSPHRASE' });
      asked.set(file, p);
    }
    return p;
  };
}
