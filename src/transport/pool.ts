/**
 * One SSH connection per node for a whole command: pre-flight, OS detection, the rotation and the
 * final report share it instead of each opening their own. Sessions handed out ignore close();
 * the pool closes them all at the end. A failed connection is not cached, so the next use retries.
 */
import type { InventoryNodeSpec } from '../inventory/types.js';
import { CommandTimeoutError, type Connector, type NodeSession } from './session.js';

export class PooledConnector implements Connector {
  private readonly sessions = new Map<string, Promise<NodeSession>>();

  constructor(private readonly inner: Connector) {
    if (inner.tunnel) this.tunnel = (node, port) => (inner.tunnel as NonNullable<Connector['tunnel']>).call(inner, node, port);
    if (inner.prepare) this.prepare = (inv) => (inner.prepare as NonNullable<Connector['prepare']>).call(inner, inv);
  }

  tunnel?: Connector['tunnel'];
  prepare?: Connector['prepare'];

  connect(node: InventoryNodeSpec): Promise<NodeSession> {
    const key = `${node.ssh.user}@${node.host}:${node.ssh.port}`;
    let s = this.sessions.get(key);
    if (!s) {
      s = this.inner.connect(node);
      s.catch(() => this.sessions.delete(key));
      this.sessions.set(key, s);
    }
    // A connection that died is dropped, so the next use (a restore, a resume) connects anew.
    const evict = () => {
      if (this.sessions.get(key) === s) this.sessions.delete(key);
    };
    return s.then((real) => ({
      node,
      exec: (command, opts) =>
        real.exec(command, opts).then(
          (res) => {
            if (res.code === null && !res.signal) evict();
            return res;
          },
          (err: unknown) => {
            if (!(err instanceof CommandTimeoutError)) evict();
            throw err;
          },
        ),
      close: async () => {},
    }));
  }

  /** Closes every pooled connection, then the inner connector's shared ones (jump hosts). */
  async close(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(all.map((p) => p.then((s) => s.close(), () => undefined)));
    await this.inner.close?.();
  }
}
