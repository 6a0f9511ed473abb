#!/usr/bin/python3
"""Builds the lab's partial Debian mirror once, cached: for each archive and suite the nodes' own
APT sources name (the deb822 file the program renders), Debian's signed InRelease and the index
files it names, plus every .deb the nodes' user-data will install on top of the base rootfs — so a
node's `apt-get update` and `apt-get install` run for real, verified with Debian's own keys, while
the lab has no route to the internet. Prints the mirror's directory: one folder per archive, named
by the archive's path (`debian/`, `debian-security/`), served at the archive's own host.

Usage: mirror.py BASE_ROOTFS SOURCES_FILE PACKAGE...   (run as root; needs Debian's archives on the host)
"""
import hashlib
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

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


def archives(sources):
    """{uri: [suite, ...]} from a deb822 sources file (one stanza per archive)."""
    found = {}
    for stanza in sources.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line)
        for uri in fields["URIs"].split():
            found.setdefault(uri.rstrip("/"), []).extend(fields["Suites"].split())
    return found


def list_prefix(uri):
    """apt's name for an archive's files under /var/lib/apt/lists: host and path, "/" as "_"."""
    parsed = urllib.parse.urlparse(uri)
    return f"{parsed.netloc}{parsed.path}".replace("/", "_") + "_"


def in_chroot(root, sources, script):
    """Runs apt in a throwaway overlay of the base rootfs, with the nodes' sources and the host's
    network and resolver; returns apt's output and the lists it kept ({file name: bytes} for the
    InRelease files, names only for the rest)."""
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        for d in ("upper", "work", "merged", "lists"):
            os.mkdir(os.path.join(scratch, d))
        with open(os.path.join(scratch, "debian.sources"), "w") as f:
            f.write(sources)
        merged = os.path.join(scratch, "merged")
        shell = f"""set -e
mount -t overlay overlay -o lowerdir={root},upperdir={scratch}/upper,workdir={scratch}/work {merged}
cp /etc/resolv.conf {merged}/etc/resolv.conf
rm -f {merged}/etc/apt/sources.list {merged}/etc/apt/sources.list.d/*
cp {scratch}/debian.sources {merged}/etc/apt/sources.list.d/debian.sources
mount -t proc proc {merged}/proc
chroot {merged} sh -c '{script}'
cp {merged}/var/lib/apt/lists/*_InRelease {scratch}/lists/
ls {merged}/var/lib/apt/lists >{scratch}/lists.out
"""
        result = subprocess.run(["unshare", "--mount", "--fork", "sh", "-c", shell],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"mirror: apt in the base rootfs failed:\n{result.stderr[-2000:]}")
        in_releases = {}
        for name in os.listdir(os.path.join(scratch, "lists")):
            with open(os.path.join(scratch, "lists", name), "rb") as f:
                in_releases[name] = f.read()
        with open(os.path.join(scratch, "lists.out")) as lists:
            return result.stdout, in_releases, lists.read().split()


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
    """(url, algorithm, hash) from apt's --print-uris lines: 'URL' FILE SIZE MD5Sum:HASH; the
    algorithm and hash are None where apt prints none (it does so for some security updates)."""
    names = {"MD5Sum": "md5", "SHA256": "sha256", "SHA512": "sha512"}
    for line in output.splitlines():
        if line.startswith("'"):
            url, _file, _size, *checksum = line.split()
            if not checksum:
                yield url.strip("'"), None, None
                continue
            kind, digest = checksum[0].split(":", 1)
            yield url.strip("'"), names[kind], digest


def indexed_hashes(work):
    """{pool path: sha256} from every Packages index mirrored under WORK, per archive folder."""
    found = {}
    for directory, _dirs, files in os.walk(work):
        if "Packages.xz" in files and "by-hash" not in directory:
            archive = os.path.relpath(directory, work).split(os.sep)[0]
            with lzma.open(os.path.join(directory, "Packages.xz"), "rt") as f:
                for stanza in f.read().split("\n\n"):
                    fields = dict(line.split(": ", 1) for line in stanza.splitlines()
                                  if ": " in line and not line.startswith(" "))
                    if "Filename" in fields:
                        found[(archive, fields["Filename"])] = fields["SHA256"]
    return found


