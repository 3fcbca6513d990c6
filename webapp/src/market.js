// The market and the token through the wallet: reads go to the wallet's chain (not the node), every write is
// simulated first (so a revert is named before anything is signed), then sent by the wallet.
import { parseEventLogs, parseSignature, zeroHash } from "viem";
import abis from "webi:abis";
import { webi } from "./errors.js";

export const ROLE = { provider: 0, verifier: 1 };
const PANEL_SIZE = 3n; // Disputes.PANEL_SIZE: a challenge bond is this many audit fees
const PERMIT_TYPES = {
  Permit: [
    { name: "owner", type: "address" }, { name: "spender", type: "address" }, { name: "value", type: "uint256" },
    { name: "nonce", type: "uint256" }, { name: "deadline", type: "uint256" },
  ],
};

export class Market {
  constructor(wallet, config) {
    this.wallet = wallet;
    this.config = config;
    this.market = { address: config.market, abi: abis.market };
    this.token = { address: config.token, abi: abis.token };
  }

  read(contract, functionName, args = []) {
    return this.wallet.public.readContract({ ...contract, functionName, args });
  }

  /** Simulates, sends and waits for `functionName`; the receipt, or the simulation's decoded revert. */
  async write(contract, functionName, args) {
    const account = this.wallet.account;
    const { request } = await this.wallet.public.simulateContract({ ...contract, functionName, args, account });
    const hash = await this.wallet.client.writeContract(request);
    const receipt = await this.wallet.public.waitForTransactionReceipt({ hash });
    if (receipt.status !== "success") throw new Error(`the ${functionName} transaction ${hash} reverted`);
    return receipt;
  }

  async account(address) {
    const [balance, credits, provider, verifier] = await Promise.all([
      this.read(this.token, "balanceOf", [address]), this.read(this.market, "credits", [address]),
      this.read(this.market, "providerStake", [address]), this.read(this.market, "verifierStake", [address]),
    ]);
    return { balance, credits, provider, verifier };
  }

  /** The escrow a job of `price` wei and `numTasks` tasks, `sampleTasks` audited, takes: price and audit fee. */
  async quote(price, numTasks, sampleTasks) {
    const terms = await this.read(this.market, "terms");
    const fee = await this.read(this.market, "auditFee", [price, BigInt(numTasks), BigInt(sampleTasks),
                                                         BigInt(terms.verifierFeeBps)]);
    return { terms, fee, escrow: price + fee };
  }

  /**
   * Posts a job with an EIP-2612 permit for exactly its escrow, signed by the wallet (eth_signTypedData_v4):
   * one signature and one transaction, no separate approval. Returns the job id from `JobPosted`.
   */
  async postJob({ specCid, numTasks, price, sampleTasks, claimWindowS = 3600, execWindowS = 1800 }, onStep) {
    const owner = this.wallet.account;
    const { terms, escrow } = await this.quote(price, numTasks, sampleTasks);
    const balance = await this.read(this.token, "balanceOf", [owner]);
    if (balance < escrow) {
      const error = new Error("too little WEBI");
      error.balance = balance;
      error.escrow = escrow;
      throw error;
    }
    // Deadlines from the chain's clock, which a devnet may run ahead of the wall clock.
    const block = await this.wallet.public.getBlock();
    const deadline = block.timestamp + 3600n;
    const [, name, version, chainId, verifyingContract] = await this.read(this.token, "eip712Domain");
    // The wallet signs for this chain's token and no other: viem checks a transaction's chain, not a signature's.
    const walletChain = await this.wallet.chainId();
    if (chainId !== BigInt(this.config.chainId) || walletChain !== this.config.chainId
        || verifyingContract.toLowerCase() !== this.config.token.toLowerCase()) {
      throw new Error(`the permit would be for chain ${chainId} and token ${verifyingContract}, not this market's `
        + `(chain ${this.config.chainId}, token ${this.config.token}): nothing was signed`);
    }
    const nonce = await this.read(this.token, "nonces", [owner]);
    onStep?.(`sign the permit for ${webi(escrow)} (price and audit fee) in your wallet`);
    const signature = await this.wallet.client.signTypedData({
      account: owner, domain: { name, version, chainId, verifyingContract }, types: PERMIT_TYPES,
      primaryType: "Permit", message: { owner, spender: this.config.market, value: escrow, nonce, deadline },
    });
    const { r, s, v, yParity } = parseSignature(signature);
    const request = {
      specCid, numTasks, price, claimBy: Number(block.timestamp) + claimWindowS, execWindow: execWindowS,
      sampleTasks, minProviderStake: 0n, allowlistRoot: zeroHash, maxProtocolFeeBps: terms.protocolFeeBps,
      maxVerifierFeeBps: terms.verifierFeeBps, minCollateralBps: terms.collateralBps, confidentiality: 0,
      keyWindow: 0,
    };
    onStep?.("confirm the postJobWithPermit transaction in your wallet");
    const receipt = await this.write(this.market, "postJobWithPermit",
                                     [request, deadline, Number(v ?? BigInt(yParity + 27)), r, s]);
    const [posted] = parseEventLogs({ abi: abis.market, logs: receipt.logs, eventName: "JobPosted" });
    return { jobId: posted.args.jobId, escrow, tx: receipt.transactionHash };
  }

