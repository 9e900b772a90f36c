#!/usr/bin/env bash
# Vendors Mermaid, which the operator console draws saga diagrams with, into
# console/assets/vendor/:
#   mermaid.min.js   the npm package's dist/mermaid.min.js: the single-file (IIFE) build that
#                    defines the global `mermaid` and loads no other file,
#   mermaid.LICENSE  the package's LICENSE (MIT), which must ship with it.
# Why: the console ships Mermaid inside its binary, so its pages load nothing from a CDN (they
# work offline, and under a Content-Security-Policy that allows no other origin) and the version
# that renders is the one reviewed here. These files are committed; the console's build
# does not run npm.
#
# The version is pinned exactly in console/assets/package.json and package-lock.json. The
# script installs exactly that with `npm ci` in a temporary copy of console/assets (no
# node_modules is left in the repository; install scripts are not run), checks that the file is
# a self-contained script that defines `mermaid` and is the pinned version, and copies the two
# files.
#
#   scripts/vendor-mermaid.sh            # vendor the pinned version again
#   scripts/vendor-mermaid.sh 11.17.2    # upgrade (or downgrade): pin VERSION, rewrite the lock
#                                        # file with `npm install`, then vendor it
#
# Then commit console/assets/package.json, package-lock.json and vendor/. Needs node and npm.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

assets=console/assets
vendor=$assets/vendor
npm_flags=(--ignore-scripts --no-audit --no-fund --loglevel=warn)

die() {
    printf 'vendor-mermaid: %s\n' "$*" >&2
    exit 1
}

# An exact version: no range, no tag.
exact='^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$'
(($# <= 1)) || die "usage: $0 [VERSION]"
version=${1:-}
if [[ -n $version && ! $version =~ $exact ]]; then
    die "VERSION must be an exact version such as 11.17.2, not '$version'"
fi
for tool in node npm; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done
[[ -f $assets/package.json ]] || die "$assets/package.json is missing"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$assets/package.json" "$work/"
[[ ! -f $assets/package-lock.json ]] || cp "$assets/package-lock.json" "$work/"

if [[ -n $version ]]; then
    # Pin the new version (exactly, no range) and rewrite the lock file.
    echo "npm install --save-exact mermaid@$version"
    (cd "$work" && npm install --save-exact "${npm_flags[@]}" "mermaid@$version")
elif [[ ! -f $assets/package-lock.json ]]; then
    echo "npm install (no lock file yet: writing one)"
    (cd "$work" && npm install "${npm_flags[@]}")
else
    echo "npm ci (the version in $assets/package-lock.json)"
    (cd "$work" && npm ci "${npm_flags[@]}")
fi

package=$work/node_modules/mermaid
script=$package/dist/mermaid.min.js
[[ -f $script ]] || die "the package has no dist/mermaid.min.js"
[[ -f $package/LICENSE ]] || die "the package has no LICENSE"
installed=$(node -p 'require(process.argv[1]).version' "$package/package.json")
pinned=$(node -p 'require(process.argv[1]).dependencies.mermaid' "$work/package.json")
[[ $pinned =~ $exact ]] || die "package.json must pin an exact mermaid version, not '$pinned'"
[[ $installed == "$pinned" ]] || die "installed mermaid $installed, but package.json pins $pinned"

# Self-contained: no ES module syntax (a static `import`/`export` line, or `import(` of a chunk)
# and no reference to a CDN; and it must run alone and define the global `mermaid`.
matches=$(grep -m 3 -nE '^[[:space:]]*(import|export)[[:space:]{*"]' "$script" | cut -c 1-120 || true)
[[ -z $matches ]] ||
    die "dist/mermaid.min.js has top-level import/export statements, not a single script: $matches"
matches=$(grep -m 3 -oE '.{0,40}\bimport[[:space:]]*\(.{0,40}' "$script" || true)
[[ -z $matches ]] || die "dist/mermaid.min.js imports other files at run time: $matches"
matches=$(grep -m 3 -oE 'https://(cdn\.jsdelivr\.net|unpkg\.com|cdnjs\.cloudflare\.com|esm\.sh)[^"'\''` ]*' "$script" || true)
[[ -z $matches ]] || die "dist/mermaid.min.js refers to a CDN: $matches"
node -e '
const fs = require("fs");
const vm = require("vm");
const context = {};
context.globalThis = context;
vm.createContext(context);
vm.runInContext(fs.readFileSync(process.argv[1], "utf8"), context);
const mermaid = context.mermaid;
for (const name of ["initialize", "run", "render"]) {
    if (typeof mermaid?.[name] !== "function") {
        console.error("vendor-mermaid: the global mermaid has no " + name + "()");
        process.exit(1);
    }
}
' "$script" || die "dist/mermaid.min.js does not define the global mermaid when run alone"
grep -qF "version:\"$installed\"" "$script" || die "dist/mermaid.min.js does not say it is $installed"

mkdir -p "$vendor"
cp "$script" "$vendor/mermaid.min.js"
cp "$package/LICENSE" "$vendor/mermaid.LICENSE"
# After an install (not after npm ci, which changes neither), the pin and the lock file.
if [[ -n $version || ! -f $assets/package-lock.json ]]; then
    cp "$work/package.json" "$work/package-lock.json" "$assets/"
fi
size=$(wc -c <"$vendor/mermaid.min.js")
echo "vendored mermaid $installed: $vendor/mermaid.min.js ($size bytes), $vendor/mermaid.LICENSE"
