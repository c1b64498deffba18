/**
 * known_hosts lookup and recording, as OpenSSH does it: plain and hashed (|1|salt|hash) host
 * fields, [host]:port for non-22 ports, wildcards and negation, and @revoked markers.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { DNS_LABEL } from '../inventory/load.js';
import { shq } from '../util/shell.js';

export type HostKeyVerdict = 'match' | 'mismatch' | 'unknown' | 'revoked';

interface Entry {
  marker?: string;
  hosts: string;
  keyType: string;
  blob: Buffer;
  /** The hosts field, compiled once: a check of 200 nodes looked every node up in every line. */
  matches: (name: string) => boolean;
}

/** The name OpenSSH looks a host up under: "host" on port 22, "[host]:port" otherwise. */
export function hostKeyName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** "SHA256:..." as `ssh-keygen -l` prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** One known_hosts line as OpenSSH writes it: `host` (or `[host]:port`), the key type, the key in base64. */
export function knownHostsLine(host: string, port: number, blob: Buffer): string {
  return `${hostKeyName(host, port)} ${keyTypeOf(blob)} ${blob.toString('base64')}`;
}

/** A key as `ssh-keygen -l` names it: "ssh-ed25519 SHA256:...". */
export function describeKey(blob: Buffer): string {
  return `${keyTypeOf(blob)} ${fingerprint(blob)}`;
}

/**
 * What `rotate-certs trust` does with a host key known_hosts says this of: a known key needs
 * nothing; a new one is recorded at once with --accept-new (as OpenSSH's
 * StrictHostKeyChecking=accept-new), else after the user confirms it; a changed or revoked key
 * is never recorded.
 */
export type TrustAction = 'known' | 'record' | 'confirm' | 'refuse';

export function trustAction(verdict: HostKeyVerdict, acceptNew: boolean): TrustAction {
  if (verdict === 'match') return 'known';
  if (verdict === 'unknown') return acceptNew ? 'record' : 'confirm';
  return 'refuse';
}

/**
 * The command that records an inventory's host keys, as the user most likely named the inventory:
 * `--cluster NAME` for ./NAME/rotate-certs.yaml (saved or built from the EKS Anywhere folder),
 * else `--inventory FILE`.
 */
export function trustCommandFor(inventoryFile: string): string {
  const folder = basename(dirname(inventoryFile));
  return basename(inventoryFile) === 'rotate-certs.yaml' && DNS_LABEL.test(folder)
    ? `rotate-certs trust --cluster ${folder}`
    : `rotate-certs trust --inventory ${inventoryFile}`;
}

/** `ssh-keygen -R` of a host's entries; `[host]:port` is quoted for the shell. */
export function forgetHostKeyCommand(host: string, port: number, file: string): string {
  return `ssh-keygen -R ${shq(hostKeyName(host, port))} -f ${shq(file)}`;
}

/** The key type named inside an SSH public key blob (a length-prefixed string). */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('latin1');
}

function parse(text: string): Entry[] {
  const out: Entry[] = [];
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (!line || line.startsWith('#')) continue;
    const parts = line.split(/\s+/);
    const marker = parts[0]?.startsWith('@') ? parts.shift() : undefined;
    const [hosts, keyType, b64] = parts;
    if (!hosts || !keyType || !b64) continue;
    out.push({ ...(marker ? { marker } : {}), hosts, keyType, blob: Buffer.from(b64, 'base64'), matches: hostsMatcher(hosts) });
  }
  return out;
}

function globRegExp(pattern: string): RegExp {
  return new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
}

/** A hosts field as a test: hashed (|1|salt|hash), or patterns with wildcards and negation. */
function hostsMatcher(field: string): (name: string) => boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return () => false;
    const key = Buffer.from(salt, 'base64');
    return (name) => createHmac('sha1', key).update(name).digest('base64') === hash;
  }
  const patterns = field.split(',').map((p) => (p.startsWith('!') ? { negated: true, re: globRegExp(p.slice(1)) } : { negated: false, re: globRegExp(p) }));
  return (name) => {
    let matched = false;
    for (const p of patterns) {
      if (!p.re.test(name)) continue;
      if (p.negated) return false;
      matched = true;
    }
    return matched;
  };
}

export class KnownHosts {
  /** Lines matching each name looked up (a node's key types, then its key): hashed lines cost an HMAC each. */
  private readonly byName = new Map<string, Entry[]>();

  private constructor(
    readonly file: string,
    private entries: Entry[],
  ) {}

  private forName(name: string): Entry[] {
    let found = this.byName.get(name);
    if (!found) {
      found = this.entries.filter((e) => e.matches(name));
      this.byName.set(name, found);
    }
    return found;
  }

  static load(file: string): KnownHosts {
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    return new KnownHosts(file, parse(text));
  }

  /** Key types already recorded for this host, so the client can ask for those first. */
  knownTypes(host: string, port: number): string[] {
    const name = hostKeyName(host, port);
    return [...new Set(this.forName(name).filter((e) => !e.marker).map((e) => e.keyType))];
  }

  /** The keys recorded for this host (not @revoked or @cert-authority lines), in file order. */
  recorded(host: string, port: number): Buffer[] {
    return this.forName(hostKeyName(host, port))
      .filter((e) => !e.marker)
      .map((e) => e.blob);
  }

  verify(host: string, port: number, blob: Buffer): HostKeyVerdict {
    const name = hostKeyName(host, port);
    const forHost = this.forName(name);
    if (forHost.some((e) => e.marker === '@revoked' && e.blob.equals(blob))) return 'revoked';
    const plain = forHost.filter((e) => !e.marker);
    if (plain.some((e) => e.blob.equals(blob))) return 'match';
    // Like OpenSSH, a different key of the same type is a changed key; a key of a type never
    // seen for this host is only unknown.
    const type = keyTypeOf(blob);
    return plain.some((e) => e.keyType === type) ? 'mismatch' : 'unknown';
  }

  /** Appends the key (accept-new), creating the file 0600 and its folder 0700 when missing. */
  record(host: string, port: number, blob: Buffer, hashed = false): void {
    const name = hostKeyName(host, port);
    let field = name;
    if (hashed) {
      const salt = randomBytes(20);
      field = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
    }
    const type = keyTypeOf(blob);
    const line = hashed ? `${field} ${type} ${blob.toString('base64')}` : knownHostsLine(host, port, blob);
    mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
    const needsNewline = existsSync(this.file) && !/(^|\n)$/.test(readFileSync(this.file, 'utf8'));
    appendFileSync(this.file, `${needsNewline ? '\n' : ''}${line}\n`, { mode: 0o600 });
    this.entries.push({ hosts: field, keyType: type, blob, matches: hostsMatcher(field) });
    this.byName.clear();
  }
}
