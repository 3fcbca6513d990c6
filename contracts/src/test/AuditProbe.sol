// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IJobMarket} from "../interfaces/IJobMarket.sol";

/// @title AuditProbe (test only)
/// @notice Acts as requester and provider at once to push thousands of jobs through
///         post → claim → submit cheaply, so that tests can measure the audit rate.
///         Never deployed outside tests.
contract AuditProbe {
    IJobMarket public immutable market;
    IERC20 public immutable token;

    constructor(IJobMarket market_, IERC20 token_) {
        market = market_;
        token = token_;
    }

    /// @notice Registers this contract as a provider with `stake` of the WEBI it holds.
    function registerProvider(uint96 stake) external {
        token.approve(address(market), type(uint256).max);
        market.register(IJobMarket.Role.Provider, stake, "");
    }

    /// @notice Posts, claims and submits `n` copies of `request`; returns the first job id.
    function batch(uint256 n, IJobMarket.JobRequest calldata request) external returns (uint256 first) {
        IJobMarket.JobTerms memory terms = _terms(request);
        for (uint256 i; i < n; ++i) {
            uint256 jobId = market.postJob(request);
            if (i == 0) first = jobId;
            market.claimJob(jobId, terms);
            market.submitResult(jobId, "", bytes32(jobId));
        }
    }

    /// @notice How many of the jobs `first .. first + n - 1`, posted with `request`, are audited.
    function countAudited(uint256 first, uint256 n, IJobMarket.JobRequest calldata request)
        external
        view
        returns (uint256 audited)
    {
        IJobMarket.JobTerms memory terms = _terms(request);
        for (uint256 id = first; id < first + n; ++id) {
            (bool a,,) = market.auditOf(id, terms);
            if (a) ++audited;
        }
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
