#!/usr/bin/env bash
# The POSIX conformance suite pjdfstest against a writable casvfs mount and a
# writable buildbox-fuse mount, one after the other, and their pass rates side by side.
#
#   bash scripts/pjdfstest.sh [--timeout SECS] [--work DIR] [--only casvfs|buildbox-fuse]
#                             [--tests DIR]... [--parallel] [--report-only] [PJDFSTEST_SRC]
#
# PJDFSTEST_SRC (default $PJDFSTEST, else /tmp/pjdfstest-src) is a pjdfstest source
# tree; it is built there (autoreconf, configure, make pjdfstest) unless it already
# is, installing autoconf and automake with apt-get if they are missing. If it does
# not exist and $PJDFSTEST_GIT names a pjdfstest git repository (bare or not), its
# HEAD is exported there first.
#
#   --timeout SECS  per test file (default 300): a file still running then is killed
#                   (with its process group) and reported as hung
#   --work DIR      scratch: stores, trees, mount points, logs (default: a new
#                   /tmp/casvfs-pjdfstest.XXXXXX, kept for the logs)
#   --only NAME     one file system only (repeatable; default both)
#   --tests DIR     a subset: a directory or .t file under tests/ (repeatable; e.g. chmod)
#   --parallel      run the two file systems at the same time instead of in turn
#   --report-only   run nothing: report again on the logs already in --work DIR
#
# Run as root: the tests switch to other uids, so both mounts let other users in
# (casvfs mount --allow-other; buildbox-fuse has no such option, so
# peers/pjdfstest.py preloads a shim adding allow_other to its mount(2) call).
# Each prove log (verbose, one TAP line per assertion) is kept in the work dir.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
PYTHON="$REPO/.venv/bin/python"
CASVFS="$REPO/.venv/bin/casvfs"

# ---- the part that runs inside a mount ---------------------------------------
# pjdfstest.sh --prove-here LOG TIMEOUT SRC TEST...: prove TEST... (paths under
# SRC/tests) from the current directory, every file under `timeout`.
if [[ "${1:-}" == --prove-here ]]; then
    log="$2" limit="$3" src="$4"
    shift 4
    targets=()
    for test in "$@"; do
        test="${test#./}"
        if [[ "$test" == . || -z "$test" ]]; then targets+=("$src/tests"); else targets+=("$src/tests/$test"); fi
    done
    # timeout signals the whole process group of the test file, then KILLs it 10 s on
    set +e
    prove -r -v --timer --exec "timeout -k 10 $limit sh" "${targets[@]}" >"$log" 2>&1
    status=$?
    set -e
    echo "prove exited $status" >>"$log"
    exit 0
fi

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$SELF"; }

LIMIT=300
WORK=""
ONLY=()
TESTS=()
PARALLEL=0
REPORT_ONLY=0
SRC="${PJDFSTEST:-/tmp/pjdfstest-src}"
while (($#)); do
    case "$1" in
    --timeout) LIMIT="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --only) ONLY+=("$2"); shift 2 ;;
    --tests) TESTS+=("$2"); shift 2 ;;
    --parallel) PARALLEL=1; shift ;;
    --report-only) REPORT_ONLY=1; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
    *) SRC="$1"; shift ;;
    esac
