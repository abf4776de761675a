# The checks after README's USB lines (tests/vm/run.sh appends this to
# them; busybox sh in the guest; $out holds their output, $rc their status).
sed 's/^/README| /' "$out"
ok=1
[ "$rc" = 0 ] || { echo "VMTEST readme: the lines exited $rc"; ok=0; }
grep -q '1209:0001' "$out" || { echo "VMTEST readme: usbip list showed no 1209:0001"; ok=0; }
grep -Eq '^[0-9]{6}$' "$out" || { echo "VMTEST readme: device press --hid printed no code"; ok=0; }
# The uhid fob (the last line, in the background) becomes a hidraw node
# under the uhid misc device.
i=0; while [ $i -lt 100 ] && ! ls -l /sys/class/hidraw/ | grep -q '/uhid/'; do sleep 0.1; i=$((i+1)); done
ls -l /sys/class/hidraw/ | grep -q '/uhid/' || { echo "VMTEST readme: no hidraw node from /dev/uhid"; ok=0; }
killall fobsim 2>/dev/null
for p in $(usbip port 2>/dev/null | sed -n 's/^Port \([0-9]*\):.*/\1/p'); do usbip detach -p "$p" >/dev/null 2>&1; done
if [ $ok = 1 ]; then echo "VMTEST readme: README's USB lines as written: list, attach, press --hid, uhid"; exit 0; fi
exit 1
