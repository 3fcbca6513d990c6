// Cross-check: the IPFS project's reference importer (ipfs-unixfs-importer) with Kubo's defaults,
// which are also this importer's defaults: CIDv1, raw leaves, 262,144-byte chunks, balanced DAG of 174.
// Usage: node reference_importer.mjs [--chunk N --links M] PATH...
// Prints one JSON object {PATH: CID}; hidden entries are skipped, as `ipfs add -r` does.
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { createReadStream, readdirSync, statSync } from 'node:fs'
import { join, relative, dirname, basename } from 'node:path'

const args = process.argv.slice(2)
let chunkSize = 262144
let maxChildrenPerNode = 174
const roots = []
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--chunk') chunkSize = Number(args[++i])
  else if (args[i] === '--links') maxChildrenPerNode = Number(args[++i])
  else roots.push(args[i])
}

const blockstore = { put: async (cid) => cid, get: async () => { throw new Error('write-only') } }

function * entries (root) {
  const base = dirname(root)
  const walk = function * (path) {
    if (statSync(path).isDirectory()) {
      const names = readdirSync(path).filter((name) => !name.startsWith('.'))
      if (names.length === 0) yield { path: relative(base, path) }
      for (const name of names) yield * walk(join(path, name))
    } else {
      yield { path: relative(base, path), content: createReadStream(path) }
    }
  }
  yield * walk(root)
}

const out = {}
for (const root of roots) {
  const options = {
    cidVersion: 1,
    rawLeaves: true,
    reduceSingleLeafToSelf: true,
    wrapWithDirectory: false,
    chunker: fixedSize({ chunkSize }),
    layout: balanced({ maxChildrenPerNode })
  }
  for await (const entry of importer(entries(root), blockstore, options)) {
    if (entry.path === basename(root)) out[root] = entry.cid.toString()
  }
}
console.log(JSON.stringify(out))
