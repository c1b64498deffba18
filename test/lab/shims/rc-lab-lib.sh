#!/bin/bash
# Shared helpers for the lab's node setup and shims (sourced, not run). openssl only.
# Node facts (name, ip, role, os, paths) are written by node-setup.sh to this file.
RC_LAB_ENV=/etc/rotate-certs-lab/node.env
# shellcheck disable=SC1090
[ -f "$RC_LAB_ENV" ] && . "$RC_LAB_ENV"

# The shims emulate programs that are binaries on a real node. On a Bottlerocket "host" (inside
# sheltie) the host's userland lacks sed, awk, openssl, jq...; these emulations are not host scripts,
# so they may use the full toolset, which sheltie keeps reachable in /run/rc-br/tools.
case ":$PATH:" in *:/run/rc-br/tools:*) ;; *) PATH=$PATH:/run/rc-br/tools ;; esac

# The container runtime's records: one JSON file per container, in the shape `crictl ps -o json`
# prints (cri-api ListContainersResponse.containers[]), written by the lab's kubelet
# (agent/kubelet-agent.mjs) and read by the crictl and ctr emulations.
RC_CONTAINERS=/var/lib/rotate-certs-lab/containers
rc_hex() { head -c "$1" /dev/urandom | od -An -v -tx1 | tr -d ' \n'; }
# rc_container_new NAME POD_NAME IMAGE [CREATED_NS] [NAMESPACE]: a running container of the pod
# POD_NAME (a static pod's is NAME-<node>) in NAMESPACE (kube-system); prints its id.
rc_container_new() {
  local id created=${4:-$(date +%s%N)} ns=${5:-kube-system}
  id=$(rc_hex 32)
  mkdir -p "$RC_CONTAINERS"
  printf '{"id":"%s","podSandboxId":"%s","metadata":{"name":"%s","attempt":0},"image":{"image":"%s","annotations":{}},"imageRef":"%s","state":"CONTAINER_RUNNING","createdAt":"%s","labels":{"io.kubernetes.container.name":"%s","io.kubernetes.pod.name":"%s","io.kubernetes.pod.namespace":"%s","io.kubernetes.pod.uid":"%s"},"annotations":{}}\n' \
    "$id" "$(rc_hex 32)" "$1" "$3" "$3" "$created" "$1" "$2" "$ns" "$(rc_hex 16)" >"$RC_CONTAINERS/.$id.tmp"
  mv "$RC_CONTAINERS/.$id.tmp" "$RC_CONTAINERS/$id.json"
  echo "$id"
}
# rc_container_id PREFIX: the one container id starting with PREFIX (runtimes accept unique prefixes).
rc_container_id() {
  local f m=()
  [ -n "$1" ] || return 1
  for f in "$RC_CONTAINERS/$1"*.json; do [ -e "$f" ] && m+=("$(basename "$f" .json)"); done
  [ ${#m[@]} = 1 ] && echo "${m[0]}"
}
# rc_container_set ID JQ_FILTER: rewrites one record.
rc_container_set() {
  local f=$RC_CONTAINERS/$1.json
  [ -e "$f" ] || return 1
  jq -c "$2" "$f" >"$f.$$" && mv "$f.$$" "$f"
}

# rc_container_host_view ID: does the container see the node's network and files? The lab's
# kubelet runs the node's static pods, kube-system/<name>-<node>, whose manifests ask for the host's
# network and mount its folders (kubeadm's etcd.yaml: hostNetwork, hostPath /etc/kubernetes/pki/etcd;
# Bottlerocket's the same under /var/lib/kubeadm); so does a stale container of one. A container of
# any other pod (a workload's: lab.leakContainer(node, name, age, { pod })) has its own network
# namespace and only its image's files.
rc_container_host_view() {
  jq -e --arg node "${NODE_NAME:-}" '.labels["io.kubernetes.pod.namespace"] == "kube-system" and .labels["io.kubernetes.pod.name"] == (.metadata.name + "-" + $node)' \
    "$RC_CONTAINERS/$1.json" >/dev/null 2>&1
}
# rc_workload_etcdctl ARG...: etcdctl (3.5) in a workload's etcd container, which holds none of the
# node's files: etcdctl/ctlv3/command/global.go newClientCfg builds its TLS config before dialling
# (client/pkg/transport listener.go ClientConfig: the cert and key pair first, tlsutil.NewCert reading
# the certificate, then the key; then the CA), and exits with cobrautl.ExitBadArgs (128) and
# "Error: <err>" on standard error. Without TLS flags it would dial its own pod's network: not emulated.
rc_workload_etcdctl() {
  local cert='' key='' cacert=''
  while [ $# -gt 0 ]; do
    case $1 in
      --cert=*) cert=${1#*=} ;; --key=*) key=${1#*=} ;; --cacert=*) cacert=${1#*=} ;;
      --cert) cert=${2:-}; shift ;; --key) key=${2:-}; shift ;; --cacert) cacert=${2:-}; shift ;;
    esac
    shift
  done
  if [ -n "$cert" ] && [ -n "$key" ]; then echo "Error: open $cert: no such file or directory" >&2; return 128; fi
  if [ -n "$cert$key" ]; then echo "Error: KeyFile and CertFile must both be present[key: $key, cert: $cert]" >&2; return 128; fi
  if [ -n "$cacert" ]; then echo "Error: open $cacert: no such file or directory" >&2; return 128; fi
  echo "etcdctl in a workload's container without TLS flags is not emulated (lab)" >&2
  return 1
}

