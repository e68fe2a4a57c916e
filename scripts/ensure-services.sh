#!/usr/bin/env bash
# Make sure what the tests talk to is installed and running: Redis on 6379,
# MariaDB on 3306 (root, empty password over TCP), Chromium and fonts for the
# browser tests. Installs from Debian's packages where something is missing.
set -euo pipefail

SUDO=""
[[ $(id -u) == 0 ]] || SUDO="sudo"
APT_UPDATED=0
apt_install() {
  if [[ $APT_UPDATED == 0 ]]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}
wait_for() {  # wait_for "what" command...
  local what=$1; shift
  for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "ensure-services: $what did not come up" >&2; return 1
}

# --- Redis -------------------------------------------------------------------
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  command -v redis-server >/dev/null || apt_install redis-server redis-tools
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for redis redis-cli -h 127.0.0.1 -p 6379 ping
fi

# --- MariaDB -----------------------------------------------------------------
mysql_ok() { mysql -h 127.0.0.1 -P 3306 -u root -e "SELECT 1" >/dev/null 2>&1; }
if ! mysql_ok; then
  command -v mariadbd >/dev/null || [[ -x /usr/sbin/mariadbd ]] || apt_install mariadb-server mariadb-client
  if ! mysqladmin -u root ping >/dev/null 2>&1; then
    $SUDO mkdir -p /run/mysqld && $SUDO chown mysql:mysql /run/mysqld 2>/dev/null || true
    $SUDO start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    wait_for mariadb mysqladmin -u root ping
  fi
  if ! mysql_ok; then
    # A fresh Debian install lets root in only over the unix socket.
    $SUDO mysql -u root -e "ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('')" || true
  fi
  wait_for "mariadb over TCP" mysql_ok
fi

# --- Compose, to check docker-compose.yml (no Docker engine is needed for that) ---
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || apt_install docker-compose

# --- Chromium and fonts for the browser tests ----------------------------------
if [[ "${COURIER_SKIP_BROWSER:-0}" != 1 ]]; then
  command -v chromium >/dev/null || apt_install chromium
  [[ -d /usr/share/fonts/opentype/noto ]] && fc-list 2>/dev/null | grep -qi "Noto Color Emoji" \
    || apt_install fonts-noto-cjk fonts-noto-color-emoji
fi
echo "ensure-services: redis, mariadb${COURIER_SKIP_BROWSER:+}, chromium ready"
