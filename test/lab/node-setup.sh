#!/bin/bash
# Runs once per node INSIDE its net + mount namespaces (overlays already mounted).
# Inputs (env): NODE_NAME NODE_IP NODE_PREFIX NODE_ROLE NODE_OS NODE_USER LAB_DIR CA_DIR LAB_CERTS
#               ETCD_IPS (space separated, empty = stacked) FIRST_CP (1|0) SHIM_DIR CLUSTER K8S_VERSION
#               CP_MEMBERS (stacked: NAME=https://IP:2380,... of every control-plane node)
# Prints the node's ed25519 host public key on stdout as its last line.
set -euo pipefail
umask 022

ip link set lo up
ip addr add "$NODE_IP/$NODE_PREFIX" dev eth0
ip link set eth0 up
# A default route, as real nodes have: etcdadm takes the address of the default interface for its
# certificates' SANs (and fails without one). The host does not forward, so nothing leaves the lab.
ip route add default via "${NODE_IP%.*}.1" dev eth0

if [ "$NODE_OS" = bottlerocket ]; then
  KDIR=/var/lib/kubeadm; KPKI=/var/lib/kubeadm/pki; EPKI=/var/lib/etcd/pki; ETCD_DATA=/var/lib/etcd/data
  # EKS Anywhere's Bottlerocket templates (aws/eks-anywhere pkg/providers/vsphere/config/template-cp.yaml):
  # certFile /var/lib/kubeadm/pki/server-etcd-client.crt, keyFile /var/lib/kubeadm/pki/apiserver-etcd-client.key.
  ECLIENT_CRT=server-etcd-client.crt; ECLIENT_KEY=apiserver-etcd-client.key
  KUBELET_CONF=/etc/kubernetes/kubelet/kubeconfig # Bottlerocket's own kubelet kubeconfig (os-profiles: kubeletConf)
  # bottlerocket-core-kit sources/static-pods: /etc/kubernetes/static-pods/NAME, no extension.
  STATIC_PODS=/etc/kubernetes/static-pods; POD_EXT=
else
  KDIR=/etc/kubernetes; KPKI=/etc/kubernetes/pki; EPKI=/etc/etcd/pki; ETCD_DATA=/var/lib/etcd
  ECLIENT_CRT=apiserver-etcd-client.crt; ECLIENT_KEY=apiserver-etcd-client.key
  KUBELET_CONF=/etc/kubernetes/kubelet.conf
  STATIC_PODS=/etc/kubernetes/manifests; POD_EXT=.yaml
fi
K8S_MINOR=${K8S_VERSION#v1.}; K8S_MINOR=${K8S_MINOR%%.*}
STACKED=0; [ -z "${ETCD_IPS// /}" ] && STACKED=1

mkdir -p /etc/rotate-certs-lab /var/lib/rotate-certs-lab /var/log
cat >/etc/rotate-certs-lab/node.env <<ENV
NODE_NAME=$NODE_NAME
NODE_IP=$NODE_IP
NODE_ROLE=$NODE_ROLE
NODE_OS=$NODE_OS
NODE_USER=$NODE_USER
LAB_DIR=$LAB_DIR
CLUSTER=$CLUSTER
KDIR=$KDIR
KPKI=$KPKI
EPKI=$EPKI
ETCD_DATA=$ETCD_DATA
STACKED=$STACKED
KUBELET_CONF=$KUBELET_CONF
STATIC_PODS=$STATIC_PODS
POD_EXT=$POD_EXT
K8S_VERSION=$K8S_VERSION
K8S_MINOR=$K8S_MINOR
ENV

# Shims shadow nothing on the host: /usr/local/bin is an overlay. Each OS gets only its own
# commands, so a Bottlerocket step spelled the Ubuntu way fails here as it would on a real node:
# there, kubeadm and etcdadm exist only inside the kubeadm-bootstrap image (see the ctr shim).
install -m 0755 "$SHIM_DIR/rc-lab-lib.sh" "$SHIM_DIR/systemctl" /usr/local/bin/
if [ "$NODE_OS" = bottlerocket ]; then
  install -m 0755 "$SHIM_DIR/sheltie" "$SHIM_DIR/.rc-br-host" "$SHIM_DIR/apiclient" "$SHIM_DIR/ctr" /usr/local/bin/
  install -d -m 0755 /usr/local/bin/.bootstrap-image
  install -m 0755 "$SHIM_DIR/kubeadm" "$SHIM_DIR/etcdadm" /usr/local/bin/.bootstrap-image/
else
  install -m 0755 "$SHIM_DIR/kubeadm" "$SHIM_DIR/etcdadm" /usr/local/bin/
  # image-builder's nodes carry cri-tools, configured for containerd's socket.
  install -m 0755 "$SHIM_DIR/crictl" /usr/local/bin/
  printf 'runtime-endpoint: unix:///run/containerd/containerd.sock\nimage-endpoint: unix:///run/containerd/containerd.sock\n' >/etc/crictl.yaml
fi
. /usr/local/bin/rc-lab-lib.sh

# What `cat /etc/os-release` shows the SSH user. On Bottlerocket that is the admin container
# (Amazon Linux 2), not the host: sheltie is what tells the OS apart.
rm -f /etc/os-release
case $NODE_OS in
  ubuntu) printf 'PRETTY_NAME="Ubuntu 22.04.3 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nID_LIKE=debian\n' ;;
  rhel) printf 'NAME="Red Hat Enterprise Linux"\nVERSION_ID="8.8"\nID="rhel"\nID_LIKE="fedora"\nPRETTY_NAME="Red Hat Enterprise Linux 8.8 (Ootpa)"\n' ;;
  bottlerocket) printf 'NAME="Amazon Linux"\nVERSION="2"\nID="amzn"\nID_LIKE="centos rhel fedora"\nPRETTY_NAME="Amazon Linux 2"\n' ;;
