/** The narrow interface every remote effect goes through; ssh2 lives behind it. */
import type { Duplex } from 'node:stream';
import type { InventoryNodeSpec } from '../inventory/types.js';

export interface ExecOptions {
  /** Sent on the command's standard input, then closed. Root scripts travel this way. */
  stdin?: string;
  /** Kills the command and rejects with CommandTimeoutError when it runs longer. */
  timeoutMs?: number;
}

export interface ExecResult {
  /** null when the command died of a signal. */
  code: number | null;
  signal?: string;
  stdout: string;
  stderr: string;
}

export interface NodeSession {
  readonly node: InventoryNodeSpec;
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  close(): Promise<void>;
}

/** Opens sessions; the SSH implementation and test doubles both satisfy it. */
export interface Connector {
  /**
   * Checks, once and before any node is contacted, what all connections of an inventory share
   * (credentials, known_hosts, jump hosts): a problem there would fail every node alike, so it is
   * one error naming the inventory field instead.
   */
  prepare?(inv: { file: string; nodes: InventoryNodeSpec[] }): Promise<void>;
  connect(node: InventoryNodeSpec): Promise<NodeSession>;
  /** A byte stream to node:port through the node's jump host, for endpoint probes. */
  tunnel?(node: InventoryNodeSpec, port: number): Promise<Duplex>;
  /** Releases shared resources (jump-host connections). */
  close?(): Promise<void>;
}

export class CommandTimeoutError extends Error {
  constructor(
    readonly command: string,
    readonly timeoutMs: number,
  ) {
    super(`command did not finish within ${Math.round(timeoutMs / 1000)} s`);
  }
}
