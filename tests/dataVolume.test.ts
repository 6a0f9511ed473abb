// The data volume grows in place (issue 20): `dataVolumeGiB` changes the volumes' size and nothing
// else, and each app node grows its mounted filesystem when its device is larger (the grow script,
// run here against stand-in tools; the lab grows a real one: tests/dataVolume.lab.ts).
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GROW_DATA_PATH, GROW_DATA_TIMER } from "../cloud-init/dataVolume";
import { shippedFile } from "../cloud-init/template";
import { Plan } from "../plan/plan";
import { T, bootSequence, bundleEntry, bundleFile, bundleOf, one, planConfig } from "./harness";

const CONFIG = { domain: "www.example.com" };
const APP_NODES = ["s1", "s2"];

describe("the program", () => {
  let plan: Plan;
  let grown: Plan;
  beforeAll(async () => {
    plan = await planConfig(CONFIG);
    grown = await planConfig({ ...CONFIG, dataVolumeGiB: "100" });
  }, 120_000);

  test("each app node's volume has dataVolumeGiB (20 unset), and stays protected like its node", () => {
    for (const node of APP_NODES) {
      expect(one(plan, T.volume, `${node}-data`).inputs.size).toBe(20);
      expect(one(grown, T.volume, `${node}-data`).inputs.size).toBe(100);
      expect(one(grown, T.volume, `${node}-data`).options).toEqual({ protect: true });
    }
  });

  test("growing it changes the volumes' size and nothing else: an update in place (ModifyVolume), no replacement, the same user-data and bundles", () => {
    const byUrn = (p: Plan) => new Map(p.resources.map((r) => [r.urn, r]));
    const [before, after] = [byUrn(plan), byUrn(grown)];
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    const changed = [...after.values()].filter(
      (r) =>
        JSON.stringify([r.inputs, r.options]) !==
        JSON.stringify([before.get(r.urn)!.inputs, before.get(r.urn)!.options]),
    );
    expect(changed.map((r) => r.name).sort()).toEqual(["s1-data", "s2-data"]);
    for (const volume of changed) {
      const { size, ...rest } = volume.inputs;
      const { size: oldSize, ...oldRest } = before.get(volume.urn)!.inputs;
      expect([oldSize, size]).toEqual([20, 100]);
      expect(rest).toEqual(oldRest);
      // Nothing that would turn the update into a replacement.
      expect(volume.options.replaceOnChanges).toBeUndefined();
      expect(volume.options.deleteBeforeReplace).toBeUndefined();
    }
  });

  test.each(APP_NODES)(
    "%s: the grow script, its unit (sandboxed, on the data directory) and timer; started at the first apply without waiting, before the boot script",
    (node) => {
      expect(bundleEntry(plan, node, GROW_DATA_PATH)).toMatchObject({
        content: shippedFile("grow-data.sh"),
        mode: "0755",
      });
      const service = bundleFile(plan, node, "/etc/systemd/system/webstack-grow-data.service");
      expect(service.split("\n")).toEqual(
        expect.arrayContaining([
          `ExecStart=${GROW_DATA_PATH} /var/lib/mysql`,
          "ReadWritePaths=/var/lib/mysql",
          "CapabilityBoundingSet=CAP_SYS_RESOURCE CAP_DAC_READ_SEARCH",
          "PrivateNetwork=yes",
          "DevicePolicy=closed",
        ]),
      );
      const timer = bundleEntry(plan, node, `/etc/systemd/system/${GROW_DATA_TIMER}`);
      expect(timer.content).toContain("OnUnitActiveSec=2min\n");
      // A node booted before the timer existed takes it into use from its bundle (no first apply).
      expect(timer.onChange).toEqual([
        "/usr/local/sbin/webstack-unit-changed",
        "enable",
        "--now",
        GROW_DATA_TIMER,
      ]);
      expect(bootSequence(bundleOf(plan, node)).started).toContainEqual({
        unit: GROW_DATA_TIMER,
        waits: false,
        beforeBootScript: true,
      });
    },
  );

  test("the LB has no data volume and no grow unit", () => {
    expect(bundleOf(plan, "lb").files.map((f) => f.path)).not.toContain(GROW_DATA_PATH);
  });
});

