#!/usr/bin/env bash
# The amd64 .deb from the static build: right files in the right places,
# and the packaged binary runs (extracted into a scratch root).
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${1:-x86_64-unknown-linux-musl}
cargo deb --target "$target" --no-build --no-strip >/dev/null
deb=$(ls -t target/"$target"/debian/yolod_*.deb | head -1)
echo "package: $deb ($(du -h "$deb" | cut -f1))"
contents=$(dpkg-deb -c "$deb")
for path in ./usr/bin/yolod ./lib/systemd/system/yolod.service ./lib/systemd/system/yolod.socket \
            ./etc/default/yolod ./etc/yolod/yolod.toml ./usr/share/doc/yolod/README.md \
            ./usr/share/doc/yolod/copyright ./usr/share/doc/yolod/models.md ./usr/share/doc/yolod/pi-camera.conf; do
    grep -q " $path\$" <<<"$contents" || { echo "missing $path in $deb:"; echo "$contents"; exit 1; }
done
# Both precisions of the default model are in the binary: no model file
# ships beside it.
! grep -q '\.onnx$' <<<"$contents" || { echo "a model file in $deb:"; grep '\.onnx$' <<<"$contents"; exit 1; }
dpkg-deb -f "$deb" Package Version Architecture Depends
control=$(dpkg-deb -I "$deb")
for script in postinst prerm postrm; do
    grep -q " $script " <<<"$control" || { echo "no $script in $deb"; exit 1; }
done
conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)
[[ "$conffiles" == $'/etc/default/yolod\n/etc/yolod/yolod.toml' ]] || { echo "conffiles: $conffiles"; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
"$root/usr/bin/yolod" --version
# The packaged config parses as shipped (all commented) and with its
# examples switched on.
"$root/usr/bin/yolod" models --config "$root/etc/yolod/yolod.toml" >/dev/null
sed -E 's/^#([a-z[])/\1/' "$root/etc/yolod/yolod.toml" >"$root/all-on.toml"
# Every key and [[camera]] table is known and valid at parse time; the
# examples then fail on the first of their placeholder files (the API key
# file, the MQTT password file, a camera's credentials), which the test
# machine does not have.
"$root/usr/bin/yolod" serve --config "$root/all-on.toml" >/dev/null 2>"$root/err" && {
    echo "the config with every example on should fail only on a missing placeholder file:"; cat "$root/err"; exit 1; }
grep -qE "(/etc/yolod/keys|/run/credentials/yolod.service/mqtt-password|/etc/yolod/porch.credentials).*No such file" "$root/err" ||
    { echo "unexpected error from the example config:"; cat "$root/err"; exit 1; }
"$root/usr/bin/yolod" predict tests/fixtures/images/zidane.jpg | grep -q '"name":"person"'
for precision in fp32 int8; do
    "$root/usr/bin/yolod" predict --precision $precision tests/fixtures/images/zidane.jpg | grep -q '"name":"person"'
done
echo "package OK"
