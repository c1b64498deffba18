/** Reads the certificate a TLS endpoint serves, without trusting or authenticating. */
import type { Duplex } from 'node:stream';
import { connect, type TLSSocket } from 'node:tls';

export interface ProbeTarget {
  host: string;
  port: number;
  /** A pre-opened stream (through a jump host); direct TCP otherwise. */
  stream?: Duplex;
  timeoutMs: number;
}

/** Resolves with the DER of the served leaf certificate. */
export function servedCertificate(target: ProbeTarget): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const done = (err: Error | undefined, der?: Buffer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      target.stream?.destroy(); // the jump host's channel: closed, not left open per probe
      if (err) reject(err);
      else resolve(der as Buffer);
    };
    const socket: TLSSocket = connect({
      ...(target.stream ? { socket: target.stream } : { host: target.host, port: target.port }),
      // We read the certificate, we do not trust it: this is an inspection, not a session.
      rejectUnauthorized: false,
      ...(isIpLiteral(target.host) ? {} : { servername: target.host }),
    });
    const timer = setTimeout(() => done(new Error(`no TLS handshake within ${Math.round(target.timeoutMs / 1000)} s`)), target.timeoutMs);
    socket.once('secureConnect', () => {
      const peer = socket.getPeerCertificate(false);
      if (!peer || !peer.raw) return done(new Error('the server sent no certificate'));
      done(undefined, peer.raw);
    });
    // A TLS 1.3 server that wants a client certificate alerts after the handshake; by then the
    // certificate is in hand, so only errors before secureConnect count.
    socket.once('error', (err: NodeJS.ErrnoException) => {
      const why =
        err.code === 'ECONNREFUSED' ? 'connection refused' : err.code === 'EHOSTUNREACH' ? 'host unreachable' : err.code === 'ECONNRESET' ? 'connection reset' : err.message;
      done(new Error(why));
    });
  });
}

function isIpLiteral(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(':');
}
