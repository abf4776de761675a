#!/usr/bin/env bash
# tests/vm/run.sh — fobsim's real-kernel HID tests.
#
# Boots Debian's stock kernel (linux-image-amd64, only downloaded and
# unpacked: nothing is installed) under qemu's software emulation with a
# busybox initramfs that loads hid/uhid/hid-generic/usbhid/usbip-core/
# vhci-hcd and runs the static binaries of the fobsim-vmtests crate as root:
#   vm_uhid   the emulator creates fobs on /dev/uhid; hidapi presses them
#   vm_usbip  the emulator serves USB/IP on 127.0.0.1; `usbip attach`; rusb
#             reads the descriptors; hidapi presses; detach, re-attach
#   readme    README's emulator lines "the same fobs as USB devices", as
#             written (the static `fobsim` CLI, the real `usbip`): list,
#             attach, `fobsim device press --hid`, a uhid fob in /dev/hidraw
# The guest reports its verdict through qemu's isa-debug-exit device.
# Anything that keeps a requested test from running is a failure (exit 1),
# never a skip.
#
# Usage: tests/vm/run.sh [TEST...]   (default: vm_uhid vm_usbip readme)
# Env:   VM_WORK (default target/vm), VM_TIMEOUT seconds (default 150)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TESTS=("$@"); [ ${#TESTS[@]} -gt 0 ] || TESTS=(vm_uhid vm_usbip readme)
WORK=${VM_WORK:-$ROOT/target/vm}; VM_TIMEOUT=${VM_TIMEOUT:-150}
t0=$(date +%s%N); ms() { echo "$(( ($(date +%s%N) - t0) / 1000000 )) ms"; }
fail() { echo "tests/vm/run.sh: FAIL: $*" >&2; exit 1; }
mkdir -p "$WORK"

# 1. Host packages. The kernel .deb is only downloaded and unpacked.
need=()
for p in qemu-system-x86 busybox-static kmod cpio usbip; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "needs the Debian packages ${need[*]} (sudo apt-get install ${need[*]})"
  echo "tests/vm/run.sh: installing ${need[*]}"
  apt-get update -qq || fail "apt-get update"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || fail "apt-get install ${need[*]}"
fi
for f in /usr/bin/qemu-system-x86_64 /bin/busybox /usr/sbin/usbip /usr/share/qemu/qboot.rom; do
  [ -e "$f" ] || fail "$f missing after installing packages"
done
echo "packages ready ($(ms))"

# 2. The stock kernel. The -cloud flavour lacks USB (no vhci-hcd): use -amd64.
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
if [ -z "$KPKG" ]; then apt-get update -qq || true
  KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}'); fi
