/**
 * What a certificate is to the cluster. Pure.
 *
 * A CA read from a node is a cluster CA (ca, etcd/ca, front-proxy-ca: never renewed here, warned
 * about when close to its end), except one: the kubelet writes its self-signed serving certificate
 * as the leaf FOLLOWED BY the one-off CA that signed it (kubernetes cmd/kubelet/app/server.go
 * InitializeTLS -> client-go util/cert GenerateSelfSignedCertKey: "Generate cert, followed by ca").
 * That CA signs nothing else, expires with the leaf, and the kubelet makes both anew when
 * kubelet.crt and kubelet.key are gone, which the kubelet phase does: it is part of the serving
 * certificate.
 */
export type CertKind = 'leaf' | 'ca' | 'kubelet-serving-ca';

interface Parsed {
  subject: string;
  issuer: string;
  isCA: boolean;
}

/** `index` is the certificate's place in its file; `first` is the file's first certificate. */
export function certKind(cert: Parsed, file: string | undefined, index: number, first: Parsed | undefined): CertKind {
  if (!cert.isCA) return 'leaf';
  const kubeletServing = file?.endsWith('/kubelet.crt') && index > 0 && first !== undefined && !first.isCA && first.issuer === cert.subject;
  return kubeletServing ? 'kubelet-serving-ca' : 'ca';
}

/** How tables name a kind next to the subject. */
export const KIND_LABEL: Record<CertKind, string> = { leaf: '', ca: ' (CA)', 'kubelet-serving-ca': " (kubelet's self-signed serving CA)" };
