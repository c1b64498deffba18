/** Test helper: a certificate as `check` reports it, an ok leaf unless told otherwise. */
import type { CertificateEntry } from '../../src/check/run.js';

export const certEntry = (over: Partial<CertificateEntry> = {}): CertificateEntry => ({
  node: 'lab-cp-1',
  role: 'control-plane',
  source: 'file',
  path: '/etc/kubernetes/pki/apiserver.crt',
  subject: 'CN=kube-apiserver',
  issuer: 'CN=kubernetes',
  serial: '01',
  isCA: false,
  kind: 'leaf',
  notBefore: '2025-11-26T00:00:00.000Z',
  notAfter: '2026-11-26T00:00:00.000Z',
  daysLeft: 100,
  status: 'ok',
  ...over,
});
