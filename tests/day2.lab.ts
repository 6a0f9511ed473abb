// Day-2 operations in the lab (issue 20): the backups' timers on the nodes, their units run against
// the S3 stand-in, and a wiped replica restored to a point in time with exactly the writes
// acknowledged before it, then replicating again.
import { execInNode, inNode } from "../lab/nodes";
import { nodeSql, writeItems } from "../lab/runningStack";
import { waitFor } from "../lab/commands";
import { backupTimers } from "../cloud-init/backups";
import { appNodeBuildOrder } from "../model/topology";
import { LAB_TOPOLOGY } from "../lab/labPlan";
import { IS_ROOT, labTest } from "./harness";
import { backendState, checksum, lab, runUnit, sleep } from "./labLoad";

beforeAll(() => {
  if (IS_ROOT) lab("up"); // a running, healthy lab is reused as is
}, 30 * 60_000);

afterAll(() => {
  if (IS_ROOT) lab("down");
}, 5 * 60_000);

/** What a node's database holds of the app's table: its rows and CHECKSUM TABLE. */
const tableState = (node: "s1" | "s2") => ({
  rows: Number(nodeSql(node, "SELECT COUNT(*) FROM items")),
  checksum: checksum(node),
});

/** The time as `--to` takes it: UTC, to the second. */
const utc = (date: Date) => date.toISOString().slice(0, 19).replace("T", " ");

labTest(
  "the backups' timers are active where they run: the backup on s1, the binlogs on s2",
  () => {
    for (const node of appNodeBuildOrder(LAB_TOPOLOGY.appNodes.length)) {
      const timers = inNode(node, ["systemctl", "list-timers", "--all", "--no-pager"]);
      for (const timer of backupTimers(node)) {
        expect(timers).toContain(timer);
        expect(inNode(node, ["systemctl", "is-active", timer]).trim()).toBe("active");
      }
    }
    expect(backupTimers("s1")).toEqual(["webstack-db-backup.timer"]);
    expect(backupTimers("s2")).toEqual(["webstack-binlog-ship.timer"]);
  },
);

labTest(
  "a wiped s1 restored to a time T holds exactly the writes acknowledged before T, then replicates again",
  async () => {
    writeItems(10, "before-backup");
    const backup = runUnit("s1", "webstack-db-backup.service");
    expect(backup).toMatch(/full backup backups\/full\/\d{8}T\d{6}Z\/ in [\d.]+ s/);
    writeItems(10, "after-backup");
    // T: a whole second, with one write acknowledged just before it and one made just after it:
    // the restore must take the first and not the second (the binlogs' times are whole seconds).
    const point = new Date(Math.ceil((Date.now() + 1500) / 1000) * 1000);
    await sleep(point.getTime() - 400 - Date.now());
    writeItems(1, "just-before-point");
    expect(Date.now()).toBeLessThan(point.getTime()); // acknowledged before T
    const atPoint = tableState("s2");
    await sleep(point.getTime() + 400 - Date.now());
    writeItems(10, "after-point");
    const shipped = runUnit("s2", "webstack-binlog-ship.service");
    expect(shipped).toMatch(/shipped \d+ binlogs/);
    expect(tableState("s2").rows).toBe(atPoint.rows + 10);

    // Wiped: the server stopped and its data directory emptied; the restore brings it all back.
    inNode("s1", ["systemctl", "stop", "webstack-app.service", "mariadb.service"]);
    inNode("s1", ["find", "/var/lib/mysql", "-mindepth", "1", "-delete"]);
    const started = Date.now();
    const restore = execInNode("s1", ["webstack-db-restore", "--to", utc(point), "--yes"]);
    const seconds = (Date.now() - started) / 1000;
    const said = restore.stderr.split("\n").filter((l) => l.startsWith("webstack-aws: "));
    console.log(`restore of s1 to ${utc(point)} UTC: ${seconds.toFixed(1)} s\n${said.join("\n")}`);
    expect(restore.status).toBe(0);
    expect(tableState("s1")).toEqual(atPoint);

    const resume = execInNode("s1", ["webstack-db-restore", "--resume"]);
    expect(resume.stderr).toContain("caught up");
    expect(resume.status).toBe(0);
    expect(tableState("s1")).toEqual(tableState("s2"));
    await waitFor("s1 serving again", 30, () => backendState("s1") === "UP");
  },
  10 * 60_000,
);

labTest(
  "a point after the last shipped binlog is refused, and the node keeps its data",
  async () => {
    // No shipping between the last one and the point (a run in the point's own second would cover it).
    inNode("s2", ["systemctl", "stop", "webstack-binlog-ship.timer"]);
    await sleep(1100);
    const before = tableState("s1");
    const refused = execInNode("s1", ["webstack-db-restore", "--to", utc(new Date()), "--yes"]);
    inNode("s2", ["systemctl", "start", "webstack-binlog-ship.timer"]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain("the shipped binlogs hold the writes committed before");
    expect(tableState("s1")).toEqual(before);
    expect(inNode("s1", ["systemctl", "is-active", "webstack-app.service"]).trim()).toBe("active");
  },
);
