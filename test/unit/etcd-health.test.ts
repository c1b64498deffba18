/** The stacked-etcd health gate's judgement of etcdctl's output (etcd 3.4's simple printer). */
import { describe, expect, it } from 'vitest';
import { etcdHealthProblem, parseEtcdHealth } from '../../src/apply/etcd-health.js';

const list = [
  '3893cc3b890eb1c, started, lab-cp-1, https://10.0.0.21:2380, https://10.0.0.21:2379, false',
  '7e4d8cd152d57928, started, lab-cp-2, https://10.0.0.22:2380, https://10.0.0.22:2379, false',
  'be861868c4c72d0c, started, lab-cp-3, https://10.0.0.23:2380, https://10.0.0.23:2379,https://127.0.0.1:2379, false',
].join('\n');
const healthy = (i: number) => `https://10.0.0.2${i}:2379 is healthy: successfully committed proposal: took = 12.3ms`;

describe('stacked etcd health', () => {
  it('every member started and healthy', () => {
    const v = parseEtcdHealth(`${list}\n${healthy(1)}\n${healthy(2)}\n${healthy(3)}\n`);
    expect(v.members.map((m) => [m.name, m.started, m.clientUrls])).toEqual([
      ['lab-cp-1', true, ['https://10.0.0.21:2379']],
      ['lab-cp-2', true, ['https://10.0.0.22:2379']],
      ['lab-cp-3', true, ['https://10.0.0.23:2379', 'https://127.0.0.1:2379']],
    ]);
    expect(etcdHealthProblem(v)).toBeUndefined();
  });

  it('names the member that is unhealthy, with etcdctl\'s reason (on stderr)', () => {
    const v = parseEtcdHealth(`${list}\n${healthy(1)}\n${healthy(3)}\n`, 'https://10.0.0.22:2379 is unhealthy: failed to commit proposal: context deadline exceeded\nError: unhealthy cluster\n');
    expect(etcdHealthProblem(v)).toBe('member lab-cp-2 is not healthy (failed to commit proposal: context deadline exceeded)');
  });

  it('an unstarted member or a learner is not a healthy cluster, though --cluster would not ask them', () => {
    const unstarted = list.replace('7e4d8cd152d57928, started, lab-cp-2, https://10.0.0.22:2380, https://10.0.0.22:2379, false', '7e4d8cd152d57928, unstarted, , https://10.0.0.22:2380, , false');
    expect(etcdHealthProblem(parseEtcdHealth(`${unstarted}\n${healthy(1)}\n${healthy(3)}`))).toBe('member 7e4d8cd152d57928 is not started');
    const learner = list.replace('https://10.0.0.21:2379, false', 'https://10.0.0.21:2379, true');
    expect(etcdHealthProblem(parseEtcdHealth(`${learner}\n${healthy(1)}\n${healthy(2)}\n${healthy(3)}`))).toBe('member lab-cp-1 is still a learner');
  });

  it('no quorum: nothing listed, nothing healthy', () => {
    expect(etcdHealthProblem(parseEtcdHealth('', '{"level":"warn","msg":"retrying of unary invoker failed"}\nError: context deadline exceeded\n'))).toBe('etcdctl listed no members');
    // Listed, but every quorum read timed out.
    const v = parseEtcdHealth(list, [1, 2, 3].map((i) => `https://10.0.0.2${i}:2379 is unhealthy: failed to commit proposal: context deadline exceeded`).join('\n'));
    expect(etcdHealthProblem(v)).toMatch(/^member lab-cp-1 is not healthy .*; member lab-cp-2 is not healthy .*; member lab-cp-3 is not healthy/);
  });
});
