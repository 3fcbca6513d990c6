// A test wallet: an EIP-1193 provider injected before the page loads (Playwright's add_init_script), announced
// by EIP-6963, that forwards every request to anvil's JSON-RPC, where the dev account is unlocked and signs
// (personal_sign, eth_signTypedData_v4, eth_sendTransaction) as a real wallet would. Test-only: anvil's
// published dev keys sign here, never a real one.
//
// window.__webiWallet (set first) configures it:
//   rpcUrl      anvil's URL
//   account     the dev account it offers
//   chainId     the chain it says it is on at first (hex); a wrong one until wallet_switchEthereumChain
//   realChainId anvil's chain id (hex): the only chain it can switch to
//   locked      true: eth_requestAccounts gives no account
//   reject      the methods the "person" rejects (EIP-1193 code 4001), e.g. ["eth_signTypedData_v4"]
(() => {
  const config = window.__webiWallet;
  const listeners = {};
  let chainId = config.chainId;
  let id = 0;

  function failure(code, message) {
    const error = new Error(message);
    error.code = code;
    return error;
  }

  async function rpc(method, params) {
    const response = await fetch(config.rpcUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params: params ?? [] }),
    });
    const body = await response.json();
    if (body.error) {
      const error = failure(body.error.code, body.error.message);
      error.data = body.error.data;
      throw error;
    }
    return body.result;
  }

  function emit(event, value) {
    for (const listener of listeners[event] ?? []) listener(value);
  }

  const provider = {
    isWebiTestWallet: true,
    async request({ method, params }) {
      window.__webiWalletCalls = [...(window.__webiWalletCalls ?? []), method];
      if ((config.reject ?? []).includes(method)) throw failure(4001, "User rejected the request.");
      switch (method) {
        case "eth_requestAccounts":
        case "eth_accounts":
          return config.locked ? [] : [config.account];
        case "eth_chainId":
          return chainId;
        case "net_version":
          return String(Number(chainId));
        case "wallet_switchEthereumChain":
          if (params[0].chainId.toLowerCase() !== config.realChainId.toLowerCase()) {
            throw failure(4902, `Unrecognized chain ID ${params[0].chainId}`);
          }
          chainId = config.realChainId;
          emit("chainChanged", chainId);
          return null;
        case "wallet_addEthereumChain":
          throw failure(4001, "User rejected the request.");
        default:
          if (chainId.toLowerCase() !== config.realChainId.toLowerCase()) {
            throw failure(4901, "The wallet is connected to another chain.");
          }
          return rpc(method, params);
      }
    },
    on(event, listener) {
      (listeners[event] ??= []).push(listener);
    },
    removeListener(event, listener) {
      listeners[event] = (listeners[event] ?? []).filter((item) => item !== listener);
    },
  };
  const info = { uuid: "6f1c0c5e-7f2a-4d0e-9a57-0c1b2d3e4f50", name: "Test Wallet", icon: "data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg'/>", rdns: "dev.webi.testwallet" };
  const announce = () => window.dispatchEvent(new CustomEvent("eip6963:announceProvider", { detail: Object.freeze({ info, provider }) }));
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
})();
