// Posting a job from the page: the inputs checked here, then uploaded under the wallet's sign-in session
// (progress shown), the spec built by the node and checked here against its CID and the form, the escrow
// quoted from the chain, a permit signed and postJobWithPermit sent by the wallet.
import { formatUnits, parseUnits } from "viem";
import { countInputs, normalCid, planShards, rawCid } from "./content.js";
import { explain, webi } from "./errors.js";

export class PostView {
  constructor(app) {
    this.app = app;
    this.inputs = null; // { file, numTasks } once checked
    this.suggestion = null;
  }

  $(id) {
    return this.app.$(id);
  }

  start() {
    this.$("post-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.post();
    });
    this.$("inputs").addEventListener("change", () => this.checkInputs());
    this.$("task").addEventListener("change", () => this.suggest());
    for (const id of ["price", "sample", "shards"]) {
      this.$(id).addEventListener("input", () => {
        clearTimeout(this.quoting);
        this.quoting = setTimeout(() => this.quote(), 250);
      });
    }
    this.$("use-suggestion").addEventListener("click", () => {
      if (this.suggestion) {
        this.$("price").value = this.suggestion;
        this.quote();
      }
    });
    for (const radio of this.app.doc.querySelectorAll("input[name=model-source]")) {
      radio.addEventListener("change", () => this.modelSource());
    }
    this.modelSource();
  }

  connected() {
    this.quote();
  }

  modelSource() {
    const folder = this.app.doc.querySelector("input[name=model-source]:checked").value === "folder";
    this.$("model-cid-row").hidden = folder;
    this.$("model-folder-row").hidden = !folder;
  }

  step(text, state = "doing") {
    const list = this.$("post-steps");
    const last = list.lastElementChild;
    if (last && last.dataset.state === "doing") last.dataset.state = "done";
    const item = this.app.doc.createElement("li");
    item.textContent = text;
    item.dataset.state = state;
    list.append(item);
  }

  async checkInputs() {
    this.inputs = null;
    this.app.say("");
    const file = this.$("inputs").files[0];
    if (!file) return;
    const limit = this.app.config.maxInputsBytes;
    if (file.size > limit) {
      this.app.say(`The input file is ${file.size.toLocaleString("en-US")} bytes: this node takes at most `
        + `${limit.toLocaleString("en-US")} bytes of inputs. Split the job.`);
      return;
    }
    try {
      const numTasks = countInputs(await file.text());
      this.inputs = { file, numTasks };
      this.$("inputs-facts").textContent = `${numTasks.toLocaleString("en-US")} inputs, ${file.size.toLocaleString("en-US")} bytes`;
    } catch (error) {
      this.app.say(`The input file is malformed: ${error.message}. Nothing was uploaded.`);
      return;
    }
    await this.suggest();
    await this.quote();
  }

  async suggest() {
    this.suggestion = null;
    this.$("use-suggestion").hidden = true;
    if (!this.inputs) return;
    try {
      const price = await this.app.node.prices(this.$("task").value, this.inputs.numTasks);
      if (price.price_wei === null) {
        this.$("price-hint").textContent = "No recent jobs of this task to suggest a price from.";
        return;
      }
      this.suggestion = formatUnits(BigInt(price.price_wei), 18);
      this.$("price-hint").textContent = `Suggested: ${this.suggestion} WEBI (${formatUnits(BigInt(price.per_task_wei), 18)} `
        + `WEBI a task, the median of ${price.jobs} recent jobs of the ${price.basis}).`;
      this.$("use-suggestion").hidden = false;
    } catch (error) {
      this.$("price-hint").textContent = `No suggestion: ${explain(error)}`;
    }
  }

  priceWei() {
    const text = this.$("price").value.trim();
    if (!/^\d+(\.\d{1,18})?$/.test(text)) throw new Error("Give the price in WEBI, as a number such as 12 or 0.5.");
    const wei = parseUnits(text, 18);
    if (wei === 0n) throw new Error("The price must be more than 0 WEBI.");
    return wei;
  }

  sampleTasks() {
    const sample = Number(this.$("sample").value);
    if (!Number.isInteger(sample) || sample < 1 || sample > 64) {
      throw new Error("The audit level is 1 to 64 tasks re-executed by the verifier.");
    }
    return sample;
  }

  shardCount() {
    const count = Number(this.$("shards").value || "1");
    if (!Number.isInteger(count) || count < 1 || count > 256) throw new Error("Shards: 1 (one job) to 256.");
    return count;
  }

  /** The escrow of the job as the form stands: one job, or a group of shards each audited on its own. */
  async escrowOf(price, sampleTasks, numTasks = this.inputs.numTasks) {
    const count = this.shardCount();
    if (count === 1) return this.app.market.quote(price, numTasks, sampleTasks);
    return this.app.market.quoteGroup(planShards(numTasks, price, count), sampleTasks);
  }

  async quote() {
    const cost = this.$("cost");
    if (!this.app.ready || !this.inputs) {
      cost.textContent = "";
      return;
    }
    const asked = (this.quotes = (this.quotes ?? 0) + 1); // a later quote wins over a slower earlier one
    try {
      const sample = this.sampleTasks();
      const count = this.shardCount();
      const { fee, escrow } = await this.escrowOf(this.priceWei(), sample);
      if (asked !== this.quotes) return;
      const audited = count === 1 ? `${sample} re-executed tasks` : `${sample} re-executed tasks in each of ${count} shards`;
      cost.textContent = `Audit: ${webi(fee)} for ${audited}. You pay ${webi(escrow)} into escrow now; whatever the `
        + "job does not earn comes back to you.";
    } catch (error) {
      if (asked === this.quotes) cost.textContent = error instanceof Error && !error.shortMessage ? error.message : "";
    }
  }

  async modelCid(onProgress) {
    const folder = this.app.doc.querySelector("input[name=model-source]:checked").value === "folder";
    if (!folder) {
      const cid = normalCid(this.$("model-cid").value);
      if (!cid) throw new Error("Give the model's CID, or upload its folder.");
      return cid;
    }
    const files = [...this.$("model-folder").files];
    if (files.length === 0) throw new Error("Choose the model's folder to upload.");
    const form = new FormData();
    for (const file of files) form.append("file", file, file.webkitRelativePath || file.name);
    this.step(`uploading the model folder (${files.length} files)`);
    const added = await this.app.node.upload("/v1/uploads/model", form, onProgress);
    return added.cid;
  }

  async post() {
    const app = this.app;
    app.say("");
    this.$("post-steps").replaceChildren();
    const button = this.$("post-button");
    button.disabled = true;
    const progress = this.$("upload-progress");
    const onProgress = (sent, total) => {
      progress.hidden = false;
      progress.max = total;
      progress.value = sent;
    };
    try {
      app.requireWallet();
      const chosen = this.inputs; // what was checked, whatever the form does meanwhile
      if (!chosen) throw new Error("Choose a well-formed input file (JSONL) first.");
      const price = this.priceWei();
      const sampleTasks = this.sampleTasks();
      const task = this.$("task").value;
      const count = this.shardCount();
      const { escrow } = await this.escrowOf(price, sampleTasks, chosen.numTasks);
      const { balance } = await app.market.account(app.wallet.account);
      if (balance < escrow) throw tooLittle(balance, escrow);
      this.step("sign in to the node with your wallet (a message, no transaction)");
      await app.session();
      const model = await this.modelCid(onProgress);
      this.step(`uploading ${chosen.numTasks.toLocaleString("en-US")} inputs`);
      const form = new FormData();
      form.append("file", chosen.file, chosen.file.name);
      const inputs = await app.node.upload("/v1/uploads/inputs", form, onProgress);
      if (inputs.num_tasks !== chosen.numTasks) {
        throw new Error(`the node counted ${inputs.num_tasks} inputs in the file, and this page ${chosen.numTasks}`);
      }
      const link = app.doc.createElement("a");
      link.id = "posted-job";
      if (count === 1) {
        this.step("writing the job's spec");
        const spec = await app.node.spec({ task, model, inputs: inputs.cid, num_tasks: inputs.num_tasks });
        await this.checkSpec(spec.cid, { task, model, inputs: inputs.cid, num_tasks: inputs.num_tasks });
        const posted = await app.market.postJob(
          { specCid: spec.cid, numTasks: inputs.num_tasks, price, sampleTasks }, (text) => this.step(text));
        this.step(`posted job ${posted.jobId}: ${webi(posted.escrow)} in escrow`, "done");
        link.href = `/app/jobs/${posted.jobId}`;
        link.textContent = `Follow job ${posted.jobId}`;
      } else {
        this.step(`cutting the job into ${count} shards`);
        const shards = await this.cut(task, model, inputs, count, price);
        const posted = await app.market.postGroup(shards, sampleTasks, (text) => this.step(text));
        this.step(`posted job group g${posted.groupId}: ${count} shards, jobs ${posted.jobIds[0]} to `
          + `${posted.jobIds[posted.jobIds.length - 1]}, ${webi(posted.escrow)} in escrow`, "done");
        link.href = `/groups/${posted.groupId}`;
        link.textContent = `Follow group g${posted.groupId}`;
      }
      await app.refreshAccount();
      this.$("post-steps").lastElementChild.append(" — ", link);
    } catch (error) {
      const last = this.$("post-steps").lastElementChild;
      if (last) last.dataset.state = "failed";
      app.say(error.escrow !== undefined ? tooLittle(error.balance, error.escrow).message
        : error instanceof Error && !error.shortMessage && !error.status && !(error.code) ? error.message : explain(error));
    } finally {
      button.disabled = false;
    }
  }

  /** The node's cut of the job into `count` shards, each spec checked, the whole checked against the page's own cut. */
  async cut(task, model, inputs, count, price) {
    const made = await this.app.node.group({ task, model, inputs: inputs.cid, num_tasks: inputs.num_tasks,
                                             shards: count, price_wei: price.toString() });
    const expected = planShards(inputs.num_tasks, price, count);
    if (made.total !== inputs.num_tasks || made.shards.length !== count) {
      throw new Error(`the node cut ${made.total} tasks into ${made.shards.length} shards, not ${inputs.num_tasks} into ${count}`);
    }
    return Promise.all(made.shards.map(async (shard, index) => {
      const want = expected[index];
      if (shard.index !== index || shard.first_task !== want.firstTask || shard.num_tasks !== want.numTasks
          || BigInt(shard.price_wei) !== want.price) {
        throw new Error(`the node's shard ${index} is not the cut asked for`);
      }
      const spec = await this.checkSpec(shard.spec_cid, { task, model, num_tasks: want.numTasks, inputs: shard.inputs },
                                        true);
      const place = spec.shard ?? {};
      if (place.index !== index || place.count !== count || place.first_task !== want.firstTask
          || place.total !== inputs.num_tasks) {
        throw new Error(`the node's spec for shard ${index} puts it elsewhere in the job`);
      }
      return { specCid: shard.spec_cid, numTasks: want.numTasks, price: want.price };
    }));
  }

  /** The spec the node wrote is the one asked for, and its bytes are its CID's (the node cannot swap it). */
  async checkSpec(cid, asked, shard = false) {
    const bytes = await this.app.node.bytes(cid);
    if (rawCid(bytes) !== cid) throw new Error(`the node served bytes for the spec ${cid} that are not its CID's`);
    const spec = JSON.parse(new TextDecoder().decode(bytes));
    for (const [key, value] of Object.entries(asked)) {
      if (spec[key] !== value) throw new Error(`the node's spec has ${key} ${spec[key]}, not ${value}`);
    }
    // Nothing the form did not ask for: no allowlist, no sealed envelope, the default parameters, a shard section
    // only in a group's spec.
    const allowed = new Set(["version", "task", "model", "inputs", "num_tasks", "parameters",
                             ...(asked.num_tasks !== undefined && shard ? ["shard"] : [])]);
    const extra = Object.keys(spec).filter((key) => !allowed.has(key));
    if (extra.length || spec.version !== 1) throw new Error(`the node's spec carries ${extra.join(", ") || "another version"}`);
    if (JSON.stringify(spec.parameters) !== JSON.stringify(this.app.config.defaultParameters)) {
      throw new Error("the node's spec has parameters the form did not ask for");
    }
    return spec;
  }
}

function tooLittle(balance, escrow) {
  return new Error(`Too little WEBI: this job needs ${webi(escrow)} in escrow (its price and audit fee), and the `
    + `wallet holds ${webi(balance)}.`);
}
