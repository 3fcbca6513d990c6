// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title Governance
/// @notice The owner of a deployed JobMarket: OpenZeppelin's TimelockController as it is, so that
///         every change of terms or parameters is announced `minDelay` seconds before it applies.
///         Requesters' own bounds (maximum fees, minimum collateral) protect jobs posted meanwhile.
contract Governance is TimelockController {
    /// @param minDelay Seconds between scheduling and executing a change.
    /// @param proposers Who may schedule (and cancel) changes.
    /// @param executors Who may execute a ready change (address(0): anyone).
    /// @param admin Optional admin for role setup (address(0): none, the timelock governs itself).
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors, address admin)
        TimelockController(minDelay, proposers, executors, admin)
    {}
}
