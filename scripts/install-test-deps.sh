#!/bin/sh
# Install the Debian packages the network tests need (strongSwan 5.9.8, iproute2, nftables,
# tcpdump, iperf3, ping).
# Idempotent: installs only what is missing, runs apt-get update only when a package is
# missing and cannot be found in the current package lists.  The daemon is never enabled
# or started as a host service: policy-rc.d forbids service starts during installation,
# and the tests start charon themselves inside a private network namespace.
set -eu

PACKAGES="strongswan-charon strongswan-swanctl strongswan-pki libstrongswan-standard-plugins libcharon-extra-plugins iproute2 nftables tcpdump iperf3 iputils-ping"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "install-test-deps: all packages present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: need root to install:$missing" >&2
    exit 1
fi

need_update=0
for p in $missing; do
    if ! apt-cache show "$p" >/dev/null 2>&1; then
        need_update=1
    fi
done
if [ "$need_update" -eq 1 ]; then
    apt-get update
fi

# Forbid invoke-rc.d from starting services while the packages install (restored after).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    created_policy=1
fi
cleanup() {
    if [ "$created_policy" -eq 1 ]; then
        rm -f "$policy"
    fi
}
trap cleanup EXIT

# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing

# Never run strongSwan as a host service: the tests start their own charon in a namespace.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now strongswan.service strongswan-starter.service 2>/dev/null || true
fi
echo "install-test-deps: installed$missing"
