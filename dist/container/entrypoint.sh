#!/bin/sh
# The container's entrypoint: applies VPN_PSK, VPN_USER, VPN_PASSWORD and
# VPN_ENABLE, then runs `vpn-ctl up` as PID 1 (SIGTERM from `podman stop`
# or `docker stop` makes it restore the host before it exits).
#   VPN_PSK       L2TP/IPsec and native pre-shared key (>= 16 characters);
#                 generated and printed when absent on first start
#   VPN_USER      a user to create or update (default: none; `up` then makes
#                 user `vpn` on first start)
#   VPN_PASSWORD  that user's password; generated and printed when absent
#   VPN_ENABLE    protocols to turn on besides the defaults, e.g. "pptp"
#   /etc/vpn-ctl/vpn-ctl.toml, if mounted, is the configuration.
set -eu

VPN_CTL=${VPN_CTL:-vpn-ctl}
CONFIG=${VPN_CONFIG:-/etc/vpn-ctl/vpn-ctl.toml}
ctl() {
  if [ -f "$CONFIG" ]; then "$VPN_CTL" -c "$CONFIG" "$@"; else "$VPN_CTL" "$@"; fi
}
random() { head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c "$1"; }

if [ -n "${VPN_PSK:-}" ]; then
  printf '%s\n' "$VPN_PSK" | ctl ipsec-psk --set -
elif ! ctl ipsec-psk >/dev/null 2>&1; then
  psk=$(random 32)
  printf '%s\n' "$psk" | ctl ipsec-psk --set - >/dev/null
  echo "vpn-ctl: generated pre-shared key: $psk"
fi

if [ -n "${VPN_USER:-}" ]; then
  password=${VPN_PASSWORD:-}
  if [ -z "$password" ]; then
    password=$(random 20)
    echo "vpn-ctl: generated password for $VPN_USER: $password"
  fi
  if ctl users list | cut -f1 | grep -qx "$VPN_USER"; then
    printf '%s\n' "$password" | ctl users passwd "$VPN_USER" --password-file - >/dev/null
  else
    printf '%s\n' "$password" | ctl users add "$VPN_USER" --password-file - >/dev/null
  fi
  echo "vpn-ctl: user $VPN_USER ready"
fi

set --
for p in $(printf '%s' "${VPN_ENABLE:-}" | tr ',' ' '); do
  set -- "$@" --enable "$p"
done
if [ -f "$CONFIG" ]; then
  exec "$VPN_CTL" -c "$CONFIG" up "$@"
fi
exec "$VPN_CTL" up "$@"
