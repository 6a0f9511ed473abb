// The building blocks: the bootstrap and bundle composers, templates, env files, EC2's encoding.
import YAML from "yaml";
import { renderEnvFile } from "../cloud-init/nodeFiles";
import { composeBootstrap } from "../cloud-init/cloudConfig";
import { DEBIAN_SOURCES_TEMPLATE, debianAptConfig, debianSources } from "../model/aptSources";
import { composeBundle } from "../cloud-init/bundle";
import { fillTemplate } from "../cloud-init/template";
import { decodeUserData, encodeUserData, shippedSize } from "../cloud-init/userDataEncoding";

describe("building blocks", () => {
  const header = { hostname: "h", fqdn: "h.x", description: "d" };
  const node = { stack: "t", node: "s1" as const };

  test("the bootstrap composer refuses two parts writing one file, and merges packages once", () => {
    const file = { path: "/etc/x", content: "x", permissions: "0644" };
    expect(() =>
      composeBootstrap(header, node, [{ bootFiles: [file] }, { bootFiles: [file] }]),
    ).toThrow("two parts write /etc/x");
    expect(() =>
      composeBootstrap(header, node, [
        { bootFiles: [{ ...file, path: "/etc/webstack/bundle.env" }] },
      ]),
    ).toThrow("two parts write /etc/webstack/bundle.env");
    const doc = YAML.parse(
      composeBootstrap(header, node, [{ packages: ["a", "b"] }, { packages: ["b", "c"] }]),
    );
    expect(doc.packages).toEqual(["a", "b", "c"]);
  });

  test("the bootstrap runs one command, the bootstrap, after SSH is off and the parts' boot commands", () => {
    const doc = YAML.parse(composeBootstrap(header, node, [{ bootcmd: [["/early"]] }]));
    expect(doc.bootcmd).toEqual([
      ["systemctl", "mask", "--now", "ssh.service", "ssh.socket"],
      ["/early"],
    ]);
    expect(doc.runcmd).toEqual([["/usr/local/sbin/webstack-bootstrap"]]);
  });

  test("every bootstrap replaces the image's APT sources with Debian's over HTTPS; a part's source is added beside them", () => {
    const debian = {
      preserve_sources_list: false,
      primary: [{ arches: ["default"], uri: "https://deb.debian.org/debian" }],
      security: [{ arches: ["default"], uri: "https://security.debian.org/debian-security" }],
      sources_list: DEBIAN_SOURCES_TEMPLATE,
    };
    expect(YAML.parse(composeBootstrap(header, node, [{ packages: ["a"] }])).apt).toEqual(debian);
    const vendor = { source: "deb [signed-by=$KEY_FILE] https://vendor.example/apt $RELEASE main" };
    const doc = YAML.parse(
      composeBootstrap(header, node, [
        { apt: { sources: { vendor } } },
        { apt: { sources: { other: vendor } } },
      ]),
    );
    expect(doc.apt).toEqual({ ...debian, sources: { vendor, other: vendor } });
    // cloud-init's apt module runs before package_update: the first index fetch is over HTTPS.
    expect(Object.keys(doc).indexOf("apt")).toBeLessThan(
      Object.keys(doc).indexOf("package_update"),
    );
  });

  test("the bootstrap composer refuses an APT source added twice, and an apt key a part would take from Debian's", () => {
    const source = { source: "deb https://vendor.example/apt trixie main" };
    expect(() =>
      composeBootstrap(header, node, [
        { apt: { sources: { vendor: source } } },
        { apt: { sources: { vendor: source } } },
      ]),
    ).toThrow("two parts add the apt source vendor");
    expect(() =>
      composeBootstrap(header, node, [
        { apt: { primary: [{ arches: ["default"], uri: "http://x" }] } },
      ]),
    ).toThrow("two parts set apt.primary");
  });

  test("Debian's sources as a node ends up with them: deb822, HTTPS only, the release, its updates and security", () => {
    expect(debianSources()).toBe(
      [
        "Types: deb",
        "URIs: https://deb.debian.org/debian",
        "Suites: trixie trixie-updates",
        "Components: main",
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg",
        "",
        "Types: deb",
        "URIs: https://security.debian.org/debian-security",
        "Suites: trixie-security",
        "Components: main",
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg",
        "",
      ].join("\n"),
    );
    expect(debianAptConfig().sources_list).toBe(DEBIAN_SOURCES_TEMPLATE);
  });

  test("the bundle composer refuses two parts writing one file; first-apply steps keep their order, the apply timer last", () => {
    const file = { path: "/etc/x", content: "x", mode: "0644" };
    const frame = { node: "s1" as const, after: [], packages: [] };
    expect(() => composeBundle(frame, [{ files: [file] }, { files: [file] }])).toThrow(
      "two parts write /etc/x",
    );
    expect(() =>
      composeBundle(frame, [{ files: [{ ...file, path: "/usr/local/sbin/webstack-aws" }] }]),
    ).toThrow("two parts write /usr/local/sbin/webstack-aws");
    const bundle = composeBundle(frame, [
      { firstApply: [["/a"]] },
      { firstApply: [["/b"], ["/c"]] },
    ]);
    expect(bundle.firstApply).toEqual([
      ["/a"],
      ["/b"],
      ["/c"],
      ["systemctl", "enable", "--now", "webstack-apply.timer"],
    ]);
    expect(bundle.files.map((f) => f.path)).toEqual([
      "/usr/local/sbin/webstack-aws",
      "/usr/local/sbin/webstack-unit-changed",
      "/etc/systemd/system/webstack-applier.service",
      "/etc/systemd/system/webstack-apply.service",
      "/etc/systemd/system/webstack-apply.timer",
    ]);
    // The watcher, kept running by the timer: started 30 s after the timer and after it ends.
    const unit = (name: string) =>
      bundle.files.find((f) => f.path === `/etc/systemd/system/${name}`)!.content;
    expect(unit("webstack-applier.service")).toMatch(
      /^Type=exec\nExecStart=\/usr\/local\/sbin\/webstack-aws watch$/m,
    );
    // One interval in three places: the watcher's looks (the tool), its restarts (the timer) and
    // what its unit says to `systemctl status`.
    const tool = bundle.files.find((f) => f.path === "/usr/local/sbin/webstack-aws")!.content;
    const interval = /^WATCH_INTERVAL = (\d+)$/m.exec(tool)?.[1];
    expect(interval).toBe("30");
    expect(unit("webstack-apply.timer")).toMatch(
      new RegExp(
        `^Unit=webstack-applier\\.service\nOnActiveSec=${interval}s\nOnUnitInactiveSec=${interval}s\n`,
        "m",
      ),
    );
    expect(unit("webstack-apply.timer")).not.toMatch(/^OnUnitActiveSec=/m);
    expect(unit("webstack-applier.service")).toMatch(
      new RegExp(`^Description=.*, looking every ${interval} s$`, "m"),
    );
  });

  test("the bundle names its packages sorted, each once", () => {
    const frame = { node: "s1" as const, after: [], packages: ["nginx", "curl", "nginx", "gpg"] };
    expect(composeBundle(frame, []).packages).toEqual(["curl", "gpg", "nginx"]);
  });

  test("templates: every placeholder filled, every value used", () => {
    expect(fillTemplate("a {{X}} b {{Y}}", { X: 1, Y: "two" })).toBe("a 1 b two");
    expect(() => fillTemplate("a {{X}}", {})).toThrow("template placeholder {{X}} has no value");
    expect(() => fillTemplate("a", { X: 1 })).toThrow("template values never used: X");
  });

  test("environment files take plain words only", () => {
    expect(renderEnvFile({ A: "10.0.0.1", B: "/etc/x" })).toBe("A=10.0.0.1\nB=/etc/x\n");
    expect(() => renderEnvFile({ A: "x; rm -rf /" })).toThrow(
      'A: "x; rm -rf /" is not a plain word',
    );
  });

  test("user-data: plain up to 4 KB, gzipped above, refused past 16 KB gzipped", () => {
    const small = "#cloud-config\n" + "a".repeat(4096 - 14);
    expect(encodeUserData(small)).toEqual({ userData: small });
    expect("userDataBase64" in encodeUserData(`${small}a`)).toBe(true);
    expect(encodeUserData(small)).toEqual({ userData: small });
    const big = "#cloud-config\n" + "line of text\n".repeat(2000);
    const encoded = encodeUserData(big);
    expect("userDataBase64" in encoded).toBe(true);
    expect(decodeUserData(encoded)).toBe(big);
    expect(shippedSize(encoded)).toBeLessThan(2000);
    const random = Array.from({ length: 20000 }, (_, i) => ((i * 7919) % 65536).toString(36)).join(
      "",
    );
    expect(() => encodeUserData(random)).toThrow(/even gzipped; EC2 allows 16384/);
  });
});
