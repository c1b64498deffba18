import { describe, expect, it } from 'vitest';
import type { CheckReport } from '../../src/check/run.js';
import { PreflightError } from '../../src/apply/preflight.js';
import { renderSummary } from '../../src/cli/interactive.js';
import { parseInventory } from '../../src/inventory/load.js';
import { requireKnownOs } from '../../src/profiles/detect-os.js';
import { renderTable } from '../../src/report/check-output.js';
import { groupByMessage, nodeList, plural } from '../../src/util/wording.js';
import { certEntry } from './cert-entry.js';

describe('plural', () => {
  it('one is singular; zero, many and minus many are plural; irregular plurals are given', () => {
    expect(plural(1, 'day')).toBe('1 day');
    expect(plural(-1, 'day')).toBe('-1 day');
    expect(plural(0, 'day')).toBe('0 days');
    expect(plural(2, 'node')).toBe('2 nodes');
    expect(plural(-3, 'day')).toBe('-3 days');
    expect(plural(1, 'entry', 'entries')).toBe('1 entry');
    expect(plural(4, 'entry', 'entries')).toBe('4 entries');
  });
});

describe('nodeList and groupByMessage', () => {
  it('names up to three nodes, then two and how many more', () => {
    expect(nodeList([])).toBe('');
    expect(nodeList(['a'])).toBe('a');
    expect(nodeList(['a', 'b'])).toBe('a and b');
    expect(nodeList(['a', 'b', 'c'])).toBe('a, b and c');
    expect(nodeList(['lab-etcd-1', 'lab-etcd-2', 'lab-etcd-3', 'lab-cp-1', 'lab-md-1'])).toBe('lab-etcd-1, lab-etcd-2 and 3 more');
  });

  it('one line per distinct message, in first appearance order; node-less lines stay as they are', () => {
    const sudo = 'reading certificates as root failed (exit 1): sudo: a password is required';
    expect(
      groupByMessage([
        { node: 'lab-etcd-1', message: sudo },
        { node: 'lab-etcd-2', message: 'connection refused by 10.0.0.12:22 (is sshd running?)' },
        { node: 'lab-cp-1', message: sudo },
        { node: 'lab-cp-2', message: sudo },
        { node: 'lab-md-1', message: sudo },
        { message: 'etcd is not healthy' },
      ]),
    ).toEqual([
      `lab-etcd-1, lab-cp-1 and 2 more: ${sudo}`,
      'lab-etcd-2: connection refused by 10.0.0.12:22 (is sshd running?)',
      'etcd is not healthy',
    ]);
  });
});

describe("pre-flight's problem list", () => {
  it('names the nodes a problem hit once, and keeps problems of no node as they are', () => {
    const sudo = 'reading certificates as root failed (exit 1): sudo: a password is required (rotate-certs needs passwordless sudo for the SSH user)';
    const err = new PreflightError([
      ...['lab-etcd-1', 'lab-etcd-2', 'lab-etcd-3', 'lab-cp-1', 'lab-cp-2'].map((node) => ({ node, message: sudo })),
      { message: 'etcd health from lab-etcd-1: timed out' },
    ]);
    expect(err.message).toBe(`pre-flight failed, nothing was changed:\n  - lab-etcd-1, lab-etcd-2 and 3 more: ${sudo}\n  - etcd health from lab-etcd-1: timed out`);
  });
});

describe('counts in real outputs', () => {
  const one = certEntry({ notAfter: '2026-11-21T00:00:00.000Z', daysLeft: 1, status: 'expiring' });
  const report: CheckReport = { cluster: 'lab', checkedAt: '2026-11-20T00:00:00.000Z', warnDays: 1, certificates: [one], errors: [{ node: 'lab-md-1', message: 'm' }] };

  it("check's table", () => {
    const text = renderTable(report);
    expect(text).toContain('Cluster lab: 1 certificate checked at 2026-11-20T00:00:00.000Z (warn at 1 day)');
    expect(text).toContain('Summary: 0 ok, 1 expiring, 0 expired, 0 not yet valid, 1 error');
    expect(text).not.toMatch(/\b1 (days|certificates|errors|nodes)\b/);
  });

  it("the guided run's summary", () => {
    const inv = requireKnownOs(parseInventory('cluster: lab\nssh: { user: capv }\ncontrolPlane:\n  - { name: lab-cp-1, host: 10.0.0.21 }\n', '/x/inv.yaml'), 'test');
    const text = renderSummary(report, inv, 1);
    expect(text).toContain('(expiring = within 1 day)');
    expect(text).toMatch(/lab-cp-1 .* 1 certificate, soonest 2026-11-21 \(1 day\): 1 expiring/);
    expect(text).not.toMatch(/\b1 (days|certificates|errors|nodes)\b/);
  });
});

describe('error text helpers', () => {
  it("a node's error without its name, however the name is spelled (dots are not wildcards)", async () => {
    const { NodeError, nodeErrorDetail } = await import('../../src/util/errors.js');
    expect(nodeErrorDetail(new NodeError('cp-1.lab', 'connection refused'), 'cp-1.lab')).toBe('connection refused');
    expect(nodeErrorDetail(new Error('cp-1.lab: host unreachable'), 'cp-1.lab')).toBe('host unreachable');
    // Under the old regular expression, "cp-1xlab" matched "^cp-1.lab: ".
    expect(nodeErrorDetail(new Error('cp-1xlab: host unreachable'), 'cp-1.lab')).toBe('cp-1xlab: host unreachable');
  });
  it('the last lines of error output on one line, or what to say when there is none', async () => {
    const { outputTail } = await import('../../src/util/errors.js');
    expect(outputTail('a\nb\nc\nd\n')).toBe('b | c | d');
    expect(outputTail('a\nb\n', 5)).toBe('a | b');
    expect(outputTail('  \n')).toBe('no error output');
    expect(outputTail('', 2, '')).toBe('');
  });
});
