// The lab tests: they boot the stack (root, Linux namespaces), so they run apart from `npm test`.
const base = require("./jest.config");

/** @type {import('jest').Config} */
module.exports = { ...base, testMatch: ["**/*.lab.ts"], testTimeout: 60000 };
