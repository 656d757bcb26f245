# Shared by netfs-mount.sh, netfs-umount.sh and netfs-stop.sh (sourced,
# not run). Every server listens on 127.0.0.1 only; keys and configuration
# are made for the occasion under $NETFS_STATE and never leave it.

NETFS_STATE=${CONVEYOR_NETFS_STATE:-/tmp/conveyor-netfs}
NETFS_SKIP=77 # exit status: a tool could not be installed here

netfs_die() { echo "${0##*/}: $*" >&2; exit 1; }

# Installs Debian packages when the commands are missing.
#   netfs_need COMMAND:PACKAGE...
netfs_need() {
    local want=() t
    for t in "$@"; do
        command -v "${t%%:*}" >/dev/null || want+=("${t#*:}")
    done
    [ ${#want[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "${0##*/}: missing ${want[*]} (Debian packages) and cannot install them here" >&2
        exit $NETFS_SKIP
    fi
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine has no package lists yet; an old one may have stale ones.
    apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null 2>&1 || {
        apt-get update -qq >/dev/null 2>&1 || true
        apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
    } || { echo "${0##*/}: installing ${want[*]} failed" >&2; exit $NETFS_SKIP; }
}

# A TCP port on 127.0.0.1 that nothing listens on now.
netfs_free_port() {
    python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

netfs_port_open() {
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.settimeout(0.5)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

netfs_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

netfs_is_mounted() { grep -qs " $(realpath -m "$1") " /proc/mounts; }

# sshd on a loopback port, root login by a throwaway key only, sftp served
# by OpenSSH's sftp-server, which logs every open, close (with byte
# counts), rename and setstat to $NETFS_STATE/sshd/sftp.log.
netfs_sshd() {
    netfs_need sshd:openssh-server ssh:openssh-client ssh-keygen:openssh-client python3:python3
    local d=$NETFS_STATE/sshd
    mkdir -p "$d" && chmod 700 "$NETFS_STATE" "$d"
    if netfs_alive "$d/pid" && netfs_port_open "$(cat "$d/port")"; then
        return 0
    fi
    [ -f "$d/host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$d/host_key"
    [ -f "$d/client_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$d/client_key"
    cp "$d/client_key.pub" "$d/authorized_keys"
    chmod 600 "$d/authorized_keys"
    local port
    port=$(netfs_free_port)
    echo "$port" > "$d/port"
    cat > "$d/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey $d/host_key
PidFile none
AuthorizedKeysFile $d/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
MaxStartups 100
MaxSessions 100
Subsystem sftp $d/sftp-server
LogLevel INFO
EOF
    # The sftp server's own log (-e: to stderr, kept in a file) has a line
    # per open, close (with bytes read and written), rename, setstat...
    printf '#!/bin/sh\nexec /usr/lib/openssh/sftp-server -e -l INFO 2>>%s/sftp.log\n' "$d" > "$d/sftp-server"
    chmod 755 "$d/sftp-server"
    mkdir -p /run/sshd
    /usr/sbin/sshd -D -f "$d/sshd_config" -E "$d/sshd.log" </dev/null >/dev/null 2>&1 9>&- &
    echo $! > "$d/pid"
    for _ in $(seq 100); do
        netfs_port_open "$port" && netfs_alive "$d/pid" && return 0
        sleep 0.05
    done
    netfs_die "sshd did not listen on 127.0.0.1:$port: $(tail -3 "$d/sshd.log")"
}

netfs_ssh_opts() {
    local d=$NETFS_STATE/sshd
    echo "-o IdentityFile=$d/client_key -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
}

# moto's S3 server on a loopback port. Its log has one line per request
# (method, path, status), the server's view of what a client sent.
netfs_s3_server() {
    netfs_need python3:python3
    if ! python3 -c 'import moto.server, flask, werkzeug' 2>/dev/null; then
        python3 -m pip install -q 'moto[server]' >/dev/null 2>&1 ||
            { echo "${0##*/}: cannot install moto[server] from PyPI" >&2; exit $NETFS_SKIP; }
    fi
    local d=$NETFS_STATE/s3
    mkdir -p "$d" && chmod 700 "$NETFS_STATE" "$d"
    if netfs_alive "$d/pid" && netfs_port_open "$(cat "$d/port")"; then
        return 0
    fi
    local port
    port=$(netfs_free_port)
    echo "$port" > "$d/port"
    # moto accepts any key; s3fs still wants a file with one, mode 0600.
    echo "conveyor:conveyor-test-secret" > "$d/passwd"
    chmod 600 "$d/passwd"
    python3 -m moto.server -H 127.0.0.1 -p "$port" >>"$d/server.log" 2>&1 </dev/null 9>&- &
    echo $! > "$d/pid"
    for _ in $(seq 200); do
        netfs_port_open "$port" && return 0
        netfs_alive "$d/pid" || netfs_die "moto server exited: $(tail -5 "$d/server.log")"
        sleep 0.05
    done
    netfs_die "moto server did not listen on 127.0.0.1:$port"
}

# Waits for MOUNTPOINT to appear, or fails showing LOG.
netfs_wait_mount() {
    local mnt=$1 pid=$2 log=$3
    for _ in $(seq 200); do
        netfs_is_mounted "$mnt" && return 0
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            netfs_die "mount of $mnt failed: $(tail -5 "$log")"
        fi
        sleep 0.05
    done
    netfs_die "$mnt did not mount: $(tail -5 "$log")"
}
