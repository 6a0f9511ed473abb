#!/usr/bin/python3
"""Builds the lab's partial Debian mirror once, cached: Debian's own signed InRelease and the index
files it names, plus every .deb the nodes' user-data will install on top of the base rootfs — so a
node's `apt-get update` and `apt-get install` run for real, verified with Debian's own keys, while
the lab has no route to the internet. Prints the mirror's directory (it holds `debian/`).

Usage: mirror.py BASE_ROOTFS PACKAGE...   (run as root; needs Debian's mirror on the host)
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

SUITE = "trixie"
UPSTREAM = os.environ.get("WEBSTACK_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE = os.environ.get("WEBSTACK_LAB_CACHE", "/var/cache/webstack-lab")


def file_hash(path, algorithm="sha256"):
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url, dest, expected, algorithm="sha256"):
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    partial = dest + ".partial"
    print(f"mirror: {url}", file=sys.stderr)
    with urllib.request.urlopen(url, timeout=120) as response, open(partial, "wb") as out:
        shutil.copyfileobj(response, out)
    # Only a safety net: the nodes' apt checks every file against Debian's signed indexes.
    if file_hash(partial, algorithm) != expected:
        raise SystemExit(f"mirror: {url}: {algorithm} mismatch")
    os.replace(partial, dest)


def in_chroot(root, script):
    """Runs apt in a throwaway overlay of the base rootfs, with the host's network and resolver."""
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        for d in ("upper", "work", "merged"):
            os.mkdir(os.path.join(scratch, d))
        merged = os.path.join(scratch, "merged")
        shell = f"""set -e
mount -t overlay overlay -o lowerdir={root},upperdir={scratch}/upper,workdir={scratch}/work {merged}
cp /etc/resolv.conf {merged}/etc/resolv.conf
mount -t proc proc {merged}/proc
chroot {merged} sh -c '{script}'
cp {merged}/var/lib/apt/lists/*_dists_{SUITE}_InRelease {scratch}/InRelease.out
ls {merged}/var/lib/apt/lists >{scratch}/lists.out
"""
        result = subprocess.run(["unshare", "--mount", "--fork", "sh", "-c", shell],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"mirror: apt in the base rootfs failed:\n{result.stderr[-2000:]}")
        with open(os.path.join(scratch, "InRelease.out"), "rb") as f, \
                open(os.path.join(scratch, "lists.out")) as lists:
            return result.stdout, f.read(), lists.read().split()


def release_hashes(in_release):
    """{path: sha256} from the SHA256 section of a (clear-signed) Release file."""
    hashes, section = {}, False
    for line in in_release.decode().splitlines():
        if not line.startswith(" "):
            section = line == "SHA256:"
            continue
        if section:
            digest, _size, path = line.split()
            hashes[path] = digest
    return hashes


def quoted_uris(output):
    """(url, algorithm, hash) from apt's --print-uris lines: 'URL' FILE SIZE MD5Sum:HASH."""
    names = {"MD5Sum": "md5", "SHA256": "sha256", "SHA512": "sha512"}
    for line in output.splitlines():
        if line.startswith("'"):
            url, _file, _size, checksum = line.split()
            kind, digest = checksum.split(":", 1)
            yield url.strip("'"), names[kind], digest


def main():
    root, packages = os.path.realpath(sys.argv[1]), sorted(set(sys.argv[2:]))
    with open(__file__, "rb") as f:
        inputs = f"{SUITE} {UPSTREAM} {root} {' '.join(packages)} {hashlib.sha256(f.read()).hexdigest()}"
    mirror = os.path.join(CACHE, "mirror-" + hashlib.sha256(inputs.encode()).hexdigest()[:16])
    if os.path.exists(os.path.join(mirror, ".complete")):
        print(mirror)
        return
    os.makedirs(CACHE, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".mirror-", dir=CACHE)
    try:
        output, in_release, lists = in_chroot(
            root, f"apt-get update -qq && apt-get install --print-uris -y -qq {' '.join(packages)}")
        dists = os.path.join(work, "debian", "dists", SUITE)
        os.makedirs(dists)
        with open(os.path.join(dists, "InRelease"), "wb") as f:
            f.write(in_release)
        hashes = release_hashes(in_release)
        prefix = f"{UPSTREAM}/dists/{SUITE}/"
        # The indexes apt really kept (it skips some the Release names), as the mirror serves them.
        stored = "_dists_" + SUITE + "_"
        for listed in lists:
            if stored not in listed or listed.endswith("InRelease"):
                continue
            path = listed.split(stored, 1)[1].replace("_", "/") + ".xz"
            if path not in hashes:
                raise SystemExit(f"mirror: {path} is not in the InRelease")
            # By hash: the file that matches this InRelease even if the mirror has moved on since.
            directory, name = os.path.split(path)
            by_hash = f"{directory}/by-hash/SHA256/{hashes[path]}"
            try:
                fetch(prefix + by_hash, os.path.join(dists, path), hashes[path])
            except urllib.error.HTTPError:
                fetch(prefix + path, os.path.join(dists, path), hashes[path])
            os.makedirs(os.path.dirname(os.path.join(dists, by_hash)), exist_ok=True)
            os.link(os.path.join(dists, path), os.path.join(dists, by_hash))
        debs = [uri for uri in quoted_uris(output) if uri[0].endswith(".deb")]
        if not debs:
            raise SystemExit("mirror: apt listed no packages to download")
        for url, algorithm, digest in debs:
            path = urllib.parse.unquote(url[len(UPSTREAM) + 1:])
            fetch(url, os.path.join(work, "debian", path), digest, algorithm)
        with open(os.path.join(work, ".complete"), "w") as f:
            f.write(inputs + "\n")
        shutil.rmtree(mirror, ignore_errors=True)
        os.rename(work, mirror)
        # Older mirrors are stale: the packages or the rootfs they complete changed.
        for old in os.listdir(CACHE):
            if old.startswith("mirror-") and os.path.join(CACHE, old) != mirror:
                shutil.rmtree(os.path.join(CACHE, old), ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(mirror)


if __name__ == "__main__":
    main()
