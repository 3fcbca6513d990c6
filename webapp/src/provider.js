// A GPU owner's funds through the wallet: earnings (credits) withdrawn, stake added, an unstake requested,
// and unbonded stake withdrawn after the cooldown.
import { parseUnits } from "viem";
import { explain, webi } from "./errors.js";
import { ROLE } from "./market.js";

export class ProviderView {
  constructor(app) {
    this.app = app;
  }

  $(id) {
    return this.app.$(id);
  }

  start() {
    this.$("withdraw").addEventListener("click", () => this.act("withdrew your earnings", () => this.app.market.withdraw()));
    this.$("stake-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.act("added the stake", async () => this.app.market.addStake(ROLE.provider, this.amount("stake-amount"),
                                                                      (text) => this.app.say(text, "info")));
    });
    this.$("unstake-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.act("requested the unstake", async () => this.app.market.requestUnstake(ROLE.provider,
                                                                                  this.amount("unstake-amount")));
    });
    this.$("withdraw-stake").addEventListener("click", () => this.act("withdrew the unbonded stake",
      () => this.app.market.withdrawStake(ROLE.provider)));
  }

  async connected() {
    await this.render();
  }

  amount(id) {
    const text = this.$(id).value.trim();
    if (!/^\d+(\.\d{1,18})?$/.test(text) || parseUnits(text, 18) === 0n) {
      throw new Error("Give an amount of WEBI, more than 0, such as 10 or 2.5.");
    }
    return parseUnits(text, 18);
  }

  async render() {
    const account = await this.app.refreshAccount();
    if (!account) return;
    const stake = account.provider;
    this.$("stake-total").textContent = webi(stake.stake);
    this.$("stake-locked").textContent = webi(stake.locked);
    this.$("stake-unbonding").textContent = webi(stake.unbonding)
      + (stake.unbonding > 0n ? `, withdrawable from ${new Date(Number(stake.unlockAt) * 1000).toISOString()}` : "");
    this.$("earnings").textContent = webi(account.credits);
    this.$("withdraw").disabled = account.credits === 0n;
    this.$("provider-panel").hidden = false;
    this.$("not-provider").hidden = stake.stake > 0n || stake.unbonding > 0n;
  }

  async act(done, run) {
    this.app.say("");
    try {
      this.app.requireWallet();
      await run();
      this.app.say(`Done: you ${done}.`, "info");
      await this.render();
    } catch (error) {
      this.app.say(error instanceof Error && !error.shortMessage && !error.code ? error.message : explain(error));
    }
  }
}
