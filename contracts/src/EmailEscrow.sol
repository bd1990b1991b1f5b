// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Spring Mail escrow
/// @notice Holds QTUM (or a QRC20 token) for an email address until the recipient
/// claims it with the deposit's claim key, or the sender takes it back.
/// @dev One deposit is one storage slot: the keccak hash of its fields, keyed by the
/// deposit's claim key address. Claims and refunds pass the fields back as calldata and
/// are checked against that hash. There is no owner, no admin and no upgrade path.
contract EmailEscrow {
    // ---------------------------------------------------------------- types

    /// @notice One escrowed payment. `amount` is in base units (satoshi for QTUM).
    struct Deposit {
        address sender; // who paid; refunds go here
        address token; // address(0) = native coin; else a QRC20/ERC20 token
        uint96 amount; // base units
        uint40 expiry; // unix seconds; after it, refund only
        uint8 flags; // bit 0 CANCELLABLE: sender may refund before expiry
        address watcher; // address(0): link mode; else this EOA or ERC-1271 contract attests
        bytes32 recipient; // keccak256("springmail/v1" 0x00 email 0x00 salt)
    }

    // ---------------------------------------------------------------- errors

    /// @notice A deposit already uses this claim key.
    error ClaimKeyInUse(address claimKey);
    /// @notice The claim key is the zero address.
    error ZeroClaimKey();
    /// @notice The amount is zero.
    error ZeroAmount();
    /// @notice `d.sender` is not the caller.
    error SenderMismatch(address sender, address caller);
    /// @notice The native value sent does not equal `d.amount` (or is non-zero for a token deposit).
    error ValueMismatch(uint256 expected, uint256 got);
    /// @notice The expiry is not in the future.
    error ExpiryInPast(uint40 expiry, uint256 nowTs);
    /// @notice The token delivered less (or more) than `d.amount`.
    error TokenShortfall(uint256 expected, uint256 received);
    /// @notice No open deposit matches this claim key and these fields.
    error UnknownDeposit(address claimKey, bytes32 depositHash);
    /// @notice The deposit's expiry has passed; only a refund is possible.
    error Expired(uint40 expiry, uint256 nowTs);
    /// @notice The signed claim's deadline has passed.
    error DeadlinePassed(uint40 deadline, uint256 nowTs);
    /// @notice The relayer's fee is above the signed maximum or above the amount.
    error FeeTooHigh(uint96 fee, uint96 maxFee);
    /// @notice The claim key's signature does not match the claim.
    error BadClaimSignature(address claimKey);
    /// @notice The watcher's attestation does not match the claim.
    error BadAttestation(address watcher);
    /// @notice The caller may not refund this deposit now.
    error RefundNotAllowed(address caller, uint40 expiry, uint256 nowTs);
    /// @notice Paying `to` failed.
    error TransferFailed(address token, address to, uint256 amount);

    // ---------------------------------------------------------------- events

    /// @notice A deposit was made; the event carries every field so anyone can rebuild it.
    event Deposited(address indexed claimKey, address indexed sender, Deposit deposit);
    /// @notice A deposit was claimed: `amount - fee` went to `to`, `fee` to `relayer`.
    event Claimed(address indexed claimKey, address indexed to, uint256 amount, uint256 fee, address relayer);
    /// @notice A deposit went back to its sender.
    event Refunded(address indexed claimKey, address indexed sender, uint256 amount);

    // ---------------------------------------------------------------- constants

    uint8 internal constant CANCELLABLE = 1;
    /// @dev secp256k1n / 2: signatures with a larger s are malleable twins and refused.
    uint256 internal constant HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;
    /// @dev keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    bytes32 internal constant DOMAIN_TYPEHASH = 0x8b73c3c69bb8fe3d512ecc4cf759cc79239f7b179b0ffacaa9a75d522b39400f;
    /// @dev keccak256("SpringMail")
    bytes32 internal constant NAME_HASH = 0xbefe31c32b60af9d0cb8c8ac4d7bc091e465bd8564d87e8f115e890a438e9ae1;
    /// @dev keccak256("1")
    bytes32 internal constant VERSION_HASH = 0xc89efdaa54c0f20c7adf612882df0950f5a951637e0307cdcb4c672f298b8bc6;
    /// @dev keccak256("Claim(address claimKey,bytes32 deposit,address to,uint96 maxFee,uint40 deadline)")
    bytes32 public constant CLAIM_TYPEHASH = 0x04df976db1b98bed7140d8bfa7a5e961b82bb8c39b8ee9544cd161f808d1056c;
    /// @dev keccak256("Attest(address claimKey,bytes32 deposit,address to,uint40 deadline)")
    bytes32 public constant ATTEST_TYPEHASH = 0x73919d39c59538377af8bb4b90ad58c4af79eb232a2b7db96f1c4d70b9083f2a;
    /// @dev bytes4(keccak256("isValidSignature(bytes32,bytes)"))
    bytes4 internal constant ERC1271_MAGIC = 0x1626ba7e;

    uint256 private immutable cachedChainId;
    bytes32 private immutable cachedDomainSeparator;

    // ---------------------------------------------------------------- storage

    /// @notice The hash of each open deposit's fields, by claim key; zero when none.
    mapping(address claimKey => bytes32 depositHash) public deposits;

    constructor() {
        cachedChainId = block.chainid;
        cachedDomainSeparator = _buildDomainSeparator();
    }

    // ---------------------------------------------------------------- external

    /// @notice Escrows `d.amount` of `d.token` (or of the native coin when `d.token` is zero)
    /// for the holder of `claimKey`'s key. For a token, the caller must have approved this
    /// contract; tokens that deliver a different amount than asked are refused.
    /// @param claimKey The address of a fresh key made for this deposit.
    /// @param d The deposit; `d.sender` must be the caller.
    function deposit(address claimKey, Deposit calldata d) external payable {
        if (claimKey == address(0)) revert ZeroClaimKey();
        if (d.sender != msg.sender) revert SenderMismatch(d.sender, msg.sender);
        uint256 amount = d.amount;
        if (amount == 0) revert ZeroAmount();
        if (d.expiry <= block.timestamp) revert ExpiryInPast(d.expiry, block.timestamp);
        if (deposits[claimKey] != bytes32(0)) revert ClaimKeyInUse(claimKey);
        // The fields not read above must be clean too: the stored hash and the event
        // are taken from the raw calldata words.
        _checkClean(d);
        deposits[claimKey] = _hashDeposit(d);
        address token = d.token;
        if (token == address(0)) {
            if (msg.value != amount) revert ValueMismatch(amount, msg.value);
        } else {
            if (msg.value != 0) revert ValueMismatch(0, msg.value);
            uint256 before = _balanceOf(token);
            _pull(token, amount);
            uint256 received = _balanceOf(token) - before;
            if (received != amount) revert TokenShortfall(amount, received);
        }
        // emit Deposited(claimKey, msg.sender, d), straight from calldata.
        bytes32 topic = Deposited.selector;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, d, 0xe0)
            log3(ptr, 0xe0, topic, claimKey, caller())
        }
    }

    /// @notice Pays an open deposit to `to`, minus a relayer fee paid to the caller.
    /// @param claimKey The deposit's claim key address.
    /// @param d The deposit's fields, as in the `Deposited` event.
    /// @param to Who receives `d.amount - fee`.
    /// @param fee What the caller (the relayer) takes; at most `maxFee`.
    /// @param maxFee The largest fee the claim key allowed.
    /// @param deadline The signed claim is void after this time.
    /// @param linkSig The claim key's EIP-712 `Claim` signature (65 bytes, low s).
    /// @param attestation When `d.watcher` is set: its EIP-712 `Attest` signature, or for a
    /// contract watcher whatever its ERC-1271 `isValidSignature` accepts. Empty otherwise.
    function claim(
        address claimKey,
        Deposit calldata d,
        address to,
        uint96 fee,
        uint96 maxFee,
        uint40 deadline,
        bytes calldata linkSig,
        bytes calldata attestation
    ) external {
        // A stored hash is never zero (no keccak preimage of zero is known), so an
        // empty slot never matches.
        bytes32 h = _hashDeposit(d);
        if (deposits[claimKey] != h) revert UnknownDeposit(claimKey, h);
        if (block.timestamp >= d.expiry) revert Expired(d.expiry, block.timestamp);
        if (block.timestamp > deadline) revert DeadlinePassed(deadline, block.timestamp);
        if (fee > maxFee || fee > d.amount) revert FeeTooHigh(fee, maxFee);
        bytes32 sep = _domainSeparator();
        {
            bytes32 digest = _digest(sep, _claimStructHash(claimKey, h, to, maxFee, deadline));
            if (_recover(digest, linkSig) != claimKey) revert BadClaimSignature(claimKey);
        }
        address watcher = d.watcher;
        if (watcher != address(0)) {
            bytes32 digest = _digest(sep, _attestStructHash(claimKey, h, to, deadline));
            if (!_attested(watcher, digest, attestation)) revert BadAttestation(watcher);
        }
        delete deposits[claimKey];
        address token = d.token;
        uint256 amount = d.amount;
        _pay(token, to, amount - fee);
        if (fee != 0) _pay(token, msg.sender, fee);
        // emit Claimed(claimKey, to, amount, fee, msg.sender)
        bytes32 topic = Claimed.selector;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, amount)
            mstore(add(ptr, 0x20), fee)
            mstore(add(ptr, 0x40), caller())
            log3(ptr, 0x60, topic, claimKey, to)
        }
    }

    /// @notice Returns an open deposit to its sender: by anyone once it has expired, or by
    /// the sender before that when the deposit is CANCELLABLE.
    function refund(address claimKey, Deposit calldata d) external {
        bytes32 h = _hashDeposit(d);
        if (deposits[claimKey] != h) revert UnknownDeposit(claimKey, h);
        if (block.timestamp < d.expiry && (msg.sender != d.sender || d.flags & CANCELLABLE == 0)) {
            revert RefundNotAllowed(msg.sender, d.expiry, block.timestamp);
        }
        delete deposits[claimKey];
        address sender = d.sender;
        uint256 amount = d.amount;
        _pay(d.token, sender, amount);
        emit Refunded(claimKey, sender, amount);
    }

    /// @notice The hash stored for a deposit: keccak256(abi.encode(d)).
    function hashDeposit(Deposit calldata d) external pure returns (bytes32) {
        return _hashDeposit(d);
    }

    /// @notice The EIP-712 digest the claim key signs.
    function claimDigest(address claimKey, bytes32 depositHash, address to, uint96 maxFee, uint40 deadline)
        external
        view
        returns (bytes32)
    {
        return _digest(_domainSeparator(), _claimStructHash(claimKey, depositHash, to, maxFee, deadline));
    }

    /// @notice The EIP-712 digest a watcher signs to attest a claim.
    function attestDigest(address claimKey, bytes32 depositHash, address to, uint40 deadline)
        external
        view
        returns (bytes32)
    {
        return _digest(_domainSeparator(), _attestStructHash(claimKey, depositHash, to, deadline));
    }

    /// @notice The EIP-712 domain separator for this chain and contract.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparator();
    }

    /// @notice ERC-5267: the EIP-712 domain fields.
    function eip712Domain()
        external
        view
        returns (
            bytes1 fields,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        )
    {
        return (hex"0f", "SpringMail", "1", block.chainid, address(this), bytes32(0), new uint256[](0));
    }

    // ---------------------------------------------------------------- internal

    function _hashDeposit(Deposit calldata d) internal pure returns (bytes32 h) {
        // The struct is seven static words in calldata; hash them in place.
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, d, 0xe0)
            h := keccak256(ptr, 0xe0)
        }
    }

    /// @dev Reverts unless the two fields `deposit` does not read are clean ABI values.
    function _checkClean(Deposit calldata d) internal pure {
        assembly ("memory-safe") {
            if or(shr(8, calldataload(add(d, 0x80))), shr(160, calldataload(add(d, 0xa0)))) { revert(0, 0) }
        }
    }

    /// @dev keccak256(abi.encode(CLAIM_TYPEHASH, claimKey, depositHash, to, maxFee, deadline))
    function _claimStructHash(address claimKey, bytes32 depositHash, address to, uint96 maxFee, uint40 deadline)
        internal
        pure
        returns (bytes32 sh)
    {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, CLAIM_TYPEHASH)
            mstore(add(ptr, 0x20), claimKey)
            mstore(add(ptr, 0x40), depositHash)
            mstore(add(ptr, 0x60), to)
            mstore(add(ptr, 0x80), maxFee)
            mstore(add(ptr, 0xa0), deadline)
            sh := keccak256(ptr, 0xc0)
        }
    }

    /// @dev keccak256(abi.encode(ATTEST_TYPEHASH, claimKey, depositHash, to, deadline))
    function _attestStructHash(address claimKey, bytes32 depositHash, address to, uint40 deadline)
        internal
        pure
        returns (bytes32 sh)
    {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, ATTEST_TYPEHASH)
            mstore(add(ptr, 0x20), claimKey)
            mstore(add(ptr, 0x40), depositHash)
            mstore(add(ptr, 0x60), to)
            mstore(add(ptr, 0x80), deadline)
            sh := keccak256(ptr, 0xa0)
        }
    }

    function _domainSeparator() internal view returns (bytes32) {
        return block.chainid == cachedChainId ? cachedDomainSeparator : _buildDomainSeparator();
    }

    function _buildDomainSeparator() internal view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
    }

    function _digest(bytes32 sep, bytes32 structHash) internal pure returns (bytes32 d) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, hex"1901")
            mstore(add(ptr, 0x02), sep)
            mstore(add(ptr, 0x22), structHash)
            d := keccak256(ptr, 0x42)
        }
    }

    /// @dev ecrecover of a 65-byte r‖s‖v signature; address(0) for any non-canonical form.
    function _recover(bytes32 digest, bytes calldata sig) internal view returns (address signer) {
        if (sig.length != 65) return address(0);
        assembly ("memory-safe") {
            let s := calldataload(add(sig.offset, 0x20))
            let v := byte(0, calldataload(add(sig.offset, 0x40)))
            if and(iszero(gt(s, HALF_N)), or(eq(v, 27), eq(v, 28))) {
                let ptr := mload(0x40)
                mstore(ptr, digest)
                mstore(add(ptr, 0x20), v)
                mstore(add(ptr, 0x40), calldataload(sig.offset))
                mstore(add(ptr, 0x60), s)
                // The precompile returns nothing for an invalid signature: clear the slot first.
                mstore(0x00, 0)
                if staticcall(gas(), 1, ptr, 0x80, 0x00, 0x20) { signer := mload(0x00) }
            }
        }
    }

    /// @dev An EOA watcher's ecrecover signature, else a contract watcher's ERC-1271 answer.
    function _attested(address watcher, bytes32 digest, bytes calldata sig) internal view returns (bool) {
        if (sig.length == 65 && _recover(digest, sig) == watcher) return true;
        if (watcher.code.length == 0) return false;
        (bool ok, bytes memory ret) = watcher.staticcall(abi.encodeCall(IERC1271.isValidSignature, (digest, sig)));
        return ok && ret.length >= 32 && abi.decode(ret, (bytes4)) == ERC1271_MAGIC;
    }

    function _pay(address token, address to, uint256 amount) internal {
        if (token == address(0)) {
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert TransferFailed(address(0), to, amount);
        } else {
            _call(token, abi.encodeCall(IERC20.transfer, (to, amount)), token, to, amount);
        }
    }

    /// @dev Calls a token and accepts only success with no return data or a true bool.
    function _call(address token, bytes memory data, address errToken, address to, uint256 amount) internal {
        (bool ok, bytes memory ret) = token.call(data);
        if (!ok || (ret.length != 0 && (ret.length < 32 || abi.decode(ret, (uint256)) != 1))) {
            revert TransferFailed(errToken, to, amount);
        }
    }

    /// @dev `transferFrom(msg.sender, this, amount)` with the same acceptance rule as `_call`,
    /// built in scratch memory: the token deposit is the hot path.
    function _pull(address token, uint256 amount) internal {
        bool ok;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, 0x23b872dd00000000000000000000000000000000000000000000000000000000)
            mstore(add(ptr, 0x04), caller())
            mstore(add(ptr, 0x24), address())
            mstore(add(ptr, 0x44), amount)
            ok := call(gas(), token, 0, ptr, 0x64, 0x00, 0x20)
            // Accept no return data, or a 32-byte word equal to 1.
            ok := and(ok, or(iszero(returndatasize()), and(gt(returndatasize(), 0x1f), eq(mload(0x00), 1))))
        }
        if (!ok) revert TransferFailed(token, address(this), amount);
    }

    /// @dev This contract's balance of `token`; reverts when the token does not answer.
    function _balanceOf(address token) internal view returns (uint256 bal) {
        bool ok;
        assembly ("memory-safe") {
            mstore(0x00, 0x70a0823100000000000000000000000000000000000000000000000000000000)
            mstore(0x04, address())
            // Yul evaluates arguments right to left: call first, then read returndatasize.
            ok := staticcall(gas(), token, 0x00, 0x24, 0x00, 0x20)
            ok := and(ok, gt(returndatasize(), 0x1f))
            bal := mload(0x00)
        }
        if (!ok) revert TransferFailed(token, address(this), 0);
    }
}

interface IERC20 {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
    function balanceOf(address who) external view returns (uint256);
}

interface IERC1271 {
    function isValidSignature(bytes32 digest, bytes calldata signature) external view returns (bytes4);
}
