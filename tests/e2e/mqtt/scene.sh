#!/bin/sh
# A camera for tests/e2e/mqtt.sh and bench/mqtt_outage.sh, read through the
# exec: source: concatenated JPEGs on stdout, about 5 per second. The scene
# is bus.jpg (people, a bus) unless the file DIR/empty exists: then it is
# empty.jpg (grey, nothing to detect). The test turns the scene by touching
# or removing that file.
#
# usage: scene.sh DIR
dir=${1:?usage: scene.sh DIR}
images=$(cd "$(dirname "$0")/../../fixtures/images" && pwd)
while :; do
    if [ -e "$dir/empty" ]; then frame=$images/empty.jpg; else frame=$images/bus.jpg; fi
    cat "$frame" || exit 0
    sleep 0.2
done