rc_date() { date -u -d "$1" +%Y%m%d%H%M%SZ; }

# One scratch dir per shell (few forks per certificate matters: a node setup issues ~15).
rc_tmp() {
  if [ -z "${RC_TMP:-}" ] || [ ! -d "$RC_TMP" ]; then
    RC_TMP=$(mktemp -d /tmp/rc-lab-tmp.XXXXXX)
    printf '[ca]\ndefault_ca=c\n[c]\ndatabase=%s/index.txt\nnew_certs_dir=%s\ndefault_md=sha256\npolicy=p\nunique_subject=no\nserial=%s/serial\n[p]\ncommonName=optional\norganizationName=optional\n' "$RC_TMP" "$RC_TMP" "$RC_TMP" >"$RC_TMP/cnf"
  fi
  : >"$RC_TMP/index.txt"
}
rc_tmp_done() { [ -n "${RC_TMP:-}" ] && rm -rf "$RC_TMP"; RC_TMP=; }

# Signs a CSR with openssl ca (it can set notBefore/notAfter, which x509 -req in openssl 3.0 cannot).
# rc_sign CSR OUT_CRT EXTFILE CA_CRT|self CA_KEY START END ; OUT_CRT gets mode 0644.
rc_sign() {
  local csr=$1 out=$2 ext=$3 cacrt=$4 cakey=$5 start=$6 end=$7
  rc_tmp
  local signer=(-cert "$cacrt" -keyfile "$cakey")
  [ "$cacrt" = self ] && signer=(-selfsign -keyfile "$cakey")
  if ! openssl ca -batch -config "$RC_TMP/cnf" "${signer[@]}" -in "$csr" -out "$RC_TMP/out.crt" -startdate "$start" -enddate "$end" \
      -extfile "$ext" -preserveDN -notext -rand_serial >"$RC_TMP/log" 2>&1; then
    cat "$RC_TMP/log" >&2; return 1
  fi
  if [ -e "$out" ]; then cat "$RC_TMP/out.crt" >"$out"; else mv "$RC_TMP/out.crt" "$out"; fi # new files: 0644 from umask 022
}

# rc_ext FILE PROFILE SANS [self]: PROFILE server|client|peer; SANS like "DNS:a,IP:1.2.3.4" or ''.
rc_ext() {
  local eku
  case $2 in server) eku=serverAuth ;; client) eku=clientAuth ;; *) eku=serverAuth,clientAuth ;; esac
  {
    echo 'basicConstraints=critical,CA:FALSE'
    echo 'keyUsage=critical,digitalSignature,keyEncipherment'
    echo "extendedKeyUsage=$eku"
    if [ -n "$3" ]; then echo "subjectAltName=$3"; fi
    if [ "${4:-}" != self ]; then echo 'authorityKeyIdentifier=keyid'; fi
  } >"$1"
}

