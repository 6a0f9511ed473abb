// The agents' signed-.deb installer, run for real with gpg against packages signed here: it
// installs only what the pinned key signed, whatever key file it is handed. Stand-ins for curl
// (serving local files by URL), dpkg and dpkg-query; nothing is downloaded or installed.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR, withGpg } from "./harness";

const INSTALLER = path.join(PROJECT_DIR, "cloud-init", "files", "install-signed-deb.sh");

let dir: string;
/** The keys' own keyring, where packages are signed (never the installer's). */
let signing: string;
/** What the curl stand-in serves: the last path segment of a URL names a file here. */
let served: string;

/** The test keys have no passphrase: gpg takes the empty one without asking. */
const NO_PASSPHRASE = ["--pinentry-mode", "loopback", "--passphrase", ""];

function gpg(args: string[], home = signing): string {
  const r = spawnSync("gpg", ["--batch", "--quiet", ...args], {
    env: { ...process.env, GNUPGHOME: home },
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`gpg ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** A new signing key (no passphrase), made at `when` (gpg's faked time), valid for `expiry`. */
function newKey(name: string, expiry = "1y", when?: string): string {
  const fake = when ? ["--faked-system-time", when] : [];
  gpg([
    ...fake,
    ...NO_PASSPHRASE,
    "--quick-gen-key",
    `${name} <${name}@example.com>`,
    "ed25519",
    "sign",
    expiry,
  ]);
  const colons = gpg(["--with-colons", "--list-keys", `${name}@example.com`]);
  return /^fpr:+([0-9A-F]{40}):/m.exec(colons)![1];
}

function exportKey(fingerprint: string, file: string): string {
  fs.writeFileSync(path.join(served, file), gpg(["--armor", "--export", fingerprint]));
  return path.join(served, file);
}

/** `package.deb` served with a detached signature by `signer`. */
function serveSigned(signer: string, content = "a package\n"): void {
  const deb = path.join(served, "package.deb");
  fs.writeFileSync(deb, content);
  fs.rmSync(`${deb}.sig`, { force: true });
  gpg([...NO_PASSPHRASE, "--local-user", signer, "--output", `${deb}.sig`, "--detach-sign", deb]);
}

function standIn(name: string, script: string): void {
  fs.writeFileSync(path.join(dir, "bin", name), `#!/bin/bash\n${script}`, { mode: 0o755 });
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-signed-deb-"));
  signing = path.join(dir, "signing");
  served = path.join(dir, "served");
  for (const d of [signing, served, path.join(dir, "bin")]) fs.mkdirSync(d, { mode: 0o700 });
  // curl -fsSL --retry 3 -o FILE URL: the URL's last segment, from `served`; 22 (as -f) if absent.
  standIn(
    "curl",
    `out=""; url=""
while [ $# -gt 0 ]; do
  case $1 in -o) out=$2; shift 2 ;; -*) shift ;; *) url=$1; shift ;; esac
done
echo "$url" >>"${dir}/downloads"
[ -f "${served}/\${url##*/}" ] || exit 22
cp "${served}/\${url##*/}" "$out"\n`,
  );
  standIn("dpkg", `echo "$*" >>"${dir}/dpkg"\ncp "$3" "${dir}/installed.deb"\n`);
  standIn(
    "dpkg-query",
    `[ -f "${dir}/installed.deb" ] && printf 'install ok installed' || exit 1\n`,
  );
});
afterAll(() => {
  // The signing keyring's agent, started by the signatures, ends with it.
  spawnSync("gpgconf", ["--kill", "gpg-agent"], { env: { ...process.env, GNUPGHOME: signing } });
  fs.rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  for (const f of ["downloads", "dpkg", "installed.deb"])
    fs.rmSync(path.join(dir, f), { force: true });
});

/** The installer as its units run it, with the stand-ins first on PATH. */
function install(key: string, fingerprint: string) {
  const r = spawnSync(
    "bash",
    [INSTALLER, "example-agent", "https://vendor.example/latest/package.deb", key, fingerprint],
    {
      env: { PATH: `${dir}/bin:/usr/bin:/bin` },
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const read = (f: string) =>
    fs.existsSync(path.join(dir, f)) ? fs.readFileSync(path.join(dir, f), "utf8") : "";
  return { status: r.status, stderr: r.stderr, dpkg: read("dpkg"), downloads: read("downloads") };
}

describe("webstack-install-signed-deb", () => {
  let vendor: string;
  let other: string;
  beforeAll(() => {
    vendor = newKey("vendor");
    other = newKey("other");
  });

  withGpg("installs a package the pinned key signed, its key from a file or a URL", () => {
    serveSigned(vendor);
    const keyFile = exportKey(vendor, "vendor.asc");
    for (const key of [keyFile, "https://vendor.example/keys/vendor.asc"]) {
      fs.rmSync(path.join(dir, "installed.deb"), { force: true });
      fs.rmSync(path.join(dir, "dpkg"), { force: true });
      const r = install(key, vendor);
      expect(r.status).toBe(0);
      expect(r.stderr).toContain("Good signature");
      expect(r.dpkg).toMatch(/^-i -E \/tmp\/.*\/package\.deb\n$/);
    }
  });

  withGpg("refuses a package another key signed, even when that key is the one handed over", () => {
    serveSigned(other);
    const r = install(exportKey(other, "other.asc"), vendor);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      `webstack: example-agent's package is not signed by ${vendor} (got: ${other})`,
    );
    expect(r.dpkg).toBe("");
  });

  withGpg("refuses a package changed after it was signed, and one without a signature", () => {
    serveSigned(vendor);
    fs.appendFileSync(path.join(served, "package.deb"), "tampered\n");
    const tampered = install(exportKey(vendor, "vendor.asc"), vendor);
    expect(tampered.status).not.toBe(0);
    expect(tampered.stderr).toContain("BAD signature");
    expect(tampered.dpkg).toBe("");

    fs.rmSync(path.join(served, "package.deb.sig"));
    const unsigned = install(exportKey(vendor, "vendor.asc"), vendor);
    expect(unsigned.status).toBe(22);
    expect(unsigned.dpkg).toBe("");
  });

  withGpg("takes a signature by the pinned key whose copy here has expired since", () => {
    // The vendor's key as first published (one day, long ago), then extended and signing today.
    const extended = newKey("extended", "1d", "20200101T000000");
    const expiredCopy = exportKey(extended, "expired.asc");
    gpg([...NO_PASSPHRASE, "--quick-set-expire", extended, "2y"]);
    serveSigned(extended);
    expect(gpg(["--show-keys", expiredCopy])).toContain("[expired: 2020-01-02]");
    const r = install(expiredCopy, extended);
    expect(r.status).toBe(0);
    expect(r.dpkg).toContain("-i -E ");
  });

  withGpg("refuses a good signature by the pinned key once its owner has revoked it", () => {
    const revoked = newKey("revoked");
    serveSigned(revoked);
    // gpg's own revocation certificate, made with the key; its armor is ":"-guarded against imports.
    const certificate = path.join(signing, "openpgp-revocs.d", `${revoked}.rev`);
    fs.writeFileSync(
      certificate,
      fs.readFileSync(certificate, "utf8").replace(/^:-----/m, "-----"),
    );
    gpg(["--import", certificate]);
    const r = install(exportKey(revoked, "revoked.asc"), revoked);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("signed by a revoked key");
    expect(r.dpkg).toBe("");
  });

  withGpg("does nothing, downloads included, once the package is installed", () => {
    serveSigned(vendor);
    fs.writeFileSync(path.join(dir, "installed.deb"), "installed before\n");
    const r = install(exportKey(vendor, "vendor.asc"), vendor);
    expect([r.status, r.downloads, r.dpkg]).toEqual([0, "", ""]);
  });
});
