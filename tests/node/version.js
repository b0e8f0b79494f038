// The version of an installed package, read from its package.json: the
// clients write it into their logs, so that a test names the real peer it ran.
"use strict";
const path = require("path");
const fs = require("fs");

module.exports = (name) => {
  let dir = path.dirname(require.resolve(name));
  while (!fs.existsSync(path.join(dir, "package.json"))) dir = path.dirname(dir);
  return JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")).version;
};