esac >/etc/os-release

# The SSH user lives only in this node's overlay /etc.
mkdir -p /var/home
useradd -m -d "/var/home/$NODE_USER" -s /bin/bash "$NODE_USER"
usermod -p '*' "$NODE_USER" # unlocked: with UsePAM no, a '!' password blocks pubkey login
install -d -m 0700 -o "$NODE_USER" -g "$NODE_USER" "/var/home/$NODE_USER/.ssh"
install -m 0600 -o "$NODE_USER" -g "$NODE_USER" "$LAB_DIR/id_ed25519.pub" "/var/home/$NODE_USER/.ssh/authorized_keys"
if [ "$NODE_OS" = bottlerocket ]; then
  # The admin container's user reaches the host only through sheltie.
  echo "$NODE_USER ALL=(root) NOPASSWD: /usr/local/bin/sheltie" >"/etc/sudoers.d/$NODE_USER"
else
  echo "$NODE_USER ALL=(ALL) NOPASSWD:ALL" >"/etc/sudoers.d/$NODE_USER"
fi
chmod 0440 "/etc/sudoers.d/$NODE_USER"
if [ "$NODE_OS" = rhel ]; then
  # RHEL's sudoers (the sudo package): a secure_path without /usr/local, where crictl and the lab's
  # kubeadm and etcdadm live (image-builder unpacks containerd's tools there; it also links crictl
  # and ctr into /usr/bin, which this node does not, as an image without that link would be).
  echo 'Defaults secure_path = /sbin:/bin:/usr/sbin:/usr/bin' >/etc/sudoers.d/00-secure-path
  chmod 0440 /etc/sudoers.d/00-secure-path
fi

# The node's own name resolves, as on a real node (sudo looks it up).
printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$NODE_NAME" >/etc/hosts
rm -f /etc/ssh/ssh_host_*
ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
cat >/etc/ssh/sshd_config <<CFG
ListenAddress $NODE_IP
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
UsePAM no
PidFile none
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxSessions 64
MaxStartups 200
LoginGraceTime 30
PrintMotd no
UseDNS no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
CFG
mkdir -p /run/sshd /var/log

# Certificate dates for the lab's mode; CAs (made by the harness) are always ten years.
case $LAB_CERTS in
  valid) START=$(rc_date '-1 hour'); END=$(rc_date '+365 days') ;;
  expiring) START=$(rc_date '-363 days'); END=$(rc_date '+2 days') ;;
  expired) START=$(rc_date '-400 days'); END=$(rc_date '-1 day') ;;
  *) echo "bad LAB_CERTS $LAB_CERTS" >&2; exit 1 ;;
