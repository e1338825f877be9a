#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Lay vtpm-pci over a QEMU source tree, and turn it back into patches.

The project holds the change to QEMU in two forms:

  * new files, at the paths they have in QEMU's tree (hw/, include/, ...);
  * edits to files QEMU already has, as patches in patches/, one per
    commit of the series, applied in the order patches/series gives.

patches/series names each patch and, on the indented lines under it, the
new files that belong to the same commit.  Every new file must be claimed
by exactly one commit, so the exported series is the whole change.

Subcommands:

  overlay   make a working copy of QEMU's tree match the project: new files
            become symlinks into the checkout (an edit is seen by the next
            build), edited files are rewritten only when their content
            changes, and what earlier overlays added but the project no
            longer has is put back as it was.
  export    write the change as a git format-patch series against the
            pristine tree, and check that it applies with "git am".
  refresh   regenerate the diffs inside patches/*.patch from the files in
            the working copy, for a developer who edited them there.
  rebase    carry patches/*.patch to another QEMU release: apply each with
            the fuzz patch(1) allows and write its diffs anew against the
            pristine tree, for a move to a new base (the hunks that still
            fail are named, and the patches left as they were).

A QEMU file is best edited by one patch.  When two commits of the series
must both edit it, each patch holds its own diff, made against the file
as the patches before it leave it; refresh then folds an edit made in
the working copy into the first of them, and keeps the later patches'
diffs as they are.
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
# tree: the benchmark's results (bench/).
PROJECT_DIRS = ('docs/bench/',)

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


def check_series(series, pristine):
    """Every new file claimed once, and none of them already in QEMU."""
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
    for patch, _ in series:
        for path in patch_paths(patch):
            edited.setdefault(path, []).append(patch)
    return edited


def apply_patches(series, pristine, dest):
    """Copy the files the patches edit from pristine into dest, patch them."""
    for patch, _ in series:
        for path in patch_paths(patch):
            os.makedirs(os.path.dirname(os.path.join(dest, path)),
                        exist_ok=True)
            shutil.copy2(os.path.join(pristine, path),
                         os.path.join(dest, path))
    for patch, _ in series:
        if not patch_paths(patch):
            continue
        res = subprocess.run(['git', 'apply', '--whitespace=error-all',
                              os.path.join(PATCH_DIR, patch)],
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
    check_series(series, args.pristine)
    version = qemu_version(args.pristine)
    out = os.path.abspath(args.output)
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):
        if name.endswith('.patch'):
            os.unlink(os.path.join(out, name))

    ident = ['-c', 'user.name=vtpm-pci export',
             '-c', 'user.email=vtpm-pci@localhost']
    with tempfile.TemporaryDirectory() as tmp:
        # A repository holding just the pristine files the series edits is
        # enough to produce the patches: blob ids do not depend on the rest.
        repo = os.path.join(tmp, 'repo')
        os.makedirs(repo)
        git(repo, 'init', '-q')
        for patch, _ in series:
            for path in patch_paths(patch):
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
                shutil.copyfile(os.path.join(TOP, path), dst)
                git(repo, 'add', path)
            git(repo, 'commit', '-q', '-s', '-F', '-',
                input=patch_message(patch))
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


def without_later_edits(path, later, work, tmp):
    """The working copy of path, with the edits of the patches in later
    taken out; those patches keep their diffs of it."""
    if not later:
        return os.path.join(work, path)
    dst = os.path.join(tmp, path)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(os.path.join(work, path), dst)
    for patch in reversed(later):
        res = subprocess.run(['git', 'apply', '-R', '--include=' + path,
                              os.path.join(PATCH_DIR, patch)],
                             cwd=tmp, capture_output=True, text=True)
        if res.returncode:
            raise TreeError('cannot take the edits of %s out of %s:\n%s'
                            % (patch, path, res.stderr))
    return dst


def cmd_refresh(args):
    series = read_series()
    edited = check_series(series, args.pristine)
    order = [patch for patch, _ in series]
    for patch, path in args.add or []:
        if patch not in order:
            raise TreeError('%s is not in patches/series' % patch)
        owners = edited.setdefault(path, [])
        if owners and order.index(patch) > order.index(owners[0]):
            raise TreeError('%s is edited by %s, which comes before %s; '
                            'edit it there' % (path, owners[0], patch))
        if patch not in owners:
            owners.insert(0, patch)
    for patch, _ in series:
        paths = sorted(p for p, owners in edited.items()
                       if owners[0] == patch)
        kept = {p: d for p, d in patch_diffs(patch).items()
                if edited.get(p, [patch])[0] != patch}
        diffs = dict(kept)
        for path in paths:
            with tempfile.TemporaryDirectory() as tmp:
                new = without_later_edits(path, edited[path][1:],
                                          args.work, tmp)
                res = subprocess.run(['diff', '-u', '--label', 'a/' + path,
                                      '--label', 'b/' + path,
                                      os.path.join(args.pristine, path),
                                      new],
                                     capture_output=True, text=True)
            if res.returncode > 1:
                raise TreeError(res.stderr)
            if res.stdout:
                diffs[path] = 'diff --git a/%s b/%s\n%s' % (path, path,
                                                            res.stdout)
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
        print('refresh: %s (%d files)' % (patch, len(diffs)))


def cmd_rebase(args):
    series = read_series()
    check_series(series, args.pristine)
    new = {}
    with tempfile.TemporaryDirectory() as tmp:
        before = os.path.join(tmp, 'before')
        after = os.path.join(tmp, 'after')
        for patch, _ in series:
            for path in patch_paths(patch):
                for tree in (before, after):
                    dst = os.path.join(tree, path)
                    if not os.path.exists(dst):
                        os.makedirs(os.path.dirname(dst), exist_ok=True)
                        shutil.copy2(os.path.join(args.pristine, path), dst)
        failed = []
        for patch, _ in series:
            paths = patch_paths(patch)
            if not paths:
                continue
            res = subprocess.run(['patch', '-p1', '-s', '--fuzz=3',
                                  '--no-backup-if-mismatch', '-r', '-',
                                  '-i', os.path.join(PATCH_DIR, patch)],
                                 cwd=after, capture_output=True, text=True)
            if res.returncode:
                failed.append('%s:\n%s' % (patch, res.stdout + res.stderr))
                continue
            diffs = []
            for path in sorted(paths):
                res = subprocess.run(['diff', '-u', '--label', 'a/' + path,
                                      '--label', 'b/' + path,
                                      os.path.join(before, path),
                                      os.path.join(after, path)],
                                     capture_output=True, text=True)
                if res.returncode > 1:
                    raise TreeError(res.stderr)
                if res.stdout:
                    diffs.append('diff --git a/%s b/%s\n%s'
                                 % (path, path, res.stdout))
                shutil.copy2(os.path.join(after, path),
                             os.path.join(before, path))
            new[patch] = ''.join(diffs)
        if failed:
            raise TreeError('not rebased, hunks fail to apply to QEMU %s:\n'
                            % qemu_version(args.pristine) + '\n'.join(failed))
    for patch, diff in new.items():
        pfile = os.path.join(PATCH_DIR, patch)
        with open(pfile) as f:
            head = f.read()
        head = head[:head.index('\n---\n')].rstrip('\n') + '\n'
        with open(pfile + '.tmp', 'w') as f:
            f.write(head + '---\n' + diff)
        os.replace(pfile + '.tmp', pfile)
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
    sub.add_parser('rebase').set_defaults(func=cmd_rebase)
    args = parser.parse_args()
    try:
        args.func(args)
    except TreeError as e:
        print('qemu-tree: %s' % e, file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    main()
