// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {IJobMarket} from "./interfaces/IJobMarket.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {SortitionTree} from "./libraries/SortitionTree.sol";
import {MarketBase} from "./MarketBase.sol";
import {Audits} from "./Audits.sol";

/// @title JobMarket
/// @notice The WEBI protocol core: escrow, claims, result commitments, settlement and the owner's
///         bounded parameters. Staking lives in `Staking`, the verdict in `Audits`, shared
///         storage and settlement in `MarketBase`; the draw, redraws, reveal demands and
///         challenges run from `Disputes`, job groups, cancelling, expired claims and
///         confidential keys from `Requests`, both by DELEGATECALL. See IJobMarket for the protocol.
/// @dev Every entry point runs checks, state changes, events, then token transfers last.
///      Values move into withdrawable balances only through `_credit`, which emits `Credited`.
/// @dev Warning: the owner can change terms and parameters within the hard bounds; requesters
///      bound the terms they accept in each request, so a change in the same block cannot
///      front-run them. The devnet's owner is a TimelockController.
contract JobMarket is Audits {
    using SafeERC20 for IERC20;
    using SortitionTree for SortitionTree.Tree;

    /// @notice The `Disputes` code this market runs by DELEGATECALL for reveal demands and challenges.
    address public immutable disputes;
    /// @notice The `Requests` code this market runs by DELEGATECALL for job groups, cancelling,
    ///         expired claims, metadata updates and confidential jobs' keys.
    address public immutable requests;

    /// @param disputes_ A `Disputes` deployed with the same token.
    /// @param requests_ A `Requests` deployed with the same token.
    constructor(
        IERC20 token_,
        address disputes_,
        address requests_,
        address owner_,
        address treasury_,
        Terms memory terms_,
        Params memory params_
    ) MarketBase(token_) Ownable(owner_) {
        if (disputes_ == address(0) || requests_ == address(0)) revert ZeroAddress();
        disputes = disputes_;
        requests = requests_;
        _config.nextJobId = 1;
        _setTreasury(treasury_);
        _setTerms(terms_);
        _setParams(params_);
    }

    // ─────────────────────────────────────────────────────────── Jobs

    /// @inheritdoc IJobMarket
    function postJob(JobRequest calldata request) external nonReentrant returns (uint256 jobId) {
        uint256 escrow;
        (jobId, escrow) = _post(request);
        token.safeTransferFrom(msg.sender, address(this), escrow);
    }

    /// @inheritdoc IJobMarket
    function postJobWithPermit(JobRequest calldata, uint256, uint8, bytes32, bytes32) external returns (uint256) {
        _toRequests();
    }

    /// @inheritdoc IJobMarket
    function claimJob(uint256 jobId, JobTerms calldata terms_, bytes32[] calldata proof) external {
        _checked(jobId, terms_, JobState.Open);
        if (block.timestamp > terms_.claimBy) revert ClaimWindowClosed(jobId, terms_.claimBy);
        Stake storage s = _providers[msg.sender];
        if (s.stake == 0) revert NotRegistered(msg.sender, Role.Provider);
        uint256 minimum = _params.minProviderStake;
        if (terms_.minProviderStake > minimum) minimum = terms_.minProviderStake;
        if (s.stake < minimum) revert InsufficientStake(msg.sender, s.stake, minimum);
        if (_releasedBy[jobId][msg.sender]) revert ClaimGivenBack(jobId, msg.sender);
        if (terms_.allowlistRoot != 0) {
            bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(msg.sender))));
            if (!MerkleProof.verifyCalldata(proof, terms_.allowlistRoot, leaf)) {
                revert NotAllowlisted(jobId, msg.sender);
            }
        }
        uint96 collateral = _collateral(terms_);
        uint256 free = s.stake - s.locked;
        if (free < collateral) revert InsufficientStake(msg.sender, free, collateral);
        s.locked += collateral;
        uint256 deadline = block.timestamp + terms_.execWindow;
        _statuses[jobId] = JobStatus(JobState.Claimed, msg.sender, SafeCast.toUint32(deadline), 0);
        emit JobClaimed(jobId, msg.sender, collateral, deadline);
    }

    /// @inheritdoc IJobMarket
    function submitResult(uint256 jobId, string calldata outputCid, bytes32 resultRoot) external {
        JobStatus storage status = _statuses[jobId];
        _expect(jobId, status.state, JobState.Claimed);
        if (msg.sender != status.provider) revert NotProvider(jobId, msg.sender);
        uint256 deadline = status.stamp;
        if (block.timestamp > deadline) revert SubmitDeadlinePassed(jobId, deadline);
        // The seed block comes after this one: nothing running in this block can know its hash.
        uint32 seedBlock = _nextBlock();
        _statuses[jobId] = JobStatus(JobState.Submitted, msg.sender, uint32(block.timestamp), seedBlock);
        _roots[jobId] = resultRoot;
        emit ResultSubmitted(jobId, msg.sender, outputCid, resultRoot, seedBlock);
    }

    /// @inheritdoc IJobMarket
    function finalize(uint256 jobId, JobTerms calldata terms_) external {
        JobStatus storage status = _checked(jobId, terms_, JobState.Audited);
        Audit storage a = _audits[jobId];
        uint256 deadline = a.deadline;
        if (block.timestamp <= deadline) revert DeadlineNotReached(jobId, deadline);
        _settle(jobId, terms_, status, a.verdict, a.verifier, true);
    }

    /// @inheritdoc IJobMarket
    function withdraw() external nonReentrant {
        uint256 amount = _credits[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        _credits[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IJobMarket
    function withdrawProtocolFees() external nonReentrant {
        address to = _treasury;
        uint256 amount = _protocolFees;
        if (amount == 0) revert NothingToWithdraw(to);
        _protocolFees = 0;
        emit ProtocolFeesWithdrawn(to, amount);
        token.safeTransfer(to, amount);
    }

    // ─────────────────────────────────────────────────────────── Disputes (delegated)

    /// @inheritdoc IJobMarket
    function cancelJob(uint256, JobTerms calldata) external {
        _toRequests();
    }

    /// @inheritdoc IJobMarket
    function postJobGroup(JobRequest[] calldata, uint256) external returns (uint256) {
        _toRequests();
    }

    /// @inheritdoc IJobMarket
    function updateMetadata(Role, string calldata) external {
        _toRequests();
    }

    /// @inheritdoc IJobMarket
    function reclaimExpired(uint256, JobTerms calldata) external {
        _toRequests();
    }

    /// @inheritdoc IJobMarket
    function releaseKey(uint256, JobTerms calldata, address, bytes calldata) external {
        _toRequests();
    }

    /// @inheritdoc IJobMarket
    function releaseClaim(uint256, JobTerms calldata) external {
        _toRequests();
    }

    /// @inheritdoc IJobMarket
    function lockSeed(uint256, JobTerms calldata) external {
        _toDisputes();
    }

    /// @inheritdoc IJobMarket
    function redrawVerifier(uint256, JobTerms calldata) external {
        _toDisputes();
    }

    /// @inheritdoc IJobMarket
    function demandReveal(uint256, JobTerms calldata, bytes32, bytes32) external {
        _toDisputes();
    }

    /// @inheritdoc IJobMarket
    function revealOutputs(uint256, JobTerms calldata, bytes[] calldata, bytes32[][] calldata) external {
        _toDisputes();
    }

    /// @inheritdoc IJobMarket
    function failUnrevealed(uint256, JobTerms calldata) external {
        _toDisputes();
    }

    /// @inheritdoc IJobMarket
    function challenge(uint256, JobTerms calldata) external {
        _toDisputes();
    }

    /// @inheritdoc IJobMarket
    function drawPanel(uint256, JobTerms calldata) external {
        _toDisputes();
    }

    /// @inheritdoc IJobMarket
    function commitVote(uint256, bytes32) external {
        _toDisputes();
    }

    /// @inheritdoc IJobMarket
    function revealVote(uint256, Verdict, bytes32) external {
        _toDisputes();
    }

    /// @inheritdoc IJobMarket
    function resolveChallenge(uint256, JobTerms calldata) external {
        _toDisputes();
    }

    // ─────────────────────────────────────────────────────────── Owner

    /// @inheritdoc IJobMarket
    function setTerms(Terms calldata terms_) external onlyOwner {
        _setTerms(terms_);
    }

    /// @inheritdoc IJobMarket
    function setParams(Params calldata params_) external onlyOwner {
        _setParams(params_);
    }

    /// @inheritdoc IJobMarket
    function setTreasury(address treasury_) external onlyOwner {
        _setTreasury(treasury_);
    }

    // ─────────────────────────────────────────────────────────── Views

    /// @inheritdoc IJobMarket
    function getJob(uint256 jobId) external view returns (JobStatus memory status, bytes32 termsHash) {
        status = _statuses[jobId];
        termsHash = _termsHashes[jobId];
        if (status.state == JobState.None && termsHash != 0) status.state = JobState.Open;
    }

    /// @inheritdoc IJobMarket
    function auditOf(uint256 jobId) external view returns (Audit memory) {
        return _audits[jobId];
    }

    /// @inheritdoc IJobMarket
    function panelOf(uint256 jobId) external view returns (Panel memory) {
        return _panels[jobId];
    }

    /// @inheritdoc IJobMarket
    function resultRoot(uint256 jobId) external view returns (bytes32) {
        return _roots[jobId];
    }

    /// @inheritdoc IJobMarket
    function auditFee(uint256 price, uint256 numTasks, uint256 sampleTasks, uint256 verifierFeeBps)
        public
        pure
        returns (uint256)
    {
        return _auditFee(price, numTasks, sampleTasks, verifierFeeBps);
    }

    /// @inheritdoc IJobMarket
    function sampledTasks(uint256 jobId, JobTerms calldata terms_) external view returns (uint32[] memory) {
        if (_termsHashes[jobId] != _hashTerms(terms_)) revert TermsMismatch(jobId);
        Audit storage a = _audits[jobId];
        if (a.revealBy == 0 && a.verdict == Verdict.None) revert SampleNotRevealed(jobId);
        return _sample(a.secret, terms_.numTasks, terms_.sampleTasks);
    }

    /// @inheritdoc IJobMarket
    function sampleOf(bytes32 sampleSeed, uint256 numTasks, uint256 sampleTasks)
        external
        pure
        returns (uint32[] memory)
    {
        return _sample(sampleSeed, numTasks, sampleTasks);
    }

    /// @inheritdoc IJobMarket
    function drawVerifier(bytes32 seed, address[] calldata excluded) external view returns (address) {
        return _tree.draw(seed, excluded);
    }

    /// @inheritdoc IJobMarket
    function credits(address account) external view returns (uint256) {
        return _credits[account];
    }

    /// @inheritdoc IJobMarket
    function treasury() external view returns (address) {
        return _treasury;
    }

    /// @inheritdoc IJobMarket
    function protocolFees() external view returns (uint256) {
        return _protocolFees;
    }

    /// @inheritdoc IJobMarket
    function burned() external view returns (uint256) {
        return _burned;
    }

    /// @inheritdoc IJobMarket
    function providerStake(address account) external view returns (Stake memory) {
        return _providers[account];
    }

    /// @inheritdoc IJobMarket
    function verifierStake(address account) external view returns (Stake memory) {
        return _verifiers[account];
    }

    /// @inheritdoc IJobMarket
    function verifierWeight(address account) external view returns (uint256) {
        return _tree.weightOf(account);
    }

    /// @inheritdoc IJobMarket
    function totalVerifierWeight() external view returns (uint256) {
        return _tree.total();
    }

    /// @inheritdoc IJobMarket
    function verifierCount() external view returns (uint256) {
        return _tree.size();
    }

    /// @inheritdoc IJobMarket
    function secretOf(address verifier) external view returns (bytes32) {
        return _secrets[verifier];
    }

    /// @inheritdoc IJobMarket
    function terms() external view returns (Terms memory) {
        Config storage c = _config;
        return Terms(c.protocolFeeBps, c.verifierFeeBps, c.collateralBps, c.auditWindow, c.challengeWindow);
    }

    /// @inheritdoc IJobMarket
    function params() external view returns (Params memory) {
        return _params;
    }

    /// @inheritdoc IJobMarket
    function nextJobId() external view returns (uint256) {
        return _config.nextJobId;
    }

    // ─────────────────────────────────────────────────────────── Internal

    function _toDisputes() internal {
        _delegate(disputes);
    }

    function _toRequests() internal {
        _delegate(requests);
    }

    /// @dev Runs the call's own calldata in `module` on this contract's storage, and returns or
    ///      reverts with what it returned.
    function _delegate(address module) internal {
        assembly {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), module, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }

    /// @dev For calls that need no terms: `have` is a stored state (never Open).
    function _expect(uint256 jobId, JobState have, JobState want) internal view {
        if (have == want) return;
        if (have == JobState.None) {
            if (_termsHashes[jobId] == 0) revert JobNotFound(jobId);
            have = JobState.Open;
        }
        revert WrongState(jobId, have, want);
    }

    function _setTerms(Terms memory t) internal {
        _bound("protocolFeeBps", t.protocolFeeBps, 0, MAX_FEE_BPS);
        _bound("verifierFeeBps", t.verifierFeeBps, MIN_VERIFIER_FEE_BPS, MAX_VERIFIER_FEE_BPS);
        _bound("collateralBps", t.collateralBps, MIN_COLLATERAL_BPS, MAX_COLLATERAL_BPS);
        _bound("auditWindow", t.auditWindow, MIN_WINDOW, MAX_WINDOW);
        _bound("challengeWindow", t.challengeWindow, MIN_WINDOW, MAX_WINDOW);
        Config storage c = _config;
        c.protocolFeeBps = t.protocolFeeBps;
        c.verifierFeeBps = t.verifierFeeBps;
        c.collateralBps = t.collateralBps;
        c.auditWindow = t.auditWindow;
        c.challengeWindow = t.challengeWindow;
        emit TermsUpdated(t);
    }

    function _setParams(Params memory p) internal {
        _bound("minProviderStake", p.minProviderStake, 1, type(uint96).max);
        _bound("minVerifierStake", p.minVerifierStake, 1, type(uint96).max);
        _bound("minTaskPrice", p.minTaskPrice, 1, type(uint96).max);
        _bound("unstakeCooldown", p.unstakeCooldown, MIN_COOLDOWN, MAX_COOLDOWN);
        _bound("revealWindow", p.revealWindow, MIN_WINDOW, MAX_WINDOW);
        _bound("voteWindow", p.voteWindow, MIN_WINDOW, MAX_WINDOW);
        _bound("verifierSlashBps", p.verifierSlashBps, MIN_VERIFIER_SLASH_BPS, BPS);
        _bound("noShowSlashBps", p.noShowSlashBps, MIN_NO_SHOW_SLASH_BPS, MAX_NO_SHOW_SLASH_BPS);
        _bound("rewardBps", p.rewardBps, 0, MAX_REWARD_BPS);
        _params = p;
        emit ParamsUpdated(p);
    }

    function _setTreasury(address treasury_) internal {
        if (treasury_ == address(0)) revert ZeroAddress();
        _treasury = treasury_;
        emit TreasuryUpdated(treasury_);
    }

    function _bound(bytes32 name, uint256 value, uint256 min, uint256 max) internal pure {
        if (value < min || value > max) revert ParamOutOfBounds(name, value, min, max);
    }
}
