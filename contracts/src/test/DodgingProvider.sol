// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IJobMarket} from "../interfaces/IJobMarket.sol";

/// @title DodgingProvider (test only)
/// @notice A cheating provider that submits and then reverts its own submission whenever it
///         believes the job will be audited. The tests show it cannot know: within the submitting
///         transaction the seed block does not exist yet. Never deployed outside tests.
contract DodgingProvider {
    error Dodged(uint256 jobId);

    IJobMarket public immutable market;
    IERC20 public immutable token;
    uint256 public submitted;
    uint256 public dodged;

    constructor(IJobMarket market_, IERC20 token_) {
        market = market_;
        token = token_;
    }

    function registerProvider(uint96 stake) external {
        token.approve(address(market), type(uint256).max);
        market.register(IJobMarket.Role.Provider, stake, "");
    }

    /// @notice Posts and claims `n` jobs, then tries to submit each, undoing the submission of
    ///         any job it predicts will be audited. Returns the first job id.
    function run(uint256 n, IJobMarket.JobRequest calldata request) external returns (uint256 first) {
        IJobMarket.JobTerms memory terms = _terms(request);
        for (uint256 i; i < n; ++i) {
            uint256 jobId = market.postJob(request);
            if (i == 0) first = jobId;
            market.claimJob(jobId, terms);
            try this.submitUnlessAudited(jobId, terms) {
                ++submitted;
            } catch {
                ++dodged;
            }
        }
    }

    /// @notice Submits, then reverts if the audit looks likely, by every view available here.
    function submitUnlessAudited(uint256 jobId, IJobMarket.JobTerms calldata terms) external {
        require(msg.sender == address(this));
        market.submitResult(jobId, "", bytes32(jobId));
        // Ask the market itself: it must refuse (SeedNotReady) in this block.
        try market.auditOf(jobId, terms) returns (bool audited, address, bytes32) {
            if (audited) revert Dodged(jobId);
        } catch {}
        // Guess the seed from what blockhash shows now (the seed block's hash reads as zero).
        bytes32 guess = keccak256(abi.encode(blockhash(block.number + 1), jobId));
        if (uint256(guess) % 10_000 < terms.sampleRateBps) revert Dodged(jobId);
    }

    /// @dev The terms the market commits to for `request` posted by this contract now.
    function _terms(IJobMarket.JobRequest calldata request) internal view returns (IJobMarket.JobTerms memory) {
        IJobMarket.Terms memory t = market.terms();
        return IJobMarket.JobTerms(
            address(this),
            request.price,
            request.numTasks,
            request.claimBy,
            request.execWindow,
            request.sampleRateBps,
            request.sampleTasks,
            t.protocolFeeBps,
            t.verifierFeeBps,
            t.collateralBps,
            t.auditWindow
        );
    }
}
