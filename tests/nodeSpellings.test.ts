// Terms the nodes' own scripts spell out themselves match the model, in the files as rendered.
import * as fs from "fs";
import * as path from "path";
import { METRIC_NAMESPACE } from "../model/naming";
import { LOOPBACK_PORTS, PORTS } from "../model/topology";
import { Plan } from "../plan/plan";
import { PROJECT_DIR, planStack, bundleFile } from "./harness";

let plan: Plan;
beforeAll(async () => {
  plan = await planStack("dev");
});

test.each([
  ["lb", "/usr/local/sbin/webstack-aws", `NAMESPACE = "${METRIC_NAMESPACE}"\n`],
  [
    "lb",
    "/usr/local/sbin/webstack-aws",
    `HAPROXY_STATS = "http://127.0.0.1:${LOOPBACK_PORTS.haproxyStats}/stats;csv"\n`,
  ],
  [
    "lb",
    "/usr/local/sbin/webstack-aws",
    `HAPROXY_METRICS = "http://127.0.0.1:${LOOPBACK_PORTS.haproxyStats}/metrics?scope=global"\n`,
  ],
  ["s1", "/usr/local/sbin/webstack-db-bootstrap", `--port=${PORTS.mysql} `],
])("%s's %s says %j", (node, file, spelling) => {
  expect(bundleFile(plan, node, file)).toContain(spelling);
});

test("the demo app (app/app.py) says the database port", () => {
  expect(fs.readFileSync(path.join(PROJECT_DIR, "app", "app.py"), "utf8")).toContain(
    `port=${PORTS.mysql},`,
  );
});
