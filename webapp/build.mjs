// Builds the web app's bundle (marketplace/node/static/app.js) from webapp/src with esbuild, from the npm
// packages pinned in package-lock.json. The bundle is committed, so the node serves it with no build step and
// no CDN; tests/marketplace/node/test_webapp_bundle.py rebuilds it and fails when the committed one is stale.
//
//   node webapp/build.mjs [--out FILE]
//
// The contracts' ABIs come from contracts/artifacts (the market's with its modules' errors and events, so
// every revert decodes by name), folded into one virtual module: only the ABIs reach the bundle.
import { build } from "esbuild";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outIndex = process.argv.indexOf("--out");
const out = outIndex > 0 ? process.argv[outIndex + 1] : join(root, "marketplace/node/static/app.js");

function abi(names) {
  const seen = new Map();
  for (const name of names) {
    const artifact = JSON.parse(readFileSync(join(root, "contracts/artifacts", `${name}.json`), "utf8"));
    for (const item of artifact.abi) {
      const key = `${item.type}:${item.name ?? ""}:${(item.inputs ?? []).map((input) => input.type).join(",")}`;
      if (!seen.has(key)) seen.set(key, item);
    }
  }
  return [...seen.values()];
}

const abis = { market: abi(["JobMarket", "Requests", "Disputes"]), token: abi(["WebiToken"]) };

const result = await build({
  entryPoints: [join(root, "webapp/src/main.js")],
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  legalComments: "none",
  charset: "utf8",
  write: false,
  logLevel: "warning",
  plugins: [{
    name: "webi-abis",
    setup(builder) {
      builder.onResolve({ filter: /^webi:abis$/ }, () => ({ path: "abis", namespace: "webi" }));
      builder.onLoad({ filter: /.*/, namespace: "webi" }, () => ({ contents: JSON.stringify(abis), loader: "json" }));
    },
  }],
});
mkdirSync(dirname(out), { recursive: true });
const banner = "/* WEBI web app: built by webapp/build.mjs from webapp/src; do not edit. */\n";
writeFileSync(out, banner + result.outputFiles[0].text);
console.log(`wrote ${out} (${result.outputFiles[0].contents.length.toLocaleString("en-US")} bytes)`);
