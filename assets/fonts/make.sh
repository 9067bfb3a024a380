#!/bin/sh
# Makes the label font embedded by src/annotate: DejaVu Sans Bold from
# Debian's fonts-dejavu-core, cut down to printable ASCII and Latin-1 (class
# names are drawn with it; anything else shows as a box). Needs fonttools
# (pip install fonttools). The output is committed; this records how.
set -eu
here=$(dirname "$0")
src=${1:-/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf}
pyftsubset "$src" \
    --unicodes='U+0020-007E,U+00A0-00FF' \
    --layout-features='kern' \
    --no-hinting --desubroutinize \
    --output-file="$here/DejaVuSans-Bold-latin1.ttf"
ls -l "$here/DejaVuSans-Bold-latin1.ttf"
