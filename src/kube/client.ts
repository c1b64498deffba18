/**
 * A minimal Kubernetes API client for the calls rotate-certs makes (a secret, Cluster API objects,
 * Nodes, one Deployment). Credentials from the kubeconfig's current context: embedded or file client
 * certificates (node:https handles them directly), a bearer token, or an exec credential plugin run
 * as client-go runs it (exec-credential.ts). OIDC auth-provider entries are not supported.
 * @kubernetes/client-node was measured and not adopted: see docs/inventory.md.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import type { EndpointRoute } from '../transport/endpoints.js';
import { dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';
import { errorMessage } from '../util/errors.js';
import { execCredentials, refreshAfterUnauthorized, validateExecConfig, type ExecClusterInfo, type ExecConfig, type ExecCredentials } from './exec-credential.js';

export interface KubeCredentials {
  server: string;
  ca?: string;
  cert?: string;
  key?: string;
  token?: string;
  insecure?: boolean;
  /** A credential plugin, used when the user has neither a client certificate nor a token (as client-go does). */
  exec?: ExecConfig;
  /** What the plugin is told about the cluster when its config says provideClusterInfo. */
  execCluster?: ExecClusterInfo;
  /** Where these came from, for messages: a file path or "admin.conf on lab-cp-1". */
  source: string;
}

export class KubeconfigError extends Error {}

interface RawCluster {
  server: string;
  'certificate-authority-data'?: string;
  'certificate-authority'?: string;
  'insecure-skip-tls-verify'?: boolean;
  'tls-server-name'?: string;
  'proxy-url'?: string;
  extensions?: Array<{ name?: string; extension?: unknown }>;
}
interface RawUser {
  'client-certificate-data'?: string;
  'client-key-data'?: string;
  'client-certificate'?: string;
  'client-key'?: string;
  token?: string;
  exec?: unknown;
}
interface RawKubeconfig {
  'current-context'?: string;
  contexts?: Array<{ name: string; context: { cluster: string; user: string } }>;
  clusters?: Array<{ name: string; cluster: RawCluster }>;
  users?: Array<{ name: string; user: RawUser }>;
}

const b64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : undefined);

/**
 * The current context's server and credentials. `baseDir` is the kubeconfig's folder: file
 * references (client-certificate, client-key, certificate-authority, an exec command with a "/")
 * resolve against it, as kubectl resolves them.
 */
export function parseKubeconfig(text: string, source: string, baseDir?: string): KubeCredentials {
  let raw: RawKubeconfig;
  try {
    raw = parse(text) as RawKubeconfig;
  } catch {
    throw new KubeconfigError(`${source} is not valid YAML`);
  }
  const ctxName = raw['current-context'] ?? raw.contexts?.[0]?.name;
  const ctx = raw.contexts?.find((c) => c.name === ctxName)?.context;
  const cluster = raw.clusters?.find((c) => c.name === ctx?.cluster)?.cluster ?? raw.clusters?.[0]?.cluster;
  const userEntry = raw.users?.find((u) => u.name === ctx?.user) ?? raw.users?.[0];
  const user = userEntry?.user;
  if (!cluster?.server) throw new KubeconfigError(`${source} names no cluster server`);
  const file = (path: string | undefined, what: string): string | undefined => {
    if (!path) return undefined;
    const full = isAbsolute(path) || !baseDir ? path : join(baseDir, path);
    try {
      return readFileSync(full, 'utf8');
    } catch (err) {
      throw new KubeconfigError(`${source}: unable to read ${what} ${full}: ${errorMessage(err)}`);
    }
  };
  const ca = b64(cluster['certificate-authority-data']) ?? file(cluster['certificate-authority'], 'certificate-authority');
  const cert = b64(user?.['client-certificate-data']) ?? file(user?.['client-certificate'], 'client-certificate');
  const key = b64(user?.['client-key-data']) ?? file(user?.['client-key'], 'client-key');
  let exec: ExecConfig | undefined;
  // client-go uses the plugin only when the user has no client certificate and no token.
  if (user?.exec && !cert && !user.token) {
    const checked = validateExecConfig(user.exec, userEntry?.name ?? ctx?.user ?? 'the user', baseDir);
    if (!checked.config) throw new KubeconfigError(`${source}: invalid configuration: ${checked.errors.join('; ')}`);
    exec = checked.config;
  }
  const execConfig = cluster.extensions?.find((x) => x.name === 'client.authentication.k8s.io/exec')?.extension;
  return {
    server: cluster.server,
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(user?.token ? { token: user.token } : {}),
    ...(cluster['insecure-skip-tls-verify'] ? { insecure: true } : {}),
    ...(exec
      ? {
          exec,
          execCluster: {
            server: cluster.server,
            ...(ca ? { 'certificate-authority-data': Buffer.from(ca).toString('base64') } : {}),
            ...(cluster['insecure-skip-tls-verify'] ? { 'insecure-skip-tls-verify': true } : {}),
            ...(cluster['tls-server-name'] ? { 'tls-server-name': cluster['tls-server-name'] } : {}),
            ...(cluster['proxy-url'] ? { 'proxy-url': cluster['proxy-url'] } : {}),
            ...(execConfig !== undefined ? { config: execConfig } : {}),
          },
        }
      : {}),
    source,
  };
}

