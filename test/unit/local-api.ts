/**
 * Test helper: a small HTTPS server on 127.0.0.1 standing in for a kube-apiserver (client
 * certificates checked against its CA, made by openssl), with a kubeconfig for it. Each test says
 * what the server answers; the server records every request and who made it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

export interface SeenRequest {
  method: string;
  path: string;
  /** CN of the client certificate, if any. */
  cn?: string;
  authorization?: string;
  contentType?: string;
  body?: unknown;
}

export type Answer = { status: number; body: unknown; type?: string };
export type Handler = (req: SeenRequest) => Answer;

export interface LocalApi {
  server: string;
  dir: string;
  ca: string;
  /** The client pair the server accepts (CN=kubernetes-admin, O=system:masters). */
  clientCert: string;
  clientKey: string;
  seen: SeenRequest[];
  /** Writes a kubeconfig for this server with the given user entry; returns its path. */
  kubeconfig(user: Record<string, unknown>, file?: string): string;
  /** A kubeconfig with the accepted client pair embedded. */
  adminKubeconfig(): string;
  close(): Promise<void>;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

export async function startLocalApi(handler: Handler): Promise<LocalApi> {
  const dir = mkdtempSync(join(tmpdir(), 'rc-local-api-'));
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=local-ca', '-days', '2'], dir);
  for (const [name, subj, ext] of [
    ['server', '/CN=kube-apiserver', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'],
    ['client', '/O=system:masters/CN=kubernetes-admin', 'extendedKeyUsage=clientAuth\n'],
  ] as const) {
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj], dir);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], dir);
  }
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  const seen: SeenRequest[] = [];
  const server: Server = createServer({ cert: read('server.crt'), key: read('server.key'), ca: read('ca.crt'), requestCert: true, rejectUnauthorized: false }, (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const sock = req.socket as TLSSocket;
      const peer = sock.authorized ? sock.getPeerCertificate() : undefined;
      const text = Buffer.concat(chunks).toString('utf8');
      const r: SeenRequest = {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        ...(peer?.subject?.CN ? { cn: String(peer.subject.CN) } : {}),
        ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
        ...(req.headers['content-type'] ? { contentType: req.headers['content-type'] } : {}),
        ...(text ? { body: JSON.parse(text) as unknown } : {}),
      };
      seen.push(r);
      const a = handler(r);
      const out = typeof a.body === 'string' ? a.body : JSON.stringify(a.body);
      res.writeHead(a.status, { 'content-type': a.type ?? 'application/json' });
      res.end(out);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const kubeconfig = (user: Record<string, unknown>, file = join(dir, 'kubeconfig')) => {
    writeFileSync(
      file,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'local', cluster: { server: url, 'certificate-authority-data': b64(read('ca.crt')) } }],
        users: [{ name: 'local-user', user }],
        contexts: [{ name: 'local', context: { cluster: 'local', user: 'local-user' } }],
        'current-context': 'local',
      }),
      { mode: 0o600 },
    );
    return file;
  };
  return {
    server: url,
    dir,
    ca: read('ca.crt'),
    clientCert: read('client.crt'),
    clientKey: read('client.key'),
    seen,
    kubeconfig,
    adminKubeconfig: () => kubeconfig({ 'client-certificate-data': b64(read('client.crt')), 'client-key-data': b64(read('client.key')) }, join(dir, 'admin.conf')),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const json = (status: number, body: unknown): Answer => ({ status, body });
export const notFoundStatus = (message: string): Answer => json(404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404, message });
/** What a released kube-apiserver answers for a group/version it does not serve. */
export const pageNotFound: Answer = { status: 404, body: '404 page not found\n', type: 'text/plain; charset=utf-8' };