  /** The escrow of a group's shards ({price, numTasks} each), `sampleTasks` audited in each: the sum of theirs. */
  async quoteGroup(shards, sampleTasks) {
    const terms = await this.read(this.market, "terms");
    let fee = 0n;
    for (const shard of shards) {
      fee += await this.read(this.market, "auditFee", [shard.price, BigInt(shard.numTasks), BigInt(sampleTasks),
                                                       BigInt(terms.verifierFeeBps)]);
    }
    const price = shards.reduce((sum, shard) => sum + shard.price, 0n);
    return { terms, fee, escrow: price + fee };
  }

  /**
   * Posts a job group in one postJobGroup: the shards' specs ({specCid, numTasks, price} each). postJobGroup
   * takes no permit, so the wallet first approves the market for exactly the group's escrow. Returns the group
   * id and its job ids from `GroupPosted`.
   */
  async postGroup(shards, sampleTasks, onStep, { claimWindowS = 3600, execWindowS = 1800 } = {}) {
    const owner = this.wallet.account;
    const { terms, escrow } = await this.quoteGroup(shards, sampleTasks);
    const balance = await this.read(this.token, "balanceOf", [owner]);
    if (balance < escrow) {
      const error = new Error("too little WEBI");
      error.balance = balance;
      error.escrow = escrow;
      throw error;
    }
    const block = await this.wallet.public.getBlock();
    const requests = shards.map((shard) => ({
      specCid: shard.specCid, numTasks: shard.numTasks, price: shard.price,
      claimBy: Number(block.timestamp) + claimWindowS, execWindow: execWindowS, sampleTasks, minProviderStake: 0n,
      allowlistRoot: zeroHash, maxProtocolFeeBps: terms.protocolFeeBps, maxVerifierFeeBps: terms.verifierFeeBps,
      minCollateralBps: terms.collateralBps, confidentiality: 0, keyWindow: 0,
    }));
    await this.approve(escrow, onStep);
    onStep?.("confirm the postJobGroup transaction in your wallet");
    const receipt = await this.write(this.market, "postJobGroup", [requests, 0n]);
    const [posted] = parseEventLogs({ abi: abis.market, logs: receipt.logs, eventName: "GroupPosted" });
    const first = posted.args.firstJobId;
    return { groupId: posted.args.groupId, jobIds: shards.map((_, index) => first + BigInt(index)), escrow };
  }

  /** A job's terms, from its JobPosted event on the chain (the contract checks them against their hash). */
  async termsOf(jobId) {
    const logs = await this.wallet.public.getContractEvents({
      ...this.market, eventName: "JobPosted", args: { jobId: BigInt(jobId) },
      fromBlock: BigInt(this.config.deploymentBlock),
    });
    if (logs.length === 0) throw new Error(`job ${jobId} was never posted on this chain`);
    return logs[logs.length - 1].args.terms;
  }

  resultRoot(jobId) {
    return this.read(this.market, "resultRoot", [BigInt(jobId)]);
  }

  async cancel(jobId) {
    return this.write(this.market, "cancelJob", [BigInt(jobId), await this.termsOf(jobId)]);
  }

  /** Challenges a pass: approves the bond (3 audit fees) when the allowance is short, then challenges. */
  async challenge(jobId, onStep) {
    const terms = await this.termsOf(jobId);
    const bond = PANEL_SIZE * terms.auditFee;
    await this.approve(bond, onStep);
    onStep?.("confirm the challenge in your wallet");
    return this.write(this.market, "challenge", [BigInt(jobId), terms]);
  }

  async approve(amount, onStep) {
    const allowance = await this.read(this.token, "allowance", [this.wallet.account, this.config.market]);
    if (allowance >= amount) return;
    onStep?.(`approve the market to take ${webi(amount)} in your wallet`);
    await this.write(this.token, "approve", [this.config.market, amount]);
  }

  withdraw() {
    return this.write(this.market, "withdraw", []);
  }

  async addStake(role, amount, onStep) {
    await this.approve(amount, onStep);
    onStep?.("confirm the stake in your wallet");
    return this.write(this.market, "addStake", [role, amount]);
  }

  requestUnstake(role, amount) {
    return this.write(this.market, "requestUnstake", [role, amount]);
  }

  withdrawStake(role) {
    return this.write(this.market, "withdrawStake", [role]);
  }
}
