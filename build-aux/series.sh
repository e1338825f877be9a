#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The change to QEMU is a git branch: "vtpm-pci", one commit per patch,
# on top of a commit "base" holding Debian's pristine QEMU source.  Its
# repository is $SERIES_GIT; its working tree is $QEMU_SRC, the tree
# that every build of the project compiles.  (The repository lives
# outside the tree: a .git inside QEMU's source changes what its
# configure does.)  Two copies of the branch are kept in the checkout:
#
#   patches/*.patch   the branch as "git format-patch" writes it, the
#                     form the change is reviewed and sent in;
#   hw/, include/, ...  the files the series adds, at their in-tree
#                     paths, as the branch's last commit has them.
#
# Subcommands:
#
#   init      make the repository for the tree fetch-qemu.sh just laid
#             out (pristine), or add a new QEMU release as the new base
#   sync      bring the branch and the working tree up to date: apply
#             patches/ anew when they changed (git am), then copy the
#             checkout's versions of the added files into the tree;
#             "make overlay", and so every build, runs this
#   absorb [COMMIT] [-- FILE...]
#             fold every edit (or the edits to FILEs) (to an added file, in the checkout; to one
#             of QEMU's files, in $QEMU_SRC) into the commit it belongs
#             to, with git absorb, prove that the commits still compile,
#             and export; an edit git absorb cannot place (new lines no
#             commit's lines surround, a new file) goes into COMMIT: a
#             patch number (43), or a commit id
#   export    write patches/ and the checkout's added files from the
#             branch, after it was edited with git (rebase -i, commit)
#   format DIR
#             the series as it is mailed, numbered, with the cover letter
#             (patches/cover-letter.txt), in DIR
#   verify [COMMIT]
#             compile the C files of the series at each commit from
#             COMMIT (default: the first) on; absorb does this for what
#             it rewrote
#   check     prove that patches/ applies to the pristine tree with git
#             am and ends with the checkout's files, and nothing else
#   rewrite COMMAND
#             run COMMAND in every commit's tree and keep what it leaves
#             (git filter-branch): a rename throughout the series
#   id N      the commit id of patch N
#   git ARGS  run git on the series repository (cd-free)
#
# The README ("Editing the series") shows the everyday uses.

set -euo pipefail
. "$(dirname "$0")/env.sh"

export GIT_DIR=$SERIES_GIT GIT_WORK_TREE=$QEMU_SRC
PATCHES=$VTPM_TOP/patches
BRANCH=vtpm-pci

# Folders of the checkout that mirror QEMU's tree, and those inside them
# that are the project's own (the benchmark's and the fuzzers' records)
TREE_DIRS=(backends docs hw include qapi tests)
OWN_DIRS='^docs/(bench|fuzz)/'

# Laid into the tree for the build, never part of the series: the
# device list, and the same without libtpms' backend (the build without
# libtpms, check-nolibtpms.sh)
DEVICES=configs/devices/x86_64-softmmu/vtpm-pci.mak
DEVICES_NOLIBTPMS=configs/devices/x86_64-softmmu/vtpm-pci-nolibtpms.mak
BUILD_FILES=("$DEVICES" "$DEVICES_NOLIBTPMS")

die() {
    echo "series: $*" >&2
    exit 1
}

in_progress() {
    [ -d "$GIT_DIR/rebase-merge" ] || [ -d "$GIT_DIR/rebase-apply" ]
}

# The checkout's files that belong in QEMU's tree, one a line
checkout_files() {
    git -C "$VTPM_TOP" --git-dir="$VTPM_TOP/.git" --work-tree="$VTPM_TOP" \
        ls-files -co --exclude-standard -- "${TREE_DIRS[@]}" |
        grep -Ev "$OWN_DIRS" | sort -u
}

# The files the branch adds to QEMU's tree, one a line
added_files() {
    git diff --name-only --diff-filter=A base HEAD | sort
}

