// A job, live: its state and timeline from the node (polled), its actions through the wallet, and its
// results downloaded and checked here against the root on the chain, read through the wallet. The page says
// "verified" only when every output rebuilds that root.
import { merkleRoot, parseOutputs } from "./content.js";
import { explain, webi } from "./errors.js";

const RESULT_STATES = new Set(["submitted", "audited", "challenged", "finalized"]);
const FINAL_STATES = new Set(["finalized", "cancelled", "rejected"]);

export class JobView {
  constructor(app) {
    this.app = app;
    this.jobId = app.config.jobId;
    this.job = null;
    this.timer = null;
  }

  $(id) {
    return this.app.$(id);
  }

  start() {
    this.$("cancel").addEventListener("click", () => this.act("cancel", () => this.app.market.cancel(this.jobId)));
    this.$("challenge").addEventListener("click", () => this.act("challenge",
      () => this.app.market.challenge(this.jobId, (text) => this.app.say(text, "info"))));
    this.$("results").addEventListener("click", () => this.results());
    this.poll();
  }

  connected() {
    this.render();
  }

  async poll() {
    let delay = 1000;
    if (!this.app.doc.hidden) { // a hidden tab asks nothing; it looks again when shown
      try {
        this.job = await this.app.node.job(this.jobId);
        this.failures = 0;
        this.render();
      } catch (error) {
        this.failures = (this.failures ?? 0) + 1;
        delay = Math.min(30_000, 1000 * 2 ** this.failures); // back off while the node cannot answer
        this.$("job-summary").textContent = error.status === 404
          ? `The node has not seen job ${this.jobId} yet (it may still be indexing it, or there is no such job).`
          : explain(error);
      }
    }
    if (!this.job || !FINAL_STATES.has(this.job.state)) this.timer = setTimeout(() => this.poll(), delay);
  }

  render() {
    const job = this.job;
    if (!job) return;
    const state = this.$("job-state");
    state.textContent = job.state + (job.verdict ? ` (${job.verdict})` : "");
    state.className = `state ${job.state}`;
    this.$("job-summary").textContent = `${job.num_tasks} tasks, ${webi(job.price)} + ${webi(job.audit_fee)} audit; `
      + `requester ${job.requester}` + (job.provider ? `, provider ${job.provider}` : "");
    const timeline = this.$("job-timeline");
    const items = job.timeline.map((step) => step.summary);
    if (timeline.children.length !== items.length) {
      timeline.replaceChildren(...items.map((text) => {
        const item = this.app.doc.createElement("li");
        item.textContent = text;
        return item;
      }));
    }
    const mine = this.app.ready && this.app.wallet.account.toLowerCase() === job.requester.toLowerCase();
    this.$("cancel").hidden = !(mine && job.state === "open");
    this.$("challenge").hidden = !(mine && job.state === "audited" && job.verdict !== "fail");
    this.$("results").hidden = !(this.app.ready && job.output_cid && RESULT_STATES.has(job.state) && !job.confidential);
  }

  async act(name, run) {
    this.app.say("");
    try {
      this.app.requireWallet();
      await run();
      this.app.say(`Done: ${name} sent and mined.`, "info");
      await this.app.refreshAccount();
    } catch (error) {
      this.app.fail(error);
    }
  }

  async results() {
    const verified = this.$("verified");
    verified.textContent = "Downloading the outputs…";
    this.$("download").hidden = true;
    try {
      this.app.requireWallet();
      const job = this.job;
      const bytes = await this.app.node.file(job.output_cid);
      const outputs = parseOutputs(bytes, job.num_tasks);
      verified.textContent = `Checking ${outputs.length} outputs against the root on the chain…`;
      const [root, onChain] = [merkleRoot(outputs), await this.app.market.resultRoot(this.jobId)];
      if (root !== onChain) {
        verified.textContent = `NOT verified: the outputs the node served rebuild the root ${root}, and the `
          + `provider committed to ${onChain} on the chain. Do not use them.`;
        verified.dataset.verified = "false";
        return;
      }
      const note = job.state === "finalized" ? "" : " (the job is not finalized yet: its audit or challenge may still change the verdict)";
      verified.textContent = `Verified: all ${outputs.length} outputs rebuild the Merkle root ${onChain} committed `
        + `on the chain${note}.`;
      verified.dataset.verified = "true";
      const link = this.$("download");
      if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href); // the previous download's copy
      link.href = URL.createObjectURL(new Blob([bytes], { type: "application/x-ndjson" }));
      link.download = `job-${this.jobId}-results.jsonl`;
      link.hidden = false;
    } catch (error) {
      verified.textContent = `Not verified: ${explain(error)}`;
      verified.dataset.verified = "false";
    }
  }
}