done
((${#ONLY[@]})) || ONLY=(casvfs buildbox-fuse)
((${#TESTS[@]})) || TESTS=(.)
if ((REPORT_ONLY)) && [[ -z "$WORK" ]]; then
    echo "--report-only needs --work DIR" >&2
    exit 2
fi

if [[ $(id -u) != 0 ]]; then
    echo "pjdfstest needs root (it switches to other uids itself)" >&2
    exit 1
fi
for tool in prove fusermount3 cc; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done

# ---- pjdfstest itself ----------------------------------------------------------
build_pjdfstest() {
    if [[ ! -d "$SRC" ]]; then
        if [[ -n "${PJDFSTEST_GIT:-}" ]]; then
            mkdir -p "$SRC"
            git --git-dir="$(git -C "$PJDFSTEST_GIT" rev-parse --absolute-git-dir)" archive HEAD | tar -x -C "$SRC"
        else
            echo "no pjdfstest source at $SRC (give its directory, or set PJDFSTEST_GIT to a clone)" >&2
            exit 1
        fi
    fi
    SRC="$(cd "$SRC" && pwd)"
    [[ -x "$SRC/pjdfstest" ]] && return
    if ! command -v autoreconf >/dev/null || ! command -v automake >/dev/null; then
        apt-get install -y autoconf automake >/dev/null ||
            { apt-get update >/dev/null && apt-get install -y autoconf automake >/dev/null; }
    fi
    echo "building pjdfstest in $SRC"
    (cd "$SRC" && autoreconf -ifs && ./configure && make pjdfstest) >"$SRC/build.log" 2>&1 ||
        { tail -20 "$SRC/build.log" >&2; exit 1; }
}
build_pjdfstest

if [[ -z "$WORK" ]]; then
    WORK="$(mktemp -d /tmp/casvfs-pjdfstest.XXXXXX)"
else
    mkdir -p "$WORK"
    WORK="$(cd "$WORK" && pwd)"
fi
# the tests run as other users too: they must reach the mount points and pjdfstest
chmod 755 "$WORK"

# a tiny tree for both mounts to start from
TREE="$WORK/tree"
mkdir -p "$TREE/dir"
echo "pjdfstest" >"$TREE/file"

prove_here() { bash "$SELF" --prove-here "$1" "$LIMIT" "$SRC" "${TESTS[@]}"; }

# ---- casvfs ----------------------------------------------------------------------
run_casvfs() {
    local out="$WORK/casvfs" store mnt digest pid allow=()
    mkdir -p "$out"
    store="$out/store" mnt="$out/mnt"
    mkdir -p "$mnt"
    digest="$("$CASVFS" --store "$store" import "$TREE")"
    if "$CASVFS" mount --help | grep -q -- --allow-other; then
        allow=(--allow-other)
    else
        echo "casvfs mount has no --allow-other: the assertions run as other uids fail for that" >&2
    fi
    pid="$("$CASVFS" --store "$store" mount --writable --background "${allow[@]}" \
        --log "$out/mount.log" "$digest" "$mnt")"
    echo "casvfs: server pid $pid, $digest at $mnt ($(findmnt -no OPTIONS "$mnt" || true))" >&2
    (cd "$mnt" && prove_here "$out/prove.log")
    "$CASVFS" --store "$store" umount "$mnt" >"$out/umount.out" 2>&1 ||
        fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        echo "casvfs server $pid still alive after unmounting: killing it" >&2
        kill "$pid"; sleep 2; kill -9 "$pid" 2>/dev/null || true
    fi
}

# ---- buildbox-fuse -------------------------------------------------------------
run_buildbox_fuse() {
    local out="$WORK/buildbox-fuse"
    mkdir -p "$out/mnt"
    (cd "$REPO" && "$PYTHON" -m peers.pjdfstest --work "$out/server" --tree "$TREE" \
        --mountpoint "$out/mnt" --allow-other -- \
        bash "$SELF" --prove-here "$out/prove.log" "$LIMIT" "$SRC" "${TESTS[@]}")
}

run() {
    case "$1" in
    casvfs) run_casvfs ;;
    buildbox-fuse) run_buildbox_fuse ;;
    *) echo "unknown file system $1" >&2; return 1 ;;
    esac
}

# ---- reading a prove log ---------------------------------------------------------
# key=value lines: planned, ran, ok, notok, todo, skip, files, failed_files, hung.
# A file failed if prove's summary gives it a non-zero wait status, failed assertions
# or a parse error (a file listed only for passing TODOs did not).
counts() {
    awk '
        /^\[[0-9:]+\] .*\.t \.\./ { files++ }
        /^1\.\.[0-9]+/ { sub(/^1\.\./, ""); planned += $0 + 0 }
        /^ok [0-9]+/ { ok++; if ($0 ~ /# *[Ss][Kk][Ii][Pp]/) skip++ }
        /^not ok [0-9]+/ { if ($0 ~ /# *TODO/) todo++; else notok++ }
        /\(Wstat: / {
            current = $1
            if ($0 !~ /\(Wstat: 0 / || $0 ~ /Failed: [1-9]/) bad[current] = 1
            if ($0 ~ /exited (124|137)\)|\(Wstat: (9|15) /) hung++
        }
        /^  Parse errors:/ && current != "" { bad[current] = 1 }
        END {
            for (f in bad) failed++
            printf "planned=%d\nran=%d\nok=%d\nnotok=%d\ntodo=%d\nskip=%d\nfiles=%d\nfailed_files=%d\nhung=%d\n",
                planned, ok + notok + todo, ok, notok, todo, skip, files, failed, hung
        }' "$1"
}

rate() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f%%", 100 * a / b; else print "n/a" }'; }

# prove's summary report, each file's list of test numbers cut to its first line.
summary() {
    sed -n '/^Test Summary Report/,/^Result:/p' "$1" | awk '
        /^  [A-Za-z ]+: / { print; cut = 0; next }
        /^      +[0-9]/ { if (!cut) print "                (more)"; cut = 1; next }
        { print; cut = 0 }'
}

# The failing files by syscall directory, with each one's first failing assertion
# (cut to 200 characters: some name paths of 1000).
failures() {
    awk -v root="$SRC/tests/" '
        function name(path) { sub(root, "", path); sub(/^\.\//, "", path); return path }
        function note(f, text) { if (!(f in first)) { first[f] = text; order[++n] = f } }
        /^\[[0-9:]+\] .*\.t \.\./ { file = name($2) }
        /^not ok [0-9]+/ && $0 !~ /# *TODO/ { note(file, $0) }
        /\(Wstat: / {
            current = name($1)
            if ($0 ~ /exited (124|137)\)|\(Wstat: (9|15) /) { timed[current] = 1; note(current, "(killed before any failed)") }
            else if ($0 !~ /\(Wstat: 0 /) note(current, "(exit status: " $0 ")")
        }
        /^  Parse errors:/ && current != "" { sub(/^ +/, ""); note(current, "(" $0 ")") }
        END {
            for (i = 1; i <= n; i++) {
                f = order[i]; d = f; sub(/\/[^\/]*$/, "", d)
                text = first[f]; if (length(text) > 200) text = substr(text, 1, 200) "..."
                print d "\t" f ((f in timed) ? " [HUNG: killed by the timeout]" : "") "\t" text
            }
        }' "$1" | sort -V | awk -F'\t' '
        $1 != last { print "  " $1 ":"; last = $1 }
        { printf "    %s  e.g. %s\n", $2, $3 }'
}

report() {
    local name="$1" log="$WORK/$1/prove.log"
    echo "=================== $name ==================="
    if [[ ! -f "$log" ]]; then
        echo "  (no prove log: the run did not start; see $WORK/$name)"
        return
    fi
    if grep -q '^Test Summary Report' "$log"; then
        summary "$log"
    else
        grep -E '^(All tests successful|Files=|Result:)' "$log"
    fi
    echo "failing test files by directory (first failing assertion of each):"
    failures "$log"
    eval "$(counts "$log")"
    echo "$name: $ok of $ran assertions passed ($(rate "$ok" "$ran")); $notok failed," \
        "$todo failed as TODO (known, counted as not passed); $((planned - ran > 0 ? planned - ran : 0)) planned" \
        "but not run; $failed_files of $files files failed, $hung hung"
    echo "log: $log"
}

# ---- run ------------------------------------------------------------------------
((REPORT_ONLY)) || echo "pjdfstest $(git --git-dir="$SRC/.git" rev-parse --short HEAD 2>/dev/null || echo "from $SRC")," \
    "casvfs at $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- casvfs || echo ' + uncommitted changes')," \
    "$(date -u +%FT%TZ), work dir $WORK, per-file timeout ${LIMIT}s"
if ((REPORT_ONLY)); then
    :
elif ((PARALLEL)); then
    pids=()
    for name in "${ONLY[@]}"; do
        run "$name" >"$WORK/$name.out" 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || true; done
    for name in "${ONLY[@]}"; do cat "$WORK/$name.out"; done
else
    for name in "${ONLY[@]}"; do
        echo "---- $name: running (started $(date -u +%T))"
        SECONDS=0
        run "$name" || echo "$name: the run failed (exit $?)" >&2
        echo "---- $name: done in ${SECONDS}s"
    done
fi

for name in "${ONLY[@]}"; do report "$name"; done

echo
echo "=================== side by side ==================="
printf '%-30s' ""
for name in "${ONLY[@]}"; do printf '%18s' "$name"; done
echo
for key in files failed_files hung planned ran ok notok todo rate; do
    printf '%-30s' "$key"
    for name in "${ONLY[@]}"; do
        log="$WORK/$name/prove.log"
        if [[ -f "$log" ]]; then
            eval "$(counts "$log")"
            if [[ $key == rate ]]; then value="$(rate "$ok" "$ran")"; else value="${!key}"; fi
        else
            value="-"
        fi
        printf '%18s' "$value"
    done
    echo
done
