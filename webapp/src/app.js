// The page's behaviour: connect a wallet, keep it on the node's chain, show the account, and run the view
// (post a job, follow a job, a provider's funds). Every message a person needs goes to #message or a step list.
import { formatUnits, parseUnits } from "viem";
import { explain, webi } from "./errors.js";
import { Market, ROLE } from "./market.js";
import { Node } from "./node.js";
import { Wallet, WalletError, discoverWallets } from "./wallet.js";
import { JobView } from "./job.js";
import { PostView } from "./post.js";
import { ProviderView } from "./provider.js";

const REMEMBERED = "webi.wallet"; // the EIP-6963 uuid of the wallet this tab connected

export class App {
  constructor(config, doc) {
    this.config = config;
    this.doc = doc;
    this.node = new Node("");
    this.wallet = null;
    this.market = null;
    this.ready = false; // connected, on the right chain
  }

  $(id) {
    return this.doc.getElementById(id);
  }

  start() {
    const list = this.$("wallet-list");
    let found = 0;
    // The wallet connected on an earlier page of this tab reconnects without a prompt (eth_accounts).
    const remembered = sessionStorage.getItem(REMEMBERED);
    discoverWallets(({ info, provider }) => {
      found += 1;
      const button = this.doc.createElement("button");
      button.type = "button";
      button.textContent = `Connect ${info.name}`;
      button.addEventListener("click", () => this.connect(provider, info));
      list.append(button);
      if (!this.wallet) this.$("wallet-status").textContent = "Connect a wallet to go on.";
      if (info.uuid === remembered && !this.wallet) this.connect(provider, info, true);
    });
    setTimeout(() => {
      if (found === 0) {
        this.$("wallet-status").textContent = "No browser wallet found. Install one (MetaMask, Rabby or another "
          + "EIP-1193 wallet) and reload this page, or use the webi CLI.";
      }
    }, 800);
    this.$("switch-chain").addEventListener("click", () => this.switchChain());
    const View = { post: PostView, job: JobView, provider: ProviderView }[this.config.view];
    this.view = View ? new View(this) : null;
    this.view?.start();
  }

  say(text, kind = "error") {
    const box = this.$("message");
    box.textContent = text;
    box.className = `message ${kind}`;
    box.hidden = !text;
  }

  fail(error) {
    this.say(explain(error));
  }

  async connect(provider, info, silent = false) {
    if (!silent) this.say("");
    const wallet = new Wallet(provider, this.config);
    try {
      await wallet.connect(silent);
    } catch (error) {
      if (!silent) this.say(error instanceof WalletError ? error.message : explain(error));
      return;
    }
    if (this.listening !== provider) { // each wallet's events once, and only the connected wallet's count
      this.listening = provider;
      wallet.on("chainChanged", () => this.wallet?.provider === provider && this.checkChain());
      wallet.on("accountsChanged", (accounts) => {
        if (this.wallet?.provider !== provider) return;
        if (accounts.length) this.connect(provider, info, true);
        else this.disconnect();
      });
    }
    this.wallet = wallet;
    this.market = new Market(wallet, this.config);
    sessionStorage.setItem(REMEMBERED, info.uuid);
    await this.checkChain();
  }

  disconnect() {
    this.ready = false;
    sessionStorage.removeItem(REMEMBERED);
    this.$("wallet-status").textContent = "The wallet disconnected (or locked). Connect it again to go on.";
    this.$("account").hidden = true;
  }

  async checkChain() {
    try {
      await this.checkChainOrFail();
    } catch (error) {
      this.fail(error);
    }
  }

  async checkChainOrFail() {
    const chainId = await this.wallet.chainId();
    const switcher = this.$("switch-chain");
    if (chainId !== this.config.chainId) {
      this.ready = false;
      switcher.hidden = false;
      this.$("wallet-status").textContent = `Wrong network: the wallet is on chain ${chainId}, and this node's `
        + `market is on chain ${this.config.chainId} (${this.config.chainName}). Switch the wallet's network.`;
      this.$("account").hidden = true;
      return;
    }
    switcher.hidden = true;
    this.ready = true;
    this.$("wallet-status").textContent = `Connected: ${this.wallet.account} on chain ${chainId}.`;
    await this.refreshAccount();
    this.view?.connected?.();
  }

  async switchChain() {
    try {
      await this.wallet.switchChain();
      await this.checkChainOrFail();
    } catch (error) {
      this.fail(error);
    }
  }

  async refreshAccount() {
    if (!this.ready) return null;
    const account = await this.market.account(this.wallet.account);
    this.$("balance").textContent = webi(account.balance);
    this.$("credits").textContent = webi(account.credits);
    this.$("provider-stake").textContent = webi(account.provider.stake);
    this.$("verifier-stake").textContent = webi(account.verifier.stake);
    this.$("account").hidden = false;
    return account;
  }

  /** Raises unless a wallet is connected on the right chain (the message says which is missing). */
  requireWallet() {
    if (!this.wallet) throw new WalletError("Connect a wallet first.");
    if (!this.ready) throw new WalletError(`Switch the wallet to chain ${this.config.chainId} first.`);
  }

  async session() {
    return this.node.signIn(this.wallet.account,
                            (message) => this.wallet.client.signMessage({ account: this.wallet.account, message }));
  }
}

export { ROLE, formatUnits, parseUnits };
