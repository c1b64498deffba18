/** What `check` reports: each certificate, each node it could not read, backups and CIS deviations; for one cluster or several. */
import type { CertStatus } from '../certs/expiry.js';
import type { CertKind } from '../certs/kind.js';
import type { Role } from '../inventory/types.js';
import type { NodeBackups } from '../backups/listing.js';
import type { CisDeviation } from './cis.js';

export interface CertificateEntry {
  node: string;
  role: Role;
  source: 'file' | 'kubeconfig' | 'endpoint';
  path?: string;
  endpoint?: string;
  subject: string;
  issuer: string;
  serial: string;
  isCA: boolean;
  /** A cluster CA, a leaf, or the kubelet's self-signed serving CA bundled in kubelet.crt (certs/kind.ts). */
  kind: CertKind;
  notBefore: string;
  notAfter: string;
  daysLeft: number;
  status: CertStatus;
}

export interface CheckError {
  node: string;
  message: string;
}

export interface CheckReport {
  cluster: string;
  checkedAt: string;
  warnDays: number;
  certificates: CertificateEntry[];
  errors: CheckError[];
  /** rotate-certs' backups on each node whose listing was read (absent when none was). */
  backups?: NodeBackups[];
  /** With --cis only: every file mode or owner that deviates from runbooks/cis.yaml. */
  cis?: CisDeviation[];
}

/** A cluster of a multi-cluster check whose inventory could not be loaded: nothing of it was contacted. */
export interface ClusterNotChecked {
  cluster: string;
  /** The inventory file, absolute. */
  inventory: string;
  error: string;
}

/** `check` of several clusters: each cluster's report as a single-cluster check gives it, or why it was not checked. */
export interface MultiCheckReport {
  clusters: Array<CheckReport | ClusterNotChecked>;
}


/** What `check` will do on one node; `--dry-run` prints this and connects to nothing. */
