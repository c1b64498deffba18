/**
 * client-go credential plugins (`users[].user.exec` of a kubeconfig), run the way kubectl runs them
 * (client-go plugin/pkg/client/auth/exec/exec.go; the kubeconfig rules in tools/clientcmd
 * validation.go and api/v1 defaults.go): the command gets KUBERNETES_EXEC_INFO (an ExecCredential of
 * the configured apiVersion with spec.interactive, and spec.cluster when provideClusterInfo), the
 * kubeconfig's env on top of ours, standard input only when interactive, our standard error; it
 * prints an ExecCredential of the same apiVersion with a token or a client certificate and key.
 * The result is kept in this process until its expirationTimestamp (without one, for the life of
 * the process); after a 401 the plugin runs again for the next request.
 *
 * Differences, on purpose: rotate-certs bounds a non-interactive plugin run (kubectl waits for
 * ever), and errors never quote the plugin's output, which holds a private key or a token.
 */
import { spawn } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { parse } from 'yaml';

export const EXEC_API_VERSIONS = ['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1'] as const;
export type ExecApiVersion = (typeof EXEC_API_VERSIONS)[number];
export const INTERACTIVE_MODES = ['Never', 'IfAvailable', 'Always'] as const;
export type InteractiveMode = (typeof INTERACTIVE_MODES)[number];

/** A validated `user.exec`. */
export interface ExecConfig {
  apiVersion: ExecApiVersion;
  /** As written, or resolved against the kubeconfig's folder when it names a path (contains "/"). */
  command: string;
  args: string[];
  env: Array<{ name: string; value: string }>;
  interactiveMode: InteractiveMode;
  provideClusterInfo: boolean;
  installHint?: string;
}

/** What the plugin may be told about the cluster (spec.cluster), when provideClusterInfo. */
export interface ExecClusterInfo {
  server: string;
  'certificate-authority-data'?: string;
  'insecure-skip-tls-verify'?: boolean;
  'tls-server-name'?: string;
  'proxy-url'?: string;
  /** The cluster's extension named client.authentication.k8s.io/exec. */
  config?: unknown;
}

export interface ExecCredentials {
  token?: string;
  cert?: string;
  key?: string;
  /** ms since the epoch; undefined: valid for the life of the process. */
  expiresAt?: number;
}

export class ExecPluginError extends Error {}

/** What the plugin run depends on, replaceable in tests. */
export interface ExecDeps {
  stdinIsTerminal(): boolean;
  now(): number;
  /** A non-interactive run longer than this fails (a plugin waiting for input nobody gives). */
  timeoutMs: number;
}

const defaultDeps: ExecDeps = { stdinIsTerminal: () => process.stdin.isTTY === true, now: () => Date.now(), timeoutMs: 60_000 };

/**
 * The kubeconfig rules for an exec user (clientcmd validation.go, then exec.go's apiVersion check),
 * as one message per problem; `userName` is the kubeconfig's name for the user.
 */
export function validateExecConfig(raw: unknown, userName: string, baseDir?: string): { config?: ExecConfig; errors: string[] } {
  const errors: string[] = [];
  const e = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  const command = str(e.command);
  const apiVersion = str(e.apiVersion);
  if (!command) errors.push(`command must be specified for ${userName} to use exec authentication plugin`);
  if (!apiVersion) errors.push(`apiVersion must be specified for ${userName} to use exec authentication plugin`);
  const env: Array<{ name: string; value: string }> = [];
  for (const item of Array.isArray(e.env) ? e.env : []) {
    const v = (item && typeof item === 'object' ? item : {}) as Record<string, unknown>;
    if (!str(v.name)) errors.push(`env variable name must be specified for ${userName} to use exec authentication plugin`);
    else env.push({ name: str(v.name), value: v.value === undefined || v.value === null ? '' : String(v.value) });
  }
  // api/v1 defaults.go: v1beta1 (and the retired v1alpha1) default to IfAvailable; v1 must say.
  let mode = str(e.interactiveMode);
  if (!mode && (apiVersion === 'client.authentication.k8s.io/v1beta1' || apiVersion === 'client.authentication.k8s.io/v1alpha1')) mode = 'IfAvailable';
  if (!mode) errors.push(`interactiveMode must be specified for ${userName} to use exec authentication plugin`);
  else if (!(INTERACTIVE_MODES as readonly string[]).includes(mode)) errors.push(`invalid interactiveMode for ${userName}: ${JSON.stringify(mode)}`);
  if (errors.length === 0 && !(EXEC_API_VERSIONS as readonly string[]).includes(apiVersion)) errors.push(`exec plugin: invalid apiVersion ${JSON.stringify(apiVersion)}`);
  if (errors.length > 0) return { errors };
  // clientcmd loader.go: a command with a path separator is relative to the kubeconfig's folder; a bare name is looked up in PATH.
  const resolved = baseDir && command.includes('/') && !command.startsWith('/') ? `${baseDir.replace(/\/+$/, '')}/${command}` : command;
  const installHint = str(e.installHint);
  return {
    errors,
    config: {
      apiVersion: apiVersion as ExecApiVersion,
      command: resolved,
      args: Array.isArray(e.args) ? e.args.map((a) => String(a)) : [],
      env,
      interactiveMode: mode as InteractiveMode,
      provideClusterInfo: e.provideClusterInfo === true,
      ...(installHint ? { installHint } : {}),
    },
  };
}

interface Entry {
  creds?: ExecCredentials;
  pending?: Promise<ExecCredentials>;
}
/** Per plugin config and cluster, like client-go's global authenticator cache. */
const cache = new Map<string, Entry>();

function cacheKey(config: ExecConfig, cluster: ExecClusterInfo): string {
  return JSON.stringify({ config, cluster });
}

