/**
 * A minimal Kubernetes API client for the three calls rotate-certs makes (read and patch one
 * secret, list KubeadmControlPlanes). EKS Anywhere kubeconfigs authenticate with embedded client
 * certificates, which node:https handles directly; exec plugins and OIDC are not supported.
 * (@kubernetes/client-node was considered: it pulls in @types/node 22 and a fetch stack for
 * these three calls.)
 */
import { request } from 'node:https';
import { parse } from 'yaml';

export interface KubeCredentials {
  server: string;
  ca?: string;
  cert?: string;
  key?: string;
  token?: string;
  insecure?: boolean;
  /** Where these came from, for messages: a file path or "admin.conf on lab-cp-1". */
  source: string;
}

export class KubeconfigError extends Error {}

interface RawKubeconfig {
  'current-context'?: string;
  contexts?: Array<{ name: string; context: { cluster: string; user: string } }>;
  clusters?: Array<{ name: string; cluster: { server: string; 'certificate-authority-data'?: string; 'insecure-skip-tls-verify'?: boolean } }>;
  users?: Array<{ name: string; user: { 'client-certificate-data'?: string; 'client-key-data'?: string; token?: string; exec?: unknown } }>;
}

const b64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : undefined);

/** The current context's server and credentials. */
export function parseKubeconfig(text: string, source: string): KubeCredentials {
  let raw: RawKubeconfig;
  try {
    raw = parse(text) as RawKubeconfig;
  } catch {
    throw new KubeconfigError(`${source} is not valid YAML`);
  }
  const ctxName = raw['current-context'] ?? raw.contexts?.[0]?.name;
  const ctx = raw.contexts?.find((c) => c.name === ctxName)?.context;
  const cluster = raw.clusters?.find((c) => c.name === ctx?.cluster)?.cluster ?? raw.clusters?.[0]?.cluster;
  const user = raw.users?.find((u) => u.name === ctx?.user)?.user ?? raw.users?.[0]?.user;
  if (!cluster?.server) throw new KubeconfigError(`${source} names no cluster server`);
  if (user?.exec) throw new KubeconfigError(`${source} authenticates with an exec plugin, which rotate-certs does not run; use a kubeconfig with a client certificate`);
  const ca = b64(cluster['certificate-authority-data']);
  const cert = b64(user?.['client-certificate-data']);
  const key = b64(user?.['client-key-data']);
  return {
    server: cluster.server,
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(user?.token ? { token: user.token } : {}),
    ...(cluster['insecure-skip-tls-verify'] ? { insecure: true } : {}),
    source,
  };
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
  ) {}

  get source(): string {
    return this.creds.source;
  }

  request<T = unknown>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const url = new URL(path, this.creds.server.endsWith('/') ? this.creds.server : `${this.creds.server}/`);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          method,
          host: url.hostname.replace(/^\[|\]$/g, ''),
          port: url.port || 443,
          path: url.pathname + url.search,
          ...(this.creds.ca ? { ca: this.creds.ca } : {}),
          ...(this.creds.cert ? { cert: this.creds.cert } : {}),
          ...(this.creds.key ? { key: this.creds.key } : {}),
          rejectUnauthorized: !this.creds.insecure,
          timeout: this.timeoutMs,
          headers: {
            accept: 'application/json',
            ...(payload ? { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) } : {}),
            ...(this.creds.token ? { authorization: `Bearer ${this.creds.token}` } : {}),
          },
        },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString('utf8')));
          res.on('end', () => {
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
        const why = /certificate has expired|CERT_HAS_EXPIRED/.test(err.message) ? 'the API server certificate has expired' : err.code === 'ECONNREFUSED' ? 'connection refused' : err.message;
        reject(new KubeApiError(`cannot reach ${this.creds.server}: ${why}`));
      });
      if (payload) req.write(payload);
      req.end();
    });
  }
}
