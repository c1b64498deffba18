/**
 * The ssh2 implementation of Connector: the only module that imports ssh2. One connection per
 * node, reused for every command; host keys checked against known_hosts like OpenSSH does.
 */
import { readFileSync, statSync } from 'node:fs';
import ssh2, { type Client as SshClient, type ClientChannel, type ConnectConfig } from 'ssh2';
import type { InventoryNodeSpec, SshSettings } from '../inventory/types.js';
import { ExitCode, NodeError, RotateCertsError, UsageError, errorMessage } from '../util/errors.js';
import { notAPrivateKey, notAPrivateKeyProblem } from './identity-file.js';
import { describeKey, forgetHostKeyCommand, KnownHosts, trustCommandFor } from './known-hosts.js';
import { CommandTimeoutError, type Connector, type ExecOptions, type ExecResult, type NodeSession } from './session.js';

// ssh2 is CommonJS: named imports of values do not survive ESM interop.
const { Client, utils } = ssh2;
type Client = SshClient;

const ALGOS_BY_KEY_TYPE: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};
const DEFAULT_HOST_KEY_ALGOS = Object.values(ALGOS_BY_KEY_TYPE).flat();

/** Asks for a key file's passphrase; the interactive flow plugs a prompt in here. */
export type PassphraseSource = (identityFile: string) => Promise<string | undefined>;

/** A host key known_hosts does not hold, for a person to accept (it is then recorded) or refuse. */
export interface UnknownHostKey {
  node: string;
  host: string;
  port: number;
  /** "ssh-ed25519 SHA256:..." as ssh-keygen -l shows it. */
  fingerprint: string;
  /** The public key blob itself, for `rotate-certs trust` to record once it is confirmed. */
  key: Buffer;
  knownHostsFile: string;
  /**
   * The key types known_hosts holds for this host when it presents another: no new host, but a
   * rebuilt node or something else answering at its address.
   */
  otherTypes?: string[];
}
export type HostKeyQuestion = (key: UnknownHostKey) => Promise<boolean>;

export interface SshConnectorOptions {
  /** Defaults to ROTATE_CERTS_SSH_PASSPHRASE. */
  passphrase?: PassphraseSource;
  /**
   * With hostKeyPolicy strict, an unknown (never a changed) host key is put to this question
   * instead of refused; an accepted key is recorded in known_hosts.
   */
  unknownHostKey?: HostKeyQuestion;
  /** Defaults to SSH_AUTH_SOCK. */
  agentSocket?: string;
  /**
   * Host key types to ask a host for first, before those its known_hosts file holds: `trust` reads
   * keys against an empty file, yet must get the key a real connection would (the recorded type).
   */
  preferKeyTypes?: (host: string, port: number) => string[];
}

interface Credentials {
  privateKey?: Buffer;
  passphrase?: string;
  agent?: string;
}

export class SshConnector implements Connector {
  private readonly knownHosts = new Map<string, KnownHosts>();
  private readonly keys = new Map<string, Promise<Credentials>>();
  private readonly jumps = new Map<string, Promise<Client>>();
  /** Per node's settings, the command that records its inventory's host keys (one connector may serve several inventories). */
  private readonly trustCommands = new WeakMap<SshSettings, string>();

  constructor(private readonly opts: SshConnectorOptions = {}) {}