/** The plugin's credentials: cached ones while they last, else a new run (one at a time per config). */
export async function execCredentials(config: ExecConfig, cluster: ExecClusterInfo, deps: ExecDeps = defaultDeps): Promise<ExecCredentials> {
  const key = cacheKey(config, cluster);
  let entry = cache.get(key);
  if (!entry) cache.set(key, (entry = {}));
  if (entry.creds && (entry.creds.expiresAt === undefined || deps.now() <= entry.creds.expiresAt)) return entry.creds;
  if (!entry.pending) {
    const e = entry;
    e.pending = runPlugin(config, cluster, deps)
      .then((creds) => (e.creds = creds))
      .finally(() => delete e.pending);
  }
  return entry.pending as Promise<ExecCredentials>;
}

/** After a 401 with `used`: the next request runs the plugin again (unless another request already did). */
export function refreshAfterUnauthorized(config: ExecConfig, cluster: ExecClusterInfo, used: ExecCredentials): void {
  const entry = cache.get(cacheKey(config, cluster));
  if (entry?.creds === used) delete entry.creds;
}

/** Forgets every cached credential (tests). */
export function clearExecCredentialCache(): void {
  cache.clear();
}

function interactive(mode: InteractiveMode, deps: ExecDeps): boolean {
  if (mode === 'Never') return false;
  const tty = deps.stdinIsTerminal();
  if (mode === 'Always' && !tty) throw new ExecPluginError('exec plugin cannot support interactive mode: standard input is not a terminal');
  return tty;
}

function runPlugin(config: ExecConfig, cluster: ExecClusterInfo, deps: ExecDeps): Promise<ExecCredentials> {
  return new Promise((resolve, reject) => {
    let tty: boolean;
    try {
      tty = interactive(config.interactiveMode, deps);
    } catch (err) {
      reject(err);
      return;
    }
    const info = { apiVersion: config.apiVersion, kind: 'ExecCredential', spec: { interactive: tty, ...(config.provideClusterInfo ? { cluster } : {}) } };
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const { name, value } of config.env) env[name] = value;
    env.KUBERNETES_EXEC_INFO = JSON.stringify(info);
    const child = spawn(config.command, config.args, { env, stdio: [tty ? 'inherit' : 'ignore', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    const timer = tty
      ? undefined
      : setTimeout(() => {
          child.kill('SIGKILL');
          reject(new ExecPluginError(`exec: executable ${config.command} did not finish within ${Math.round(deps.timeoutMs / 1000)} s (interactiveMode ${config.interactiveMode}, no terminal to answer it)`));
        }, deps.timeoutMs);
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (timer) clearTimeout(timer);
      if (err.code === 'ENOENT') {
        const hint = config.installHint ? `: ${config.installHint.trim().replace(/\s*\n\s*/g, ' ')}` : '';
        reject(new ExecPluginError(`exec: executable ${config.command} not found${hint}`));
      } else reject(new ExecPluginError(`exec: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      // Go's ExitCode() is -1 for a process killed by a signal.
      if (code !== 0) return reject(new ExecPluginError(`exec: executable ${config.command} failed with exit code ${code ?? (signal ? -1 : 1)}`));
      try {
        resolve(decodeCredential(Buffer.concat(out).toString('utf8'), config.apiVersion));
      } catch (err) {
        reject(err);
      }
    });
  });
}

/** The plugin's output as credentials, checked as client-go checks it. Never quotes the output. */
export function decodeCredential(text: string, apiVersion: ExecApiVersion): ExecCredentials {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    try {
      doc = parse(text); // client-go's universal decoder takes YAML too
    } catch {
      throw new ExecPluginError('decoding stdout: the plugin printed neither JSON nor YAML');
    }
  }
  const cred = (doc && typeof doc === 'object' ? doc : {}) as { apiVersion?: unknown; kind?: unknown; status?: Record<string, unknown> | null };
  if (typeof cred.kind !== 'string' || !cred.kind) throw new ExecPluginError("decoding stdout: Object 'Kind' is missing in the plugin's output");
  if (cred.apiVersion !== apiVersion) throw new ExecPluginError(`exec plugin is configured to use API version ${apiVersion}, plugin returned version ${typeof cred.apiVersion === 'string' ? cred.apiVersion : ''}`);
  if (cred.kind !== 'ExecCredential') throw new ExecPluginError(`decoding stdout: no kind "${cred.kind}" is registered for version "${apiVersion}"`);
  const st = cred.status;
  if (!st || typeof st !== 'object') throw new ExecPluginError("exec plugin didn't return a status field");
  const field = (k: string) => (typeof st[k] === 'string' ? (st[k] as string) : '');
  const token = field('token');
  const cert = field('clientCertificateData');
  const key = field('clientKeyData');
  if (!token && !cert && !key) throw new ExecPluginError("exec plugin didn't return a token or cert/key pair");
  if (!cert !== !key) throw new ExecPluginError('exec plugin returned only certificate or key, not both');
  if (cert) {
    try {
      if (!new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) throw new Error('private key does not match public key');
    } catch (err) {
      throw new ExecPluginError(`failed parsing client key/certificate: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  let expiresAt: number | undefined;
  const exp = st.expirationTimestamp;
  if (exp !== undefined && exp !== null) {
    expiresAt = typeof exp === 'string' ? Date.parse(exp) : NaN;
    if (Number.isNaN(expiresAt)) throw new ExecPluginError('decoding stdout: status.expirationTimestamp is not an RFC 3339 time');
  }
  return { ...(token ? { token } : {}), ...(cert ? { cert, key } : {}), ...(expiresAt !== undefined ? { expiresAt } : {}) };
}