# rc_issue CA_CRT|self CA_KEY OUT_CRT OUT_KEY SUBJ PROFILE SANS [START END]
# New EC P-256 key (0600), cert (0644); with RC_KEY=rsa an RSA 2048 key in PKCS#1 ("RSA PRIVATE KEY").
# For self, CA_KEY is ignored (signed with the new key).
rc_issue() {
  local cacrt=$1 cakey=$2 crt=$3 key=$4 subj=$5 prof=$6 sans=$7 start=${8:-} end=${9:-}
  [ -n "$start" ] || start=$(rc_date '-5 min')
  [ -n "$end" ] || end=$(rc_date '+365 days')
  rc_tmp
  [ -d "${crt%/*}" ] || mkdir -p "${crt%/*}"
  [ -d "${key%/*}" ] || mkdir -p "${key%/*}"
  rm -f "$RC_TMP/k"
  local newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
  [ "${RC_KEY:-ec}" = rsa ] && newkey=(-newkey rsa:2048)
  openssl req -new "${newkey[@]}" -nodes -keyout "$RC_TMP/k" -subj "$subj" -out "$RC_TMP/csr" 2>"$RC_TMP/log" || { cat "$RC_TMP/log" >&2; return 1; }
  if [ "${RC_KEY:-ec}" = rsa ]; then openssl rsa -in "$RC_TMP/k" -traditional -out "$RC_TMP/k.1" 2>/dev/null && mv "$RC_TMP/k.1" "$RC_TMP/k"; chmod 0600 "$RC_TMP/k"; fi
  if [ "$cacrt" = self ]; then cakey=$RC_TMP/k; rc_ext "$RC_TMP/ext" "$prof" "$sans" self; else rc_ext "$RC_TMP/ext" "$prof" "$sans"; fi
  rc_sign "$RC_TMP/csr" "$crt" "$RC_TMP/ext" "$cacrt" "$cakey" "$start" "$end" || return 1
  if [ -e "$key" ]; then cat "$RC_TMP/k" >"$key"; else mv "$RC_TMP/k" "$key"; fi # openssl wrote it 0600
}

# Profile and SANs of an existing certificate, as rc_issue wants them.
rc_profile_of() {
  local e; e=$(openssl x509 -in "$1" -noout -ext extendedKeyUsage 2>/dev/null)
  case $e in *Server*Client* | *Client*Server*) echo peer ;; *Server*) echo server ;; *) echo client ;; esac
}
rc_sans_of() {
  openssl x509 -in "$1" -noout -ext subjectAltName 2>/dev/null | tail -n +2 | sed -e 's/^ *//' -e 's/IP Address:/IP:/g' -e 's/, /,/g'
}

# rc_renew CRT KEY CA_CRT CA_KEY [DAYS]: new key, same subject, SANs and usage, signed by CA.
rc_renew() {
  local crt=$1 key=$2 cacrt=$3 cakey=$4 days=${5:-365} t
  t=$(mktemp -d)
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$t/k" 2>/dev/null
  openssl x509 -x509toreq -in "$crt" -signkey "$t/k" -out "$t/csr" 2>/dev/null || { rm -rf "$t"; return 1; }
  rc_ext "$t/ext" "$(rc_profile_of "$crt")" "$(rc_sans_of "$crt")"
  rc_sign "$t/csr" "$t/crt" "$t/ext" "$cacrt" "$cakey" "$(rc_date '-5 min')" "$(rc_date "+$days days")" || { rm -rf "$t"; return 1; }
  install -m 0600 "$t/k" "$key"
  install -m 0644 "$t/crt" "$crt"
  rm -rf "$t"
}

# rc_kubeconfig_text CA_CRT CA_KEY CN O SERVER CLUSTER [START END]: prints a kubeconfig with an embedded client cert.
rc_kubeconfig_text() {
  local cacrt=$1 cakey=$2 cn=$3 o=$4 server=$5 cluster=${6:-lab} t subj
  t=$(mktemp -d)
  subj="/CN=$cn"; [ -n "$o" ] && subj="/O=$o/CN=$cn"
  rc_issue "$cacrt" "$cakey" "$t/c.crt" "$t/c.key" "$subj" client '' ${7:+"$7"} ${8:+"$8"} || { rm -rf "$t"; return 1; }
  cat <<KC
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: $(base64 -w0 <"$cacrt")
    server: $server
  name: $cluster
contexts:
- context:
    cluster: $cluster
    user: $cn
  name: $cn@$cluster
current-context: $cn@$cluster
kind: Config
preferences: {}
users:
- name: $cn
  user:
    client-certificate-data: $(base64 -w0 <"$t/c.crt")
    client-key-data: $(base64 -w0 <"$t/c.key")
KC
  rm -rf "$t"
}

