// The lab's nodes each in their own cgroups (lab/cgroups.ts): which hierarchies, and the wrapper
// that moves nspawn in before it runs.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { inNodeCgroups, labCgroupRoots, nodeCpuMs } from "../lab/cgroups";

const HYBRID = [
  "tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0",
  "cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0",
  "cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0",
  "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0",
  "",
].join("\n");

test("a hybrid host: cgroup v2's hierarchy and v1's name=systemd, not the controllers'", () => {
  expect(labCgroupRoots(HYBRID)).toEqual([
    "/sys/fs/cgroup/systemd/webstack-lab",
    "/sys/fs/cgroup/unified/webstack-lab",
  ]);
});

test("a unified host (EC2's Debian 13, most hosts today): cgroup v2's alone", () => {
  expect(labCgroupRoots("cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec 0 0\n")).toEqual([
    "/sys/fs/cgroup/webstack-lab",
  ]);
});

test("the command runs as the process written into each of the node's cgroups", () => {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-cgroups-"));
  try {
    const roots = [path.join(scratch, "a"), path.join(scratch, "b")];
    const argv = inNodeCgroups("s1", ["/bin/sh", "-c", "echo $$"], roots);
    const run = spawnSync(argv[0], argv.slice(1), { encoding: "utf8" });
    expect(run.status).toBe(0);
    for (const root of roots)
      expect(fs.readFileSync(path.join(root, "s1", "cgroup.procs"), "utf8")).toBe(run.stdout);
    // A cgroup it cannot enter: the command does not run.
    const blocked = inNodeCgroups("s2", ["/bin/echo", "ran"], ["/proc/webstack-no-such"]);
    const refused = spawnSync(blocked[0], blocked.slice(1), { encoding: "utf8" });
    expect(refused.status).not.toBe(0);
    expect(refused.stdout).toBe("");
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
});

test("a node's CPU time comes from its cgroup v2's cpu.stat (the name=systemd hierarchy has none)", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-cgroups-"));
  try {
    const [v1, v2] = [path.join(dir, "systemd"), path.join(dir, "unified")];
    fs.mkdirSync(path.join(v1, "lb"), { recursive: true });
    fs.mkdirSync(path.join(v2, "lb"), { recursive: true });
    fs.writeFileSync(
      path.join(v2, "lb", "cpu.stat"),
      "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n",
    );
    expect(nodeCpuMs("lb", [v1, v2])).toBe(1234.567);
    expect(() => nodeCpuMs("s1", [v1, v2])).toThrow("no cpu.stat in s1's cgroups");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