  /**
   * Each identity file read once (present, private to its owner, a key, decrypted), each
   * known_hosts file that must already hold the nodes' keys present and readable, each jump host
   * reached: one error naming the inventory field, before any node is contacted.
   */
  async prepare(inv: { file: string; nodes: InventoryNodeSpec[] }): Promise<void> {
    const at = (field: string, problem: string) => `${inv.file}: ${field}: ${problem}`;
    const trust = trustCommandFor(inv.file);
    for (const n of inv.nodes) this.trustCommands.set(n.ssh, trust);
    const keyFiles = new Map<string, SshSettings>();
    for (const n of inv.nodes) {
      if (n.ssh.identityFile) {
        if (!keyFiles.has(n.ssh.identityFile)) keyFiles.set(n.ssh.identityFile, n.ssh);
      } else if (!(this.opts.agentSocket ?? process.env.SSH_AUTH_SOCK)) {
        throw new UsageError(`${inv.file}: ssh.identityFile is not set and there is no ssh-agent (SSH_AUTH_SOCK is not set): name the private key in ssh.identityFile, or start ssh-agent and add it`);
      }
    }
    for (const settings of keyFiles.values()) {
      await this.credentials(settings).catch((err: unknown) => {
        throw err instanceof KeyFileError ? new UsageError(at(settings.identityFileField ?? 'ssh.identityFile', err.message)) : err;
      });
    }
    // With strict host keys and nobody to ask, a missing known_hosts makes every host unknown.
    for (const settings of new Map(inv.nodes.map((n) => [n.ssh.knownHostsFile, n.ssh])).values()) {
      const field = `ssh.knownHostsFile${settings.knownHostsFileSet === false ? ' (not set)' : ''}`;
      try {
        readFileSync(settings.knownHostsFile);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT') throw new UsageError(at(field, `cannot read ${settings.knownHostsFile}: ${code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a folder' : String(code)}`));
        if (settings.hostKeyPolicy === 'strict' && !this.opts.unknownHostKey) {
          throw new UsageError(
            at(field, `${settings.knownHostsFile} does not exist, so with ssh.hostKeyPolicy strict every node's host key is unknown: check and record them with ${trust} (or set ssh.hostKeyPolicy: accept-new)`),
          );
        }
      }
    }
    const jumps = new Map(inv.nodes.flatMap((n) => (n.ssh.jumpHost ? [[jumpKey(n.ssh), n] as const] : [])));
    for (const [key, node] of jumps) {
      await this.jumpClient(node).catch((err: unknown) => {
        throw new RotateCertsError(at('ssh.jumpHost', `cannot reach jump host ${key}: ${errorMessage(err)}`), ExitCode.unavailable);
      });
    }
  }

  async connect(node: InventoryNodeSpec): Promise<NodeSession> {
    const creds = await this.credentials(node.ssh).catch((err: unknown) => {
      throw err instanceof KeyFileError ? new NodeError('ssh', err.message) : err;
    });
    for (let attempt = 0; ; attempt++) {
      const sock = node.ssh.jumpHost ? await this.tunnel(node, node.ssh.port) : undefined;
      try {
        const client = await this.open(node.name, node.host, node.ssh.port, node.ssh.user, node.ssh, creds, sock);
        return new SshSession(node, client);
      } catch (err) {
        // Asked outside the handshake, so no connect timeout runs while a person reads the fingerprint.
        if (err instanceof UnknownHostKeyError && this.opts.unknownHostKey && attempt === 0) {
          const kh = this.hostsFile(node.ssh);
          if (await this.opts.unknownHostKey({ node: node.name, host: node.host, port: node.ssh.port, fingerprint: err.fingerprint, key: err.key, knownHostsFile: kh.file, ...(err.otherTypes.length > 0 ? { otherTypes: err.otherTypes } : {}) })) {
            kh.record(node.host, node.ssh.port, err.key);
            continue;
          }
          throw new NodeError(node.name, `host key ${err.fingerprint} of ${node.host} was not accepted; nothing was run there`);
        }
        throw new NodeError(node.name, errorMessage(err));
      }
    }
  }

  /** A stream to node:port through the node's jump host (one shared connection per jump host). */
  async tunnel(node: InventoryNodeSpec, port: number): Promise<ClientChannel> {
    const jh = node.ssh.jumpHost;
    if (!jh) throw new NodeError(node.name, 'no jump host configured');
    const client = await this.jumpClient(node).catch((err: unknown) => {
      throw new NodeError(node.name, `cannot reach jump host ${jumpKey(node.ssh)}: ${errorMessage(err)}`);
    });
    return forward(client, node.host, port, node.ssh.connectTimeoutMs).catch((err: unknown) => {
      throw new NodeError(node.name, `jump host ${jh.host} cannot open a channel to ${node.host}:${port}: ${errorMessage(err)}`);
    });
  }

  /** The shared connection to a node's jump host, opened on first use. */
  private jumpClient(node: InventoryNodeSpec): Promise<Client> {
    const jh = node.ssh.jumpHost as NonNullable<SshSettings['jumpHost']>;
    const key = jumpKey(node.ssh);
    let jump = this.jumps.get(key);
    if (!jump) {
      jump = this.credentials(node.ssh).then((creds) => this.open(`jump host ${jh.host}`, jh.host, jh.port, jh.user, node.ssh, creds));
      this.jumps.set(key, jump);
    }
    return jump;
  }

  /** Ends the shared jump-host connections; node sessions are closed by their owners. */
  async close(): Promise<void> {
    const jumps = [...this.jumps.values()];
    this.jumps.clear();
    await Promise.all(jumps.map((j) => j.then((c) => endClient(c), () => undefined)));
  }

  private hostsFile(settings: SshSettings): KnownHosts {
    let kh = this.knownHosts.get(settings.knownHostsFile);
    if (!kh) {
      kh = KnownHosts.load(settings.knownHostsFile);
      this.knownHosts.set(settings.knownHostsFile, kh);
    }
    return kh;
  }

  /** Reads and decrypts the identity file once per run; an agent is used when there is none. */
  private credentials(settings: SshSettings): Promise<Credentials> {
    const file = settings.identityFile;
    const agent = this.opts.agentSocket ?? process.env.SSH_AUTH_SOCK;
    if (!file) {
      if (!agent) {
        return Promise.reject(new NodeError('ssh', 'no identityFile in the inventory and no ssh-agent (SSH_AUTH_SOCK is not set)'));
      }
      return Promise.resolve({ agent });
    }
    let pending = this.keys.get(file);
    if (!pending) {
      pending = this.loadKey(file).then((c) => (agent ? { ...c, agent } : c));
      this.keys.set(file, pending);
    }
    return pending;
  }

  private async loadKey(file: string): Promise<Credentials> {
    const { data, mode } = readKeyFile(file);
    // Before the mode check: advice to chmod a public key would send the user the wrong way.
    const kind = notAPrivateKey(data.toString('utf8'));
    if (kind) throw new KeyFileError(notAPrivateKeyProblem(file, kind));
    // As OpenSSH does: a private key others may read is refused, not used.
    if ((mode & 0o077) !== 0) {
      throw new KeyFileError(`identity file ${file} is readable by others (mode ${mode.toString(8).padStart(4, '0')}); OpenSSH refuses such keys too: chmod 600 ${file}`);
    }
    const plain = utils.parseKey(data);
    if (!(plain instanceof Error)) {
      // ssh2 parses public keys too; one would only fail later, on every node, at authentication.
      if (!plain.isPrivateKey()) throw new KeyFileError(notAPrivateKeyProblem(file, 'public key'));
      return { privateKey: data };
    }
    if (!/encrypted|passphrase/i.test(plain.message)) {
      throw new KeyFileError(`identity file ${file} is not a private key ssh2 can read: ${plain.message}`);
    }
    const passphrase = await (this.opts.passphrase ?? envPassphrase)(file);
    if (!passphrase) {
      throw new KeyFileError(`identity file ${file} is encrypted: set ROTATE_CERTS_SSH_PASSPHRASE or run interactively`);
    }
    const parsed = utils.parseKey(data, passphrase);
    if (parsed instanceof Error) throw new KeyFileError(`wrong passphrase for identity file ${file}`);
    return { privateKey: data, passphrase };
  }

  private open(
    label: string,
    host: string,
    port: number,
    username: string,
    settings: SshSettings,
    creds: Credentials,
    sock?: ClientChannel,
  ): Promise<Client> {
    const kh = this.hostsFile(settings);
    const known = [...(this.opts.preferKeyTypes?.(host, port) ?? []), ...kh.knownTypes(host, port)].flatMap((t) => ALGOS_BY_KEY_TYPE[t] ?? []);
    let refusal: Error | undefined;
    const config: ConnectConfig = {
      host,
      port,
      username,
      readyTimeout: settings.connectTimeoutMs,
      keepaliveInterval: 15_000,
      algorithms: { serverHostKey: [...new Set([...known, ...DEFAULT_HOST_KEY_ALGOS])] as never },
      hostVerifier: (key: Buffer) => {
        const verdict = kh.verify(host, port, key);
        const fp = describeKey(key);
        if (verdict === 'match') return true;
        // A key of a type known_hosts does not hold, while it holds another, is no new host: accept-new leaves it to a person.
        const otherTypes = verdict === 'unknown' ? kh.knownTypes(host, port) : [];
        if (verdict === 'unknown' && otherTypes.length === 0 && settings.hostKeyPolicy === 'accept-new') {
          kh.record(host, port, key);
          return true;
        }
        const trust = this.trustCommands.get(settings) ?? 'rotate-certs trust';
        const message =
          verdict === 'mismatch'
            ? changedHostKeyMessage(host, port, fp, kh)
            : verdict === 'revoked'
              ? `host key ${fp} of ${host} is marked @revoked in ${kh.file}`
              : otherTypes.length > 0
                ? `${host}:${port} presents a host key of a new type (${fp}) while ${kh.file} holds only ${otherTypes.join(', ')} for it: a rebuilt node, or something else answering in its place; compare it on the node's console, then record it with ${trust} --yes`
                : `unknown host key for ${host}:${port} (${fp}), not in ${kh.file}: check and record it with ${trust} (or set ssh.hostKeyPolicy: accept-new)`;
        refusal = verdict === 'unknown' ? new UnknownHostKeyError(message, fp, key, otherTypes) : new Error(message);
        return false;
      },
      ...(creds.privateKey ? { privateKey: creds.privateKey } : {}),
      ...(creds.passphrase ? { passphrase: creds.passphrase } : {}),
      ...(creds.agent ? { agent: creds.agent } : {}),
      ...(sock ? { sock } : {}),
    };
    return new Promise((resolve, reject) => {
      const client = new Client();
      const onError = (err: Error & { level?: string; code?: string }) => {
        client.end();
        if (refusal) return reject(refusal);
        reject(new Error(describeConnectError(err, label, host, port, username)));
      };
      client.once('ready', () => {
        client.off('error', onError);
        // Later transport errors surface through the failing exec.
        client.on('error', () => {});
        resolve(client);
      });
      client.once('error', onError);
      client.connect(config);
    });
  }
}

