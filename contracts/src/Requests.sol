// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {DelegatedModule} from "./DelegatedModule.sol";

/// @title Requests
/// @notice What requesters and claimants do besides posting one job and submitting: posting with
///         a permit, job groups
///         (many shards under one escrow transfer), cancelling, reopening an expired claim,
///         metadata updates, and confidential jobs' key release and claim release. JobMarket runs
///         this code with DELEGATECALL, on its own storage, only so that it fits the 24 KiB code
///         limit; the functions are documented in IJobMarket.
/// @dev Warning: called directly, every function reverts (DirectCall): its own storage is unused.
contract Requests is DelegatedModule {
    using SafeERC20 for IERC20;

    /// @param token_ The market's token (an immutable, so it must match JobMarket's).
    constructor(IERC20 token_) DelegatedModule(token_) {}

    // ─────────────────────────────────────────────────────────── Posting with a permit

    /// @dev See IJobMarket.
    function postJobWithPermit(JobRequest calldata request, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        onlyDelegated
        nonReentrant
        returns (uint256 jobId)
    {
        uint256 escrow;
        (jobId, escrow) = _post(request);
        // A failed permit is not fatal: a front-runner may have used it already, and the
        // allowance it set is what transferFrom needs.
        try IERC20Permit(address(token)).permit(msg.sender, address(this), escrow, deadline, v, r, s) {} catch {}
        token.safeTransferFrom(msg.sender, address(this), escrow);
    }

    // ─────────────────────────────────────────────────────────── Cancelling

    /// @dev See IJobMarket.
    function cancelJob(uint256 jobId, JobTerms calldata terms_) external onlyDelegated {
        JobStatus storage status = _checked(jobId, terms_, JobState.Open);
        if (msg.sender != terms_.requester) revert NotRequester(jobId, msg.sender);
        status.state = JobState.Cancelled;
        delete _termsHashes[jobId];
        emit JobCancelled(jobId);
        _credit(terms_.requester, jobId, CreditKind.Refund, uint256(terms_.price) + terms_.auditFee);
    }

    // ─────────────────────────────────────────────────────────── Job groups

    /// @dev See IJobMarket.
    function postJobGroup(JobRequest[] calldata shards, uint256 groupId)
        external
        onlyDelegated
        nonReentrant
        returns (uint256 firstJobId)
    {
        uint256 count = shards.length;
        if (count == 0 || count > MAX_GROUP_SHARDS) revert InvalidGroupSize(count, MAX_GROUP_SHARDS);
        firstJobId = _config.nextJobId;
        if (groupId == 0) {
            groupId = firstJobId;
            _groupRequesters[groupId] = msg.sender;
        } else if (_groupRequesters[groupId] != msg.sender) {
            revert NotGroupRequester(groupId, msg.sender);
        }
        uint256 escrow;
        for (uint256 i; i < count; ++i) {
            (, uint256 shardEscrow) = _post(shards[i]);
            escrow += shardEscrow;
        }
        emit GroupPosted(groupId, msg.sender, firstJobId, count);
        token.safeTransferFrom(msg.sender, address(this), escrow);
    }

    // ─────────────────────────────────────────────────────────── Confidential jobs

    /// @dev See IJobMarket.
    function updateMetadata(Role role, string calldata metadataCid) external onlyDelegated {
        Stake storage s = role == Role.Provider ? _providers[msg.sender] : _verifiers[msg.sender];
        if (s.stake == 0) revert NotRegistered(msg.sender, role);
        emit MetadataUpdated(msg.sender, role, metadataCid);
    }

    /// @dev See IJobMarket.
    function reclaimExpired(uint256 jobId, JobTerms calldata terms_) external onlyDelegated {
        JobStatus storage status = _checked(jobId, terms_, JobState.Claimed);
        uint256 deadline = status.stamp;
        if (block.timestamp <= deadline) revert SubmitDeadlineNotReached(jobId, deadline);
        address provider = status.provider;
        uint96 collateral = _collateral(terms_);
        Stake storage s = _providers[provider];
        s.locked -= collateral;
        s.stake -= collateral;
        delete _statuses[jobId]; // back to Open: the terms hash is still there
        delete _keyReleasedAt[jobId]; // the next claimant's key window starts afresh
        emit ClaimExpired(jobId, provider, collateral);
        emit Slashed(provider, Role.Provider, jobId, collateral, 0);
        _reward(jobId, msg.sender, collateral);
    }

    /// @dev See IJobMarket.
    function releaseKey(uint256 jobId, JobTerms calldata terms_, address to, bytes calldata wrappedKey)
        external
        onlyDelegated
    {
        JobStatus storage status = _statuses[jobId];
        JobState state = status.state;
        if (
            state != JobState.Claimed && state != JobState.Submitted && state != JobState.Audited
                && state != JobState.Challenged
        ) revert WrongState(jobId, state == JobState.None ? JobState.Open : state, JobState.Claimed);
        if (_termsHashes[jobId] != _hashTerms(terms_)) revert TermsMismatch(jobId);
        if (terms_.confidentiality == Confidentiality.Public) revert NotConfidential(jobId, terms_.confidentiality);
        address provider = status.provider;
        if (msg.sender != terms_.requester && msg.sender != provider) revert NotKeyHolder(jobId, msg.sender);
        if (wrappedKey.length == 0 || wrappedKey.length > MAX_WRAPPED_KEY) {
            revert InvalidWrappedKey(wrappedKey.length, MAX_WRAPPED_KEY);
        }
        if (state == JobState.Claimed) {
            if (msg.sender == terms_.requester && to == provider && _keyReleasedAt[jobId] == 0) {
                _keyReleasedAt[jobId] = uint40(block.timestamp);
            }
        }
        emit KeyReleased(jobId, msg.sender, to, wrappedKey);
    }

    /// @dev See IJobMarket.
    function releaseClaim(uint256 jobId, JobTerms calldata terms_) external onlyDelegated {
        JobStatus storage status = _checked(jobId, terms_, JobState.Claimed);
        address provider = status.provider;
        if (msg.sender != provider) revert NotProvider(jobId, msg.sender);
        if (terms_.confidentiality != Confidentiality.Open) revert NotConfidential(jobId, terms_.confidentiality);
        // Past the deadline the claim is reclaimExpired's: no race between a free exit and a slash.
        if (block.timestamp > status.stamp) revert SubmitDeadlinePassed(jobId, status.stamp);
        uint256 releasedAt = _keyReleasedAt[jobId];
        if (releasedAt != 0 && block.timestamp > releasedAt + terms_.keyWindow) {
            revert ClaimNotReleasable(jobId, releasedAt + terms_.keyWindow);
        }
        uint96 collateral = _collateral(terms_);
        _providers[provider].locked -= collateral;
        delete _statuses[jobId]; // back to Open: the terms hash is still there
        delete _keyReleasedAt[jobId];
        _releasedBy[jobId][provider] = true; // no free give-back-and-take-again loop through the claim window
        emit ClaimReleased(jobId, provider, collateral);
    }
}
