/**
 * A node that stops answering in the middle of a session (its sshd frozen, its network gone) must
 * not hold the command line: a command times out even when its channel never opened, and closing
 * the connection ends after a short grace. The node is an ssh2 server behind a TCP relay that can
 * freeze: from then on it passes nothing either way and closes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Socket as NetSocket, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import type { InventoryNodeSpec } from '../../src/inventory/types.js';
import { CommandTimeoutError } from '../../src/transport/session.js';
import { CLOSE_GRACE_MS, SshConnector } from '../../src/transport/ssh.js';

let dir: string;
let sshd: ssh2.Server;
let relay: Server;
let relayPort = 0;
let frozen = false;
const sockets: Socket[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rc-frozen-'));
  const host = ssh2.utils.generateKeyPairSync('ed25519');
  const user = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
  writeFileSync(join(dir, 'id_rsa'), user.privateKey, { mode: 0o600 });
  sshd = new ssh2.Server({ hostKeys: [host.private] }, (client) => {
    client.on('authentication', (ctx) => ctx.accept());
    client.on('session', (accept) => {
      accept().on('exec', (acceptExec) => {
        const stream = acceptExec();
        stream.on('data', () => undefined);
        stream.on('end', () => {
          stream.write('ok\n');
          stream.exit(0);
          stream.end();
        });
      });
    });
    client.on('error', () => undefined);
  });
  await new Promise<void>((r) => sshd.listen(0, '127.0.0.1', r));
  const sshdPort = (sshd.address() as { port: number }).port;
  // allowHalfOpen: the relay's side stays open when the client ends its own, as a frozen node's does.
  relay = createServer({ allowHalfOpen: true }, (inbound) => {
    const outbound = new NetSocket({ allowHalfOpen: true });
    outbound.connect(sshdPort, '127.0.0.1');
    sockets.push(inbound, outbound);
    for (const [from, to] of [[inbound, outbound], [outbound, inbound]] as const) {
      from.on('data', (d: Buffer) => {
        if (!frozen) to.write(d);
      });
      // Frozen: the far side's end never reaches this one, as with a node that stopped answering.
      from.on('end', () => {
        if (!frozen) to.end();
      });
      from.on('error', () => undefined);
    }
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  relayPort = (relay.address() as { port: number }).port;
  writeFileSync(join(dir, 'known_hosts'), `[127.0.0.1]:${relayPort} ${host.public}\n`);
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  relay?.close();
  sshd?.close();
  rmSync(dir, { recursive: true, force: true });
});

function node(commandTimeoutMs: number): InventoryNodeSpec {
  return {
    name: 'frozen-1',
    host: '127.0.0.1',
    role: 'worker',
    os: 'ubuntu',
    ssh: { user: 'capv', port: relayPort, identityFile: join(dir, 'id_rsa'), knownHostsFile: join(dir, 'known_hosts'), hostKeyPolicy: 'strict', connectTimeoutMs: 5000, commandTimeoutMs },
  } as InventoryNodeSpec;
}

describe('a node that stops answering', () => {
  it('a command whose channel never opens times out, and closing the session ends within the grace', async () => {
    frozen = false;
    const connector = new SshConnector({ passphrase: async () => '' });
    const session = await connector.connect(node(1500));
    expect((await session.exec('true')).stdout).toBe('ok\n');
    frozen = true;
    const started = Date.now();
    await expect(session.exec('true')).rejects.toBeInstanceOf(CommandTimeoutError);
    expect(Date.now() - started).toBeLessThan(5000);
    const closing = Date.now();
    await session.close();
    expect(Date.now() - closing).toBeLessThan(CLOSE_GRACE_MS + 2000);
    await connector.close();
  }, 20_000);
});
