# shellcheck shell=bash
# Sourced by the scripts in scripts/ that install the Debian packages they need.

# Installs Debian packages quietly, with sudo when not root, refreshing the package lists once if
# they are stale. Fails if they cannot be installed (or this is not root and there is no sudo).
apt_install() {
    # DEBIAN_FRONTEND through env: sudo drops the caller's environment.
    local apt_get=(env DEBIAN_FRONTEND=noninteractive apt-get)
    if ((EUID != 0)); then
        command -v sudo >/dev/null || return 1
        apt_get=(sudo "${apt_get[@]}")
    fi
    "${apt_get[@]}" install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 || {
        "${apt_get[@]}" update -qq >/dev/null 2>&1 &&
            "${apt_get[@]}" install -y -qq --no-install-recommends "$@" >/dev/null
    }
}