# rc_kubeconfig FILE ...same args as rc_kubeconfig_text: writes FILE mode 0600.
rc_kubeconfig() {
  local f=$1; shift
  local tmp; tmp=$(mktemp)
  rc_kubeconfig_text "$@" >"$tmp" || { rm -f "$tmp"; return 1; }
  install -m 0600 "$tmp" "$f"; rm -f "$tmp"
}

# The client cert embedded in a kubeconfig, PEM on stdout (empty when it has none).
rc_kc_cert() { awk '/client-certificate-data:/{print $2; exit}' "$1" | base64 -d 2>/dev/null; }
rc_kc_key() { awk '/client-key-data:/{print $2; exit}' "$1" | base64 -d 2>/dev/null; }

# rc_kc_renew FILE CA_CRT CA_KEY: re-issue the embedded client cert (same subject), keep the rest.
rc_kc_renew() {
  local f=$1 cacrt=$2 cakey=$3 t
  t=$(mktemp -d)
  rc_kc_cert "$f" >"$t/c.crt"
  [ -s "$t/c.crt" ] || { rm -rf "$t"; return 1; }
  : >"$t/c.key"
  rc_renew "$t/c.crt" "$t/c.key" "$cacrt" "$cakey" || { rm -rf "$t"; return 1; }
  awk -v c="$(base64 -w0 <"$t/c.crt")" -v k="$(base64 -w0 <"$t/c.key")" '
    /^ *client-certificate-data:/ { sub(/client-certificate-data:.*/, "client-certificate-data: " c) }
    /^ *client-key-data:/ { sub(/client-key-data:.*/, "client-key-data: " k) }
    { print }' "$f" >"$t/new"
  install -m 0600 "$t/new" "$f"
  rm -rf "$t"
}

# Valid now? (exit 0 when the cert in file $1 is within its validity period)
rc_valid_now() {
  openssl x509 -in "$1" -noout -checkend 0 >/dev/null 2>&1 || return 1
  local nb; nb=$(openssl x509 -in "$1" -noout -startdate 2>/dev/null | cut -d= -f2)
  [ -n "$nb" ] && [ "$(date -u -d "$nb" +%s)" -le "$(date -u +%s)" ]
}

# rc_kubelet_serving DIR HOST [START END]: DIR/kubelet.crt and kubelet.key as the kubelet writes them
# when both are missing (kubernetes cmd/kubelet/app/server.go InitializeTLS calls client-go
# util/cert GenerateSelfSignedCertKey(hostName, nil, nil)): a one-off CA "HOST-ca@UNIX" (CA:TRUE,
# keyCertSign) signs the leaf "HOST@UNIX" (serverAuth, SAN DNS:HOST), both valid from an hour ago
# for a year, and kubelet.crt holds the leaf followed by that CA ("Generate cert, followed by ca").
# client-go makes RSA 2048 keys; the lab keeps EC P-256, as everywhere else.
rc_kubelet_serving() {
  local d=$1 host=$2 start=${3:-$(rc_date '-1 hour')} end=${4:-$(rc_date '+365 days')} now t
  now=$(date +%s); t=$(mktemp -d)
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$t/ca.key" -subj "/CN=$host-ca@$now" -out "$t/ca.csr" 2>"$t/log" || { cat "$t/log" >&2; rm -rf "$t"; return 1; }
  printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature,keyEncipherment,keyCertSign\nsubjectKeyIdentifier=hash\n' >"$t/ca.ext"
  rc_sign "$t/ca.csr" "$t/ca.crt" "$t/ca.ext" self "$t/ca.key" "$start" "$end" &&
    rc_issue "$t/ca.crt" "$t/ca.key" "$t/leaf.crt" "$t/leaf.key" "/CN=$host@$now" server "DNS:$host" "$start" "$end" || { rm -rf "$t"; return 1; }
  mkdir -p "$d"
  cat "$t/leaf.crt" "$t/ca.crt" >"$d/kubelet.crt" && install -m 0600 "$t/leaf.key" "$d/kubelet.key" && chmod 0644 "$d/kubelet.crt"
  rm -rf "$t"
}

# The kubelet's dated client cert + key file, with the current symlink (absolute, like the kubelet).
rc_kubelet_client_from() { # CRT_FILE KEY_FILE
  local d=/var/lib/kubelet/pki f
  mkdir -p "$d"
  f="$d/kubelet-client-$(date -u +%Y-%m-%d-%H-%M-%S).pem"
  cat "$1" "$2" >"$f"; chmod 0600 "$f"
  ln -sfn "$f" "$d/kubelet-client-current.pem"
}
