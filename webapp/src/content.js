// What the page checks itself rather than trusting the node: a document's CID from its bytes, the Merkle
// root of a job's outputs (the same leaves and pairs as marketplace/results.py), and the input file's lines.
import { concat, keccak256, numberToHex, sha256, hexToBytes } from "viem";

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

function base32(bytes) {
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** The CIDv1 of `bytes` as one raw block (codec raw, sha2-256), in base32: how the node stores a small document. */
export function rawCid(bytes) {
  const digest = hexToBytes(sha256(bytes));
  return "b" + base32(new Uint8Array([0x01, 0x55, 0x12, 0x20, ...digest]));
}

function leafHash(index, output) {
  // abi.encode(uint256 index, bytes32 sha256(output)), hashed twice (a leaf can never pass for an inner node).
  return keccak256(keccak256(concat([numberToHex(BigInt(index), { size: 32 }), sha256(output)])));
}

function pair(left, right) {
  return keccak256(left < right ? concat([left, right]) : concat([right, left]));
}

/** The root the provider committed to on-chain, rebuilt from the outputs. */
export function merkleRoot(outputs) {
  if (outputs.length === 0) throw new Error("a job has at least one task");
  let layer = outputs.map((output, index) => leafHash(index, output));
  while (layer.length > 1) {
    const next = [];
    for (let i = 0; i < layer.length; i += 2) next.push(i + 1 < layer.length ? pair(layer[i], layer[i + 1]) : layer[i]);
    layer = next;
  }
  return layer[0];
}

/** The outputs of a manifest (one canonical output a line), or an error naming what does not add up. */
export function parseOutputs(bytes, numTasks) {
  const lines = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x0a) {
      lines.push(bytes.subarray(start, i));
      start = i + 1;
    }
  }
  if (start < bytes.length) lines.push(bytes.subarray(start));
  if (lines.length !== numTasks) throw new Error(`the output manifest has ${lines.length} outputs for ${numTasks} tasks`);
  return lines;
}

/**
 * The number of inputs in a JSONL file, each line a non-empty JSON string or {"text": "..."} (the rules of
 * `webi job post --inputs`); an Error naming the first bad line. The node checks again; this is for a quick,
 * clear answer before anything is uploaded.
 */
export function countInputs(text) {
  // Lines split on \n only (a \r before it dropped) and blank ones skipped, as the node's parser does.
  const lines = text.split("\n").map((line, index) => [index + 1, line.replace(/\r$/, "")])
    .filter(([, line]) => line.trim() !== "");
  if (lines.length === 0) throw new Error("the input file is empty: one JSON input a line");
  for (const [number, line] of lines) {
    let value;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new Error(`line ${number} of the input file is not JSON`);
    }
    if (value !== null && typeof value === "object" && !Array.isArray(value)) value = value.text;
    if (typeof value !== "string" || value === "") {
      throw new Error(`line ${number} of the input file must be a non-empty string or {"text": "..."}`);
    }
  }
  return lines.length;
}

/** A CID as the node writes it: base32 CIDs in lower case (the node normalizes what it is given). */
export function normalCid(text) {
  const cid = text.trim();
  return /^[bB][a-zA-Z2-7]+$/.test(cid) ? cid.toLowerCase() : cid;
}

/**
 * The shards `webi job post --shards K` cuts a job of `total` tasks priced `price` wei into (marketplace/groups/
 * plan.py): sizes within one task of each other, the larger first; prices in proportion, the rounding's
 * remainder a wei each to the first shards. The node cuts the same way; the page compares.
 */
export function planShards(total, price, count) {
  if (!Number.isInteger(count) || count < 1) throw new Error("A group needs at least 1 shard.");
  if (count > total) throw new Error(`${count} shards are more than the ${total} tasks: a shard needs at least 1 task.`);
  if (count > 256) throw new Error(`${count} shards are over the 256 one postJobGroup posts.`);
  const size = Math.floor(total / count);
  const extra = total % count;
  const sizes = Array.from({ length: count }, (_, index) => size + (index < extra ? 1 : 0));
  const prices = sizes.map((tasks) => (price * BigInt(tasks)) / BigInt(total));
  let remainder = price - prices.reduce((sum, value) => sum + value, 0n);
  for (let index = 0; remainder > 0n; index = (index + 1) % count, remainder -= 1n) prices[index] += 1n;
  let first = 0;
  return sizes.map((numTasks, index) => {
    const shard = { index, firstTask: first, numTasks, price: prices[index] };
    first += numTasks;
    return shard;
  });
}
