#!/bin/sh
# launcher.sh: runs as PID 1 of a fresh pid+mount+uts+ipc+cgroup(+net)
# namespace set (started by unshare from harness.go), builds a private view
# of the file system and execs systemd in place.
#
# Environment (all required): STATE, UNIT_DIR, UNIT_PATH, RW (":"-separated
# extra writable host dirs, may be empty), OVERLAY (":"-separated host dirs
# that get a private writable layer, may be empty), OWN_SYSFS (1 = mount a
# fresh sysfs).
set -eu

# Hold the host directories open before tmpfs mounts hide them; they are
# bound back later at the same paths. mount -c: do not canonicalise
# /proc/self/fd/N (it would resolve inside the new tmpfs).
exec 3<"$STATE" 4<"$UNIT_DIR"
# The console pty, opened again inside this mount namespace (the inherited
# fd belongs to a mount of the parent namespace and cannot be bound).
CONSOLE=$(readlink /proc/self/fd/0)
exec 9<>"$CONSOLE"
i=5
OLDIFS=$IFS
IFS=:
for d in $RW; do
	[ -n "$d" ] || continue
	eval "exec $i<\"\$d\""
	i=$((i + 1))
done
IFS=$OLDIFS

ro_bind() {
	[ -e "$1" ] || return 0
	mount --bind "$1" "$1"
	mount -o remount,bind,ro "$1"
}

# Global kernel knobs stay out of reach: PID 1 raises fs.nr_open, and
# nothing in here may touch IRQ affinity.
ro_bind /proc/sys
ro_bind /proc/irq
ro_bind /proc/bus
ro_bind /proc/fs
ro_bind /proc/sysrq-trigger

# A sysfs of our own (read-only) with only cgroup2 below it: systemd runs in
# unified mode inside the cgroup subtree the harness created.
if [ "$OWN_SYSFS" != 1 ] || ! mount -t sysfs -o ro,nosuid,nodev,noexec sysfs /sys 2>/dev/null; then
	mount --rbind /sys /sys
	mount -o remount,bind,ro /sys
fi
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup

# A private minimal /dev; /dev/console is the harness's pty (fd 0).
mount -t tmpfs -o mode=755,nosuid dev /dev
mknod -m 666 /dev/null c 1 3
mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/full c 1 7
mknod -m 666 /dev/random c 1 8
mknod -m 666 /dev/urandom c 1 9
mknod -m 666 /dev/tty c 5 0
mkdir -p /dev/pts /dev/shm /dev/net
mknod -m 666 /dev/net/tun c 10 200
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
touch /dev/console
mount -c --bind /proc/self/fd/9 /dev/console

# Private tmpfs where systemd (and its tmpfiles) would write.
mount -t tmpfs -o mode=755,nosuid,nodev run /run

# Private writable layers over host directories (Options.Overlay): what is
# written there (a package installed with dpkg) lands in /run's tmpfs and
# goes with the namespace; the host's directories are never written. Before
# the tmpfs mounts below, which sit on top of them (/etc/systemd, ...).
n=0
IFS=:
for d in $OVERLAY; do
	[ -n "$d" ] || continue
	o=/run/.harness-overlay/$n
	mkdir -p "$o/upper" "$o/work"
	mount -t overlay "harness-overlay$n" -o "lowerdir=$d,upperdir=$o/upper,workdir=$o/work" "$d"
	n=$((n + 1))
done
IFS=$OLDIFS
mount -t tmpfs -o mode=1777,nosuid,nodev tmp /tmp
mount -t tmpfs -o mode=1777,nosuid,nodev vartmp /var/tmp
mount -t tmpfs -o mode=755 etcsystemd /etc/systemd
mount -t tmpfs -o mode=755 varlibsystemd /var/lib/systemd
mkdir -p /etc/systemd/system /run/systemd

# The harness's own directories, writable, at the same paths as on the host.
mkdir -p "$STATE" "$UNIT_DIR"
mount -c --bind /proc/self/fd/3 "$STATE"
mount -c --bind /proc/self/fd/4 "$UNIT_DIR"
i=5
IFS=:
for d in $RW; do
	[ -n "$d" ] || continue
	mkdir -p "$d" 2>/dev/null || true
	mount -c --bind "/proc/self/fd/$i" "$d"
	i=$((i + 1))
done
IFS=$OLDIFS
exec 3<&- 4<&- 9<&-

cat >/etc/systemd/system.conf <<CONF
[Manager]
ShowStatus=no
LogColor=no
DefaultStandardOutput=tty
DefaultStandardError=tty
DefaultTimeoutStopSec=10s
$SYSTEM_CONF
CONF

# Everything else on / is read-only inside.
mount -o remount,bind,ro /

export SYSTEMD_UNIT_PATH="$UNIT_PATH"
export SYSTEMD_GENERATOR_PATH="$STATE/empty"
export SYSTEMD_ENVIRONMENT_GENERATOR_PATH="$STATE/empty"
export SYSTEMD_LOG_COLOR=0
exec /lib/systemd/systemd --system --log-target=console --log-level="${LOG_LEVEL:-info}" --show-status=no
