/** The first CN in a distinguished name string such as "CN=kube-apiserver, O=x". */
export function commonName(dn: string): string | undefined {
  return /(?:^|,\s*)CN=([^,]+)/.exec(dn)?.[1];
}
