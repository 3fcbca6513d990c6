// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable2Step.sol";

import {MarketBase} from "./MarketBase.sol";

/// @title DelegatedModule
/// @notice Code that JobMarket runs by DELEGATECALL on its own storage (`Disputes`, `Requests`):
///         the storage layout is MarketBase's, so every module reads and writes the market's.
/// @dev Warning: a module's own storage and owner are unused; called directly, every function
///      marked `onlyDelegated` reverts (DirectCall).
abstract contract DelegatedModule is MarketBase {
    address private immutable _self = address(this);

    /// @param token_ The market's token (an immutable, so it must match JobMarket's).
    constructor(IERC20 token_) MarketBase(token_) Ownable(address(0xdead)) {}

    modifier onlyDelegated() {
        if (address(this) == _self) revert DirectCall();
        _;
    }
}
