// Compiles contracts/src with the pinned solcjs through its JS API (its CLI prints a
// banner line before the JSON) and writes one artifact per contract to contracts/out/.
// `node compile.js --check` compares instead of writing and exits 1 on any difference.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const root = __dirname;
const srcDir = path.join(root, "src");
const outDir = path.join(root, "out");
const check = process.argv.includes("--check");

function listSources(dir, rel = "") {
  let files = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(dir, entry.name);
    const r = path.posix.join(rel, entry.name);
    if (entry.isDirectory()) files = files.concat(listSources(full, r));
    else if (entry.name.endsWith(".sol")) files.push(r);
  }
  return files;
}

const sources = {};
for (const f of listSources(srcDir)) sources[f] = { content: fs.readFileSync(path.join(srcDir, f), "utf8") };

const input = {
  language: "Solidity",
  sources,
  settings: {
    evmVersion: "shanghai",
    optimizer: { enabled: true, runs: 1000000 },
    viaIR: true,
    metadata: { bytecodeHash: "none", appendCBOR: false },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));
let failed = false;
for (const e of output.errors || []) {
  if (e.severity === "error") failed = true;
  process.stderr.write(e.formattedMessage + "\n");
}
if (failed) process.exit(1);

let differ = [];
const written = new Set();
for (const [file, contracts] of Object.entries(output.contracts)) {
  for (const [name, c] of Object.entries(contracts)) {
    const artifact = {
      contractName: name,
      sourceName: file,
      compiler: "solc-js " + solc.version(),
      evmVersion: input.settings.evmVersion,
      optimizerRuns: input.settings.optimizer.runs,
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    };
    if (!c.evm.bytecode.object) continue; // interfaces
    // Test-only contracts (src/test/) go to out/test/, apart from what gets deployed.
    const sub = file.startsWith("test/") ? "test/" : "";
    const outFile = path.join(outDir, sub + name + ".json");
    const text = JSON.stringify(artifact, null, 2) + "\n";
    written.add(sub + name + ".json");
    if (check) {
      const old = fs.existsSync(outFile) ? fs.readFileSync(outFile, "utf8") : null;
      if (old !== text) differ.push(path.relative(root, outFile));
    } else {
      fs.mkdirSync(path.dirname(outFile), { recursive: true });
      fs.writeFileSync(outFile, text);
    }
  }
}
if (check) {
  const listed = (d, rel) => (fs.existsSync(d) ? fs.readdirSync(d, { withFileTypes: true }) : []).flatMap((e) =>
    e.isDirectory() ? listed(path.join(d, e.name), rel + e.name + "/") : [rel + e.name]);
  const stale = listed(outDir, "").filter((f) => f.endsWith(".json") && !written.has(f));
  for (const f of stale) differ.push("out/" + f + " (no longer compiled from src/)");
  if (differ.length) {
    process.stderr.write("contracts/out differs from what solc " + solc.version() + " compiles from contracts/src:\n  " + differ.join("\n  ") + "\nRun scripts/build-contracts and commit contracts/out.\n");
    process.exit(1);
  }
  process.stdout.write("contracts/out matches contracts/src (" + written.size + " artifacts, solc " + solc.version() + ")\n");
} else {
  process.stdout.write("wrote " + written.size + " artifacts to contracts/out (solc " + solc.version() + ")\n");
}