/** Both keys, so the user can tell a rebuilt node (its console shows the new one) from an impostor. */
function changedHostKeyMessage(host: string, port: number, presented: string, kh: KnownHosts): string {
  const type = presented.split(' ')[0];
  const old = kh.recorded(host, port).map(describeKey).filter((k) => k.startsWith(`${type} `));
  return (
    `HOST KEY CHANGED for ${host}:${port} (now ${presented}); known_hosts ${kh.file} holds another key (${old.join(', ')}). ` +
    `Possible man-in-the-middle; if the node was rebuilt, remove the old entry with: ${forgetHostKeyCommand(host, port, kh.file)}`
  );
}

/** The identity file cannot be used: the same for every node that names it. */
class KeyFileError extends Error {}

function readKeyFile(file: string): { data: Buffer; mode: number } {
  try {
    return { data: readFileSync(file), mode: statSync(file).mode & 0o777 };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new KeyFileError(`cannot read identity file ${file}: ${code === 'ENOENT' ? 'no such file' : code}`);
  }
}

function jumpKey(settings: SshSettings): string {
  const jh = settings.jumpHost;
  return jh ? `${jh.user}@${jh.host}:${jh.port}` : '';
}

/** The handshake stopped at a host key known_hosts does not hold. */
class UnknownHostKeyError extends Error {
  constructor(
    message: string,
    readonly fingerprint: string,
    readonly key: Buffer,
    readonly otherTypes: string[],
  ) {
    super(message);
  }
}

