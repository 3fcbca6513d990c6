// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {IJobMarket} from "./interfaces/IJobMarket.sol";

import {SortitionTree} from "./libraries/SortitionTree.sol";
import {MarketBase} from "./MarketBase.sol";

/// @title Staking
/// @notice Providers and verifiers join with a WEBI stake and leave through a cooldown. A
///         verifier's stake is its weight in every draw, from the moment it has a secret
///         commitment until it unstakes all of it; slashing reaches stake that is unbonding.
abstract contract Staking is IJobMarket, MarketBase {
    using SafeERC20 for IERC20;
    using SortitionTree for SortitionTree.Tree;

    /// @inheritdoc IJobMarket
    function register(Role role, uint96 amount, string calldata metadataCid) external nonReentrant {
        Stake storage s = _stakeOf(role, msg.sender);
        if (s.stake != 0) revert AlreadyRegistered(msg.sender, role);
        uint256 minimum = _minStake(role);
        if (amount < minimum) revert InsufficientStake(msg.sender, amount, minimum);
        s.stake = amount;
        if (role == Role.Verifier) _syncWeight(msg.sender);
        emit Registered(msg.sender, role, amount, metadataCid);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IJobMarket
    function addStake(Role role, uint96 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        Stake storage s = _stakeOf(role, msg.sender);
        if (s.stake == 0) revert NotRegistered(msg.sender, role);
        s.stake += amount;
        if (role == Role.Verifier) _syncWeight(msg.sender);
        emit StakeAdded(msg.sender, role, amount);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IJobMarket
    function requestUnstake(Role role, uint96 amount) external {
        if (amount == 0) revert ZeroAmount();
        Stake storage s = _stakeOf(role, msg.sender);
        if (s.stake == 0) revert NotRegistered(msg.sender, role);
        uint256 free = s.stake - s.locked;
        if (amount > free) revert InsufficientStake(msg.sender, free, amount);
        uint96 remaining = s.stake - amount;
        uint256 minimum = _minStake(role);
        if (remaining != 0 && remaining < minimum) revert InsufficientStake(msg.sender, remaining, minimum);
        uint256 unlockAt = block.timestamp + _params.unstakeCooldown;
        s.stake = remaining;
        s.unbonding += amount;
        s.unlockAt = uint40(unlockAt);
        if (role == Role.Verifier) _syncWeight(msg.sender);
        emit UnstakeRequested(msg.sender, role, amount, unlockAt);
    }

    /// @inheritdoc IJobMarket
    function withdrawStake(Role role) external nonReentrant {
        Stake storage s = _stakeOf(role, msg.sender);
        uint256 amount = s.unbonding;
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        if (block.timestamp < s.unlockAt) revert CooldownActive(msg.sender, s.unlockAt);
        if (s.duties != 0) revert DutiesOpen(msg.sender, s.duties);
        if (role == Role.Verifier) {
            // Stake still weighted in the draw stays slashable: it leaves the draw first (in a
            // sync phase), so a verifier is never drawn with nothing at stake.
            _syncWeight(msg.sender);
            if (_tree.weightOf(msg.sender) > s.stake) {
                revert NotSyncPhase(block.number, block.number - block.number % EPOCH_BLOCKS + EPOCH_BLOCKS);
            }
        }
        s.unbonding = 0;
        emit StakeWithdrawn(msg.sender, role, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IJobMarket
    function commitSecret(bytes32 secretHash) external {
        if (_verifiers[msg.sender].stake == 0) revert NotRegistered(msg.sender, Role.Verifier);
        _secrets[msg.sender] = secretHash;
        _syncWeight(msg.sender);
        emit SecretCommitted(msg.sender, secretHash);
    }

    /// @inheritdoc IJobMarket
    function syncVerifier(address account) external {
        uint256 offset = block.number % EPOCH_BLOCKS;
        if (offset >= SYNC_BLOCKS) revert NotSyncPhase(block.number, block.number - offset + EPOCH_BLOCKS);
        _syncWeight(account);
    }

    function _stakeOf(Role role, address account) internal view returns (Stake storage) {
        return role == Role.Provider ? _providers[account] : _verifiers[account];
    }

    function _minStake(Role role) internal view returns (uint256) {
        return role == Role.Provider ? _params.minProviderStake : _params.minVerifierStake;
    }
}
