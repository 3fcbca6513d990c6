// Words for what went wrong: the wallet's refusals (EIP-1193 codes) and the contracts' reverts, named by
// their custom error from the ABI (viem decodes them).
import { BaseError, ContractFunctionRevertedError, UserRejectedRequestError, formatUnits } from "viem";

const REJECTED = 4001;
const UNAUTHORIZED = 4100;

const HINTS = {
  ERC20InsufficientBalance: "your WEBI balance is too low for this",
  ERC20InsufficientAllowance: "the market may not move that many of your WEBI: approve more first",
  InsufficientStake: "the stake is too small for this",
  NotRequester: "only the job's requester may do this",
  WrongState: "the job is no longer in the state this needs: reload the page",
  ClaimWindowClosed: "the job's claim window has closed",
  InvalidPrice: "the price is under the network's minimum for this many tasks",
  PriceAboveMaximum: "the price is over what the verifiers' stakes can guarantee",
  SampleValueAboveMaximum: "the sampled work is worth more than a verifier's slashable stake: sample fewer tasks or lower the price",
  DeadlinePassed: "its deadline has passed",
  NotEntitledToChallenge: "only the requester (or the provider, against a fail) may challenge this verdict",
  NothingToWithdraw: "there is nothing to withdraw",
  ZeroAmount: "the amount must be more than 0",
  StakeLocked: "that stake is locked by claims or still unbonding",
};

function argText(value) {
  return typeof value === "bigint" ? value.toString() : String(value);
}

/** A sentence for `error`: what the person sees on the page. */
export function explain(error) {
  if (error === undefined || error === null) return "something went wrong";
  const code = error.code ?? error.cause?.code;
  if (error instanceof BaseError) {
    if (error.walk((e) => e instanceof UserRejectedRequestError || e?.code === REJECTED)) {
      return "You rejected the request in your wallet: nothing was signed or sent.";
    }
    const revert = error.walk((e) => e instanceof ContractFunctionRevertedError);
    if (revert instanceof ContractFunctionRevertedError && revert.data?.errorName) {
      const { errorName, args = [] } = revert.data;
      const hint = HINTS[errorName];
      return `The contract refused: ${errorName}(${args.map(argText).join(", ")})${hint ? ` — ${hint}` : ""}.`;
    }
    if (revert instanceof ContractFunctionRevertedError && revert.reason) return `The contract refused: ${revert.reason}.`;
    if (error.walk((e) => e?.code === UNAUTHORIZED)) return "The wallet is locked or has not allowed this site: unlock it and connect again.";
    return error.shortMessage || error.message;
  }
  if (code === REJECTED) return "You rejected the request in your wallet: nothing was signed or sent.";
  if (code === UNAUTHORIZED) return "The wallet is locked or has not allowed this site: unlock it and connect again.";
  if (typeof error.message === "string" && error.message) return error.message;
  return "The wallet or the node refused the request without saying why.";
}

/** WEBI amounts in words, from wei. */
export function webi(wei) {
  const text = formatUnits(BigInt(wei), 18);
  return `${text} WEBI`;
}
