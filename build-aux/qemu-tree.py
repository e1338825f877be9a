#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Lay vtpm-pci over a QEMU source tree, and turn it back into patches.

The project holds the change to QEMU in two forms:

  * new files, at the paths they have in QEMU's tree (hw/, include/, ...),
    in their final version;
  * edits, as patches in patches/, one per commit of the series, applied
    in the order patches/series gives: the edits to files QEMU already
    has, and the edits later commits make to a new file.

patches/series names each patch and, on the indented lines under it, the
new files that the same commit introduces.  Every new file must be
claimed by exactly one commit, so the exported series is the whole
change.

A new file can grow over the series: the commit that lists it adds it,
and the patches after it may each hold a "diff --git" block for it, like
a block for one of QEMU's files.  The checkout keeps only the final
version; the version a commit adds, or leaves after it, is the final one
with the diffs of the patches after it reverse-applied, newest first.

Subcommands:

  overlay   make a working copy of QEMU's tree match the project: new files
            become symlinks into the checkout (an edit is seen by the next
            build, which is of the final version), edited files are
            rewritten only when their content changes, and what earlier
            overlays added but the project no longer has is put back as
            it was.
  export    write the change as a git format-patch series against the
            pristine tree, and check that it applies with "git am".
  refresh   regenerate the diffs inside patches/*.patch from the files in
            the working copy, for a developer who edited them there.
  split     move part of a file's change into a later commit: given the
            file as it should be before that commit (made outside the
            checkout), rewrite the commit's diff of it, and the diff
            that now leads to that version.
  rebase    carry patches/*.patch to another QEMU release: apply each with
            the fuzz patch(1) allows and write its diffs anew against the
            pristine tree, for a move to a new base (the hunks that still
            fail are named, and the patches left as they were).

A QEMU file is best edited by one patch.  When two commits of the series
must both edit it, each patch holds its own diff, made against the file
as the patches before it leave it; refresh then folds an edit made in
the working copy into the first of them, and keeps the later patches'
diffs as they are.  The same goes for a new file: an edit to its final
version lands in the commit that adds it, as long as the later patches'
diffs still reverse-apply; where one does not, export and refresh name
the file and the patch whose diff needs fixing.

To split a commit, say to move a feature out of the commit that adds
FILE into a later PATCH (first listed in patches/series, with its commit
message): copy FILE out of the checkout, take the feature out of the
copy, and run "qemu-tree.py split PATCH FILE COPY".  Work from the last
commit back: the copy is FILE as it is before PATCH, which for the next
split is the version the earlier commit leaves.  Where patches between
the one that adds FILE and PATCH edit it too, the last of them is the
one rewritten (to lead to the copy); with --throughout, the part comes
out of every earlier version of FILE instead, so that it first appears
in PATCH, and split names the patch whose version it does not fit.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATCH_DIR = os.path.join(TOP, 'patches')
SERIES = os.path.join(PATCH_DIR, 'series')

# Folders of the checkout that mirror QEMU's tree.
TREE_DIRS = ('backends', 'docs', 'hw', 'include', 'qapi', 'tests')

# Folders inside them that are the project's own, never part of QEMU's
# tree: the benchmark's results (bench/), the fuzz campaigns' (fuzz/).
PROJECT_DIRS = ('docs/bench/', 'docs/fuzz/')

# Build-only files, laid into the working copy but not part of the series.
BUILD_FILES = {
    'configs/devices/x86_64-softmmu/vtpm-pci.mak':
        'build-aux/devices-x86_64.mak',
}

STATE = '.vtpm-overlay.json'


class TreeError(Exception):
    pass


def read_series():
    """Return [(patch file name, [new files])] from patches/series."""
    entries = []
    with open(SERIES) as f:
        for lineno, line in enumerate(f, 1):
            text = line.split('#', 1)[0].rstrip()
            if not text:
                continue
            if text[0].isspace():
                if not entries:
                    raise TreeError('%s:%d: file before any patch'
                                    % (SERIES, lineno))
                entries[-1][1].append(text.strip())
            else:
                entries.append((text, []))
    return entries


def patch_paths(patch):
    """The files a patch edits, from its "diff --git a/X b/X" lines."""
    paths = []
    with open(os.path.join(PATCH_DIR, patch)) as f:
        for line in f:
            if line.startswith('diff --git a/'):
                path = line.split()[2][2:]
                if path not in paths:
                    paths.append(path)
    return paths


def patch_message(patch):
    """Subject and body of a patch, as a commit message."""
    with open(os.path.join(PATCH_DIR, patch)) as f:
        lines = f.read().split('\n')
    subject, body = None, []
    i = 0
    while i < len(lines) and lines[i]:
        if lines[i].startswith('Subject: '):
            subject = lines[i][len('Subject: '):]
        i += 1
    for line in lines[i + 1:]:
        if line == '---' or line.startswith('diff --git '):
            break
        body.append(line)
    if not subject:
        raise TreeError('%s: no "Subject:" header' % patch)
    return subject + '\n\n' + '\n'.join(body).strip() + '\n'


def tracked_tree_files():
    """Files of the checkout that belong in QEMU's tree."""
    try:
        out = subprocess.run(['git', '-C', TOP, 'ls-files', '-co',
                              '--exclude-standard', '--'] + list(TREE_DIRS),
                             check=True, capture_output=True, text=True)
        return sorted(p for p in out.stdout.split('\n')
                      if p and os.path.isfile(os.path.join(TOP, p)) and
                      not p.startswith(PROJECT_DIRS))
    except (OSError, subprocess.CalledProcessError):
        found = []
        for d in TREE_DIRS:
            for root, _, files in os.walk(os.path.join(TOP, d)):
                found += [os.path.relpath(os.path.join(root, f), TOP)
                          for f in files]
        return sorted(p for p in found if not p.startswith(PROJECT_DIRS))


def introduced(series):
    """{new file: the patch of the commit that adds it}"""
    return {path: patch for patch, files in series for path in files}


def check_series(series, pristine):
    """Every new file claimed once, none of them already in QEMU, and
    edited only after the commit that adds it.  Returns {file: [the
    patches that edit it, in order]}, for QEMU's files and new ones."""
    claimed = {}
    for patch, files in series:
        if not os.path.isfile(os.path.join(PATCH_DIR, patch)):
            raise TreeError('patches/series names missing %s' % patch)
        for path in files:
            if path in claimed:
                raise TreeError('%s is listed under both %s and %s'
                                % (path, claimed[path], patch))
            claimed[path] = patch
            if not os.path.isfile(os.path.join(TOP, path)):
                raise TreeError('patches/series lists %s, which does not '
                                'exist' % path)
            if os.path.lexists(os.path.join(pristine, path)):
                raise TreeError('%s exists in QEMU already: change it '
                                'with a patch instead' % path)
    unclaimed = [p for p in tracked_tree_files() if p not in claimed]
    if unclaimed:
        raise TreeError('not listed in patches/series: ' +
                        ', '.join(unclaimed))
    edited = {}
    added = set()
    for patch, files in series:
        for path in patch_paths(patch):
            if path in claimed and path not in added:
                raise TreeError('%s edits %s, which %s adds: only the '
                                'patches after that one may hold a diff '
                                'of it' % (patch, path, claimed[path]))
            edited.setdefault(path, []).append(patch)
        added.update(files)
    return edited


def apply_patches(series, pristine, dest):
    """Copy the QEMU files the patches edit from pristine into dest, and
    patch them to their final version; the new files' diffs are left out
    (the checkout has their final version)."""
    new = introduced(series)
    for patch, _ in series:
        for path in patch_paths(patch):
            if path in new:
                continue
            os.makedirs(os.path.dirname(os.path.join(dest, path)),
                        exist_ok=True)
            shutil.copy2(os.path.join(pristine, path),
                         os.path.join(dest, path))
    for patch, _ in series:
        paths = patch_paths(patch)
        if all(path in new for path in paths):
            continue
        res = subprocess.run(['git', 'apply', '--whitespace=error-all'] +
                             ['--exclude=' + p for p in paths if p in new] +
                             [os.path.join(PATCH_DIR, patch)],
                             cwd=dest, capture_output=True, text=True)
        if res.returncode:
            raise TreeError('%s does not apply to QEMU %s:\n%s'
                            % (patch, qemu_version(pristine), res.stderr))


def qemu_version(tree):
    with open(os.path.join(tree, 'VERSION')) as f:
        return f.read().strip()


def digest(path):
    if not os.path.isfile(path):
        return None
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def replace_file(src, dst):
    """Copy src over dst by rename, so a hard link to dst is never written."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    tmp = dst + '.vtpm-tmp'
    shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def ensure_symlink(target, link):
    if os.path.islink(link) and os.readlink(link) == target:
        return False
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(target, link)
    return True


def cmd_overlay(args):
    series = read_series()
    check_series(series, args.pristine)
    state_path = os.path.join(args.work, STATE)
    try:
        with open(state_path) as f:
            state = json.load(f)
    except FileNotFoundError:
        state = {'edited': {}, 'links': []}

    changed = []
    with tempfile.TemporaryDirectory() as tmp:
        apply_patches(series, args.pristine, tmp)
        wanted = {}
        for root, _, files in os.walk(tmp):
            for name in files:
                path = os.path.relpath(os.path.join(root, name), tmp)
                wanted[path] = os.path.join(tmp, path)

        for path in sorted(set(wanted) | set(state['edited'])):
            live = os.path.join(args.work, path)
            src = wanted.get(path, os.path.join(args.pristine, path))
            have = digest(live)
            if have == digest(src):
                continue
            if have not in (state['edited'].get(path),
                            digest(os.path.join(args.pristine, path))):
                raise TreeError(
                    '%s was edited in the working copy (%s); move the edit '
                    'into its patch ("make refresh-patches") or delete the '
                    'file to discard it' % (path, live))
            replace_file(src, live)
            changed.append(path)
        state['edited'] = {p: digest(os.path.join(args.work, p))
                           for p in wanted}

    links = {p: os.path.join(TOP, p) for _, files in series for p in files}
    links.update({p: os.path.join(TOP, src)
                  for p, src in BUILD_FILES.items()})
    for path in state['links']:
        if path not in links and os.path.islink(os.path.join(args.work,
                                                             path)):
            os.unlink(os.path.join(args.work, path))
            changed.append(path)
    for path, target in sorted(links.items()):
        if ensure_symlink(target, os.path.join(args.work, path)):
            changed.append(path)
    state['links'] = sorted(links)

    with open(state_path + '.tmp', 'w') as f:
        json.dump(state, f, indent=1, sort_keys=True)
    os.replace(state_path + '.tmp', state_path)
    for path in changed:
        print('overlay: %s' % path)


def git(repo, *argv, **kw):
    return subprocess.run(['git', '-C', repo] + list(argv), check=True,
                          capture_output=True, text=True, **kw).stdout


def cmd_export(args):
    series = read_series()
    edited = check_series(series, args.pristine)
    version = qemu_version(args.pristine)
    out = os.path.abspath(args.output)
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):
        if name.endswith('.patch'):
            os.unlink(os.path.join(out, name))

    ident = ['-c', 'user.name=vtpm-pci export',
             '-c', 'user.email=vtpm-pci@localhost']
    added = added_versions(series, edited)
    with tempfile.TemporaryDirectory() as tmp:
        # A repository holding just the pristine files the series edits is
        # enough to produce the patches: blob ids do not depend on the rest.
        repo = os.path.join(tmp, 'repo')
        os.makedirs(repo)
        git(repo, 'init', '-q')
        for patch, _ in series:
            for path in patch_paths(patch):
                if path in added:
                    continue
                dst = os.path.join(repo, path)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy2(os.path.join(args.pristine, path), dst)
        git(repo, 'add', '-A')
        git(repo, *ident, 'commit', '-q', '-m', 'QEMU ' + version)
        base = git(repo, 'rev-parse', 'HEAD').strip()

        for patch, files in series:
            if patch_paths(patch):
                git(repo, 'apply', '--index',
                    os.path.join(PATCH_DIR, patch))
            for path in files:
                dst = os.path.join(repo, path)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                with open(dst, 'wb') as f:
                    f.write(added[path])
                git(repo, 'add', path)
            git(repo, 'commit', '-q', '-s', '-F', '-',
                input=patch_message(patch))
        for path in added:
            if digest(os.path.join(repo, path)) != digest(os.path.join(TOP,
                                                                     path)):
                raise TreeError('%s: the series does not end with the '
                                'checkout\'s version' % path)
        git(repo, 'format-patch', '-q', '--no-signature', '-o', out,
            base + '..HEAD')

        # The proof: the series applies with git am to a pristine copy.
        check = os.path.join(tmp, 'check')
        subprocess.run(['git', 'clone', '-q', '--no-checkout', repo, check],
                       check=True, capture_output=True)
        git(check, 'checkout', '-q', '--detach', base)
        patches = sorted(os.path.join(out, n) for n in os.listdir(out)
                         if n.endswith('.patch'))
        res = subprocess.run(['git', '-C', check] + ident + ['am', '-q'] +
                             patches, capture_output=True, text=True)
        if res.returncode:
            raise TreeError('exported series does not apply:\n' + res.stdout
                            + res.stderr)
    print('export: %d patches against QEMU %s in %s'
          % (len(series), version, out))


def patch_diffs(patch):
    """{path: its "diff --git" block} of a patch."""
    with open(os.path.join(PATCH_DIR, patch)) as f:
        text = f.read()
    diffs = {}
    for block in text.split('\ndiff --git ')[1:]:
        block = 'diff --git ' + block.rstrip('\n') + '\n'
        diffs[block.split()[2][2:]] = block
    return diffs


def unapply(path, text, patches):
    """The versions of path that the patches in patches (in series order)
    go through, ending with text: [before patches[0], ..., before
    patches[-1], text], by reverse-applying their diffs, newest first."""
    versions = [text]
    with tempfile.TemporaryDirectory() as tmp:
        dst = os.path.join(tmp, path)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, 'wb') as f:
            f.write(text)
        for patch in reversed(patches):
            res = subprocess.run(['git', 'apply', '-R', '--include=' + path,
                                  os.path.join(PATCH_DIR, patch)],
                                 cwd=tmp, capture_output=True, text=True)
            if res.returncode:
                raise TreeError('cannot take the edits of %s out of %s: '
                                'its diff no longer fits the file as the '
                                'patches after it leave it; fix the diff of '
                                '%s in %s (qemu-tree.py split)\n%s'
                                % (patch, path, path, patch, res.stderr))
            with open(dst, 'rb') as f:
                versions.insert(0, f.read())
    return versions


def reverse_apply(path, diff, text, patch):
    """text, a version of path that patch leaves, with diff taken out"""
    with tempfile.TemporaryDirectory() as tmp:
        dst = os.path.join(tmp, path)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, 'wb') as f:
            f.write(text)
        res = subprocess.run(['git', 'apply', '-R', '-'], input=diff,
                             cwd=tmp, capture_output=True, text=True)
        if res.returncode:
            raise TreeError('the part to move does not come out of %s as '
                            '%s leaves it:\n%s' % (path, patch, res.stderr))
        return read_bytes(dst)


def read_bytes(path):
    with open(path, 'rb') as f:
        return f.read()


def without_later_edits(path, later, work, tmp):
    """The working copy of path, with the edits of the patches in later
    taken out; those patches keep their diffs of it."""
    if not later:
        return os.path.join(work, path)
    dst = os.path.join(tmp, path)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, 'wb') as f:
        f.write(unapply(path, read_bytes(os.path.join(work, path)),
                        later)[0])
    return dst


def added_versions(series, edited):
    """{new file: its content in the commit that adds it}: the final
    version without the edits of the patches after that commit."""
    return {path: unapply(path, read_bytes(os.path.join(TOP, path)),
                          edited.get(path, []))[0]
            for path in introduced(series)}


def make_diff(path, old, new):
    """A "diff --git" block from old to new (bytes), or '' if they match."""
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for name, text in (('old', old), ('new', new)):
            files.append(os.path.join(tmp, name))
            with open(files[-1], 'wb') as f:
                f.write(text)
        res = subprocess.run(['diff', '-u', '--label', 'a/' + path,
                              '--label', 'b/' + path] + files,
                             capture_output=True, text=True)
    if res.returncode > 1:
        raise TreeError(res.stderr)
    if not res.stdout:
        return ''
    return 'diff --git a/%s b/%s\n%s' % (path, path, res.stdout)


def write_patch(patch, diffs):
    """Replace the diffs of a patch with {path: "diff --git" block}."""
    diff = ''.join(diffs[p] for p in sorted(diffs))
    pfile = os.path.join(PATCH_DIR, patch)
    with open(pfile) as f:
        head = f.read()
    for marker in ('\n---\n', '\ndiff --git '):
        if marker in head:
            head = head[:head.index(marker)]
            break
    head = head.rstrip('\n') + '\n'
    new = head + ('---\n' + diff if diff else '')
    if not new.endswith('\n'):
        new += '\n'
    with open(pfile + '.tmp', 'w') as f:
        f.write(new)
    os.replace(pfile + '.tmp', pfile)


def cmd_refresh(args):
    series = read_series()
    edited = check_series(series, args.pristine)
    new_files = introduced(series)
    # An edit of a new file is in its final version already, and so in
    # the commit that adds it; the later patches' diffs must still fit.
    added_versions(series, edited)
    edited = {p: owners for p, owners in edited.items()
              if p not in new_files}
    order = [patch for patch, _ in series]
    for patch, path in args.add or []:
        if patch not in order:
            raise TreeError('%s is not in patches/series' % patch)
        if path in new_files:
            raise TreeError('%s is a new file: list it under its commit in '
                            'patches/series' % path)
        owners = edited.setdefault(path, [])
        if owners and order.index(patch) > order.index(owners[0]):
            raise TreeError('%s is edited by %s, which comes before %s; '
                            'edit it there' % (path, owners[0], patch))
        if patch not in owners:
            owners.insert(0, patch)
    for patch, _ in series:
        paths = sorted(p for p, owners in edited.items()
                       if owners[0] == patch)
        diffs = {p: d for p, d in patch_diffs(patch).items()
                 if p in new_files or edited.get(p, [patch])[0] != patch}
        for path in paths:
            with tempfile.TemporaryDirectory() as tmp:
                diff = make_diff(path,
                                 read_bytes(os.path.join(args.pristine,
                                                         path)),
                                 read_bytes(without_later_edits(
                                     path, edited[path][1:], args.work,
                                     tmp)))
            if diff:
                diffs[path] = diff
        write_patch(patch, diffs)
        print('refresh: %s (%d files)' % (patch, len(diffs)))


def cmd_split(args):
    series = read_series()
    edited = check_series(series, args.pristine)
    order = [patch for patch, _ in series]
    patch, path = args.patch, os.path.normpath(args.file)
    if patch not in order:
        raise TreeError('%s is not in patches/series' % patch)
    before = read_bytes(args.before)
    editors = edited.get(path, [])
    adder = introduced(series).get(path)
    if adder:
        if order.index(adder) >= order.index(patch):
            raise TreeError('%s is added by %s: split it into a patch after '
                            'that one' % (path, adder))
        final = read_bytes(os.path.join(TOP, path))
    else:
        if not editors or order.index(editors[0]) >= order.index(patch):
            raise TreeError('%s: no patch before %s edits it' % (path, patch))
        with tempfile.TemporaryDirectory() as tmp:
            apply_patches(series, args.pristine, tmp)
            final = read_bytes(os.path.join(tmp, path))
    # versions[i] is the file before editors[i]; versions[-1] the final one
    versions = unapply(path, final, editors)
    earlier = [e for e in editors if order.index(e) < order.index(patch)]
    k = len(earlier)
    after = versions[k + (patch in editors)]

    # The last edit before patch now leads to the given version; with
    # none, the commit that adds the file adds that version.  With
    # --throughout, the part that moves comes out of the versions before
    # too (all but the pristine one), so that it moves as a whole.
    new = versions[:k] + [before]
    if args.throughout:
        part = make_diff(path, before, versions[k])
        for i in range(0 if adder else 1, k):
            new[i] = reverse_apply(path, part, versions[i],
                                   earlier[i - 1] if i else adder)
    changed = {patch: make_diff(path, before, after)}
    for i, name in enumerate(earlier):
        if (new[i], new[i + 1]) != (versions[i], versions[i + 1]):
            changed[name] = make_diff(path, new[i], new[i + 1])
    for name, diff in changed.items():
        diffs = patch_diffs(name)
        diffs.pop(path, None)
        if diff:
            diffs[path] = diff
        write_patch(name, diffs)
        print('split: %s %s %s' % (name, 'edits' if diff else 'leaves', path))


def cmd_rebase(args):
    series = read_series()
    edited = check_series(series, args.pristine)
    new_files = introduced(series)
    new = {}
    with tempfile.TemporaryDirectory() as tmp:
        before = os.path.join(tmp, 'before')
        after = os.path.join(tmp, 'after')
        for path in edited:
            if path in new_files:
                continue
            for tree in (before, after):
                dst = os.path.join(tree, path)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy2(os.path.join(args.pristine, path), dst)
        failed = []
        for patch, _ in series:
            # The diffs of new files do not depend on QEMU: kept as they are
            diffs = patch_diffs(patch)
            paths = sorted(p for p in diffs if p not in new_files)
            if not paths:
                continue
            res = subprocess.run(['patch', '-p1', '-s', '--fuzz=3',
                                  '--no-backup-if-mismatch', '-r', '-'],
                                 input=''.join(diffs[p] for p in paths),
                                 cwd=after, capture_output=True, text=True)
            if res.returncode:
                failed.append('%s:\n%s' % (patch, res.stdout + res.stderr))
                continue
            for path in paths:
                diffs[path] = make_diff(path,
                                        read_bytes(os.path.join(before,
                                                                path)),
                                        read_bytes(os.path.join(after, path)))
                if not diffs[path]:
                    del diffs[path]
                shutil.copy2(os.path.join(after, path),
                             os.path.join(before, path))
            new[patch] = diffs
        if failed:
            raise TreeError('not rebased, hunks fail to apply to QEMU %s:\n'
                            % qemu_version(args.pristine) + '\n'.join(failed))
    for patch, diffs in new.items():
        write_patch(patch, diffs)
        print('rebase: %s' % patch)


def main():
    cache = os.environ.get('VTPM_CACHE',
                           os.path.expanduser('~/.cache/vtpm-pci'))
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--pristine',
                        default=os.path.join(cache, 'qemu-pristine'))
    parser.add_argument('--work', default=os.path.join(cache, 'qemu'))
    sub = parser.add_subparsers(dest='cmd', required=True)
    sub.add_parser('overlay').set_defaults(func=cmd_overlay)
    p = sub.add_parser('export')
    p.add_argument('-o', '--output', required=True)
    p.set_defaults(func=cmd_export)
    p = sub.add_parser('refresh')
    p.add_argument('--add', nargs=2, action='append',
                   metavar=('PATCH', 'FILE'),
                   help='also move FILE, edited in the working copy, '
                   'into PATCH')
    p.set_defaults(func=cmd_refresh)
    p = sub.add_parser('split',
                       help='move part of the change to FILE into a '
                       'later PATCH')
    p.add_argument('patch', metavar='PATCH',
                   help='the patch, listed in patches/series, that is to '
                   'make that part of the change')
    p.add_argument('file', metavar='FILE',
                   help='the file, by its path in QEMU\'s tree')
    p.add_argument('before', metavar='VERSION',
                   help='FILE as it is to be before PATCH: a copy made '
                   'outside the checkout, with that part taken out')
    p.add_argument('--throughout', action='store_true',
                   help='take that part out of the versions of FILE that '
                   'the earlier patches leave too, not only out of the one '
                   'before PATCH')
    p.set_defaults(func=cmd_split)
    sub.add_parser('rebase').set_defaults(func=cmd_rebase)
    args = parser.parse_args()
    try:
        args.func(args)
    except TreeError as e:
        print('qemu-tree: %s' % e, file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    main()
