#!/usr/bin/env bash
# Rebuild book/_vendor/_static/ipywidgets/: the JavaScript that lets ipywidgets run in the static book without a
# kernel or a CDN. Fetches two npm packages with `npm pack` (no node_modules, no install scripts) and keeps only:
#   @jupyter-widgets/html-manager  dist/embed-amd.js and the .woff2 fonts it asks for
#   requirejs                      require.js
# Our own files in that folder (widgets-config.js) are left alone. Needs npm and the npm registry.
# Usage: scripts/vendor_widget_js.sh            (versions below; change them together with book/_vendor/README.md)
set -euo pipefail
HTML_MANAGER_VERSION="${HTML_MANAGER_VERSION:-1.0.15}"
REQUIREJS_VERSION="${REQUIREJS_VERSION:-2.3.8}"

cd "$(dirname "$0")/.."
dest="book/_vendor/_static/ipywidgets"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

( cd "$work" && npm pack --silent "@jupyter-widgets/html-manager@${HTML_MANAGER_VERSION}" "requirejs@${REQUIREJS_VERSION}" >/dev/null )
mkdir -p "$work/hm" "$work/rj" "$dest"
tar -xzf "$work/jupyter-widgets-html-manager-${HTML_MANAGER_VERSION}.tgz" -C "$work/hm"
tar -xzf "$work/requirejs-${REQUIREJS_VERSION}.tgz" -C "$work/rj"

# Replace the fetched files only (stale fonts from an older version go too).
rm -f "$dest/embed-amd.js" "$dest/require.js" "$dest"/*.woff2
cp "$work/hm/package/dist/embed-amd.js" "$dest/"
cp "$work/rj/package/require.js" "$dest/"
# The fonts embed-amd.js names (Font Awesome and friends, hashed by webpack); fail if one is missing.
for font in $(grep -o '[0-9a-f]\{20\}\.woff2' "$dest/embed-amd.js" | sort -u); do
    cp "$work/hm/package/dist/$font" "$dest/"
done
cp "$work/hm/package/dist/embed.js.LICENSE.txt" "$dest/THIRD_PARTY_NOTICES.txt"

grep -q "\"version\": \"${HTML_MANAGER_VERSION}\"" "$work/hm/package/package.json"
grep -q "RequireJS ${REQUIREJS_VERSION} " "$dest/require.js"
echo "vendored into $dest:"
( cd "$dest" && ls -l --block-size=K | tail -n +2 && sha256sum embed-amd.js require.js *.woff2 )