[ -n "$KPKG" ] || fail "cannot resolve linux-image-amd64 (apt-get update?)"
KVER=${KPKG#linux-image-}
K=$WORK/kernel-$KVER
if [ ! -f "$K/boot/vmlinuz-$KVER" ]; then
  rm -rf "$K" "$WORK"/dl; mkdir -p "$K" "$WORK/dl"
  (cd "$WORK/dl" && apt-get download -qq "$KPKG") || fail "apt-get download $KPKG"
  dpkg-deb --fsys-tarfile "$WORK"/dl/"${KPKG}"_*.deb | tar -x -C "$K" --wildcards \
    "./boot/vmlinuz-$KVER" "./lib/modules/$KVER/modules.*" \
    "./lib/modules/$KVER/kernel/drivers/hid/*" "./lib/modules/$KVER/kernel/drivers/usb/*" \
    || fail "unpacking $KPKG"
  depmod -b "$K" "$KVER"
  rm -rf "$WORK/dl"
fi
echo "kernel $KVER ready ($(ms))"

# 3. Static test binaries.
export CARGO_TARGET_DIR=${VM_CARGO_TARGET_DIR:-$ROOT/target/vm-build}
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release --locked \
  --target x86_64-unknown-linux-gnu -p fobsim-vmtests || fail "building the VM test binaries"
BIN=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release
if [[ " ${TESTS[*]} " == *" readme "* ]]; then
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release --locked \
    --target x86_64-unknown-linux-gnu -p fobsim --bin fobsim || fail "building the static fobsim CLI"
  ldd "$BIN/fobsim" 2>&1 | grep -qE 'not a dynamic|statically linked' || fail "fobsim is not statically linked"
fi
for t in "${TESTS[@]}"; do
  [ "$t" = readme ] && continue
  [ -x "$BIN/$t" ] || fail "no test binary $t (known: vm_uhid vm_usbip)"
  ldd "$BIN/$t" 2>&1 | grep -qE 'not a dynamic|statically linked' || fail "$t is not statically linked"
done
echo "test binaries built ($(ms))"

# 4. The initramfs.
R=$(mktemp -d); trap 'rm -rf "$R"' EXIT
mkdir -p "$R"/{bin,proc,sys,dev,run,tests,usr/sbin,usr/share/misc,lib/modules/$KVER}
mkdir -p "$R/var"; ln -s /run "$R/var/run"
cp /bin/busybox "$R/bin/"
i=0; for t in "${TESTS[@]}"; do i=$((i+1))
  if [ "$t" = readme ]; then
    mkdir -p "$R/usr/bin"; strip -o "$R/usr/bin/fobsim" "$BIN/fobsim" || fail "strip fobsim"
    # README's lines from "# the same fobs as USB devices" to the block's end.
    block=$(awk '/^# the same fobs as USB devices/{on=1} on&&/^```/{exit} on' README.md)
    [ "$(printf '%s\n' "$block" | grep -c .)" -ge 6 ] || fail "README has no USB lines in its emulator block"
    { echo '#!/bin/sh'
      echo '# README.md, "### The emulator", the USB lines as written; then checks.'
      echo 'out=/run/readme.out'
      echo '( set -e'
      printf '%s\n' "$block"
      echo ') > $out 2>&1; rc=$?'
      cat "$ROOT/tests/vm/readme-check.sh"
    } > "$R/tests/$i-readme"
    chmod +x "$R/tests/$i-readme"
  else
    cp "$BIN/$t" "$R/tests/$i-$t"
  fi
done
MODS="hid uhid hid-generic usbhid usbip-core vhci-hcd"
M=$K/lib/modules/$KVER
for m in $MODS; do
  line=$(grep -E "/${m}\.ko(\.[a-z]+)?:" "$M/modules.dep") || fail "module $m not in $KPKG"
  for f in ${line%%:*} ${line#*:}; do
    mkdir -p "$R/lib/modules/$KVER/${f%/*}"; cp "$M/$f" "$R/lib/modules/$KVER/$f"
  done
done
cp "$M"/modules.{order,builtin,builtin.modinfo} "$R/lib/modules/$KVER/"
depmod -b "$R" "$KVER"
# usbip is dynamically linked: bring it with its libraries.
cp /usr/sbin/usbip "$R/usr/sbin/"
for l in $(ldd /usr/sbin/usbip | grep -o '/[^ ]*'); do mkdir -p "$R${l%/*}"; cp -L "$l" "$R$l"; done
cp /usr/share/misc/usb.ids "$R/usr/share/misc/" 2>/dev/null || true
cat > "$R/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin; export PATH=/bin:/usr/sbin:/usr/bin
mount -t proc p /proc; mount -t sysfs s /sys; mount -t devtmpfs d /dev; mount -t tmpfs t /run
mkdir -p /run/vhci_hcd
rc=0
for m in $MODS; do modprobe \$m || { echo "VMTEST modprobe \$m failed"; rc=1; }; done
[ -c /dev/uhid ] || { echo "VMTEST no /dev/uhid"; rc=1; }
[ -d /sys/devices/platform/vhci_hcd.0 ] || { echo "VMTEST no vhci_hcd.0"; rc=1; }
ip link set lo up
for t in /tests/*; do
  echo "VMTEST run \$t"
  "\$t" || { echo "VMTEST \$t exit \$?"; rc=1; }
done
echo "VMTEST done rc=\$rc uptime=\$(cut -d' ' -f1 /proc/uptime)s"
# isa-debug-exit: qemu's exit status = (byte << 1) | 1: 1 pass, 3 fail
if [ \$rc = 0 ]; then printf '\000'; else printf '\001'; fi | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
poweroff -f
INIT
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/initramfs.cpio.gz"
echo "initramfs $(stat -c %s "$WORK/initramfs.cpio.gz") bytes ($(ms))"

# 5. Boot (TCG: this machine's KVM cannot boot a stock kernel).
QARGS=(-m 512 -smp 1 -nodefaults -display none -serial stdio -no-reboot
  -bios /usr/share/qemu/qboot.rom -kernel "$K/boot/vmlinuz-$KVER" -initrd "$WORK/initramfs.cpio.gz"
  -append "console=ttyS0 panic=-1 quiet" -device isa-debug-exit,iobase=0xf4,iosize=0x04
  -accel tcg -cpu max)
set +e
timeout "$VM_TIMEOUT" qemu-system-x86_64 "${QARGS[@]}" </dev/null >"$WORK/console.log" 2>&1
qrc=$?
set -e
sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g' "$WORK/console.log" | grep -v '^\s*$' | grep -E 'VMTEST|panic|Oops|BUG|usbip|vhci' || true
echo "qemu exit $qrc, total $(ms)"
case $qrc in
  1) echo "tests/vm/run.sh: ${TESTS[*]}: ${#TESTS[@]} passed, 0 failed"; exit 0 ;;
  3) fail "a VM test failed (console: $WORK/console.log)" ;;
  124) fail "the VM timed out after ${VM_TIMEOUT}s (console: $WORK/console.log)" ;;
  *) fail "qemu exited $qrc without a verdict (console: $WORK/console.log)" ;;
esac