esac
issue() { rc_issue "$@" "$START" "$END"; }
kconf() { rc_kubeconfig "$1" "$KPKI/ca.crt" "$KPKI/ca.key" "$2" "$3" "https://$NODE_IP:6443" "$CLUSTER" "$START" "$END"; }
cpk() { install -m "$1" "$2" "$3"; }

kubelet_conf() { # the kubelet's kubeconfig pointing at the rotating client cert file, like kubeadm join leaves it
  local user=system:node:$NODE_NAME cluster=$CLUSTER ctx=system:node:$NODE_NAME@$CLUSTER
  if [ "$NODE_OS" = bottlerocket ]; then # Bottlerocket renders its own from settings, names plain
    user=kubelet; cluster=kubernetes; ctx=kubelet
  fi
  mkdir -p "${KUBELET_CONF%/*}"
  cat >"$KUBELET_CONF" <<KC
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: $(base64 -w0 <"$CA_DIR/ca.crt")
    server: https://${FIRST_CP_IP:-$NODE_IP}:6443
  name: $cluster
contexts:
- context:
    cluster: $cluster
    user: $user
  name: $ctx
current-context: $ctx
kind: Config
preferences: {}
users:
- name: $user
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
KC
  chmod 0600 "$KUBELET_CONF"
}

if [ "$NODE_ROLE" = etcd ]; then
  mkdir -p "$EPKI"
  cpk 0644 "$CA_DIR/etcd-ca.crt" "$EPKI/ca.crt"; cpk 0600 "$CA_DIR/etcd-ca.key" "$EPKI/ca.key"
  # As etcdadm makes them (kubernetes-sigs/etcdadm apis/config.go DefaultServerCertSANs and
  # DefaultPeerCertSANs, certs/certs.go): CN the host name; server SANs the name, the default-route
  # address and 127.0.0.1; peer SANs the name and that address. No localhost.
  issue "$EPKI/ca.crt" "$EPKI/ca.key" "$EPKI/server.crt" "$EPKI/server.key" "/CN=$NODE_NAME" peer "DNS:$NODE_NAME,IP:$NODE_IP,IP:127.0.0.1"
  issue "$EPKI/ca.crt" "$EPKI/ca.key" "$EPKI/peer.crt" "$EPKI/peer.key" "/CN=$NODE_NAME" peer "DNS:$NODE_NAME,IP:$NODE_IP"
  issue "$EPKI/ca.crt" "$EPKI/ca.key" "$EPKI/etcdctl-etcd-client.crt" "$EPKI/etcdctl-etcd-client.key" "/O=system:masters/CN=$NODE_NAME-etcdctl" client ''
  if [ "${SHARED_ETCD_CLIENT:-0}" = 1 ]; then # the pair the control plane and the secret hold
    cpk 0644 "$LAB_DIR/shared/apiserver-etcd-client.crt" "$EPKI/apiserver-etcd-client.crt"
    cpk 0600 "$LAB_DIR/shared/apiserver-etcd-client.key" "$EPKI/apiserver-etcd-client.key"
  else
    issue "$EPKI/ca.crt" "$EPKI/ca.key" "$EPKI/apiserver-etcd-client.crt" "$EPKI/apiserver-etcd-client.key" "/O=system:masters/CN=$NODE_NAME-kube-apiserver-etcd-client" client ''
  fi
  install -d -m 0700 "$ETCD_DATA"
  if [ "$NODE_OS" = bottlerocket ]; then
    # Bottlerocket runs etcd as a static pod: its container is what ctr lists (the lab runs the process).
    rc_container_new etcd "etcd-$NODE_NAME" public.ecr.aws/eks-distro/etcd-io/etcd:v3.5.9-eks-1-28-9 >/dev/null
  fi
fi

