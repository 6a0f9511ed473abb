// The names other systems and ops see, pinned as literal text: renaming one breaks dashboards.
import {
  METRIC_NAMESPACE,
  PROJECT,
  imageRecordName,
  logGroupName,
  parameterName,
  parameterPath,
  sessionDocumentName,
  sessionLogGroupName,
} from "../model/naming";
import { INTERNAL_DOMAIN } from "../model/topology";

test("the project, its metric namespace and internal domain", () => {
  expect([PROJECT, METRIC_NAMESPACE, INTERNAL_DOMAIN]).toEqual([
    "webstack",
    "Webstack",
    "webstack.internal",
  ]);
});

test.each([
  [parameterPath("prod", "s1"), "/webstack/prod/s1"],
  [parameterPath("prod", "shared"), "/webstack/prod/shared"],
  [parameterName("prod", "lb", "site-pem"), "/webstack/prod/lb/site-pem"],
  [imageRecordName("prod", "lb"), "/webstack/prod/images/lb"],
  [imageRecordName("prod", "app"), "/webstack/prod/images/app"],
  [logGroupName("prod", "s2", "nginx-access"), "/webstack/prod/s2/nginx-access"],
  [logGroupName("prod", "vpc-flow-logs"), "/webstack/prod/vpc-flow-logs"],
  [sessionLogGroupName("prod"), "/webstack/prod/sessions"],
  [sessionDocumentName("prod"), "webstack-prod-shell"],
])("%s", (name, expected) => {
  expect(name).toBe(expected);
});

// Pulumi's stack names: letters, digits, "-", "_" and "." (up to 100 characters); SSM's document
// names: the same characters, 3 to 128 of them, no reserved "aws"/"amazon"/"amzn" prefix.
test.each(["dev", "prod.eu_1", "x".repeat(100)])(
  "the session document of stack %s is a name SSM takes",
  (stack) => {
    expect(sessionDocumentName(stack)).toMatch(/^[A-Za-z0-9_.-]{3,128}$/);
    expect(sessionDocumentName(stack)).not.toMatch(/^(aws|amazon|amzn)/i);
  },
);
