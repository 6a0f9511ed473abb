// The names other systems and ops see, pinned as literal text: renaming one breaks dashboards.
import {
  METRIC_NAMESPACE,
  PROJECT,
  imageRecordName,
  logGroupName,
  parameterName,
  parameterPath,
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
])("%s", (name, expected) => {
  expect(name).toBe(expected);
});
