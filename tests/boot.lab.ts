// The lab, end to end: `up` boots the rendered user-data for real, a client on the "internet" gets
// an answer from a backend through the LB over the certificate Pebble issued, `down` leaves nothing.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { INTERNET_NS, LAB_DOMAIN } from "../lab/labPlan";
import { inNode, leftovers, STATE_DIR } from "../lab/lab";
import { NODE_NAMES } from "../topology";
import { IS_ROOT, PROJECT_DIR, commandWorks, testNeeding } from "./harness";

const labTest = testNeeding(
  "root and Linux network namespaces",
  IS_ROOT && commandWorks("ip", ["netns", "list"]),
);

/** The lab's own CLI, as a user runs it. */
function lab(command: string) {
  const r = spawnSync("npx", ["tsx", path.join(PROJECT_DIR, "lab", "cli.ts"), command], {
    cwd: PROJECT_DIR,
    encoding: "utf8",
    timeout: 25 * 60_000,
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** A request from the client namespace: every lab connection starts inside a lab namespace. */
function fromClient(...args: string[]) {
  return spawnSync(
    "ip",
    ["netns", "exec", INTERNET_NS, "curl", "-sS", "--max-time", "10", ...args],
    {
      encoding: "utf8",
    },
  );
}

const acmeRoot = path.join(STATE_DIR, "internet", "acme-root.pem");
let upOutput = "";

labTest(
  "up boots every node and ends with the summary",
  () => {
    lab("down"); // a lab left by an earlier run must not make this one pass
    const up = lab("up");
    upOutput = up.output;
    if (up.status !== 0) throw new Error(`lab up failed:\n${up.output}`);
    const took = /lab: up in (\d+) s/.exec(up.output);
    expect(took).not.toBeNull();
    console.log(`lab up took ${took![1]} s`);
    expect(up.output).toContain(`curl --cacert ${acmeRoot} https://${LAB_DOMAIN}/`);
    for (const node of NODE_NAMES)
      expect(up.output).toMatch(new RegExp(`^  ${node} +\\S+ +cloud-init done$`, "m"));
    expect(up.output).toContain("Stack outputs:");
    expect(up.output).toContain(`url: "https://${LAB_DOMAIN}/"`);
  },
  25 * 60_000,
);

labTest("every node's cloud-init status is done, without recoverable errors", () => {
  expect(upOutput).not.toBe("");
  for (const node of NODE_NAMES) {
    expect(inNode(node, ["cloud-init", "status"]).trim()).toBe("status: done");
  }
});

labTest(
  "a client on the internet gets an answer from a backend, over the certificate Pebble issued",
  () => {
    const backends = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const r = fromClient("--cacert", acmeRoot, `https://${LAB_DOMAIN}/`);
      expect(r.stderr).toBe("");
      const body = JSON.parse(r.stdout) as { node: string; role: string };
      expect(["s1", "s2"]).toContain(body.node);
      backends.add(body.node);
    }
    expect([...backends].sort()).toEqual(["s1", "s2"]);
    // Without the ACME root, the certificate does not verify: it is not the placeholder, nor public.
    expect(
      fromClient(
        "--cacert",
        path.join(STATE_DIR, "internet", "lab-ca.crt"),
        `https://${LAB_DOMAIN}/`,
      ).status,
    ).not.toBe(0);
  },
);

labTest("while up, the host blackholes the lab's ranges", () => {
  for (const range of ["10.40.0.0/16", "10.41.0.0/24"]) {
    expect(spawnSync("ip", ["route", "show", range], { encoding: "utf8" }).stdout).toMatch(
      /^blackhole /,
    );
  }
});

labTest("status shows the summary; a second up is safe and changes nothing", () => {
  const status = lab("status");
  expect(status.status).toBe(0);
  for (const node of NODE_NAMES)
    expect(status.output).toMatch(new RegExp(`^  ${node} +\\S+ +cloud-init done$`, "m"));
  expect(status.output).toMatch(/LB certificate: issuer=.*Pebble/);
  const again = lab("up");
  expect(again.status).toBe(0);
  expect(again.output).toContain("lab: already up");
});

labTest(
  "down stops and removes everything; a second down is safe",
  () => {
    const state = JSON.parse(fs.readFileSync(path.join(STATE_DIR, "lab.json"), "utf8")) as {
      processes: { pid: number }[];
    };
    expect(state.processes.length).toBeGreaterThanOrEqual(8);
    const down = lab("down");
    expect(down.status).toBe(0);
    expect(leftovers(undefined)).toEqual([]);
    // Nothing the lab started runs on (a recycled PID would be someone else's: compare start times).
    for (const { pid } of state.processes)
      expect(fs.existsSync(`/proc/${pid}`) ? pid : "gone").toBe("gone");
    expect(fs.existsSync(STATE_DIR)).toBe(false);
    for (const range of ["10.40.0.0/16", "10.41.0.0/24"]) {
      expect(spawnSync("ip", ["route", "show", range], { encoding: "utf8" }).stdout).toBe("");
    }
    const again = lab("down");
    expect(again.status).toBe(0);
    expect(again.output).toContain("lab: nothing to take down");
  },
  120_000,
);
