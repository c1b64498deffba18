/**
 * Exec credential plugins in kubeconfigs, as client-go runs them: the kubeconfig rules and their
 * messages, the ExecCredential the plugin gets and must print, caching until expirationTimestamp,
 * a new run after a 401, interactiveMode. Against a small local HTTPS API that checks client
 * certificates, with the stand-in plugin test/fixtures/exec-plugin/credential-plugin.mjs.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeApiError, KubeClient, readKubeconfig, type KubeCredentials } from '../../src/kube/client.js';
import { clearExecCredentialCache, decodeCredential, execCredentials, validateExecConfig } from '../../src/kube/exec-credential.js';
import { json, startLocalApi, type LocalApi } from './local-api.js';

const PLUGIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'exec-plugin', 'credential-plugin.mjs');
const V1 = 'client.authentication.k8s.io/v1';
const V1BETA1 = 'client.authentication.k8s.io/v1beta1';

interface PluginRun {
  info: { apiVersion: string; kind: string; spec: { interactive: boolean; cluster?: { server: string; 'certificate-authority-data'?: string } } };
  stdin: string;
  greeting: string | null;
}

describe('exec credential plugins', () => {
  let api: LocalApi;
  let log: string;
  let unauthorizedLeft = 0;
  beforeAll(async () => {
    api = await startLocalApi((r) => {
      if (unauthorizedLeft > 0) {
        unauthorizedLeft--;
        return json(401, { kind: 'Status', status: 'Failure', reason: 'Unauthorized', code: 401, message: 'Unauthorized' });
      }
      if (r.cn !== 'kubernetes-admin' && r.authorization !== 'Bearer stand-in-token') return json(401, { kind: 'Status', status: 'Failure', reason: 'Unauthorized', code: 401, message: 'Unauthorized' });
      return json(200, { kind: 'NamespaceList', items: [] });
    });
    log = join(api.dir, 'plugin.log');
  });
  afterEach(() => {
    clearExecCredentialCache();
    rmSync(log, { force: true });
    unauthorizedLeft = 0;
  });
  afterAll(async () => {
    await api?.close();
  });

  const runs = (): PluginRun[] => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as PluginRun) : []);
  const execUser = (extra: Record<string, unknown> = {}, env: Record<string, string> = {}) => ({
    exec: {
      apiVersion: V1,
      command: PLUGIN,
      interactiveMode: 'Never',
      env: Object.entries({ PLUGIN_KUBECONFIG: api.adminKubeconfig(), PLUGIN_LOG: log, PLUGIN_GREETING: 'from the kubeconfig', ...env }).map(([name, value]) => ({ name, value })),
      ...extra,
    },
  });
  const client = (user: Record<string, unknown>) => new KubeClient(readKubeconfig(api.kubeconfig(user)));

  it('runs the plugin, tells it what client-go tells it, and presents the client certificate it prints', async () => {
    await client(execUser({ provideClusterInfo: true })).request('GET', '/api/v1/namespaces');
    expect(api.seen.at(-1)?.cn).toBe('kubernetes-admin');
    const [run] = runs();
    expect(run?.info).toEqual({ apiVersion: V1, kind: 'ExecCredential', spec: { interactive: false, cluster: { server: api.server, 'certificate-authority-data': Buffer.from(api.ca).toString('base64') } } });
    expect(run?.stdin).toBe('character device'); // /dev/null: no standard input when not interactive
    expect(run?.greeting).toBe('from the kubeconfig');
  });

  it('without provideClusterInfo the plugin is told only whether it is interactive; v1beta1 defaults to IfAvailable', async () => {
    const kc = readKubeconfig(api.kubeconfig(execUser({ apiVersion: V1BETA1, interactiveMode: undefined })));
    expect(kc.exec?.interactiveMode).toBe('IfAvailable');
    await new KubeClient(kc).request('GET', '/api/v1/namespaces');
    expect(runs()[0]?.info).toEqual({ apiVersion: V1BETA1, kind: 'ExecCredential', spec: { interactive: false } });
  });

  it('a token instead of a certificate goes as a bearer token', async () => {
    await client(execUser({}, { PLUGIN_MODE: 'token' })).request('GET', '/api/v1/namespaces');
    expect(api.seen.at(-1)).toMatchObject({ authorization: 'Bearer stand-in-token' });
    expect(api.seen.at(-1)?.cn).toBeUndefined();
  });

  it('keeps the credential for the life of the process when it has no expiry, even across clients', async () => {
    await client(execUser()).request('GET', '/api/v1/namespaces');
    await client(execUser()).request('GET', '/api/v1/namespaces');
    await client(execUser()).request('GET', '/api/v1/namespaces');
    expect(runs()).toHaveLength(1);
  });

  it('runs the plugin again once expirationTimestamp has passed, not before', async () => {
    const fresh = client(execUser({}, { PLUGIN_EXPIRES_IN: '3600' }));
    await fresh.request('GET', '/a');
    await fresh.request('GET', '/b');
    expect(runs()).toHaveLength(1);
    clearExecCredentialCache();
    rmSync(log);
    const stale = client(execUser({}, { PLUGIN_EXPIRES_IN: '-10' }));
    await stale.request('GET', '/a');
    await stale.request('GET', '/b');
    expect(runs()).toHaveLength(2);
  });

  it('after a 401 the next request runs the plugin again', async () => {
    const c = client(execUser());
    unauthorizedLeft = 1;
    await expect(c.request('GET', '/a')).rejects.toMatchObject({ status: 401 });
    await c.request('GET', '/b');
    expect(runs()).toHaveLength(2);
    await c.request('GET', '/c');
    expect(runs()).toHaveLength(2);
  });

  it('a command with a "/" is relative to the kubeconfig\'s folder; a bare one is looked up in PATH', async () => {
    mkdirSync(join(api.dir, 'bin'), { recursive: true });
    copyFileSync(PLUGIN, join(api.dir, 'bin', 'plugin.mjs'));
    const rel = readKubeconfig(api.kubeconfig(execUser({ command: 'bin/plugin.mjs' })));
    expect(rel.exec?.command).toBe(join(api.dir, 'bin', 'plugin.mjs'));
    await new KubeClient(rel).request('GET', '/a');
    clearExecCredentialCache();
    const bare = readKubeconfig(api.kubeconfig(execUser({ command: 'node', args: [PLUGIN] })));
    expect(bare.exec?.command).toBe('node');
    await new KubeClient(bare).request('GET', '/b');
    expect(runs()).toHaveLength(2);
  });

  it('a user with a client certificate or a token does not run its exec entry (as client-go)', () => {
    const kc = readKubeconfig(api.kubeconfig({ ...execUser(), token: 'abc' }));
    expect(kc.exec).toBeUndefined();
    expect(kc.token).toBe('abc');
  });

  const failure = async (user: Record<string, unknown>): Promise<string> => {
    const err = await client(user)
      .request('GET', '/api/v1/namespaces')
      .then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect((err as KubeApiError).status).toBeUndefined(); // never reached the API
    return (err as Error).message;
  };

  it('says what is wrong with what the plugin printed, as client-go does, and never quotes it', async () => {
    expect(await failure(execUser({}, { PLUGIN_MODE: 'wrong-version' }))).toBe(`GET /api/v1/namespaces: getting credentials: exec plugin is configured to use API version ${V1}, plugin returned version ${V1BETA1}`);
    expect(await failure(execUser({}, { PLUGIN_MODE: 'no-status' }))).toMatch(/getting credentials: exec plugin didn't return a status field$/);
    expect(await failure(execUser({}, { PLUGIN_MODE: 'empty' }))).toMatch(/getting credentials: exec plugin didn't return a token or cert\/key pair$/);
    expect(await failure(execUser({}, { PLUGIN_MODE: 'cert-only' }))).toMatch(/getting credentials: exec plugin returned only certificate or key, not both$/);
    expect(await failure(execUser({}, { PLUGIN_MODE: 'fail' }))).toBe(`GET /api/v1/namespaces: getting credentials: exec: executable ${PLUGIN} failed with exit code 3`);
    expect(await failure(execUser({ command: '/nonexistent/aws-iam-authenticator', installHint: 'Install aws-iam-authenticator:\n  see https://docs.aws.amazon.com/eks/' }))).toBe(
      'GET /api/v1/namespaces: getting credentials: exec: executable /nonexistent/aws-iam-authenticator not found: Install aws-iam-authenticator: see https://docs.aws.amazon.com/eks/',
    );
    // A pair that does not match: the message names the problem, not the key.
    const mismatched = JSON.stringify({ apiVersion: V1, kind: 'ExecCredential', status: { clientCertificateData: api.clientCert, clientKeyData: readFileSync(join(api.dir, 'server.key'), 'utf8') } });
    expect(() => decodeCredential(mismatched, V1)).toThrow(/^failed parsing client key\/certificate: private key does not match public key$/);
  });

  it('interactiveMode: Never never attaches standard input; IfAvailable only with a terminal; Always fails without one', async () => {
    const config = validateExecConfig(execUser().exec, 'u').config!;
    const cluster = { server: api.server };
    const deps = (tty: boolean) => ({ stdinIsTerminal: () => tty, now: () => Date.now(), timeoutMs: 30_000 });
    await execCredentials({ ...config, interactiveMode: 'Never' }, cluster, deps(true));
    await execCredentials({ ...config, interactiveMode: 'IfAvailable' }, cluster, deps(false));
    await execCredentials({ ...config, interactiveMode: 'IfAvailable' }, { server: `${api.server}/x` }, deps(true));
    expect(runs().map((r) => r.info.spec.interactive)).toEqual([false, false, true]);
    await expect(execCredentials({ ...config, interactiveMode: 'Always' }, cluster, deps(false))).rejects.toThrow(/^exec plugin cannot support interactive mode: standard input is not a terminal$/);
    expect(runs()).toHaveLength(3); // not run at all
  });

  it('a non-interactive plugin that never finishes is stopped', async () => {
    const config = { ...validateExecConfig(execUser().exec, 'u').config!, command: 'sleep', args: ['30'] };
    await expect(execCredentials(config, { server: api.server }, { stdinIsTerminal: () => false, now: () => Date.now(), timeoutMs: 300 })).rejects.toThrow(/^exec: executable sleep did not finish within 0 s/);
  });
});

describe('exec entries the kubeconfig rules refuse (clientcmd validation, one message per problem)', () => {
  const check = (exec: Record<string, unknown>) => validateExecConfig(exec, 'eks-admin').errors;
  it('names each missing or wrong field', () => {
    expect(check({ apiVersion: V1, command: 'aws-iam-authenticator' })).toEqual(['interactiveMode must be specified for eks-admin to use exec authentication plugin']);
    expect(check({ interactiveMode: 'Never' })).toEqual(['command must be specified for eks-admin to use exec authentication plugin', 'apiVersion must be specified for eks-admin to use exec authentication plugin']);
    expect(check({ apiVersion: V1, command: 'x', interactiveMode: 'Never', env: [{ value: 'v' }] })).toEqual(['env variable name must be specified for eks-admin to use exec authentication plugin']);
    expect(check({ apiVersion: V1, command: 'x', interactiveMode: 'Sometimes' })).toEqual(['invalid interactiveMode for eks-admin: "Sometimes"']);
    expect(check({ apiVersion: 'client.authentication.k8s.io/v1alpha1', command: 'x' })).toEqual(['exec plugin: invalid apiVersion "client.authentication.k8s.io/v1alpha1"']);
    expect(check({ apiVersion: V1BETA1, command: 'x' })).toEqual([]);
  });

  it('a kubeconfig with a refused exec entry is one error naming the file', async () => {
    const api = await startLocalApi(() => json(200, {}));
    try {
      const file = api.kubeconfig({ exec: { apiVersion: V1, command: 'aws-iam-authenticator', args: ['token', '-i', 'mgmt'] } });
      expect(() => readKubeconfig(file)).toThrow(`${file}: invalid configuration: interactiveMode must be specified for local-user to use exec authentication plugin`);
      const ok: KubeCredentials = readKubeconfig(api.kubeconfig({ exec: { apiVersion: V1, command: 'aws-iam-authenticator', args: ['token', '-i', 'mgmt'], interactiveMode: 'IfAvailable' } }));
      expect(ok.exec).toMatchObject({ command: 'aws-iam-authenticator', args: ['token', '-i', 'mgmt'], interactiveMode: 'IfAvailable', provideClusterInfo: false });
    } finally {
      await api.close();
    }
  });
});
