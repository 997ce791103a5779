#!/usr/bin/env bash
# Redraw examples/render_frame.png and examples/report.png from a quickstart output.
#
# Usage: examples/review_images.sh [QUICKSTART_OUT] [WORK_DIR]
#   (defaults: quickstart-out, and a temporary work directory)
# Needs chromium (or chromium-browser / google-chrome) on PATH for the report screenshot.
set -euo pipefail
OUT="${1:-quickstart-out}"
WORK="${2:-$(mktemp -d)}"
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$WORK"
vadkit score "$OUT/runs/msip" "$OUT/feats/test" -o "$WORK/scores" --checkpoint last --evidence -q
vadkit render "$OUT/data/videos/test_abn_000.mp4" -s "$WORK/scores" \
    -o "$HERE/render_frame.png" --frame 56
vadkit report "$WORK/scores" -o "$WORK/report.html" --videos "$OUT/data/videos" \
    -a "$OUT/data/annotations.csv"
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome)
"$browser" --headless --disable-gpu --no-sandbox --hide-scrollbars --window-size=1200,1500 \
    --screenshot="$HERE/report.png" "file://$(cd "$WORK" && pwd)/report.html" 2>/dev/null
echo "wrote $HERE/render_frame.png and $HERE/report.png (work files in $WORK)"
