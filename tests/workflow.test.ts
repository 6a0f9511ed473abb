// The pull-request workflow passes a real workflow linter (action-validator, GitHub's schema).
import * as fs from "fs";
import * as path from "path";
import { validateWorkflow } from "@action-validator/core";
import { PROJECT_DIR } from "./harness";

const WORKFLOW = fs.readFileSync(
  path.join(PROJECT_DIR, ".github", "workflows", "pull-request.yml"),
  "utf8",
);

test("the pull-request workflow is a valid GitHub Actions workflow", () => {
  expect(validateWorkflow(WORKFLOW).errors).toEqual([]);
});

test.each([
  ["a misspelt runs-on", WORKFLOW.replace("runs-on:", "runson:")],
  [
    "a step that neither runs nor uses",
    WORKFLOW.replace("- uses: actions/checkout@v4", "- name: x"),
  ],
  ["an unknown trigger", WORKFLOW.replace("pull_request:", "pull_requests:")],
])("the linter refuses %s", (_, broken) => {
  expect(broken).not.toBe(WORKFLOW);
  expect(validateWorkflow(broken).errors.length).toBeGreaterThan(0);
});
