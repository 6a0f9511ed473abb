// The user-data building blocks: the cloud-config composer, templates, env files, EC2's encoding.
import YAML from "yaml";
import { renderEnvFile } from "../cloud-init/nodeFiles";
import { composeCloudConfig } from "../cloud-init/cloudConfig";
import { fillTemplate } from "../cloud-init/template";
import { decodeUserData, encodeUserData, shippedSize } from "../cloud-init/userDataEncoding";

describe("building blocks", () => {
  test("the composer refuses two parts writing one file, and merges packages once", () => {
    const file = { path: "/etc/x", content: "x", permissions: "0644" };
    expect(() =>
      composeCloudConfig({ hostname: "h", fqdn: "h.x", description: "d" }, [
        { writeFiles: [file] },
        { writeFiles: [file] },
      ]),
    ).toThrow("two parts write /etc/x");
    const doc = YAML.parse(
      composeCloudConfig({ hostname: "h", fqdn: "h.x", description: "d" }, [
        { packages: ["a", "b"] },
        { packages: ["b", "c"] },
      ]),
    );
    expect(doc.packages).toEqual(["a", "b", "c"]);
  });

  test("several commands: runcmd stops at the first failure", () => {
    const header = { hostname: "h", fqdn: "h.x", description: "d" };
    const one = YAML.parse(composeCloudConfig(header, [{ runcmd: [["/boot"]] }]));
    expect(one.runcmd).toEqual([["/boot"]]);
    const two = YAML.parse(
      composeCloudConfig(header, [{ runcmd: [["/boot"]] }, { runcmd: ["echo later"] }]),
    );
    expect(two.runcmd).toEqual(["set -eu", ["/boot"], "echo later"]);
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

  test("user-data: plain up to 12 KB, gzipped above, refused past 16 KB gzipped", () => {
    const small = "#cloud-config\n" + "a".repeat(1000);
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
