// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title WEBI token
/// @notice The marketplace's unit of account: escrow, stakes, fees and slashes are all WEBI.
/// @dev Fixed supply, minted once to `holder` at deployment; there is no mint or burn afterwards,
///      so every token an auditor sees is one of these. EIP-2612 permit lets a requester
///      approve and post a job in one transaction.
contract WebiToken is ERC20, ERC20Permit {
    /// @param holder Receives the whole supply.
    /// @param supply Total supply in wei (18 decimals).
    constructor(address holder, uint256 supply) ERC20("WEBI", "WEBI") ERC20Permit("WEBI") {
        _mint(holder, supply);
    }
}