patches_stamp() {
    cat "$PATCHES"/*.patch 2>/dev/null | sha256sum | cut -d' ' -f1
}

cmd_init() {
    local version parent tree commit name email

    version=$(cat "$QEMU_SRC/.debian-version")
    if [ ! -d "$GIT_DIR" ]; then
        git init -q
        git config core.worktree "$QEMU_SRC"
        name=$(git -C "$VTPM_TOP" config user.name || echo vtpm-pci)
        email=$(git -C "$VTPM_TOP" config user.email ||
                echo vtpm-pci@localhost)
        git config user.name "$name"
        git config user.email "$email"
        # Stable blob ids in the patches, as QEMU asks of its posters
        git config core.abbrev 12
        # The whole branch is the stack git absorb may fix up
        git config absorb.maxStack 1000
        cat > "$GIT_DIR/info/exclude" <<EOF
/.debian-version
__pycache__/
*.pyc
$(printf '/%s\n' "${BUILD_FILES[@]}")
EOF
    fi
    if [ "$(git config vtpm.base-version || true)" = "$version" ]; then
        return 0
    fi
    # The pristine tree becomes "base"; a new release is committed on top
    # of the old base, so that git am -3 and git rebase can carry the
    # series across
    echo "series: committing QEMU $version as the base"
    parent=$(git rev-parse -q --verify refs/tags/base || true)
    GIT_INDEX_FILE=$GIT_DIR/index.base git add -A --force
    tree=$(GIT_INDEX_FILE=$GIT_DIR/index.base git write-tree)
    rm -f "$GIT_DIR/index.base"
    commit=$(git commit-tree "$tree" ${parent:+-p "$parent"} \
             -m "QEMU $version, Debian's source package")
    git tag -f base "$commit" > /dev/null
    git update-ref "refs/heads/$BRANCH" "$commit"
    git symbolic-ref HEAD "refs/heads/$BRANCH"
    git read-tree base
    git config vtpm.base-version "$version"
    git config --unset vtpm.patches-stamp || true
    git update-ref -d refs/vtpm/exported || true
}

# QEMU's own files that have uncommitted edits in the tree
qemu_edits() {
    { git diff --name-only HEAD; git ls-files -o --exclude-standard; } |
        sort -u | comm -23 - <(checkout_files)
}

# Apply patches/ anew: the branch becomes base plus git am of patches/
reapply() {
    local stamp=$1 edits

    edits=$(qemu_edits)
    [ -z "$edits" ] ||
        die "patches/ changed, and QEMU's files in $QEMU_SRC have edits" \
            "that are in no commit ($(echo $edits)): make absorb, or" \
            "drop them (build-aux/series.sh git checkout -- FILE)"
    if git rev-parse -q --verify refs/vtpm/exported > /dev/null &&
       [ "$(git rev-parse HEAD)" != "$(git rev-parse refs/vtpm/exported)" ]
    then
        die "patches/ changed, and the branch has commits that were never" \
            "exported: make export (or drop them with" \
            "build-aux/series.sh git reset --hard refs/vtpm/exported)"
    fi
    echo "series: applying patches/ to QEMU $(git config vtpm.base-version)"
    git checkout -q -f -B "$BRANCH" base
    git clean -q -f -- "${TREE_DIRS[@]}"
    # -3: a patch whose context moved (a new QEMU release as the base)
    # applies by a three-way merge, from the blobs the patch names
    if ! git am -q -3 "$PATCHES"/*.patch; then
        die "git am stopped (above): resolve in $QEMU_SRC, then" \
            "build-aux/series.sh git am --continue, and make export;" \
            "or build-aux/series.sh git am --abort and fix patches/"
    fi
    git update-ref refs/vtpm/exported HEAD
    git config vtpm.patches-stamp "$stamp"
}

cmd_sync() {
    local stamp f head_id have want exported synced=$GIT_DIR/vtpm-synced

    if in_progress; then
        echo "series: a rebase or git am is under way in $GIT_DIR;" \
             "building the tree as it is" >&2
    else
        stamp=$(patches_stamp)
        if [ "$stamp" != "$(git config vtpm.patches-stamp || true)" ]; then
            reapply "$stamp"
        elif [ "$(git rev-parse HEAD)" != \
               "$(git rev-parse refs/vtpm/exported)" ]; then
            echo "series: the branch has commits not in patches/ yet" \
                 "(make absorb folds fixup! commits; make export)" >&2
        fi

        # The checkout's version of each added file goes into the tree,
        # unless the tree's copy holds an edit of its own, or the branch
        # has a commit of it that is not exported yet
        while read -r f; do
            want=$(git hash-object "$VTPM_TOP/$f")
            have=$(git hash-object "$QEMU_SRC/$f" 2>/dev/null || true)
            [ "$have" = "$want" ] && continue
            head_id=$(git rev-parse -q --verify "HEAD:$f" || true)
            exported=$(git rev-parse -q --verify "refs/vtpm/exported:$f" ||
                       true)
            [ "$want" = "$exported" ] && [ "$have" = "$head_id" ] &&
                continue
            if [ -n "$have" ] && [ "$have" != "$head_id" ] &&
               ! grep -qx "$have $f" "$synced" 2>/dev/null; then
                die "$QEMU_SRC/$f was edited in the tree: the project's" \
                    "own files are edited in the checkout ($f); copy the" \
                    "edit there, or drop it (rm the file)"
            fi
            if git cat-file -e "base:$f" 2>/dev/null; then
                die "$f is one of QEMU's files: edit it in $QEMU_SRC," \
                    "not in the checkout"
            fi
            mkdir -p "$(dirname "$QEMU_SRC/$f")"
            cp "$VTPM_TOP/$f" "$QEMU_SRC/$f.vtpm-tmp"
            mv "$QEMU_SRC/$f.vtpm-tmp" "$QEMU_SRC/$f"
            echo "series: $f"
        done < <(checkout_files)
        # What was copied, so that a later copy can tell its own from an
        # edit made in the tree
        checkout_files | (cd "$VTPM_TOP" && git hash-object --stdin-paths) |
            paste -d' ' - <(checkout_files) > "$synced.tmp"
        mv "$synced.tmp" "$synced"
        # An added file the checkout no longer has is deleted
        while read -r f; do
            [ -e "$QEMU_SRC/$f" ] || continue
            [ "$(git hash-object "$QEMU_SRC/$f")" = \
              "$(git rev-parse "HEAD:$f")" ] || continue
            rm "$QEMU_SRC/$f"
            echo "series: $f deleted"
        done < <(added_files | comm -23 - <(checkout_files))
    fi

    for f in "${BUILD_FILES[@]}"; do
        grep -qxF "/$f" "$GIT_DIR/info/exclude" ||
            echo "/$f" >> "$GIT_DIR/info/exclude"
    done
    replace_if_changed "$QEMU_SRC/$DEVICES" \
        < "$VTPM_TOP/build-aux/devices-x86_64.mak"
    grep -v '^CONFIG_TPM_LIBTPMS=' \
        "$VTPM_TOP/build-aux/devices-x86_64.mak" |
        replace_if_changed "$QEMU_SRC/$DEVICES_NOLIBTPMS"
}

cmd_export() {
    local out f

    in_progress && die "finish the rebase or git am first"
    [ -z "$(git diff --cached --name-only)" ] ||
        die "staged edits are in no commit: commit or absorb them first"
    [ -z "$(qemu_edits)" ] ||
        echo "series: note: edits to QEMU's files in $QEMU_SRC are in no" \
             "commit, and not exported: $(qemu_edits | tr '\n' ' ')" >&2

    # Numbers and ids change with every rebase: the patches here carry
    # neither, so that a diff of patches/ shows what changed
    out=$(mktemp -d "$PATCHES.XXXXXX")
    git format-patch -q --zero-commit --no-signature --no-numbered \
        -o "$out" base..HEAD
    rm -f "$PATCHES"/*.patch
    mv "$out"/*.patch "$PATCHES"/
    rmdir "$out"

    # The checkout takes the branch's version of a file, unless it holds
    # an edit that is in no commit (one git absorb left, say)
    while read -r f; do
        git show "HEAD:$f" | cmp -s - "$VTPM_TOP/$f" && continue
        if [ -f "$VTPM_TOP/$f" ] &&
           ! git show "refs/vtpm/exported:$f" 2> /dev/null |
               cmp -s - "$VTPM_TOP/$f"; then
            echo "series: $f has edits in no commit: left as it is" >&2
            continue
        fi
        mkdir -p "$(dirname "$VTPM_TOP/$f")"
        git show "HEAD:$f" > "$VTPM_TOP/$f.vtpm-tmp"
        mv "$VTPM_TOP/$f.vtpm-tmp" "$VTPM_TOP/$f"
        echo "series: $f"
    done < <(added_files)
    while read -r f; do
        echo "series: $f is in the checkout but in no commit:" \
             "make absorb COMMIT=N adds it to commit N" >&2
    done < <(checkout_files | comm -13 <(added_files) -)

    git update-ref refs/vtpm/exported HEAD
    git config vtpm.patches-stamp "$(patches_stamp)"
    echo "series: $(git rev-list --count base..HEAD) patches in patches/"
}

# A commit of the branch, by patch number or commit id
resolve() {
    local n

    if [[ $1 =~ ^[0-9]{1,4}$ ]]; then
        n=$((10#$1))
        git rev-list --reverse base..HEAD | sed -n "${n}p" | grep . ||
            die "no patch $1 in the series"
    else
        git rev-parse --verify "$1^{commit}"
    fi
}

# Where, by position in the series (1 is patch 1), the fixup! commits
# after $1 go, one a line
fixup_targets() {
    local subject

    git log --format=%s "$1..HEAD" | grep -E '^(fixup|amend|squash)! ' |
        sed -E 's/^(fixup|amend|squash)! //' |
        while read -r subject; do
            git log --reverse --format=%s "base..$1" |
                grep -n -F -x -m1 -- "$subject" | cut -d: -f1 | grep . ||
                git rev-list --reverse "base..$1" |
                grep -n -m1 "^$(git rev-parse "$subject")" | cut -d: -f1
        done | sort -n -u
}

# Fold the commits after $1 (fixups) in, and prove the result: every
# commit they rewrote, from patch $2 on, still compiles.  On failure the
# branch is put back to $1, the edits staged, and this returns 1.
fold() {
    local before=$1 first=$2

    GIT_SEQUENCE_EDITOR=true git rebase -q -i --autosquash --autostash base
    cmd_verify "$(git rev-list --reverse base..HEAD | sed -n "${first}p")" \
        "$before" && return 0
    git reset -q --soft "$before"
    return 1
}

cmd_absorb() {
    local into= left before targets first last

    if [ $# -gt 0 ] && [ "$1" != -- ]; then
        into=$1
        shift
    fi
    [ "${1:-}" = -- ] && shift
    cmd_sync
    in_progress && die "finish the rebase or git am first"
    # The files named (all if none), as paths in QEMU's tree
    git add -A -- "${@:-.}"
    # Fixup commits of your own, since the last export, are folded too
    before=$(git rev-parse refs/vtpm/exported)
    if git diff --cached --quiet && [ "$(git rev-parse HEAD)" = "$before" ]
    then
        echo "series: no edits to absorb"
        return 0
    fi
    if ! git diff --cached --quiet; then
        env -u GIT_WORK_TREE git absorb --base base
    fi
    # What git absorb left: into COMMIT, if there is one
    if [ -n "$into" ] && ! git diff --cached --quiet; then
        git commit -q --fixup="$(resolve "$into")"
    fi
    left=$(git diff --cached --stat)
    targets=$(fixup_targets "$before")
    [ -n "$targets" ] || die "git absorb found no commit for any edit:" \
        "make absorb COMMIT=N puts them into patch N"
    first=$(head -n1 <<< "$targets")
    last=$(tail -n1 <<< "$targets")
    echo "series: folding edits into patch $(echo $targets)"
    if ! fold "$before" "$first"; then
        # git absorb places a hunk by its lines alone: a function that one
        # commit defines and another uses can come apart.  Every edit in
        # the last of those commits cannot.
        [ -z "$into" ] && [ "$first" != "$last" ] ||
            die "a commit no longer compiles (above); nothing changed:" \
                "the edits are staged in $QEMU_SRC"
        echo "series: not every commit compiles that way; every edit" \
             "into patch $last instead"
        git commit -q --fixup="$(resolve "$last")"
        fold "$before" "$last" ||
            die "a commit no longer compiles (above); nothing changed:" \
                "the edits are staged in $QEMU_SRC"
    fi
    cmd_export
    [ -z "$left" ] && return 0
    echo "$left" >&2
    die "git absorb found no one commit for the edits above (new lines" \
        "that no commit's lines surround, or new files): make absorb" \
        "COMMIT=N puts them into patch N; the rest is absorbed"
}

# Compile, at commit $1, in the tree and build in $2, the C files that
# differ from commit $3, or every C file the series has added or edited
# by then if $3 is empty or a header differs; GIT_DIR and GIT_WORK_TREE
# name that tree
verify_one() {
    local work=$2 old=${3:-} objs files

    : > "$work/verify.log"
    git checkout -q -f --detach "$1" &&
        git clean -q -f -d -- "${TREE_DIRS[@]}" &&
        series_devices "$work/qemu" || return 1
    series_configure_args "$work/qemu"
    QEMU_SRC=$work/qemu configure_qemu "$work/build" "$work/configure.log" \
        ${series_args[@]+"${series_args[@]}"} --enable-seccomp || return 1
    ninja -C "$work/build" build.ninja > "$work/verify.log" 2>&1 ||
        return 1
    files=$(git diff --name-only --diff-filter=AM base HEAD -- '*.c')
    if [ -n "$old" ] && [ -z "$(git diff --name-only "$old" HEAD -- '*.h')" ]
    then
        files=$(git diff --name-only "$old" HEAD -- '*.c')
    fi
    [ -n "$files" ] || return 0
    objs=$(echo "$files" | python3 -c '
import json, sys
want = {line.strip() for line in sys.stdin}
for e in json.load(open(sys.argv[1])):
    if e["file"].replace("../qemu/", "", 1) in want:
        print(e["output"])
' "$work/build/compile_commands.json" | sort -u)
    # shellcheck disable=SC2086
    ninja -C "$work/build" $objs > "$work/verify.log" 2>&1 &&
        ! grep -q 'warning:' "$work/verify.log" &&
        verify_fuzz "$work" "$(echo "$files" | grep '^tests/qtest/fuzz/')"
}

# Check the fuzz targets' C files $2 (one a line) of the tree in $1 with
# clang, as the libFuzzer build compiles them (build-aux/fuzz.sh), which
# this build does not: syntax and warnings only, against the generated
# headers of $VTPM_CACHE/build-fuzz; skipped until "make fuzz" made it
verify_fuzz() {
    local work=$1 fuzz=$VTPM_CACHE/build-fuzz f cmd

    [ -n "$2" ] && [ -f "$fuzz/compile_commands.json" ] || return 0
    for f in $2; do
        cmd=$(python3 -c '
import json, shlex, sys
db = json.load(open(sys.argv[1]))
e = next((e for e in db if e["file"].endswith(sys.argv[2])), None) or \
    next(e for e in db if e["file"].endswith("tests/qtest/fuzz/fuzz.c"))
args = shlex.split(e["command"])
out = []
skip = False
for a in args[:-1]:
    if skip:
        skip = False
    elif a in ("-MD",):
        pass
    elif a in ("-MQ", "-MF", "-o", "-c"):
        skip = True
    else:
        out.append(a.replace(sys.argv[3], sys.argv[4]).replace(
            "-I../qemu", "-I" + sys.argv[4]))
print(shlex.join(out + ["-fsyntax-only", "-Werror", sys.argv[4] + "/" +
                        sys.argv[2]]))
' "$fuzz/compile_commands.json" "$f" "$VTPM_CACHE/qemu" "$work/qemu") &&
            (cd "$fuzz" && eval "$cmd") >> "$work/verify.log" 2>&1 || {
            echo "series: $f does not compile as a fuzz target" \
                 >> "$work/verify.log"
            return 1
        }
    done
}

# Compile, at each commit from $1 to the last, the C files the series
# adds or edits by then (with $2, the series before a fold: those the
# fold changed), in a tree and build of their own: what a fixup rewrote
# must still compile, without a warning (QEMU's build does not use
# -Werror here; see check-series.sh)
cmd_verify() {
    local work=$VTPM_CACHE/series-verify c n=0 bad=0 old=
    # ccache serves a file a commit leaves as another commit had it
    local -x CCACHE_BASEDIR=$VTPM_CACHE CCACHE_NOHASHDIR=1

    if [ ! -d "$work/repo.git" ]; then
        mkdir -p "$work/qemu"
        env -u GIT_DIR -u GIT_WORK_TREE \
            git clone -q --bare --shared "$SERIES_GIT" "$work/repo.git"
        git --git-dir="$work/repo.git" config core.bare false
    fi
    git --git-dir="$work/repo.git" fetch -q "$SERIES_GIT" \
        "+HEAD:refs/heads/verify" "+refs/tags/base:refs/tags/base" \
        ${2:+"+$2:refs/heads/before"}
    for c in $(git rev-list --reverse "$1^..HEAD"); do
        n=$((n + 1))
        # With $2, the series before a fold: its commit at this position
        [ -n "${2:-}" ] &&
            old=$(git rev-list --reverse "base..$2" |
                  sed -n "$(git rev-list --count "base..$c")p")
        if ! (export GIT_DIR=$work/repo.git GIT_WORK_TREE=$work/qemu
              verify_one "$c" "$work" "$old"); then
            grep -E 'error|warning:' "$work/verify.log" | head -n 20 >&2
            echo "series: $(git log -1 --format='%h %s' "$c")" \
                 "does not compile cleanly" >&2
            bad=1
            break
        fi
    done
    [ $bad -eq 0 ] || return 1
    echo "series: $n commits compile, from $(git log -1 --format=%h "$1") on"
}

# Run COMMAND in the tree of every commit of the series and keep what it
# leaves (git filter-branch --tree-filter): a change that every commit
# must make the same way, such as a rename, which no fixup of the last
# version can carry back.  Proven and exported as absorb's folds are.
cmd_rewrite() {
    local before first

    in_progress && die "finish the rebase or git am first"
    [ -z "$(git status --porcelain --untracked-files=no)" ] ||
        die "the tree has edits in no commit: absorb or drop them first"
    before=$(git rev-parse HEAD)
    rm -rf "$VTPM_CACHE/series-rewrite"
    (cd "$QEMU_SRC" &&
     FILTER_BRANCH_SQUELCH_WARNING=1 env -u GIT_WORK_TREE \
         git filter-branch -f -d "$VTPM_CACHE/series-rewrite" \
         --tree-filter "$*" -- "base..$BRANCH") > /dev/null
    git update-ref -d "refs/original/refs/heads/$BRANCH"
    git read-tree -u -m "$before" HEAD
    # The first position whose tree the command changed
    first=$(paste <(git log --reverse --format=%T base..HEAD) \
                  <(git log --reverse --format=%T "base..$before") |
            awk '$1 != $2 { print NR; exit }')
    if [ -z "$first" ]; then
        echo "series: the command changed no commit"
        return 0
    fi
    if ! cmd_verify "$(resolve "$first")" "$before"; then
        git read-tree -u -m HEAD "$before"
        git reset -q "$before"
        die "a commit no longer compiles (above); the series is as it was"
    fi
    cmd_export
}

# git am of patches/ onto the base, in a scratch worktree: the series
# applies, and its last commit holds exactly the checkout's added files
cmd_check() {
    local wt=$VTPM_CACHE/series-am bad=0 f

    git worktree remove --force "$wt" 2> /dev/null || rm -rf "$wt"
    git worktree prune
    git worktree add -q --detach "$wt" base
    if ! env -u GIT_DIR -u GIT_WORK_TREE git -C "$wt" am -q \
            "$PATCHES"/*.patch; then
        git worktree remove --force "$wt"
        die "patches/ does not apply to QEMU $(git config vtpm.base-version)"
    fi
    while read -r f; do
        if [ ! -f "$wt/$f" ]; then
            echo "series: $f is in the checkout but in no patch" >&2
            bad=1
        elif ! cmp -s "$wt/$f" "$VTPM_TOP/$f"; then
            echo "series: $f differs from what patches/ makes of it" >&2
            bad=1
        fi
    done < <(checkout_files)
    while read -r f; do
        echo "series: patches/ adds $f, which the checkout lacks" >&2
        bad=1
    done < <(env -u GIT_DIR -u GIT_WORK_TREE git -C "$wt" diff \
                 --name-only --diff-filter=A base HEAD | sort |
             comm -23 - <(checkout_files))
    git worktree remove --force "$wt"
    [ $bad -eq 0 ] || return 1
    echo "series: $(ls "$PATCHES"/*.patch | wc -l) patches apply with" \
         "git am to QEMU $(git config vtpm.base-version) and end with" \
         "the checkout's files"
}

# The series as it is sent: numbered, with a cover letter whose subject
# and text are patches/cover-letter.txt's (its first line, the rest)
cmd_format() {
    local out=$1

    rm -rf "$out"
    git config "branch.$BRANCH.description" \
        "$(cat "$PATCHES/cover-letter.txt")"
    git format-patch -q --cover-letter --cover-from-description=subject \
        --thread=shallow -o "$out" base.."$BRANCH"
    echo "series: $(ls "$out" | wc -l) mails in $out"
}

# The whole command is read before it runs: an edit of this file while
# it runs (a long verify) cannot change what it does
main() {
case ${1:-} in
init) cmd_init ;;
sync) cmd_sync ;;
absorb) shift; cmd_absorb "$@" ;;
export) cmd_export ;;
format) shift; cmd_format "$@" ;;
check) cmd_check ;;
verify) shift; cmd_verify "$(resolve "${1:-1}")" ;;
id) resolve "$2" ;;
rewrite) shift; cmd_rewrite "$@" ;;
git) shift; exec git "$@" ;;
*) die "usage: $0 init|sync|absorb [COMMIT]|export|check|verify" \
       "[COMMIT]|format DIR|rewrite COMMAND|id N|git ARGS" ;;
esac
}
main "$@"; exit
