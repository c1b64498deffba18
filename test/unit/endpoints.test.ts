/** How endpoints are reached: the route policy (node addresses through the jump host, others only when not reachable directly) and what counts as unreachable. */
import { describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { PassThrough } from 'node:stream';
import type { InventoryNodeSpec } from '../../src/inventory/types.js';
import { endpointRoute, reachableDirectly, unreachable } from '../../src/transport/endpoints.js';
import type { Connector } from '../../src/transport/session.js';

const ssh = (jump: boolean): InventoryNodeSpec['ssh'] => ({
  user: 'capv', port: 22, knownHostsFile: '/dev/null', hostKeyPolicy: 'strict', connectTimeoutMs: 1000, commandTimeoutMs: 1000,
  ...(jump ? { jumpHost: { user: 'capv', host: '127.0.0.9', port: 22 } } : {}),
});
const node = (name: string, host: string, jump: boolean): InventoryNodeSpec => ({ name, host, role: 'etcd', os: 'ubuntu', ssh: ssh(jump) });

function recordingConnector(): { connector: Connector; tunnels: string[] } {
  const tunnels: string[] = [];
  return {
    tunnels,
    connector: {
      connect: () => Promise.reject(new Error('no ssh here')),
      tunnel: (n, port) => {
        tunnels.push(`${n.host}:${port}`);
        return Promise.resolve(new PassThrough());
      },
    },
  };
}

describe('endpoint routes', () => {
  it('without a jump host everything is direct', async () => {
    const { connector, tunnels } = recordingConnector();
    const route = endpointRoute([node('e1', '10.0.0.11', false)], connector);
    expect(await route('10.0.0.11', 2379)).toBeUndefined();
    expect(await route('10.0.0.99', 6443)).toBeUndefined();
    expect(tunnels).toEqual([]);
  });

  it('with one, node addresses go through it; another address only when it cannot be reached directly', async () => {
    const { connector, tunnels } = recordingConnector();
    const listening = createServer((s) => s.destroy()).listen(0, '127.0.0.1');
    await new Promise((r) => listening.once('listening', r));
    const port = (listening.address() as { port: number }).port;
    try {
      // The real direct probe, on loopback: listening and refusing are both "reachable".
      expect(await reachableDirectly('127.0.0.1', port, 1000)).toBe(true);
      expect(await reachableDirectly('127.0.0.1', 1, 1000)).toBe(true);
      // Which addresses this machine reaches directly, decided here (no traffic leaves it).
      const direct = (host: string) => Promise.resolve(host === '127.0.0.1');
      const route = endpointRoute([node('e1', '10.0.0.11', true), node('cp1', '10.0.0.21', true)], connector, direct);
      expect(await route('10.0.0.21', 6443)).toBeInstanceOf(PassThrough); // a node: always through it
      expect(await route('127.0.0.1', port)).toBeUndefined(); // reachable from here: direct
      expect(await route('10.0.0.254', 6443)).toBeInstanceOf(PassThrough); // a VIP behind the bastion
      expect(tunnels).toEqual(['10.0.0.21:6443', '10.0.0.254:6443']);
    } finally {
      listening.close();
    }
  });

  it('tells "no way to it" from "closed" or "answers badly"', () => {
    expect(unreachable('endpoint 10.0.0.11:2379: host unreachable')).toBe(true);
    expect(unreachable('endpoint 10.0.0.11:2379: jump host 10.0.0.9 cannot open a channel to 10.0.0.11:2379: No route to host')).toBe(true);
    expect(unreachable('endpoint 10.0.0.11:2379: cannot reach jump host capv@10.0.0.9:22: timed out connecting to 10.0.0.9:22')).toBe(true);
    expect(unreachable('endpoint 10.0.0.11:2379: connection refused')).toBe(false);
    expect(unreachable('endpoint 10.0.0.11:2379: jump host 10.0.0.9 cannot open a channel to 10.0.0.11:2379: Connection refused')).toBe(false);
    expect(unreachable('endpoint 10.0.0.11:2379: no TLS handshake within 5 s')).toBe(false);
  });
});
