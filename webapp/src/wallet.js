// Browser wallets: found by EIP-6963 announcements (and the legacy window.ethereum), connected with
// eth_requestAccounts, kept on the node's chain with wallet_switchEthereumChain / wallet_addEthereumChain.
// The page never holds a key: every signature and transaction is the wallet's.
import { createPublicClient, createWalletClient, custom, defineChain, getAddress, numberToHex } from "viem";

const UNRECOGNIZED_CHAIN = 4902;

export class WalletError extends Error {}

/** Calls `onFound({info, provider})` for each wallet announced now or later; returns a function that stops. */
export function discoverWallets(onFound) {
  const seen = new Set();
  const announce = (event) => {
    const { info, provider } = event.detail ?? {};
    if (!info || !provider || seen.has(info.uuid)) return;
    seen.add(info.uuid);
    onFound({ info, provider });
  };
  window.addEventListener("eip6963:announceProvider", announce);
  window.dispatchEvent(new Event("eip6963:requestProvider"));
  // A wallet that predates EIP-6963 only sets window.ethereum; offer it when no announcement names it.
  const legacy = setTimeout(() => {
    if (seen.size === 0 && window.ethereum) {
      seen.add("legacy");
      onFound({ info: { uuid: "legacy", name: "Browser wallet", icon: "", rdns: "" }, provider: window.ethereum });
    }
  }, 400);
  return () => {
    clearTimeout(legacy);
    window.removeEventListener("eip6963:announceProvider", announce);
  };
}

/** One connected wallet on the node's chain: viem clients over the wallet's own EIP-1193 provider. */
export class Wallet {
  constructor(provider, config) {
    this.provider = provider;
    this.config = config;
    this.chain = defineChain({
      id: config.chainId,
      name: config.chainName,
      nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
      rpcUrls: { default: { http: [config.rpcUrl] } },
    });
    const transport = custom(provider);
    this.public = createPublicClient({ chain: this.chain, transport, pollingInterval: 500 });
    this.client = createWalletClient({ chain: this.chain, transport, pollingInterval: 500 });
    this.account = null;
  }

  /** Asks the wallet for an account (`silent`: only one it already allowed, no prompt); a WalletError when it is
   *  locked or gives none. */
  async connect(silent = false) {
    const accounts = await this.provider.request({ method: silent ? "eth_accounts" : "eth_requestAccounts" });
    if (!accounts || accounts.length === 0) {
      throw new WalletError("The wallet gave no account: it may be locked. Unlock it, then connect again.");
    }
    this.account = getAddress(accounts[0]);
    return this.account;
  }

  async chainId() {
    return Number(await this.provider.request({ method: "eth_chainId" }));
  }

  /** Asks the wallet to switch to the node's chain, adding it first when the wallet does not know it. */
  async switchChain() {
    const chainId = numberToHex(this.config.chainId);
    try {
      await this.provider.request({ method: "wallet_switchEthereumChain", params: [{ chainId }] });
    } catch (error) {
      if ((error?.code ?? error?.data?.originalError?.code) !== UNRECOGNIZED_CHAIN) throw error;
      await this.provider.request({
        method: "wallet_addEthereumChain",
        params: [{ chainId, chainName: this.config.chainName, rpcUrls: [this.config.rpcUrl],
                   nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 } }],
      });
    }
    const now = await this.chainId();
    if (now !== this.config.chainId) throw new WalletError(`The wallet is still on chain ${now}.`);
  }

  on(event, listener) {
    if (typeof this.provider.on === "function") this.provider.on(event, listener);
  }
}