/** A kubeconfig file's current context (relative references resolve from its folder). */
export function readKubeconfig(path: string): KubeCredentials {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new KubeconfigError(`cannot read the kubeconfig ${path}: ${errorMessage(err)}`);
  }
  return parseKubeconfig(text, path, dirname(path));
}

export class KubeApiError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
  /** The client certificate was refused (expired, or from another CA). */
  get unauthorized(): boolean {
    return this.status === 401;
  }
}

export class KubeClient {
  constructor(
    private readonly creds: KubeCredentials,
    private readonly timeoutMs = 10_000,
    /** Through the inventory's jump host when the API sits behind it (transport/endpoints.ts). */
    private readonly route?: EndpointRoute,
  ) {}

  get source(): string {
    return this.creds.source;
  }

  async request<T = unknown>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const { exec, execCluster } = this.creds;
    let plugin: ExecCredentials | undefined;
    if (exec && execCluster) {
      try {
        plugin = await execCredentials(exec, execCluster);
      } catch (err) {
        // As client-go words it; no status: the request never reached the API.
        throw new KubeApiError(`${method} ${path}: getting credentials: ${errorMessage(err)}`);
      }
    }
    try {
      return await this.send<T>(method, path, body, contentType, plugin);
    } catch (err) {
      if (plugin && exec && execCluster && err instanceof KubeApiError && err.status === 401) refreshAfterUnauthorized(exec, execCluster, plugin);
      throw err;
    }
  }

  private async send<T>(method: string, path: string, body: unknown, contentType: string, plugin: ExecCredentials | undefined): Promise<T> {
    const url = new URL(path, this.creds.server.endsWith('/') ? this.creds.server : `${this.creds.server}/`);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const cert = plugin?.cert ?? this.creds.cert;
    const key = plugin?.key ?? this.creds.key;
    const token = plugin?.token ?? this.creds.token;
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(url.port || 443);
    let stream;
    try {
      stream = await this.route?.(host, port);
    } catch (err) {
      throw new KubeApiError(`cannot reach ${this.creds.server}: ${errorMessage(err)}`);
    }
    return new Promise((resolve, reject) => {
      const req = request(
        {
          method,
          host,
          port,
          // TLS over the jump host's channel: the same handshake and checks, another byte stream.
          ...(stream ? { createConnection: (opts: object) => tlsConnect({ ...opts, socket: stream }) } : {}),
          path: url.pathname + url.search,
          ...(this.creds.ca ? { ca: this.creds.ca } : {}),
          ...(cert ? { cert } : {}),
          ...(key ? { key } : {}),
          rejectUnauthorized: !this.creds.insecure,
          timeout: this.timeoutMs,
          headers: {
            accept: 'application/json',
            ...(payload ? { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) } : {}),
            ...(token ? { authorization: `Bearer ${token}` } : {}),
          },
        },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString('utf8')));
          res.on('end', () => {
            stream?.destroy(); // the jump host's channel, when there is one
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) {
              try {
                resolve((text ? JSON.parse(text) : {}) as T);
              } catch {
                reject(new KubeApiError(`${method} ${path}: the API answered with something other than JSON`, status));
              }
              return;
            }
            let message = text.trim();
            try {
              message = (JSON.parse(text) as { message?: string }).message ?? message;
            } catch {
              // Not a Status object; keep the text.
            }
            reject(new KubeApiError(`${method} ${path}: ${status} ${message}`.trim(), status));
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer from ${this.creds.server} within ${this.timeoutMs / 1000} s`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        stream?.destroy();
        const why = /certificate has expired|CERT_HAS_EXPIRED/.test(err.message) ? 'the API server certificate has expired' : err.code === 'ECONNREFUSED' ? 'connection refused' : err.message;
        reject(new KubeApiError(`cannot reach ${this.creds.server}: ${why}`));
      });
      if (payload) req.write(payload);
      req.end();
    });
  }
}