def mirror_indexes(work, uri, suite, in_release, lists):
    """The suite's InRelease and the index files apt kept from it, under WORK/<archive path>/dists."""
    dists = os.path.join(work, urllib.parse.urlparse(uri).path.strip("/"), "dists", suite)
    os.makedirs(dists)
    with open(os.path.join(dists, "InRelease"), "wb") as f:
        f.write(in_release)
    hashes = release_hashes(in_release)
    stored = f"{list_prefix(uri)}dists_{suite}_"
    for listed in lists:
        if not listed.startswith(stored) or listed.endswith("InRelease"):
            continue
        # apt keeps indexes decompressed; the archive serves them xz-compressed.
        path = listed[len(stored):].replace("_", "/") + ".xz"
        if path not in hashes:
            raise SystemExit(f"mirror: {uri} {suite}: {path} is not in the InRelease")
        # By hash: the file that matches this InRelease even if the archive has moved on since.
        directory, name = os.path.split(path)
        by_hash = f"{directory}/by-hash/SHA256/{hashes[path]}"
        prefix = f"{uri}/dists/{suite}/"
        try:
            fetch(prefix + by_hash, os.path.join(dists, path), hashes[path])
        except urllib.error.HTTPError:
            fetch(prefix + path, os.path.join(dists, path), hashes[path])
        os.makedirs(os.path.dirname(os.path.join(dists, by_hash)), exist_ok=True)
        os.link(os.path.join(dists, path), os.path.join(dists, by_hash))


def main():
    root, sources_file = os.path.realpath(sys.argv[1]), sys.argv[2]
    packages = sorted(set(sys.argv[3:]))
    with open(sources_file) as f:
        # The nodes fetch over HTTPS from the lab's mirror; the builder reads the same archives over
        # plain HTTP, as every build host here reaches them (an HTTPS proxy on the way would need
        # its CA in the rootfs). The files are checked against Debian's signed InRelease either way.
        sources = f.read().replace("https://", "http://")
    with open(__file__, "rb") as f:
        inputs = f"{sources} {root} {' '.join(packages)} {hashlib.sha256(f.read()).hexdigest()}"
    mirror = os.path.join(CACHE, "mirror-" + hashlib.sha256(inputs.encode()).hexdigest()[:16])
    if os.path.exists(os.path.join(mirror, ".complete")):
        print(mirror)
        return
    os.makedirs(CACHE, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".mirror-", dir=CACHE)
    try:
        output, in_releases, lists = in_chroot(
            root, sources, f"apt-get update -qq && apt-get install --print-uris -y -qq {' '.join(packages)}")
        found = archives(sources)
        for uri, suites in found.items():
            for suite in suites:
                name = f"{list_prefix(uri)}dists_{suite}_InRelease"
                if name not in in_releases:
                    raise SystemExit(f"mirror: apt kept no InRelease for {uri} {suite}")
                mirror_indexes(work, uri, suite, in_releases[name], lists)
        debs = [uri for uri in quoted_uris(output) if uri[0].endswith(".deb")]
        if not debs:
            raise SystemExit("mirror: apt listed no packages to download")
        indexed = indexed_hashes(work)
        for url, algorithm, digest in debs:
            archive = next((uri for uri in found if url.startswith(uri + "/")), None)
            if archive is None:
                raise SystemExit(f"mirror: {url} is in none of the sources' archives")
            path = urllib.parse.unquote(url[len(archive) + 1:])
            local = urllib.parse.urlparse(archive).path.strip("/")
            if digest is None:
                algorithm, digest = "sha256", indexed[(local, path)]
            fetch(url, os.path.join(work, local, path), digest, algorithm)
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
