// A change to the flow table changes the diagram: the program planned with one flow more.
import { describeStack, renderDiagram } from "../plan/diagram";
import { FLOWS, buildTopology } from "../model/topology";
import { DEFAULT_VPC_CIDR, planStack } from "./harness";

// Defined inside the factory: jest hoists it above this file's imports (the harness builds a topology).
jest.mock("../model/topology", () => {
  const actual = jest.requireActual("../model/topology");
  const extra = { from: "s2", to: "s1", port: 8443, protocol: "tcp", why: "A flow for this test" };
  return {
    ...actual,
    buildTopology: (cidr: string) => ({
      ...actual.buildTopology(cidr),
      flows: [...actual.FLOWS, extra],
    }),
  };
});

test("an extra flow in the model becomes rules in the plan and an edge in the diagram", async () => {
  const table = buildTopology(DEFAULT_VPC_CIDR).flows;
  expect(table.length).toBe(FLOWS.length + 1);
  const plan = await planStack("dev");
  expect(renderDiagram(plan)).toContain('  sg_s2 -->|"tcp 3306, 8443"| sg_s1\n');
  const opened = describeStack(plan).flows.flatMap((f) =>
    f.ports.map((port) => `${f.from}→${f.to}:${port}`),
  );
  expect(opened.sort()).toEqual(table.map((f) => `${f.from}→${f.to}:${f.port}`).sort());
});