describe("the grow script, against stand-in tools", () => {
  let scratch: string;
  beforeEach(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-grow-"));
  });
  afterEach(() => fs.rmSync(scratch, { recursive: true, force: true }));

  /**
   * Runs the script with findmnt, blockdev, dumpe2fs, resize2fs and df standing in for a mounted
   * ext4 of `blocks` 4 KiB blocks on a device of `deviceBytes`; `mounted` false: nothing mounted.
   */
  function grow(deviceBytes: number, blocks: number, mounted = true) {
    const bin = path.join(scratch, "bin");
    fs.mkdirSync(bin);
    const calls = path.join(scratch, "calls");
    const stub = (name: string, body: string) =>
      fs.writeFileSync(
        path.join(bin, name),
        `#!/bin/bash\necho "${name} $*" >>${calls}\n${body}\n`,
        { mode: 0o755 },
      );
    stub("findmnt", mounted ? "echo /dev/nvme1n1" : "exit 1");
    stub("blockdev", `echo ${deviceBytes}`);
    stub(
      "dumpe2fs",
      `echo "dumpe2fs 1.47.2 (1-Jan-2025)" >&2\nprintf 'Block count:              ${blocks}\\nBlock size:               4096\\n'`,
    );
    stub("resize2fs", "echo 'The filesystem on /dev/nvme1n1 is now grown.'");
    stub("df", "printf '  Size\\n   40G\\n'");
    const script = path.join(scratch, "webstack-grow-data");
    fs.writeFileSync(script, shippedFile("grow-data.sh"), { mode: 0o755 });
    const run = spawnSync("bash", [script, "/var/lib/mysql"], {
      env: { PATH: `${bin}:/usr/bin:/bin` },
      encoding: "utf8",
    });
    const called = fs.existsSync(calls) ? fs.readFileSync(calls, "utf8").trim().split("\n") : [];
    return { status: run.status, stderr: run.stderr, called };
  }

  const GIB = 1024 ** 3;

  test("a device larger than its filesystem: resize2fs grows it, mounted, and says so", () => {
    const { status, stderr, called } = grow(40 * GIB, (20 * GIB) / 4096);
    expect(status).toBe(0);
    expect(called).toEqual([
      "findmnt --noheadings --output SOURCE --mountpoint /var/lib/mysql",
      "dumpe2fs -h /dev/nvme1n1",
      "blockdev --getsize64 /dev/nvme1n1",
      "resize2fs /dev/nvme1n1",
      "df --human-readable --output=size /var/lib/mysql",
    ]);
    expect(stderr).toBe(
      "webstack-grow-data: /dev/nvme1n1 holds 10485760 blocks of 4096 bytes, its filesystem 5242880: growing it\n" +
        "webstack-grow-data: /var/lib/mysql is now 40G\n",
    );
  });

  test.each([
    ["the same size", 20 * GIB],
    // A device's bytes past its last whole block cannot hold a block.
    ["a part of a block larger", 20 * GIB + 4095],
  ])("a device of %s: nothing runs, nothing is said", (_, bytes) => {
    const { status, stderr, called } = grow(bytes, (20 * GIB) / 4096);
    expect(status).toBe(0);
    expect(stderr).toBe("");
    expect(called.map((c) => c.split(" ")[0])).toEqual(["findmnt", "dumpe2fs", "blockdev"]);
  });

  test("nothing mounted at the data directory: a failure that says so, nothing resized", () => {
    const { status, stderr, called } = grow(40 * GIB, (20 * GIB) / 4096, false);
    expect(status).toBe(1);
    expect(stderr).toBe("webstack-grow-data: nothing is mounted at /var/lib/mysql\n");
    expect(called).toEqual(["findmnt --noheadings --output SOURCE --mountpoint /var/lib/mysql"]);
  });
});