function describeConnectError(err: Error & { level?: string; code?: string }, label: string, host: string, port: number, user: string): string {
  const where = `${host}:${port}`;
  // No address: the line names the node, and a key every node refuses then reads as one line.
  if (err.level === 'client-authentication') return `ssh authentication as ${user} failed (the key was not accepted)`;
  if (err.code === 'ECONNREFUSED') return `connection refused by ${where} (is sshd running?)`;
  if (err.code === 'EHOSTUNREACH' || err.code === 'ENETUNREACH') return `${where} is unreachable`;
  if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') return `cannot resolve ${host}`;
  if (/Timed out while waiting for handshake/.test(err.message)) return `timed out connecting to ${where}`;
  return `ssh to ${label} (${where}) failed: ${err.message}`;
}

function envPassphrase(): Promise<string | undefined> {
  return Promise.resolve(process.env.ROTATE_CERTS_SSH_PASSPHRASE || undefined);
}

/** A direct-tcpip channel through the jump host; bounded, since a jump host may never answer. */
function forward(jump: Client, host: string, port: number, timeoutMs: number): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      reject(new Error(`no answer within ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
    jump.forwardOut('127.0.0.1', 0, host, port, (err, stream) => {
      clearTimeout(timer);
      if (settled) {
        stream?.destroy(); // opened after we gave up on it
        return;
      }
      settled = true;
      if (err) reject(err);
      else resolve(stream);
    });
  });
}

/** How long a closing connection may take to be closed by the node before it is cut. */
export const CLOSE_GRACE_MS = 3000;

class SshSession implements NodeSession {
  private closed = false;

  constructor(
    readonly node: InventoryNodeSpec,
    private readonly client: Client,
  ) {
    client.on('close', () => {
      this.closed = true;
    });
  }

  exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    if (this.closed) return Promise.reject(new NodeError(this.node.name, 'the SSH connection was closed'));
    const timeoutMs = opts.timeoutMs ?? this.node.ssh.commandTimeoutMs;
    return new Promise((resolve, reject) => {
      let stream: ClientChannel | undefined;
      let timedOut = false;
      // From the request on, not from the channel's opening: a node that stopped answering never
      // opens the channel, and the command would wait for it without end.
      const timer = setTimeout(() => {
        timedOut = true;
        // OpenSSH honours signal requests; closing the channel ends it otherwise. A process that
        // keeps the channel's output open (a child of sudo) can hold the close back, so the
        // timeout is reported now rather than when the channel finally closes.
        stream?.signal('KILL');
        stream?.close();
        reject(new CommandTimeoutError(command, timeoutMs));
      }, timeoutMs);
      // ssh2 throws at once ("Not connected") when the socket is gone but 'close' has not come yet.
      try {
        this.client.exec(command, (err, opened) => {
          if (timedOut) {
            opened?.close();
            return;
          }
          if (err) {
            clearTimeout(timer);
            return reject(new NodeError(this.node.name, `cannot start a command: ${err.message}`));
          }
          stream = opened;
          const out: Buffer[] = [];
          const errOut: Buffer[] = [];
          opened.on('data', (d: Buffer) => out.push(d));
          opened.stderr.on('data', (d: Buffer) => errOut.push(d));
          opened.on('close', (code: number | null, signal?: string) => {
            clearTimeout(timer);
            if (timedOut) return;
            resolve({
              code: code ?? null,
              ...(signal ? { signal } : {}),
              stdout: Buffer.concat(out).toString('utf8'),
              stderr: Buffer.concat(errOut).toString('utf8'),
            });
          });
          if (opts.stdin !== undefined) opened.end(opts.stdin);
          else opened.end();
        });
      } catch (err) {
        clearTimeout(timer);
        reject(new NodeError(this.node.name, `cannot start a command: ${errorMessage(err)}`));
      }
    });
  }

  close(): Promise<void> {
    return this.closed ? Promise.resolve() : endClient(this.client);
  }
}

/**
 * Ends a connection. A host that stopped answering never closes its side, so after CLOSE_GRACE_MS
 * the socket is cut: the command line must not wait on it after its run, nor stay alive for it.
 */
function endClient(client: SshClient): Promise<void> {
  return new Promise((resolve) => {
    // A connection that dropped already emits no 'close' again.
    if ((client as unknown as { _sock?: { destroyed?: boolean } })._sock?.destroyed) return resolve();
    // ssh2's destroy() does nothing once end() made its socket unwritable: the socket is cut itself.
    // Resolved then whatever happens: a connection that had closed already emits no 'close' again.
    const timer = setTimeout(() => {
      (client as unknown as { _sock?: { destroy(): void } })._sock?.destroy();
      resolve();
    }, CLOSE_GRACE_MS);
    client.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    client.end();
  });
}