if [ "$NODE_ROLE" = control-plane ]; then
  mkdir -p "$KPKI/etcd" /etc/kubernetes/manifests
  cpk 0644 "$CA_DIR/ca.crt" "$KPKI/ca.crt"; cpk 0600 "$CA_DIR/ca.key" "$KPKI/ca.key"
  cpk 0644 "$CA_DIR/front-proxy-ca.crt" "$KPKI/front-proxy-ca.crt"; cpk 0600 "$CA_DIR/front-proxy-ca.key" "$KPKI/front-proxy-ca.key"
  cpk 0600 "$CA_DIR/sa.key" "$KPKI/sa.key"; cpk 0644 "$CA_DIR/sa.pub" "$KPKI/sa.pub"
  cpk 0644 "$CA_DIR/etcd-ca.crt" "$KPKI/etcd/ca.crt"
  issue "$KPKI/ca.crt" "$KPKI/ca.key" "$KPKI/apiserver.crt" "$KPKI/apiserver.key" "/CN=kube-apiserver" server \
    "DNS:$NODE_NAME,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1,IP:$NODE_IP,IP:127.0.0.1"
  issue "$KPKI/ca.crt" "$KPKI/ca.key" "$KPKI/apiserver-kubelet-client.crt" "$KPKI/apiserver-kubelet-client.key" "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client" client ''
  issue "$KPKI/front-proxy-ca.crt" "$KPKI/front-proxy-ca.key" "$KPKI/front-proxy-client.crt" "$KPKI/front-proxy-client.key" "/CN=front-proxy-client" client ''
  if [ "$STACKED" = 1 ]; then
    # kubeadm-managed local etcd: its CA (with key) and certs live under pki/etcd.
    cpk 0600 "$CA_DIR/etcd-ca.key" "$KPKI/etcd/ca.key"
    esans="DNS:$NODE_NAME,DNS:localhost,IP:$NODE_IP,IP:127.0.0.1"
    issue "$KPKI/etcd/ca.crt" "$KPKI/etcd/ca.key" "$KPKI/etcd/server.crt" "$KPKI/etcd/server.key" "/CN=$NODE_NAME" peer "$esans"
    issue "$KPKI/etcd/ca.crt" "$KPKI/etcd/ca.key" "$KPKI/etcd/peer.crt" "$KPKI/etcd/peer.key" "/CN=$NODE_NAME" peer "$esans"
    issue "$KPKI/etcd/ca.crt" "$KPKI/etcd/ca.key" "$KPKI/etcd/healthcheck-client.crt" "$KPKI/etcd/healthcheck-client.key" "/CN=kube-etcd-healthcheck-client" client ''
    issue "$KPKI/etcd/ca.crt" "$KPKI/etcd/ca.key" "$KPKI/apiserver-etcd-client.crt" "$KPKI/apiserver-etcd-client.key" "/O=system:masters/CN=kube-apiserver-etcd-client" client ''
    ECLIENT_CRT=apiserver-etcd-client.crt; ECLIENT_KEY=apiserver-etcd-client.key
    ETCD_SERVERS=https://127.0.0.1:2379
  else
    cpk 0644 "$LAB_DIR/shared/apiserver-etcd-client.crt" "$KPKI/$ECLIENT_CRT"
    cpk 0600 "$LAB_DIR/shared/apiserver-etcd-client.key" "$KPKI/$ECLIENT_KEY"
    ETCD_SERVERS=$(for i in $ETCD_IPS; do printf 'https://%s:2379,' "$i"; done | sed 's/,$//')
  fi
  kconf "$KDIR/admin.conf" kubernetes-admin kubeadm:cluster-admins
  kconf "$KDIR/controller-manager.conf" system:kube-controller-manager ''
  kconf "$KDIR/scheduler.conf" system:kube-scheduler ''
  # kubeadm 1.29+ (KEP-4214) gives the first control-plane node a super-admin.conf.
  if [ "$FIRST_CP" = 1 ] && [ "$K8S_MINOR" -ge 29 ]; then kconf "$KDIR/super-admin.conf" kubernetes-super-admin system:masters; fi
  kubelet_conf

  # The static pods, written to a staging folder first and installed the OS's way below.
  M=$(mktemp -d)
  IMG=public.ecr.aws/eks-distro/kubernetes
  cat >$M/kube-apiserver.yaml <<Y
apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: $NODE_IP:6443
  labels:
    component: kube-apiserver
    tier: control-plane
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --advertise-address=$NODE_IP
    - --allow-privileged=true
    - --authorization-mode=Node,RBAC
    - --client-ca-file=$KPKI/ca.crt
    - --enable-admission-plugins=NodeRestriction
    - --enable-bootstrap-token-auth=true
    - --etcd-cafile=$KPKI/etcd/ca.crt
    - --etcd-certfile=$KPKI/$ECLIENT_CRT
    - --etcd-keyfile=$KPKI/$ECLIENT_KEY
    - --etcd-servers=$ETCD_SERVERS
    - --kubelet-client-certificate=$KPKI/apiserver-kubelet-client.crt
    - --kubelet-client-key=$KPKI/apiserver-kubelet-client.key
    - --kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname
    - --proxy-client-cert-file=$KPKI/front-proxy-client.crt
    - --proxy-client-key-file=$KPKI/front-proxy-client.key
    - --requestheader-allowed-names=front-proxy-client
    - --requestheader-client-ca-file=$KPKI/front-proxy-ca.crt
    - --requestheader-extra-headers-prefix=X-Remote-Extra-
    - --requestheader-group-headers=X-Remote-Group
    - --requestheader-username-headers=X-Remote-User
    - --secure-port=6443
    - --service-account-issuer=https://kubernetes.default.svc.cluster.local
    - --service-account-key-file=$KPKI/sa.pub
    - --service-account-signing-key-file=$KPKI/sa.key
    - --service-cluster-ip-range=10.96.0.0/12
    - --tls-cert-file=$KPKI/apiserver.crt
    - --tls-private-key-file=$KPKI/apiserver.key
    image: $IMG/kube-apiserver:$K8S_VERSION
    name: kube-apiserver
  hostNetwork: true
  priorityClassName: system-node-critical
Y
  cat >$M/kube-controller-manager.yaml <<Y
apiVersion: v1
kind: Pod
metadata:
  labels:
    component: kube-controller-manager
    tier: control-plane
  name: kube-controller-manager
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-controller-manager
    - --authentication-kubeconfig=$KDIR/controller-manager.conf
    - --authorization-kubeconfig=$KDIR/controller-manager.conf
    - --client-ca-file=$KPKI/ca.crt
    - --cluster-signing-cert-file=$KPKI/ca.crt
    - --cluster-signing-key-file=$KPKI/ca.key
    - --kubeconfig=$KDIR/controller-manager.conf
    - --requestheader-client-ca-file=$KPKI/front-proxy-ca.crt
    - --root-ca-file=$KPKI/ca.crt
    - --service-account-private-key-file=$KPKI/sa.key
    - --use-service-account-credentials=true
    image: $IMG/kube-controller-manager:$K8S_VERSION
    name: kube-controller-manager
  hostNetwork: true
Y
  cat >$M/kube-scheduler.yaml <<Y
apiVersion: v1
kind: Pod
metadata:
  labels:
    component: kube-scheduler
    tier: control-plane
  name: kube-scheduler
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-scheduler
    - --authentication-kubeconfig=$KDIR/scheduler.conf
    - --authorization-kubeconfig=$KDIR/scheduler.conf
    - --kubeconfig=$KDIR/scheduler.conf
    image: $IMG/kube-scheduler:$K8S_VERSION
    name: kube-scheduler
  hostNetwork: true
Y
  if [ "$STACKED" = 1 ]; then
    # As kubeadm 1.28 writes it (cmd/kubeadm/app/phases/etcd/local.go GetEtcdPodSpec, getEtcdCommand):
    # the etcd folder of the PKI and the data dir mounted at their host paths, so etcdctl inside the
    # container reads the same files. The lab's kubelet runs the real etcd with these flags. kubeadm
    # gives the first member only itself and later ones --initial-cluster-state=existing; the lab's
    # members start together, so each names all of them with "new" (once the data dir exists, etcd
    # ignores both flags).
    install -d -m 0700 /var/lib/etcd
    cat >$M/etcd.yaml <<Y
apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://$NODE_IP:2379
  labels:
    component: etcd
    tier: control-plane
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://$NODE_IP:2379
    - --cert-file=$KPKI/etcd/server.crt
    - --client-cert-auth=true
    - --data-dir=/var/lib/etcd
    - --experimental-initial-corrupt-check=true
    - --experimental-watch-progress-notify-interval=5s
    - --initial-advertise-peer-urls=https://$NODE_IP:2380
    - --initial-cluster=${CP_MEMBERS:-$NODE_NAME=https://$NODE_IP:2380}
    - --initial-cluster-state=new
    - --key-file=$KPKI/etcd/server.key
    - --listen-client-urls=https://127.0.0.1:2379,https://$NODE_IP:2379
    - --listen-metrics-urls=http://127.0.0.1:2381
    - --listen-peer-urls=https://$NODE_IP:2380
    - --name=$NODE_NAME
    - --peer-cert-file=$KPKI/etcd/peer.crt
    - --peer-client-cert-auth=true
    - --peer-key-file=$KPKI/etcd/peer.key
    - --peer-trusted-ca-file=$KPKI/etcd/ca.crt
    - --snapshot-count=10000
    - --trusted-ca-file=$KPKI/etcd/ca.crt
    image: public.ecr.aws/eks-distro/etcd-io/etcd:v3.5.9-eks-1-28-9
    livenessProbe:
      httpGet:
        host: 127.0.0.1
        path: /health?exclude=NOSPACE&serializable=true
        port: 2381
        scheme: HTTP
    name: etcd
    volumeMounts:
    - mountPath: /var/lib/etcd
      name: etcd-data
    - mountPath: $KPKI/etcd
      name: etcd-certs
  hostNetwork: true
  priorityClassName: system-node-critical
  volumes:
  - hostPath:
      path: $KPKI/etcd
      type: DirectoryOrCreate
    name: etcd-certs
  - hostPath:
      path: /var/lib/etcd
      type: DirectoryOrCreate
    name: etcd-data
Y
  fi
  # kube-vip, as EKS Anywhere runs it on every control-plane node (it holds the API's virtual IP).
  cat >$M/kube-vip.yaml <<Y
apiVersion: v1
kind: Pod
metadata:
  name: kube-vip
  namespace: kube-system
spec:
  containers:
  - args:
    - manager
    env:
    - name: vip_arp
      value: "true"
    - name: port
      value: "6443"
    - name: address
      value: ${NODE_IP%.*}.254
    image: public.ecr.aws/l0g8r8j6/kube-vip/kube-vip:v0.7.2-eks-a-v0.19.0-eks-a-60
    name: kube-vip
    volumeMounts:
    - mountPath: /etc/kubernetes/admin.conf
      name: kubeconfig
  hostNetwork: true
  volumes:
  - hostPath:
      path: /etc/kubernetes/admin.conf
    name: kubeconfig
Y
  if [ "$NODE_OS" = bottlerocket ]; then
    # Bottlerocket: each static pod is a setting (settings.kubernetes.static-pods.NAME.{enabled,manifest},
    # the manifest base64) that the static-pods helper writes to /etc/kubernetes/static-pods/NAME.
    mkdir -p "$STATIC_PODS"
    pods=
    for f in "$M"/*.yaml; do
      p=$(basename "$f" .yaml)
      install -m 0600 "$f" "$STATIC_PODS/$p"
      pods="$pods${pods:+,}\"$p\":{\"enabled\":true,\"manifest\":\"$(base64 -w0 <"$f")\"}"
    done
    printf '{"static-pods":{%s}}\n' "$pods" >/var/lib/rotate-certs-lab/settings-kubernetes.json
    rm -rf /etc/kubernetes/manifests; ln -s static-pods /etc/kubernetes/manifests
  else
    mkdir -p "$STATIC_PODS"
    for f in "$M"/*.yaml; do install -m 0600 "$f" "$STATIC_PODS/" ; done # as kubeadm writes them (CIS 1.1.1-1.1.8)
  fi
  rm -rf "$M"
else
  # Workers and etcd nodes run a kubelet too: its kubeconfig and the cluster CA.
  mkdir -p "$KPKI"
  cpk 0644 "$CA_DIR/ca.crt" "$KPKI/ca.crt"
  kubelet_conf
fi

# Every node's kubelet: dated client cert+key with the current symlink, and a self-signed serving cert.
t=$(mktemp -d)
issue "$CA_DIR/ca.crt" "$CA_DIR/ca.key" "$t/c.crt" "$t/c.key" "/O=system:nodes/CN=system:node:$NODE_NAME" client ''
rc_kubelet_client_from "$t/c.crt" "$t/c.key"
rm -rf "$t"
rc_kubelet_serving /var/lib/kubelet/pki "$NODE_NAME" "$START" "$END"
mkdir -p /var/log/containers /var/lib/rotate-certs-lab
touch /var/lib/rotate-certs-lab/kubelet.active

rc_tmp_done
awk '{print $1" "$2}' /etc/ssh/ssh_host_ed25519_key.pub
